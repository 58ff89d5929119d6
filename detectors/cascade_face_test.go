package detectors

import (
	"image"
	"image/color"
	"math"
	"slices"
	"testing"

	"gocv.io/x/gocv"

	"invigil/detectors/rules"
	"invigil/motion"
)

// faceCrop is one face of a group photo (its box as the detector draws it
// there) to be shown alone, as a candidate at a webcam.
type faceCrop struct {
	photo string
	box   image.Rectangle
}

// faceCrops are single faces from the test photos, frontal and turned
// (the detector's yaw on them, uncalibrated: −12°, −11°, 3°, −33°, −29°,
// 11°).
var faceCrops = []faceCrop{
	{"sample3.jpg", image.Rect(1039, 254, 1291, 506)},
	{"sample3.jpg", image.Rect(559, 349, 798, 588)},
	{"sample5.jpg", image.Rect(342, 908, 591, 1156)},
	{"sample5.jpg", image.Rect(1368, 419, 1595, 645)},
	{"sample6.jpg", image.Rect(619, 352, 897, 630)},
	{"sample6.jpg", image.Rect(245, 519, 483, 757)},
}

// cropPhoto cuts a 4:3 picture around the face, the face 38 % of its
// width (a candidate near the camera), scaled to 640×480.
func cropPhoto(t *testing.T, c faceCrop) gocv.Mat {
	t.Helper()
	photo := readPhoto(t, c.photo)
	w := c.box.Dx()
	x0 := c.box.Min.X - w*8/10
	y0 := c.box.Min.Y - w*6/10
	r := image.Rect(x0, y0, x0+w*26/10, y0+w*195/100).Intersect(image.Rect(0, 0, photo.Cols(), photo.Rows()))
	region := photo.Region(r)
	defer region.Close()
	out := gocv.NewMat()
	t.Cleanup(func() { out.Close() })
	gocv.Resize(region, &out, image.Pt(640, 480), 0, 0, gocv.InterpolationArea)
	return out
}

// faceRuns is how often the analyzer's face detector has run.
func faceRuns(a *Analyzer) int { return a.face.Inference().Runs }

// cascadeStream is an interview stream (faces on every analysis) whose
// face detector runs on every every-th face analysis while one face is
// followed.
func cascadeStream(t *testing.T, every int) *Stream {
	t.Helper()
	p, err := rules.DefaultPolicy(rules.PolicyInterview)
	if err != nil {
		t.Fatal(err)
	}
	p.FaceDetectEvery = every
	return NewStream(p, Camera{})
}

// observeFaces runs the frames in turn, 200 ms apart from start, and
// returns on which the face detector ran and the observations.
func observeFaces(t *testing.T, a *Analyzer, s *Stream, start int64, frames ...gocv.Mat) (ran []bool, obs []rules.Observation) {
	t.Helper()
	for i, f := range frames {
		before := faceRuns(a)
		o, err := a.Observe(f, start+int64(i)*200, s)
		if err != nil {
			t.Fatal(err)
		}
		ran = append(ran, faceRuns(a) > before)
		obs = append(obs, o)
	}
	return ran, obs
}

// pasteFace copies the face of another test photo, scaled to side
// pixels, into img at (x, y): a second person.
func pasteFace(t *testing.T, img gocv.Mat, c faceCrop, side, x, y int) gocv.Mat {
	t.Helper()
	photo := readPhoto(t, c.photo)
	grow := c.box.Dx() / 4
	src := photo.Region(c.box.Inset(-grow))
	defer src.Close()
	scaled := gocv.NewMat()
	defer scaled.Close()
	gocv.Resize(src, &scaled, image.Pt(side, side), 0, 0, gocv.InterpolationArea)
	out := img.Clone()
	t.Cleanup(func() { out.Close() })
	dst := out.Region(image.Rect(x, y, x+side, y+side))
	defer dst.Close()
	scaled.CopyTo(&dst)
	return out
}

// shortRuns is how often the analyzer's short-range face detector has run.
func shortRuns(a *Analyzer) int { return a.short.Inference().Runs }

// While one face is followed a detector looks on exactly every k-th face
// analysis, the short-range and the full-range one in turn; when the face
// is gone, the full-range one at once.
func TestFaceCascadeCadence(t *testing.T) {
	a := newTestAnalyzer(t)
	still := cropPhoto(t, faceCrops[0])
	s := cascadeStream(t, 3)
	var short []bool
	var ran []bool
	var obs []rules.Observation
	for i := range 10 {
		before := shortRuns(a)
		r, o := observeFaces(t, a, s, int64(i)*200, still)
		ran, obs = append(ran, r...), append(obs, o...)
		short = append(short, shortRuns(a) > before)
	}
	if want := []bool{true, false, false, false, false, false, true, false, false, false}; !slices.Equal(ran, want) {
		t.Errorf("full-range detector ran on %v, want %v", ran, want)
	}
	if want := []bool{false, false, false, true, false, false, false, false, false, true}; !slices.Equal(short, want) {
		t.Errorf("short-range detector ran on %v, want %v", short, want)
	}
	for i, o := range obs {
		if len(o.Faces) != 1 {
			t.Fatalf("analysis %d: %d faces, want the candidate's", i, len(o.Faces))
		}
	}
	empty := gocv.NewMat()
	defer empty.Close()
	gocv.Resize(readPhoto(t, "building.jpg"), &empty, image.Pt(still.Cols(), still.Rows()), 0, 0, gocv.InterpolationArea)
	ran, obs = observeFaces(t, a, s, 2000, still, empty)
	if !slices.Equal(ran, []bool{false, true}) || len(obs[1].Faces) != 0 {
		t.Errorf("detector ran on %v with %d faces left: want it at once when the candidate is gone", ran, len(obs[1].Faces))
	}
	ran, _ = observeFaces(t, a, cascadeStream(t, 1), 0, still, still, still)
	if !slices.Equal(ran, []bool{true, true, true}) {
		t.Errorf("cascade off: detector ran on %v, want every analysis", ran)
	}
}

// A second person is reported at once when they appear outside the
// candidate's head zone (the picture changed there) and within k face
// analyses when inside it (above the head, where the candidate's own
// movement does not count).
func TestFaceCascadeSecondPerson(t *testing.T) {
	a := newTestAnalyzer(t)
	still := cropPhoto(t, faceCrops[0])
	for _, c := range []struct {
		name   string
		x, y   int
		within int
	}{
		{"beside", 500, 150, 1},
		{"above the head", 272, 2, 3},
	} {
		t.Run(c.name, func(t *testing.T) {
			two := pasteFace(t, still, faceCrops[1], 130, c.x, c.y)
			s := cascadeStream(t, 3)
			_, obs := observeFaces(t, a, s, 0, still, two, two, two, two)
			if len(obs[0].Faces) != 1 {
				t.Fatalf("%d faces alone, want 1", len(obs[0].Faces))
			}
			seen := 0
			for i, o := range obs[1:] {
				if len(o.Faces) == 2 {
					seen = i + 1
					break
				}
			}
			if seen == 0 || seen > c.within {
				t.Errorf("second face reported on analysis %d after it came, want within %d", seen, c.within)
			}
		})
	}
}

// On the test photos' faces the followed readings are the detector's: on
// the same picture, and on the picture with a camera's noise added (under
// the change grid's threshold, so the face is followed, not detected).
func TestFaceCascadePoseMatchesDetector(t *testing.T) {
	a := newTestAnalyzer(t)
	for _, c := range faceCrops {
		still := cropPhoto(t, c)
		noisy := still.Clone()
		defer noisy.Close()
		noise := gocv.NewMatWithSize(still.Rows(), still.Cols(), still.Type())
		defer noise.Close()
		gocv.RandN(&noise, gocv.NewScalar(4, 4, 4, 0), gocv.NewScalar(3, 3, 3, 0))
		gocv.Add(still, noise, &noisy)
		gocv.Subtract(noisy, gocv.NewMatWithSizeFromScalar(gocv.NewScalar(4, 4, 4, 0), still.Rows(), still.Cols(), still.Type()), &noisy)
		followed, detected := cascadeStream(t, 3), cascadeStream(t, 1)
		ranF, obsF := observeFaces(t, a, followed, 0, still, still, noisy)
		_, obsD := observeFaces(t, a, detected, 0, still, still, noisy)
		if !slices.Equal(ranF, []bool{true, false, false}) {
			t.Errorf("%v: detector ran on %v, want on the first analysis only", c, ranF)
			continue
		}
		for i := 1; i < 3; i++ {
			f, d := obsF[i].Faces[0], obsD[i].Faces[0]
			if math.Abs(f.YawDeg-d.YawDeg) > 1 || math.Abs(f.PitchDeg-d.PitchDeg) > 1 || math.Abs(f.DistanceCM-d.DistanceCM) > 0.01*d.DistanceCM {
				t.Errorf("%v analysis %d: followed yaw %.1f pitch %.1f distance %.1f, detector %.1f %.1f %.1f",
					c, i, f.YawDeg, f.PitchDeg, f.DistanceCM, d.YawDeg, d.PitchDeg, d.DistanceCM)
			}
		}
	}
}

// faceNetRuns is how often any of the face networks has run.
func faceNetRuns(a *Analyzer) int {
	return a.face.Inference().Runs + a.short.Inference().Runs + a.mesh.Inference().Runs
}

// shifted is a copy of img moved right and down by d pixels: the candidate
// shifting a little in the chair.
func shifted(t *testing.T, img gocv.Mat, d float64) gocv.Mat {
	t.Helper()
	m := gocv.NewMatWithSize(2, 3, gocv.MatTypeCV64F)
	defer m.Close()
	m.SetDoubleAt(0, 0, 1)
	m.SetDoubleAt(1, 1, 1)
	m.SetDoubleAt(0, 2, d)
	m.SetDoubleAt(1, 2, d)
	out := gocv.NewMat()
	t.Cleanup(func() { out.Close() })
	gocv.WarpAffineWithParams(img, &out, m, image.Pt(img.Cols(), img.Rows()), gocv.InterpolationLinear, gocv.BorderReplicate, color.RGBA{})
	return out
}

// On an analysis that would carry the faces (face_every 2), the face
// networks look anyway when most of the face's box changed since they
// looked: a candidate who left is seen gone at once instead of one
// analysis later, and the next look comes face_every analyses after that
// one. A candidate who shifts a little is carried as before.
func TestFacesLookSoonerWhenTheFaceLeft(t *testing.T) {
	a := newTestAnalyzer(t)
	p, err := rules.DefaultPolicy(rules.PolicyRestRoom)
	if err != nil {
		t.Fatal(err)
	}
	p.FaceEvery, p.HandsEvery = 2, 0
	seated := cropPhoto(t, faceCrops[0])
	empty := gocv.NewMat()
	defer empty.Close()
	gocv.Resize(readPhoto(t, "building.jpg"), &empty, image.Pt(seated.Cols(), seated.Rows()), 0, 0, gocv.InterpolationArea)
	for _, c := range []struct {
		name   string
		frames []gocv.Mat
		ran    []bool
		faces  []int
	}{
		{"left", []gocv.Mat{seated, empty, empty, empty}, []bool{true, true, false, true}, []int{1, 0, 0, 0}},
		{"shifted a little", []gocv.Mat{seated, shifted(t, seated, 4), shifted(t, seated, 8)}, []bool{true, false, true}, []int{1, 1, 1}},
	} {
		t.Run(c.name, func(t *testing.T) {
			ran, faces := observeCounting(t, a, NewStream(p, Camera{}), c.frames, 500, faceNetRuns,
				func(o rules.Observation) int { return len(o.Faces) })
			if !slices.Equal(ran, c.ran) || !slices.Equal(faces, c.faces) {
				t.Errorf("face networks ran on %v with faces %v, want %v with %v", ran, faces, c.ran, c.faces)
			}
		})
	}
}

// invertedIn is a copy of img with the zones' pixels inverted, each zone
// shrunk by a pixel so that no grid cell centered just outside changes.
func invertedIn(t *testing.T, img gocv.Mat, zones ...rules.Rect) gocv.Mat {
	t.Helper()
	out := img.Clone()
	t.Cleanup(func() { out.Close() })
	for _, z := range zones {
		r := image.Rect(int(z.X)+1, int(z.Y)+1, int(z.X+z.W)-1, int(z.Y+z.H)-1).Intersect(image.Rect(0, 0, img.Cols(), img.Rows()))
		if r.Empty() {
			t.Fatalf("zone %+v lies outside the %d×%d picture", z, img.Cols(), img.Rows())
		}
		region := out.Region(r)
		gocv.BitwiseNot(region, &region)
		region.Close()
	}
	return out
}

// The candidate's own movement does not send the face cascade back to the
// detector: the picture inverted beside the head, out to where the hair
// and ears swing (more than any turn changes), or below the chin where
// the shoulders, chest and hands are. The same change counts elsewhere:
// the cells it changes outside the head itself reach the change grid's
// threshold.
func TestFaceCascadeIgnoresItsOwnMotion(t *testing.T) {
	a := newTestAnalyzer(t)
	near := cropPhoto(t, faceCrops[0])
	// The candidate farther back, at the top of the frame, so that his
	// chest is in view.
	far := gocv.NewMatWithSizeFromScalar(gocv.NewScalar(90, 100, 110, 0), near.Rows(), near.Cols(), near.Type())
	defer far.Close()
	small := gocv.NewMat()
	defer small.Close()
	gocv.Resize(near, &small, image.Pt(near.Cols()/2, near.Rows()/2), 0, 0, gocv.InterpolationArea)
	top := far.Region(image.Rect(near.Cols()/4, 0, near.Cols()/4+small.Cols(), small.Rows()))
	small.CopyTo(&top)
	top.Close()
	for _, c := range []struct {
		name    string
		picture gocv.Mat
		zones   func(face rules.Rect) []rules.Rect
	}{
		{"beside the head", near, func(f rules.Rect) []rules.Rect {
			y, h := f.Y-0.5*f.H, 1.7*f.H
			return []rules.Rect{{X: f.X - 0.42*f.W, Y: y, W: 0.3 * f.W, H: h}, {X: f.X + 1.12*f.W, Y: y, W: 0.3 * f.W, H: h}}
		}},
		{"below the chin", far, func(f rules.Rect) []rules.Rect {
			y := f.Y + 1.35*f.H
			return []rules.Rect{{X: f.X - 1.2*f.W, Y: y, W: 3.4 * f.W, H: float64(far.Rows()) - y}}
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			s := cascadeStream(t, 3)
			_, obs := observeFaces(t, a, s, 0, c.picture)
			if len(obs[0].Faces) != 1 {
				t.Fatalf("%d faces, want the candidate's", len(obs[0].Faces))
			}
			moved := invertedIn(t, c.picture, c.zones(obs[0].Faces[0].Box)...)
			ran, obs := observeFaces(t, a, s, 200, moved)
			if ran[0] || len(obs[0].Faces) != 1 {
				t.Fatalf("detector ran: %v, %d faces: want the candidate followed through his own movement", ran[0], len(obs[0].Faces))
			}
			// The anchor's picture is still the first look's; a.changes is
			// the moved one's.
			head := []rules.Rect{headZone(obs[0].Faces[0].Box), headZone(s.anchor.box)}
			if n := changedOutside(&s.anchor.grid, &a.changes, head, moved.Cols(), moved.Rows()); n < motion.MinChangedCells {
				t.Errorf("the change outside the head zone is only %d cells, want at least %d", n, motion.MinChangedCells)
			}
		})
	}
}
