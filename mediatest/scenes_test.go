package mediatest_test

import (
	"image"
	"image/color"
	"math"
	"path/filepath"
	"testing"

	"gocv.io/x/gocv"

	"invigil/detectors/eval"
	"invigil/internal/testassets"
)

const (
	frameW = 640
	frameH = 480
)

// person puts a real face from the evaluation set's labeled crops into a
// scene: its face box centered at (X, Y), W pixels wide.
type person struct {
	Face string // a key of eval.Faces
	X, Y float64
	W    float64
}

// The people the tests show, each a different real face so that a
// picture tells whose camera it came from. A candidate's face is about 27%
// of the frame width, as at 50 cm from a laptop camera; the checks of
// these scenes by the detectors are in TestScenesAreWhatTheySeem.
var (
	personA = person{Face: "s3_mid", X: 330, Y: 215, W: 170}
	personB = person{Face: "s6_1st", X: 320, Y: 220, W: 175}
	personC = person{Face: "s5_bottom", X: 320, Y: 215, W: 175}
	// intruder comes into view beside a candidate.
	intruder = person{Face: "s3_left", X: 548, Y: 200, W: 120}
)

// scene renders people in front of building.jpg (an empty background) and
// writes it as a PNG (lossless: what is encoded is exactly this picture).
// No people is the empty scene.
func scene(t testing.TB, dir, name string, people []person) string {
	t.Helper()
	bg := gocv.IMRead(testassets.Photo(t, "building.jpg"), gocv.IMReadColor)
	defer bg.Close()
	out := gocv.NewMat()
	defer out.Close()
	gocv.Resize(bg, &out, image.Pt(frameW, frameH), 0, 0, gocv.InterpolationArea)
	for _, p := range people {
		pasteFace(t, &out, p)
	}
	path := filepath.Join(dir, name+".png")
	if !gocv.IMWrite(path, out) {
		t.Fatalf("cannot write %s", path)
	}
	return path
}

// blackScene is a covered lens.
func blackScene(t testing.TB, dir string) string {
	t.Helper()
	m := gocv.NewMatWithSize(frameH, frameW, gocv.MatTypeCV8UC3)
	defer m.Close()
	m.SetTo(gocv.NewScalar(0, 0, 0, 0))
	path := filepath.Join(dir, "black.png")
	if !gocv.IMWrite(path, m) {
		t.Fatalf("cannot write %s", path)
	}
	return path
}

// pasteFace cuts a head and shoulders out of the face's source photo with
// a soft mask (an ellipse around the head and hair, a band below for the
// neck), so that no neighbour's face comes along, and blends it in.
func pasteFace(t testing.TB, dst *gocv.Mat, p person) {
	t.Helper()
	fc, ok := eval.Faces[p.Face]
	if !ok {
		t.Fatalf("no face %q", p.Face)
	}
	photo := gocv.IMRead(testassets.Photo(t, fc.Source), gocv.IMReadColor)
	defer photo.Close()
	if photo.Empty() {
		t.Fatalf("cannot read %s", fc.Source)
	}
	b := float64(fc.Box.Dx())
	cx := float64(fc.Box.Min.X) + b/2
	cy := float64(fc.Box.Min.Y) + float64(fc.Box.Dy())/2
	r := image.Rect(int(cx-1.3*b), int(cy-1.3*b), int(cx+1.3*b), int(cy+1.6*b)).
		Intersect(image.Rect(0, 0, photo.Cols(), photo.Rows()))
	roi := photo.Region(r)
	defer roi.Close()
	f := p.W / b
	sprite := gocv.NewMat()
	defer sprite.Close()
	gocv.Resize(roi, &sprite, image.Pt(int(math.Round(float64(r.Dx())*f)), int(math.Round(float64(r.Dy())*f))), 0, 0, gocv.InterpolationArea)
	// Face center and box size in sprite pixels.
	ax, ay, sb := (cx-float64(r.Min.X))*f, (cy-float64(r.Min.Y))*f, p.W
	mask := gocv.NewMatWithSize(sprite.Rows(), sprite.Cols(), gocv.MatTypeCV8U)
	defer mask.Close()
	mask.SetTo(gocv.NewScalar(0, 0, 0, 0))
	white := color.RGBA{255, 255, 255, 0}
	gocv.Ellipse(&mask, image.Pt(int(ax), int(ay-0.12*sb)), image.Pt(int(0.82*sb), int(1.0*sb)), 0, 0, 360, white, -1)
	gocv.Rectangle(&mask, image.Rect(int(ax-0.55*sb), int(ay+0.3*sb), int(ax+0.55*sb), sprite.Rows()), white, -1)
	k := int(0.16*sb)*2 + 1
	gocv.GaussianBlur(mask, &mask, image.Pt(k, k), 0, 0, gocv.BorderConstant)

	sp, mk := sprite.ToBytes(), mask.ToBytes()
	out := dst.ToBytes()
	ox, oy := int(p.X-ax), int(p.Y-ay)
	for y := 0; y < sprite.Rows(); y++ {
		dy := oy + y
		if dy < 0 || dy >= dst.Rows() {
			continue
		}
		for x := 0; x < sprite.Cols(); x++ {
			dx := ox + x
			if dx < 0 || dx >= dst.Cols() {
				continue
			}
			a := float64(mk[y*sprite.Cols()+x]) / 255
			if a == 0 {
				continue
			}
			si, di := (y*sprite.Cols()+x)*3, (dy*dst.Cols()+dx)*3
			for c := 0; c < 3; c++ {
				out[di+c] = uint8(float64(sp[si+c])*a + float64(out[di+c])*(1-a) + 0.5)
			}
		}
	}
	blended, err := gocv.NewMatFromBytes(dst.Rows(), dst.Cols(), gocv.MatTypeCV8UC3, out)
	if err != nil {
		t.Fatal(err)
	}
	blended.CopyTo(dst)
	blended.Close()
}
