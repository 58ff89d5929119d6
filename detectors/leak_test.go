//go:build matprofile

package detectors

import (
	"context"
	"path/filepath"
	"testing"

	"gocv.io/x/gocv"

	"invigil/internal/testassets"
)

// TestNoMatLeaks counts live Mats (gocv's matprofile build tag) around a
// full analysis: observing frames, drawing evidence and annotating a video
// must close every Mat they make. Run by `make test`.
func TestNoMatLeaks(t *testing.T) {
	dir := t.TempDir()
	clip := filepath.Join(dir, "clip.avi")
	writeClip(t, clip, "sample1.jpg", 3, "building.jpg", 3)
	before := gocv.MatProfile.Count()
	err := AnalyzeFile(context.Background(), clip, AnalyzeOptions{
		ModelsDir:    testassets.ModelsDir(t),
		Frames:       true,
		EvidenceDir:  filepath.Join(dir, "evidence"),
		AnnotatePath: filepath.Join(dir, "annotated.avi"),
	}, func(any) error { return nil })
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := analyzeCollect(t, testassets.Photo(t, "handSrc.jpg"), AnalyzeOptions{AnnotatePath: filepath.Join(dir, "a.png")}); err != nil {
		t.Fatal(err)
	}
	if after := gocv.MatProfile.Count(); after != before {
		var b []byte
		w := &sliceWriter{&b}
		gocv.MatProfile.WriteTo(w, 1)
		t.Fatalf("%d Mats leaked:\n%s", after-before, b)
	}
}

type sliceWriter struct{ b *[]byte }

func (w *sliceWriter) Write(p []byte) (int, error) { *w.b = append(*w.b, p...); return len(p), nil }
