package main

import (
	"encoding/json"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"invigil/internal/testassets"
)

// analyzeLines parses analyze's JSON Lines by kind.
func analyzeLines(t *testing.T, stdout string) map[string][]map[string]any {
	t.Helper()
	out := map[string][]map[string]any{}
	for _, line := range strings.Split(strings.TrimSpace(stdout), "\n") {
		if line == "" {
			continue
		}
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("not JSON: %q: %v", line, err)
		}
		kind, _ := rec["kind"].(string)
		out[kind] = append(out[kind], rec)
	}
	return out
}

func talkingCount(recs map[string][]map[string]any) int {
	n := 0
	for _, v := range recs["violation"] {
		if v["type"] == "talking" {
			n++
		}
	}
	return n
}

// spokenAnswer is what the tests' talking candidate says: a candidate in
// the rest room passing an answer on, about 6 s in espeak-ng's Chinese.
const spokenAnswer = "第三题的答案是选项二，你记下来了吗，下一位考生马上就要进去了"

// makeSound runs a tool and returns its last argument, for the callers
// whose last argument is the output file (espeak-ng takes its text before
// -w FILE; sox's effects come after its output, so sox callers name the
// file themselves).
func makeSound(t *testing.T, name string, args ...string) string {
	t.Helper()
	if out, err := exec.Command(name, args...).CombinedOutput(); err != nil {
		t.Fatalf("%s (scripts/install.sh installs it): %v\n%s", name, err, out)
	}
	return args[len(args)-1]
}

// `analyze --audio` hears a real voice (espeak-ng's Chinese, 22.05 kHz,
// converted) as talking and a silent file as none; a video's own sound
// track is judged without --audio; bad files and a policy without talking
// are refused with one clear line.
func TestAnalyzeAudio(t *testing.T) {
	models := testassets.ModelsDir(t)
	testassets.Model(t, "silero_vad_v5.onnx")
	vars := map[string]string{"INVIGIL_MODELS": models}
	dir := t.TempDir()
	speech := makeSound(t, "espeak-ng", "-v", "zh", "-s", "150", spokenAnswer, "-w", filepath.Join(dir, "speech.wav"))
	silent := filepath.Join(dir, "silent.wav")
	makeSound(t, "sox", "-n", "-r", "44100", "-c", "2", "-b", "16", silent, "trim", "0", "6")

	code, stdout, stderr := invoke(t, vars, "analyze", "--audio", speech)
	if code != 0 {
		t.Fatalf("analyze --audio speech: exit %d: %s", code, stderr)
	}
	recs := analyzeLines(t, stdout)
	if talkingCount(recs) != 1 || len(recs["audio_summary"]) != 1 {
		t.Errorf("speech: want one talking violation and a summary, got:\n%s", stdout)
	}
	if sum := recs["audio_summary"]; len(sum) == 1 && sum[0]["speech_chunks"].(float64) < 60 {
		t.Errorf("speech: summary %v counts under 2 s of speech", sum[0])
	}

	code, stdout, stderr = invoke(t, vars, "analyze", "--frames", "--audio", silent)
	if code != 0 {
		t.Fatalf("analyze --audio silent: exit %d: %s", code, stderr)
	}
	recs = analyzeLines(t, stdout)
	if talkingCount(recs) != 0 {
		t.Errorf("silence: talking reported:\n%s", stdout)
	}
	if n := len(recs["audio"]); n < 180 || n > 190 { // 6 s of 32 ms chunks
		t.Errorf("silence with --frames: %d chunk lines, want about 187", n)
	}

	// A video with a sound track: the pictures and the voice.
	testassets.Model(t, "face_detection_full_range.onnx")
	video := makeSound(t, "ffmpeg", "-nostdin", "-v", "error", "-f", "lavfi", "-i", "testsrc=size=320x240:rate=10",
		"-i", speech, "-t", "6", "-c:v", "mjpeg", "-c:a", "pcm_s16le", "-shortest", filepath.Join(dir, "talk.avi"))
	code, stdout, stderr = invoke(t, vars, "analyze", "--progress", "never", video)
	if code != 0 {
		t.Fatalf("analyze video with sound: exit %d: %s", code, stderr)
	}
	if recs = analyzeLines(t, stdout); talkingCount(recs) != 1 {
		t.Errorf("video with a voice track: want one talking violation, got:\n%s", stdout)
	}
	// The interview does not judge talking, so the track is not listened to.
	code, stdout, _ = invoke(t, vars, "analyze", "--progress", "never", "--policy", "interview", video)
	if recs = analyzeLines(t, stdout); code != 0 || len(recs["audio_summary"]) != 0 {
		t.Errorf("interview policy: exit %d, output:\n%s", code, stdout)
	}

	junk := filepath.Join(dir, "junk.wav")
	makeSound(t, "sh", "-c", "echo not a sound > "+junk, junk)
	for _, c := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"analyze", "--audio", filepath.Join(dir, "missing.wav")}, 1, "no such file"},
		{[]string{"analyze", "--audio", junk}, 1, "neither a WAV file"},
		{[]string{"analyze", "--policy", "interview", "--audio", speech}, 2, "does not judge talking"},
		{[]string{"analyze"}, 2, "want one FILE, or --audio SOUND"},
	} {
		code, _, stderr := invoke(t, vars, c.args...)
		if code != c.code || !strings.Contains(stderr, c.want) || strings.Count(strings.TrimSpace(stderr), "\n") > 0 {
			t.Errorf("%v: exit %d, stderr %q; want exit %d and one line with %q", c.args, code, stderr, c.code, c.want)
		}
	}
}
