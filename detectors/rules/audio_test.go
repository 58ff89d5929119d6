package rules

import "testing"

// chunks makes 32 ms chunks from fromMS to toMS, speech or not, at rms.
func chunks(fromMS, toMS int64, speech bool, rms float64) []AudioChunk {
	var out []AudioChunk
	for t := fromMS; t < toMS; t += 32 {
		out = append(out, AudioChunk{TMS: t, DurationMS: 32, Speech: speech, RMS: rms})
	}
	return out
}

func onlyType(evs []Event, typ Type) []Event {
	var out []Event
	for _, ev := range evs {
		if ev.Violation.Type == typ {
			out = append(out, ev)
		}
	}
	return out
}

func audioEngine(t *testing.T, name string) *Engine {
	t.Helper()
	p, err := DefaultPolicy(name)
	if err != nil {
		t.Fatal(err)
	}
	e, err := NewEngine(p)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// TestTalkingWindow: flickering speech (2 of every 3 chunks) opens talking
// once 2 s of it fall within 5 s, dated from its first chunk; after it
// stops, the violation closes once the window holds less than 2 s and the
// clear time passed.
func TestTalkingWindow(t *testing.T) {
	e := audioEngine(t, PolicyRestRoom)
	var in []AudioChunk
	for i, c := range chunks(1000, 9000, true, 0.05) {
		c.Speech = i%3 != 2
		in = append(in, c)
	}
	var opened, closed *Violation
	for _, c := range append(in, chunks(9000, 20000, false, 0.01)...) {
		for _, ev := range e.ObserveAudio([]AudioChunk{c}) {
			v := ev.Violation
			if ev.Kind == Opened {
				opened = &v
			} else {
				closed = &v
			}
		}
	}
	if opened == nil || opened.Type != Talking || opened.StartMS != 1000 {
		t.Fatalf("opened %+v", opened)
	}
	// 2 s of speech at 2/3 takes 3 s.
	if opened.OpenedMS < 3900 || opened.OpenedMS > 4200 {
		t.Errorf("opened at %d ms, want about 4000", opened.OpenedMS)
	}
	if closed == nil || closed.EndMS < 11000 || closed.EndMS > 12100 {
		t.Errorf("closed %+v, want ending when the window fell under 2 s (about 11.7 s)", closed)
	}
}

// TestTalkingShortBursts: bursts of 1 s separated by 4 s never reach 2 s
// within 5 s; the interview policy does not listen for talking at all.
func TestTalkingShortBursts(t *testing.T) {
	for _, name := range []string{PolicyRestRoom, PolicyWaiting, PolicyInterview} {
		e := audioEngine(t, name)
		var in []AudioChunk
		for s := int64(0); s < 30000; s += 5000 {
			in = append(in, chunks(s, s+1000, true, 0.1)...)
			in = append(in, chunks(s+1000, s+5000, false, 0.01)...)
		}
		if evs := e.ObserveAudio(in); len(evs) != 0 {
			t.Errorf("%s: short bursts gave %+v", name, evs)
		}
	}
	e := audioEngine(t, PolicyInterview)
	if evs := e.ObserveAudio(chunks(0, 20000, true, 0.1)); len(evs) != 0 {
		t.Errorf("interview: talking on a call gave %+v", evs)
	}
	if evs := e.AudioMissing(20000, 0); len(evs) != 0 {
		t.Errorf("interview: microphone_off gave %+v", evs)
	}
}

// TestMicrophoneOff: digital silence opens after 10 s, counted from the
// last sound; pauses between words (quiet under a second) do not count;
// sound returning closes it; a missing track opens it from when the audio
// went away.
func TestMicrophoneOff(t *testing.T) {
	e := audioEngine(t, PolicyRestRoom)
	var talk []AudioChunk
	for s := int64(0); s < 5000; s += 1000 {
		talk = append(talk, chunks(s, s+800, true, 0.05)...)
		talk = append(talk, chunks(s+800, s+1000, false, 0)...)
	}
	if evs := onlyType(e.ObserveAudio(talk), MicrophoneOff); len(evs) != 0 {
		t.Fatalf("pauses between words gave %+v", evs)
	}
	evs := onlyType(e.ObserveAudio(chunks(5000, 16000, false, 1e-5)), MicrophoneOff)
	if len(evs) != 1 || evs[0].Kind != Opened || evs[0].Violation.Type != MicrophoneOff {
		t.Fatalf("silence gave %+v", evs)
	}
	if v := evs[0].Violation; v.StartMS != 4800 || v.OpenedMS < 14800 || v.OpenedMS > 14850 {
		t.Errorf("opened %+v, want from the last sound at 4.8 s, 10 s later", v)
	}
	evs = onlyType(e.ObserveAudio(chunks(16000, 18000, false, 0.01)), MicrophoneOff)
	if len(evs) != 1 || evs[0].Kind != Closed || evs[0].Violation.EndMS > 16032 {
		t.Errorf("sound returning gave %+v", evs)
	}

	e = audioEngine(t, PolicyWaiting)
	var got []Event
	for tMS := int64(2000); tMS <= 12000; tMS += 500 {
		got = append(got, e.AudioMissing(tMS, 1500)...)
	}
	if len(got) != 1 || got[0].Violation.StartMS != 1500 || got[0].Violation.OpenedMS != 11500 {
		t.Errorf("missing track gave %+v, want opened at 11.5 s from 1.5 s", got)
	}
	// Frames never touch the audio rules.
	if evs := e.Observe(&Observation{TMS: 13000, Width: 640, Height: 480, Brightness: 120, Contrast: 40, Sharpness: 20,
		Faces: []Face{{Box: Rect{200, 100, 200, 200}, Score: 0.9}}}); len(evs) != 0 {
		t.Errorf("a frame changed audio rules: %+v", evs)
	}
	if open := e.OpenViolations(); len(open) != 1 || open[0].Type != MicrophoneOff {
		t.Errorf("open %+v", open)
	}
}

// TestAudioPolicyValidate: a talking minimum longer than its window is
// refused, like any nonsensical setting.
func TestAudioPolicyValidate(t *testing.T) {
	if _, err := ParsePolicyOverride(PolicyRestRoom, []byte(`{"talk_window_ms":1000}`)); err == nil {
		t.Error("talk_window_ms shorter than min_ms accepted")
	}
	if _, err := ParsePolicyOverride(PolicyRestRoom, []byte(`{"silence_rms":2}`)); err == nil {
		t.Error("silence_rms 2 accepted")
	}
}
