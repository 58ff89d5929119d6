package eval

import (
	"context"
	"os/exec"
	"path/filepath"
	"testing"

	"gocv.io/x/gocv"

	"invigil/detectors"
	"invigil/detectors/rules"
	"invigil/internal/testassets"
	"invigil/listen"
	"invigil/vad"
)

// `invigil analyze` judges a picture and a sound with one rule engine, as
// the server judges a candidate: a real face with a real hand held at the
// ear, shown for 4 s, is a phone call when real speech (espeak-ng through
// the listening path) is heard meanwhile, and not yet when the same 4 s
// are silent (the rule then waits phone_silent_ms, 5 s).
func TestPhoneCallHearsSpeech(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the face, palm and hand models and the speech detector")
	}
	testassets.Model(t, "silero_vad_v5.onnx")
	r := sourcesRenderer(t)
	bg, err := r.background("astra_color.jpg")
	if err != nil {
		t.Fatal(err)
	}
	s := Scenario{Name: "phone", Policy: rules.PolicyRestRoom, Background: "astra_color.jpg"}
	fr, err := r.frame(&s, Scene{Candidate: at("man", 320, 200, 170), Lift: HandAtEar, LiftRight: true, LeftHand: true}, 0, bg.clone())
	if err != nil {
		t.Fatal(err)
	}
	m, err := fr.mat()
	if err != nil {
		t.Fatal(err)
	}
	picture := filepath.Join(t.TempDir(), "hand_at_ear.png")
	ok := gocv.IMWrite(picture, m)
	m.Close()
	if !ok {
		t.Fatal("write the composed picture")
	}

	// The rest room without its slow rules, so the picture is shown about
	// as long as the sound and the silent branch cannot open.
	p, _ := rules.DefaultPolicy(rules.PolicyRestRoom)
	p.HandsEvery = 1
	for _, typ := range []rules.Type{rules.MicrophoneOff, rules.Distance} {
		r := p.Rules[typ]
		r.Enabled = false
		p.Rules[typ] = r
	}

	wav := filepath.Join(t.TempDir(), "speech.wav")
	if out, err := exec.Command("espeak-ng", "-v", "zh", "-s", "170", "喂，第三题选二，第四题选一，你记下来了吗", "-w", wav).CombinedOutput(); err != nil {
		t.Fatalf("espeak-ng (scripts/install.sh installs it): %v\n%s", err, out)
	}
	speech, err := listen.LoadWAV(wav)
	if err != nil {
		t.Fatal(err)
	}
	const seconds = 4
	if len(speech) < seconds*listen.Rate {
		t.Fatalf("espeak-ng said %d samples, want %d s", len(speech), seconds)
	}
	speech = speech[:seconds*listen.Rate]
	silence := make([]float32, len(speech))
	for i := range silence {
		silence[i] = 0.002 * float32(i%7-3) / 3 // a quiet room, not digital silence
	}

	calls := func(pcm []float32) (phone, talking int) {
		t.Helper()
		heard, err := listen.Listen(pcm, listen.Options{VAD: vad.DefaultConfig(testassets.ModelsDir(t)), Policy: p, Opus: true})
		if err != nil {
			t.Fatal(err)
		}
		opts := detectors.AnalyzeOptions{ModelsDir: testassets.ModelsDir(t), Policy: p}
		for _, c := range heard.Chunks {
			opts.Audio = append(opts.Audio, rules.AudioChunk{TMS: c.TMS, DurationMS: c.DurationMS, Speech: c.Speech, RMS: c.RMS})
		}
		err = detectors.AnalyzeFile(context.Background(), picture, opts, func(rec any) error {
			if v, ok := rec.(detectors.ViolationRecord); ok {
				t.Logf("violation %s %d–%d ms", v.Type, v.StartMS, v.EndMS)
				switch rules.Type(v.Type) {
				case rules.PhoneCall:
					phone++
				case rules.Talking:
					talking++
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		return phone, talking
	}
	if phone, talking := calls(speech); phone != 1 || talking != 1 {
		t.Errorf("hand at the ear while speaking for %d s: %d phone_call, %d talking; want one each", seconds, phone, talking)
	}
	if phone, talking := calls(silence); phone != 0 || talking != 0 {
		t.Errorf("hand at the ear for %d s in a quiet room: %d phone_call, %d talking; want none", seconds, phone, talking)
	}
}
