package runner

import (
	"fmt"
	"image"
	"testing"

	"gocv.io/x/gocv"

	"invigil/internal/testassets"
)

func newFaceDetector(t testing.TB, m FaceModel) *FaceDetector {
	t.Helper()
	d, err := NewFaceDetector(testassets.Model(t, m.FileName()), m)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	return d
}

func newPalmDetector(t testing.TB, m PalmModel) *PalmDetector {
	t.Helper()
	d, err := NewPalmDetector(testassets.Model(t, m.FileName()), m)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	return d
}

func newHandLandmarker(t testing.TB, m HandLandmarkModel) *HandLandmarker {
	t.Helper()
	l, err := NewHandLandmarker(testassets.Model(t, m.FileName()), m)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

// readPhoto loads a test photo as 8-bit BGR, closed when the test ends.
func readPhoto(t testing.TB, name string) gocv.Mat {
	t.Helper()
	img := gocv.IMRead(testassets.Photo(t, name), gocv.IMReadColor)
	if img.Empty() {
		img.Close()
		t.Fatalf("cannot decode %s", name)
	}
	t.Cleanup(func() { img.Close() })
	return img
}

// photoRegion returns a view of part of a photo (a non-continuous Mat, as
// a caller cropping a frame would pass), closed when the test ends.
func photoRegion(t testing.TB, name string, r image.Rectangle) gocv.Mat {
	t.Helper()
	img := readPhoto(t, name)
	reg := img.Region(r)
	t.Cleanup(func() { reg.Close() })
	return reg
}

// labeled is a hand-labeled box. Faces are labeled cheek to cheek (ears
// left out) and from mid-forehead to the chin.
type labeled struct {
	box Rect
	// minIoU is the overlap a detection needs to count as this box; 0 means
	// the usual 0.5.
	minIoU float64
	// optional marks a box the model may miss; a detection there is not a
	// false positive. why says what makes it hard.
	optional bool
	why      string
}

func (l labeled) threshold() float64 {
	if l.minIoU > 0 {
		return l.minIoU
	}
	return 0.5
}

// matchBoxes checks detections against labels one to one: every required
// label has a detection overlapping it enough, and every detection belongs
// to exactly one label.
func matchBoxes(labels []labeled, found []Rect, scores []float64) (matched, problems []string) {
	owner := make([]int, len(found))
	for i, f := range found {
		owner[i] = -1
		best := 0.0
		for j, l := range labels {
			if iou := f.IoU(l.box); iou >= l.threshold() && iou > best {
				best, owner[i] = iou, j
			}
		}
		if owner[i] < 0 {
			problems = append(problems, fmt.Sprintf("extra detection %s score %.3f (best IoU with a label %.2f)", fmtRect(f), scores[i], bestIoU(f, labels)))
		}
	}
	for j, l := range labels {
		var mine []int
		for i := range found {
			if owner[i] == j {
				mine = append(mine, i)
			}
		}
		switch {
		case len(mine) == 0 && !l.optional:
			problems = append(problems, fmt.Sprintf("missed %s (best IoU %.2f, want ≥ %.2f)", fmtRect(l.box), bestIoU(l.box, rectsAsLabels(found)), l.threshold()))
		case len(mine) == 1:
			matched = append(matched, fmt.Sprintf("%s IoU %.2f", fmtRect(l.box), found[mine[0]].IoU(l.box)))
		case len(mine) > 1:
			problems = append(problems, fmt.Sprintf("%d detections for %s", len(mine), fmtRect(l.box)))
		}
	}
	return matched, problems
}

func bestIoU(r Rect, labels []labeled) float64 {
	best := 0.0
	for _, l := range labels {
		best = max(best, r.IoU(l.box))
	}
	return best
}

func rectsAsLabels(rs []Rect) []labeled {
	out := make([]labeled, len(rs))
	for i, r := range rs {
		out[i] = labeled{box: r}
	}
	return out
}

func fmtRect(r Rect) string {
	return fmt.Sprintf("[%.0f %.0f %.0f %.0f]", r.X, r.Y, r.W, r.H)
}
