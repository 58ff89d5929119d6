package eval

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"gocv.io/x/gocv"
)

// debianSources provisions the sources that come from Debian packages
// only (no download), into a temporary folder.
func debianSources(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	for _, s := range Sources {
		if s.DebianPath == "" {
			continue
		}
		data, err := os.ReadFile(s.DebianPath)
		if err != nil {
			t.Fatalf("%v; install Debian's opencv-doc (scripts/install.sh does)", err)
		}
		if err := writeVerified(SourcePath(dir, s.Name), data, s); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func TestRenderedVideoReadsBack(t *testing.T) {
	dir := debianSources(t)
	c := at("man", 320, 170, 165)
	n := Scene{Candidate: c, LeftHand: true, RightHand: true}
	s := Scenario{Name: "readback", Policy: "rest_room", Background: "astra_color.jpg",
		Segments: []Segment{seg(1, n), seg(0.5, Scene{Light: LightDark}), seg(0.5, Scene{})}}
	r := newRenderer(dir)
	defer r.Close()
	path := filepath.Join(t.TempDir(), "readback.avi")
	if err := r.writeScenario(context.Background(), &s, path); err != nil {
		t.Fatal(err)
	}
	vc, err := gocv.VideoCaptureFile(path)
	if err != nil {
		t.Fatal(err)
	}
	defer vc.Close()
	if fps := vc.Get(gocv.VideoCaptureFPS); fps != FPS {
		t.Errorf("read back at %g fps, want %d", fps, FPS)
	}
	frame := gocv.NewMat()
	defer frame.Close()
	var means []float64
	for vc.Read(&frame) && !frame.Empty() {
		if frame.Cols() != FrameWidth || frame.Rows() != FrameHeight {
			t.Fatalf("frame %d×%d", frame.Cols(), frame.Rows())
		}
		means = append(means, frame.Mean().Val1)
	}
	if len(means) != 20 {
		t.Fatalf("read %d frames, want 20", len(means))
	}
	if means[12] > 15 || means[5] < 60 {
		t.Errorf("mean blue at 0.5 s %.0f (normal), at 1.2 s %.0f (dark)", means[5], means[12])
	}
}

func TestSpritesAreSane(t *testing.T) {
	dir := debianSources(t)
	r := newRenderer(dir)
	defer r.Close()
	h, err := r.handSprite(false)
	if err != nil {
		t.Fatal(err)
	}
	covered := 0
	for _, a := range h.mask.a {
		if a > 0.5 {
			covered++
		}
	}
	// The open hand covers roughly half of its bounding box, with no holes.
	if frac := float64(covered) / float64(len(h.mask.a)); frac < 0.25 || frac > 0.8 {
		t.Errorf("hand mask covers %.0f %% of the sprite", 100*frac)
	}
	f, err := r.face(at("man", 0, 0, 180))
	if err != nil {
		t.Fatal(err)
	}
	// The face center is fully opaque and the crop's corners transparent.
	if a := f.mask.a[f.anchor.Y*f.mask.w+f.anchor.X]; a < 0.99 {
		t.Errorf("mask at the face center %.2f", a)
	}
	if a := f.mask.a[0]; a > 0.01 {
		t.Errorf("mask at the corner %.2f", a)
	}
	m := mirrored(at("man", 0, 0, 180))
	fm, err := r.face(m)
	if err != nil {
		t.Fatal(err)
	}
	if d := fm.anchor.X - (f.img.w - 1 - f.anchor.X); d < -2 || d > 2 { // rounding when scaling
		t.Errorf("mirrored anchor %v, original %v (width %d)", fm.anchor, f.anchor, f.img.w)
	}
}
