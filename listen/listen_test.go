package listen

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"invigil/detectors/rules"
	"invigil/internal/testassets"
	"invigil/vad"
)

func options(t *testing.T) Options {
	t.Helper()
	testassets.Model(t, "silero_vad_v5.onnx")
	testassets.Model(t, "libonnxruntime.so.1")
	p, err := rules.DefaultPolicy(rules.PolicyRestRoom)
	if err != nil {
		t.Fatal(err)
	}
	return Options{VAD: vad.DefaultConfig(testassets.ModelsDir(t)), Policy: p, Opus: true}
}

func tool(t *testing.T, name string) {
	t.Helper()
	if _, err := exec.LookPath(name); err != nil {
		t.Fatalf("%s missing: scripts/install.sh test installs it", name)
	}
}

// Real Chinese speech (espeak-ng, 22.05 kHz, resampled by LoadWAV) through
// Opus opens talking; the same length of silence does not.
func TestListenTalkingAndSilence(t *testing.T) {
	tool(t, "espeak-ng")
	opts := options(t)
	wav := filepath.Join(t.TempDir(), "zh.wav")
	if out, err := exec.Command("espeak-ng", "-v", "zh", "-w", wav, "请将双手放在桌面上，不要离开画面。我现在回答第三个问题。").CombinedOutput(); err != nil {
		t.Fatalf("espeak-ng: %v: %s", err, out)
	}
	pcm, err := LoadAudio(context.Background(), wav)
	if err != nil {
		t.Fatal(err)
	}
	if len(pcm) < 4*Rate {
		t.Fatalf("%d samples at 48 kHz, want at least 4 s", len(pcm))
	}
	res, err := Listen(pcm, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("speech: %+v, violations %+v", res.Stats, res.Violations)
	if len(res.Violations) == 0 || res.Violations[0].Type != rules.Talking {
		t.Errorf("no talking violation for %.1f s of speech: %+v", float64(res.DurationMS)/1000, res.Violations)
	}
	for _, v := range res.Violations {
		if v.Open || v.EndMS < v.StartMS {
			t.Errorf("violation not closed at the end: %+v", v)
		}
	}
	quiet, err := Listen(make([]float32, len(pcm)), opts)
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range quiet.Violations {
		if v.Type == rules.Talking {
			t.Errorf("talking in silence: %+v", v)
		}
	}
	if quiet.Stats.SpeechChunks != 0 {
		t.Errorf("%d speech chunks in silence", quiet.Stats.SpeechChunks)
	}
}

// The codec round trip keeps the clock: as many samples out as in (at the
// output's rate), and the voice where it was.
func TestCodecRoundTripKeepsLength(t *testing.T) {
	pcm := make([]float32, Rate+123)
	for i := range pcm {
		if i > Rate/2 {
			pcm[i] = 0.3 * float32((i/24)%2*2-1) // a 1 kHz square wave from 0.5 s
		}
	}
	for _, rate := range []int{Rate, vad.SampleRate} {
		out, err := codecRoundTrip(pcm, 0, rate)
		if err != nil {
			t.Fatal(err)
		}
		if want := len(pcm) * rate / Rate; len(out) != want {
			t.Fatalf("at %d Hz: %d samples out, want %d", rate, len(out), want)
		}
		var before, after float64
		for i, v := range out {
			if i < rate/2-rate/100 {
				before += float64(v * v)
			} else if i > rate/2+rate/100 {
				after += float64(v * v)
			}
		}
		if before > after/1000 {
			t.Errorf("at %d Hz: energy before the onset %.3g vs after %.3g: the codec's delay was not removed", rate, before, after)
		}
	}
}

func TestLoadAudioErrors(t *testing.T) {
	dir := t.TempDir()
	if _, err := LoadAudio(context.Background(), filepath.Join(dir, "missing.wav")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: %v", err)
	}
	junk := filepath.Join(dir, "junk.wav")
	if err := os.WriteFile(junk, []byte("not a sound at all"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := LoadAudio(context.Background(), junk)
	if err == nil || !strings.Contains(err.Error(), "neither a WAV file") {
		t.Errorf("junk file: %v", err)
	}
	// A video without sound: ffmpeg makes one.
	tool(t, "ffmpeg")
	silentVideo := filepath.Join(dir, "video.avi")
	if out, err := exec.Command("ffmpeg", "-nostdin", "-v", "error", "-f", "lavfi", "-i", "testsrc=size=64x48:rate=5",
		"-t", "1", "-c:v", "mjpeg", silentVideo).CombinedOutput(); err != nil {
		t.Fatalf("ffmpeg: %v: %s", err, out)
	}
	if _, err := LoadAudio(context.Background(), silentVideo); !errors.Is(err, ErrNoAudio) {
		t.Errorf("video without sound: %v, want ErrNoAudio", err)
	}
}
