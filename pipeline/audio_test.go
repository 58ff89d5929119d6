package pipeline

import (
	"context"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/pion/rtp"

	"invigil/audio"
	"invigil/detectors/rules"
	"invigil/media"
	"invigil/opus"
)

// sentence48k is a sentence of continuous Chinese speech from espeak-ng,
// resampled to 48 kHz mono by sox, as a candidate talking on would sound.
// (Front_Center.wav's two words with a pause are only 60 % speech chunks:
// too sparse for "2 s within 5 s" to be reached in 3 s.)
func sentence48k(t testing.TB) []float32 {
	t.Helper()
	dir := t.TempDir()
	raw, path := filepath.Join(dir, "espeak.wav"), filepath.Join(dir, "speech48k.wav")
	if out, err := exec.Command("espeak-ng", "-v", "zh", "-w", raw, "请将双手放在桌面上，不要离开画面，我们现在开始面试").CombinedOutput(); err != nil {
		t.Fatalf("espeak-ng: %v: %s (install espeak-ng)", err, out)
	}
	if out, err := exec.Command("sox", raw, "-r", "48000", "-c", "1", "-b", "16", path).CombinedOutput(); err != nil {
		t.Fatalf("sox: %v: %s (install sox)", err, out)
	}
	return readVoice(t, path)
}

// readVoice reads a 48 kHz mono WAV without its quiet lead-in and tail.
func readVoice(t testing.TB, path string) []float32 {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatalf("%v (install alsa-utils)", err)
	}
	defer f.Close()
	w, err := audio.ReadWAV(f)
	if err != nil {
		t.Fatal(err)
	}
	if w.SampleRate != opus.SampleRate || w.Channels != 1 {
		t.Fatalf("%s is %d Hz × %d, want 48 kHz mono", path, w.SampleRate, w.Channels)
	}
	out := make([]float32, len(w.Samples))
	first, last := -1, 0
	for i, s := range w.Samples {
		out[i] = float32(s) / 32768
		if s > 600 || s < -600 {
			if first < 0 {
				first = i
			}
			last = i
		}
	}
	// Without the recording's lead-in and tail, the loop is someone
	// talking on and on rather than one phrase repeated after pauses.
	return out[first : last+1]
}

// micPublisher plays audio into a tap as a browser's microphone track:
// real Opus, 20 ms per RTP packet, in real time.
type micPublisher struct {
	t     testing.TB
	enc   *opus.Encoder
	info  media.Track
	seq   uint16
	ts    uint32
	ssrc  uint32
	clock *media.Clock
}

func newMicPublisher(t testing.TB, identity string) *micPublisher {
	t.Helper()
	enc, err := opus.NewEncoder(opus.EncoderOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { enc.Close() })
	return &micPublisher{t: t, enc: enc, seq: uint16(rand.Uint32()), ts: rand.Uint32(), ssrc: rand.Uint32(),
		info: media.Track{
			SessionID: "session-" + identity, Identity: identity, Role: "candidate", Room: "exam-1",
			TrackID: "audio-" + identity, Kind: media.Audio, MimeType: "audio/opus", ClockRate: 48000,
			Channels: 2, PayloadType: 111, Connection: 1,
		}}
}

func (m *micPublisher) start(tap media.Tap, started time.Time) media.PacketWriter {
	m.t.Helper()
	m.info.Started = started
	m.clock = media.NewClock(48000)
	w := tap.TrackStarted(m.info)
	if w == nil {
		m.t.Fatal("tap ignored a candidate Opus track")
	}
	return w
}

// play sends pcm (48 kHz) as 20 ms packets in real time.
func (m *micPublisher) play(ctx context.Context, w media.PacketWriter, pcm []float32) {
	n := m.enc.FrameSamples()
	start := time.Now()
	for i := 0; i+n <= len(pcm); i += n {
		pkt, err := m.enc.Encode(pcm[i : i+n])
		if err != nil {
			m.t.Error(err)
			return
		}
		due := start.Add(time.Duration(i) * time.Second / opus.SampleRate)
		select {
		case <-ctx.Done():
			return
		case <-time.After(time.Until(due)):
		}
		writeStamped(w, m.clock, &rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: 111, SequenceNumber: m.seq,
			Timestamp: m.ts, SSRC: m.ssrc}, Payload: pkt}, time.Now())
		m.seq++
		m.ts += uint32(n)
	}
}

func loop(clip []float32, seconds float64) []float32 {
	want := int(seconds * opus.SampleRate)
	out := make([]float32, 0, want)
	for len(out) < want {
		out = append(out, clip[:min(len(clip), want-len(out))]...)
	}
	return out
}

// TestListening: real Opus voice through the tap opens talking in the
// rest room within its minimum plus 1 s of stream time, and never in the
// interview; digital silence opens microphone_off after 10 s and the voice
// returning closes it.
func TestListening(t *testing.T) {
	sink := newRecordingSink()
	p, reg := newTestPipeline(t, Config{Sink: sink})
	runs0 := metricValue(t, reg, "invigil_pipeline_audio_model_runs_total")
	rest, interview := mustPolicy(t, rules.PolicyRestRoom), mustPolicy(t, rules.PolicyInterview)
	if err := p.SetPolicy("talker-interview", interview); err != nil {
		t.Fatal(err)
	}
	face := picture(t, "messi5.jpg")
	voice := sentence48k(t)
	silence := make([]float32, 11*opus.SampleRate)

	type cand struct {
		id    string
		audio []float32
	}
	cands := []cand{
		{"talker-rest", loop(voice, 6)},
		{"talker-interview", loop(voice, 6)},
		{"muted", append(silence, loop(voice, 3)...)},
	}
	var wg sync.WaitGroup
	for _, c := range cands {
		pub, mic := newPublisher(t, c.id), newMicPublisher(t, c.id)
		vw := pub.start(p)
		aw := mic.start(p, pub.info.Started)
		frames := (len(c.audio)*testFPS)/opus.SampleRate + testFPS
		wg.Add(2)
		go func() { defer wg.Done(); pub.play(context.Background(), vw, []scene{{face, frames}}, playOptions{}) }()
		go func() { defer wg.Done(); mic.play(context.Background(), aw, c.audio); aw.Close() }()
	}

	v := sink.wait(t, 20*time.Second, rules.Opened, "talker-rest", rules.Talking)
	if limit := rest.Rules[rules.Talking].MinMS + 1000; v.OpenedMS > limit {
		t.Errorf("talking opened at %d ms of stream time, want ≤ %d (min + 1 s): %+v", v.OpenedMS, limit, v.Violation)
	}
	if v.Reason == "" || v.Details["speech_ms"] < float64(rest.Rules[rules.Talking].MinMS) {
		t.Errorf("talking without its numbers: %+v", v.Violation)
	}
	off := sink.wait(t, 30*time.Second, rules.Opened, "muted", rules.MicrophoneOff)
	if off.OpenedMS < rest.Rules[rules.MicrophoneOff].MinMS || off.OpenedMS > 11_000 {
		t.Errorf("microphone_off opened at %d ms, want after 10 s of silence, before the voice at 11 s", off.OpenedMS)
	}
	back := sink.wait(t, 10*time.Second, rules.Closed, "muted", rules.MicrophoneOff)
	if back.EndMS < 10_500 || back.EndMS > 12_000 {
		t.Errorf("microphone_off ended at %d ms, want when the voice returned at 11 s", back.EndMS)
	}
	wg.Wait()
	p.Close()
	for _, e := range sink.all() {
		if e.v.Identity == "talker-interview" && e.v.Type == rules.Talking {
			t.Errorf("talking in the interview: %+v", e.v.Violation)
		}
		if e.v.Type == rules.MicrophoneOff && e.v.Identity != "muted" {
			t.Errorf("microphone_off for a live microphone: %+v", e.v.Violation)
		}
	}
	if n := metricValue(t, reg, "invigil_pipeline_audio_chunks_total", "verdict", "speech"); n < 100 {
		t.Errorf("%v speech chunks", n)
	}
	if n := metricValue(t, reg, "invigil_pipeline_audio_decode_errors_total"); n != 0 {
		t.Errorf("%v decode errors on clean Opus", n)
	}
	// Every judged chunk went through a model run, and a run judges one
	// chunk or several (how many is up to timing: vad's own test holds the
	// batching).
	judged := metricValue(t, reg, "invigil_pipeline_audio_chunks_total", "verdict", "speech") +
		metricValue(t, reg, "invigil_pipeline_audio_chunks_total", "verdict", "no_speech")
	runs := metricValue(t, reg, "invigil_pipeline_audio_model_runs_total") - runs0
	t.Logf("%.0f chunks judged in %.0f model runs", judged, runs)
	if runs <= 0 || runs > judged {
		t.Errorf("%v chunks judged in %v model runs", judged, runs)
	}
}

// TestNoMicrophone: a rest-room candidate who publishes only a camera has
// microphone_off after 10 s of stream time.
func TestNoMicrophone(t *testing.T) {
	sink := newRecordingSink()
	p, _ := newTestPipeline(t, Config{Sink: sink, Workers: 1})
	pub := newPublisher(t, "silent")
	w := pub.start(p)
	done := make(chan struct{})
	go func() {
		defer close(done)
		pub.play(context.Background(), w, []scene{{picture(t, "messi5.jpg"), 12 * testFPS}}, playOptions{})
	}()
	defer func() { <-done }()
	v := sink.wait(t, 30*time.Second, rules.Opened, "silent", rules.MicrophoneOff)
	if v.StartMS != 0 || v.OpenedMS < 10_000 || v.OpenedMS > 11_500 || v.Details["audio_track"] != 0 {
		t.Errorf("microphone_off %+v, want from 0, opened after 10 s", v.Violation)
	}
}

// TestAudioGarbage: random payloads, reordered and duplicated packets and
// wild timestamps are counted, never crash, and WritePacket returns at once
// however fast they come.
func TestAudioGarbage(t *testing.T) {
	sink := newRecordingSink()
	p, reg := newTestPipeline(t, Config{Sink: sink, Workers: 1})
	mic := newMicPublisher(t, "noisy")
	w := mic.start(p, time.Now())
	rng := rand.New(rand.NewSource(1))
	const n = 3000
	for i := 0; i < n; i++ {
		payload := make([]byte, rng.Intn(300))
		rng.Read(payload)
		// Raw, not normalised by a clock: the pipeline survives even what
		// the SFU's clock would have screened out.
		now := time.Now()
		w.WritePacket(media.Packet{RTP: &rtp.Packet{Header: rtp.Header{SequenceNumber: uint16(i + rng.Intn(5) - 2), Timestamp: rng.Uint32(),
			SSRC: 7}, Payload: payload}, Arrival: now, Wall: now, ExtSeq: uint64(i)})
	}
	w.WritePacket(media.Packet{RTP: &rtp.Packet{Payload: make([]byte, opus.MaxPacketBytes+1)}, Arrival: time.Now(), Wall: time.Now()})
	w.WritePacket(media.Packet{})
	w.Close()
	waitFor(t, "the audio track to end", func() bool {
		return metricValue(t, reg, "invigil_pipeline_audio_tracks_active") == 0
	})
	got := metricValue(t, reg, "invigil_pipeline_audio_packets_total")
	bad := metricValue(t, reg, "invigil_pipeline_audio_decode_errors_total")
	late := metricValue(t, reg, "invigil_pipeline_audio_packets_dropped_total", "reason", "late")
	full := metricValue(t, reg, "invigil_pipeline_audio_packets_dropped_total", "reason", "queue_full")
	big := metricValue(t, reg, "invigil_pipeline_audio_packets_dropped_total", "reason", "oversized")
	t.Logf("packets %v: decode errors %v, late %v, queue full %v, oversized %v", got, bad, late, full, big)
	if got != n+1 || big != 1 || bad == 0 || late == 0 {
		t.Errorf("garbage not counted: packets %v, decode errors %v, late %v, oversized %v", got, bad, late, big)
	}
	if len(sink.all()) != 0 {
		t.Errorf("violations from a track with no camera: %s", sink.summary())
	}
}
