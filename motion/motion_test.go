package motion

import (
	"image"
	"image/color"
	"testing"

	"gocv.io/x/gocv"
)

// picture is a 640×480 gray picture of mid-gray with a white square.
func picture(t *testing.T, square image.Rectangle) gocv.Mat {
	t.Helper()
	m := gocv.NewMatWithSizeFromScalar(gocv.NewScalar(100, 0, 0, 0), 480, 640, gocv.MatTypeCV8UC1)
	gocv.Rectangle(&m, square, color.RGBA{R: 255, G: 255, B: 255}, -1)
	return m
}

func gridOf(t *testing.T, g *Gridder, m gocv.Mat) Grid {
	t.Helper()
	var out Grid
	if err := g.FromGray(m, &out); err != nil {
		t.Fatal(err)
	}
	return out
}

func TestGridSeesMovementNotNoise(t *testing.T) {
	g := NewGridder()
	defer g.Close()
	a := picture(t, image.Rect(100, 100, 200, 200))
	defer a.Close()
	moved := picture(t, image.Rect(300, 200, 400, 300))
	defer moved.Close()
	// One level of noise everywhere: what a still camera through the codec
	// does at most, and far under CellDelta.
	noisy := a.Clone()
	defer noisy.Close()
	gocv.AddWeighted(a, 1, a, 0, 1, &noisy)

	ga, gm, gn := gridOf(t, g, a), gridOf(t, g, moved), gridOf(t, g, noisy)
	if n := Changed(&ga, &gn); n != 0 || PictureChanged(&ga, &gn) {
		t.Errorf("one level of noise changed %d cells", n)
	}
	// The square left 25 cells (100×100 pixels of 20×20 cells) and came to
	// 25 others.
	if n := Changed(&ga, &gm); n != 50 || !PictureChanged(&ga, &gm) {
		t.Errorf("a moved square changed %d cells, want 50", n)
	}
	// Leaving out the zone where the square was leaves its new place.
	left := image.Rect(100, 100, 200, 200)
	inside := func(x, y float64) bool { return image.Pt(int(x), int(y)).In(left) }
	if n := ChangedOutside(&ga, &gm, 640, 480, inside); n != 25 {
		t.Errorf("outside the old place %d cells changed, want 25", n)
	}
}

func TestGridRefusesColorPictures(t *testing.T) {
	g := NewGridder()
	defer g.Close()
	bgr := gocv.NewMatWithSize(480, 640, gocv.MatTypeCV8UC3)
	defer bgr.Close()
	var out Grid
	if err := g.FromGray(bgr, &out); err == nil {
		t.Error("a BGR picture was taken as gray")
	}
	empty := gocv.NewMat()
	defer empty.Close()
	if err := g.FromGray(empty, &out); err == nil {
		t.Error("an empty picture was taken")
	}
}

// ChangedWithin counts the cells whose centers the zone holds, and which
// of them moved by more than CellDelta.
func TestChangedWithinCountsTheZonesCells(t *testing.T) {
	var a, b Grid
	for i := range b {
		b[i] = CellDelta + 1 // every cell changed
	}
	b[0] = CellDelta // the top-left cell: changed by exactly CellDelta, which does not count
	// A zone over the top-left 4×3 cells of a 640×480 picture (cells of
	// 20×20 pixels; the zone's edge at 80 and 60 leaves the next centers,
	// 90 and 70, out).
	inside := func(x, y float64) bool { return x < 80 && y < 60 }
	changed, cells := ChangedWithin(&a, &b, 640, 480, inside)
	if cells != 12 || changed != 11 {
		t.Errorf("ChangedWithin = %d changed of %d cells, want 11 of 12", changed, cells)
	}
	if changed, cells := ChangedWithin(&a, &a, 640, 480, inside); cells != 12 || changed != 0 {
		t.Errorf("ChangedWithin on the same grid = %d of %d, want 0 of 12", changed, cells)
	}
}
