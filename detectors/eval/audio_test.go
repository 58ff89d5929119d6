package eval

import (
	"context"
	"path/filepath"
	"testing"

	"invigil/internal/testassets"
)

// TestAudioEvaluation builds the audio set (or reuses the cached one),
// runs every clip through the listening path (Opus, 16 kHz, Silero VAD,
// the rest_room rules) and holds talking to precision and recall ≥
// AudioThreshold with no alarm on a clip that holds no speech.
func TestAudioEvaluation(t *testing.T) {
	testassets.Model(t, "silero_vad_v5.onnx")
	testassets.Model(t, "libonnxruntime.so.1")
	cache := filepath.Join(testassets.RepoRoot(t), ".cache", "eval")
	ctx := context.Background()
	set, err := BuildAudio(ctx, cache, testLog{t})
	if err != nil {
		t.Fatal(err)
	}
	results, err := AnalyzeAudio(ctx, set, testassets.ModelsDir(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	score := ScoreAudio(results)
	t.Logf("audio set %s:\n%s", set.Dir, AudioTable(score, results))
	if score.Positives == 0 || score.Negatives == 0 {
		t.Fatalf("audio set has %d talking and %d other clips; want both", score.Positives, score.Negatives)
	}
	for _, s := range AudioShortfalls(score) {
		t.Error(s)
	}
}
