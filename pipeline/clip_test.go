package pipeline

import (
	"bytes"
	"context"
	"math"
	"sync"
	"testing"
	"time"

	"invigil/audio"
	"invigil/detectors/rules"
)

// readClip decodes a violation's clip as the proctor's browser would get it.
func readClip(t *testing.T, v Violation) *audio.WAV {
	t.Helper()
	if len(v.Clip) == 0 {
		t.Fatalf("%s of %s has no clip", v.Type, v.Identity)
	}
	w, err := audio.ReadWAV(bytes.NewReader(v.Clip))
	if err != nil {
		t.Fatalf("%s clip: %v", v.Type, err)
	}
	if w.SampleRate != 16000 || w.Channels != 1 {
		t.Fatalf("%s clip is %d Hz × %d, want 16 kHz mono", v.Type, w.SampleRate, w.Channels)
	}
	return w
}

func rmsOf(s []int16) float64 {
	var sum float64
	for _, x := range s {
		sum += float64(x) * float64(x)
	}
	return math.Sqrt(sum / float64(max(len(s), 1)))
}

func isJPEG(b []byte) bool { return len(b) > 3 && b[0] == 0xff && b[1] == 0xd8 }

// TestAudioEvidence: a talking violation reaches the sink with a WAV clip
// of what was said up to its opening (the onset inside it, speech energy
// in it) and the candidate's latest frame as its image; a video violation
// of a candidate with a live microphone carries a clip too.
func TestAudioEvidence(t *testing.T) {
	sink := newRecordingSink()
	p, _ := newTestPipeline(t, Config{Sink: sink})
	rest := mustPolicy(t, rules.PolicyRestRoom)
	voice := sentence48k(t)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	for _, c := range []struct {
		id  string
		pic string
	}{{"talker", "messi5.jpg"}, {"away", "building.jpg"}} {
		pub, mic := newPublisher(t, c.id), newMicPublisher(t, c.id)
		vw := pub.start(p)
		aw := mic.start(p, pub.info.Started)
		pic := picture(t, c.pic)
		wg.Add(2)
		go func() { defer wg.Done(); pub.play(ctx, vw, []scene{{pic, 20 * testFPS}}, playOptions{}) }()
		go func() { defer wg.Done(); mic.play(ctx, aw, loop(voice, 15)); aw.Close() }()
	}

	v := sink.wait(t, 20*time.Second, rules.Opened, "talker", rules.Talking)
	w := readClip(t, v)
	// Both tracks started at stream time 0, so the clip runs from there to
	// the opening (or its last 10 s).
	want := time.Duration(min(v.OpenedMS, 10_000)) * time.Millisecond
	if d := w.Duration(); d < want-300*time.Millisecond || d > want+50*time.Millisecond || d > 10*time.Second {
		t.Errorf("talking opened at %d ms; clip of %v, want about %v", v.OpenedMS, d, want)
	}
	if v.OpenedMS-v.StartMS > int64(w.Duration()/time.Millisecond) {
		t.Errorf("the clip (%v) does not reach back to the onset at %d ms (opened %d)", w.Duration(), v.StartMS, v.OpenedMS)
	}
	onset := w.Samples[max(0, len(w.Samples)-int(rest.Rules[rules.Talking].MinMS)*16):]
	if r := rmsOf(onset); r < 500 {
		t.Errorf("the clip's last %d ms have RMS %.0f: no speech in it", rest.Rules[rules.Talking].MinMS, r)
	} else {
		t.Logf("talking at %d–%d ms: clip %v, RMS of the onset %.0f", v.StartMS, v.OpenedMS, w.Duration(), r)
	}
	if !isJPEG(v.Evidence) {
		t.Errorf("talking without an evidence image (%d bytes)", len(v.Evidence))
	}

	off := sink.wait(t, 20*time.Second, rules.Opened, "away", rules.FaceOffScreen)
	if !isJPEG(off.Evidence) {
		t.Errorf("face_off_screen without its image")
	}
	if cw := readClip(t, off); cw.Duration() < time.Duration(off.OpenedMS-off.StartMS)*time.Millisecond || rmsOf(cw.Samples) < 500 {
		t.Errorf("face_off_screen clip of %v (RMS %.0f) for an onset %d ms before its opening",
			cw.Duration(), rmsOf(cw.Samples), off.OpenedMS-off.StartMS)
	}
	for _, e := range sink.all() {
		if e.kind == rules.Closed && (len(e.v.Clip) > 0 || len(e.v.Evidence) > 0) {
			t.Errorf("a close carries evidence: %+v", e.v.Violation)
		}
	}
	cancel()
}

// TestStalledMicrophone: a microphone track whose packets stop without the
// track ending counts as no microphone from its last packet: microphone_off
// opens its minimum after that (with no clip: nothing is heard), and the
// packets coming again close it.
func TestStalledMicrophone(t *testing.T) {
	sink := newRecordingSink()
	p, reg := newTestPipeline(t, Config{Sink: sink, Workers: 1})
	rest := mustPolicy(t, rules.PolicyRestRoom)
	voice := sentence48k(t)
	pub, mic := newPublisher(t, "stalling"), newMicPublisher(t, "stalling")
	vw := pub.start(p)
	aw := mic.start(p, pub.info.Started)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan struct{})
	go func() {
		defer close(done)
		pub.play(ctx, vw, []scene{{picture(t, "messi5.jpg"), 60 * testFPS}}, playOptions{})
	}()
	defer func() { cancel(); <-done }()

	mic.play(ctx, aw, loop(voice, 3))
	// The packets stop; the track stays open.
	waitFor(t, "the microphone to count as stalled", func() bool { return p.sched.candidates["stalling"].audioLive.Load() == 0 })
	v := sink.wait(t, 30*time.Second, rules.Opened, "stalling", rules.MicrophoneOff)
	if v.StartMS < 2500 || v.StartMS > 3500 {
		t.Errorf("microphone_off from %d ms, want from the last packet at about 3000 ms", v.StartMS)
	}
	if min := rest.Rules[rules.MicrophoneOff].MinMS; v.OpenedMS-v.StartMS < min || v.OpenedMS-v.StartMS > min+1500 {
		t.Errorf("microphone_off opened %d ms after its onset, want its minimum %d (+ a frame or so)", v.OpenedMS-v.StartMS, min)
	}
	if v.Details["audio_track"] != 0 || len(v.Clip) != 0 || !isJPEG(v.Evidence) {
		t.Errorf("microphone_off of a stalled track: %+v, clip %d bytes, image %d bytes", v.Violation, len(v.Clip), len(v.Evidence))
	}
	resumed := make(chan struct{})
	go func() { defer close(resumed); mic.play(ctx, aw, loop(voice, 4)) }() // it sends again
	defer func() { cancel(); <-resumed }()                                  // before the encoder is freed
	back := sink.wait(t, 20*time.Second, rules.Closed, "stalling", rules.MicrophoneOff)
	if back.EndMS < v.OpenedMS {
		t.Errorf("microphone_off closed at %d ms, before it opened at %d", back.EndMS, v.OpenedMS)
	}
	if n := metricValue(t, reg, "invigil_pipeline_audio_stalls_total"); n != 1 {
		t.Errorf("%v stalls counted, want 1", n)
	}
	if n := metricValue(t, reg, "invigil_pipeline_audio_tracks_active"); n != 1 {
		t.Errorf("%v active audio tracks: the stalled one must still count", n)
	}
}
