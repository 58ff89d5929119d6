package detectors

import (
	"image"
	"slices"
	"testing"

	"gocv.io/x/gocv"

	"invigil/detectors/rules"
	"invigil/motion"
)

// palmRuns is how often the analyzer's palm detector has run.
func palmRuns(a *Analyzer) int { return a.palm.Inference().Runs }

// handsStream is a rest-room stream that looks for hands on every analysis,
// with the palm detector's back-off bound set to every.
func handsStream(t *testing.T, every int) *Stream {
	s := restRoomStream(t)
	s.Policy.PalmStillEvery = every
	return s
}

// withHand pastes the real open hand of handSrc.jpg, scaled to a third of
// the frame's height, into the bottom-left corner of a copy of img: a hand
// that comes into view beside a seated person.
func withHand(t *testing.T, img gocv.Mat) gocv.Mat {
	t.Helper()
	hand := readPhoto(t, "handSrc.jpg")
	h := img.Rows() / 2
	w := h * hand.Cols() / hand.Rows()
	scaled := gocv.NewMat()
	defer scaled.Close()
	gocv.Resize(hand, &scaled, image.Pt(w, h), 0, 0, gocv.InterpolationArea)
	out := img.Clone()
	t.Cleanup(func() { out.Close() })
	corner := out.Region(image.Rect(0, img.Rows()-h, w, img.Rows()))
	defer corner.Close()
	scaled.CopyTo(&corner)
	return out
}

// observeAll runs the frames in turn, 200 ms apart, and returns on which
// of them the palm detector ran and the hands each observation holds.
func observeAll(t *testing.T, a *Analyzer, s *Stream, frames []gocv.Mat) (ran []bool, hands []int) {
	t.Helper()
	return observeCounting(t, a, s, frames, 200, palmRuns, func(o rules.Observation) int { return len(o.Hands) })
}

// observeCounting runs the frames in turn, stepMS apart, and returns on
// which of them runs (a count of network runs) went up and what count
// made of each observation.
func observeCounting(t *testing.T, a *Analyzer, s *Stream, frames []gocv.Mat, stepMS int64,
	runs func(*Analyzer) int, count func(rules.Observation) int) (ran []bool, counts []int) {
	t.Helper()
	for i, f := range frames {
		before := runs(a)
		o, err := a.Observe(f, int64(i)*stepMS, s)
		if err != nil {
			t.Fatal(err)
		}
		ran = append(ran, runs(a) > before)
		counts = append(counts, count(o))
	}
	return ran, counts
}

// A still picture without hands is looked at again only on every
// palm_still_every-th hand analysis; with the back-off off, on all.
func TestPalmBacksOffOnStillPicture(t *testing.T) {
	a := newTestAnalyzer(t)
	still := readPhoto(t, "messi5.jpg")
	frames := []gocv.Mat{still, still, still, still, still, still, still}
	ran, _ := observeAll(t, a, handsStream(t, 3), frames)
	want := []bool{true, false, false, true, false, false, true}
	if !slices.Equal(ran, want) {
		t.Errorf("palm ran on %v, want %v", ran, want)
	}
	ran, _ = observeAll(t, a, handsStream(t, 1), frames)
	if !slices.Equal(ran, []bool{true, true, true, true, true, true, true}) {
		t.Errorf("back-off off: palm ran on %v, want every analysis", ran)
	}
}

// A hand coming into view is a change outside the head: the palm detector
// looks at once, not at the end of its back-off, and finds it.
func TestPalmLooksAtOnceWhenAHandComes(t *testing.T) {
	a := newTestAnalyzer(t)
	still := readPhoto(t, "messi5.jpg")
	hand := withHand(t, still)
	ran, hands := observeAll(t, a, handsStream(t, 5), []gocv.Mat{still, still, hand, hand})
	if !slices.Equal(ran, []bool{true, false, true, false}) {
		t.Errorf("palm ran on %v, want on the first frame and at once when the hand came", ran)
	}
	// messi5.jpg shows one hand already.
	if hands[1] != 1 || hands[2] != 2 || hands[3] != 2 {
		t.Errorf("hands seen %v, want messi's, then also the hand that came (followed after)", hands)
	}
}

// Change in the head alone (its zone's picture inverted: more than any
// talking or turning changes) does not make the palm detector look
// again.
func TestPalmIgnoresTheHead(t *testing.T) {
	a := newTestAnalyzer(t)
	// messi5.jpg without the hand beside the face, which the landmark
	// model might lose on its own.
	photo := readPhoto(t, "messi5.jpg")
	crop := photo.Region(image.Rect(0, 0, 330, photo.Rows()))
	still := crop.Clone()
	crop.Close()
	defer still.Close()
	s := handsStream(t, 5)
	o, err := a.Observe(still, 0, s)
	if err != nil {
		t.Fatal(err)
	}
	if len(o.Faces) != 1 || len(o.Hands) != 0 {
		t.Fatalf("%d faces and %d hands in the crop of messi5.jpg, want 1 and none", len(o.Faces), len(o.Hands))
	}
	moved := still.Clone()
	defer moved.Close()
	head := headZone(o.Faces[0].Box)
	region := moved.Region(image.Rect(int(head.X)+1, int(head.Y)+1, int(head.X+head.W), int(head.Y+head.H)).Intersect(image.Rect(0, 0, still.Cols(), still.Rows())))
	gocv.BitwiseNot(region, &region)
	region.Close()
	before := palmRuns(a)
	if _, err := a.Observe(moved, 200, s); err != nil {
		t.Fatal(err)
	}
	if palmRuns(a) != before {
		t.Error("palm detector ran for a change inside the head zone")
	}
	// The picture did change: the same change outside any zone would
	// count (a.changes is the moved picture's grid).
	if n := changedOutside(&s.palm.grid, &a.changes, nil, still.Cols(), still.Rows()); n < motion.MinChangedCells {
		t.Errorf("the inverted face changed only %d cells", n)
	}
}

// A followed hand that the landmark model loses sends the palm detector
// to look at once, even on a still picture.
func TestPalmLooksWhenAHandIsLost(t *testing.T) {
	a := newTestAnalyzer(t)
	hand := readPhoto(t, "handSrc.jpg")
	s := handsStream(t, 5)
	ran, hands := observeAll(t, a, s, []gocv.Mat{hand, hand})
	if !slices.Equal(ran, []bool{true, false}) || hands[0] != 1 || hands[1] != 1 {
		t.Fatalf("palm ran on %v, hands %v: want it once, then the hand followed", ran, hands)
	}
	// The hand is covered where it was followed (grey): the landmark
	// model loses it; the cover lies in the hand's zone, so only the loss
	// can make the palm detector look.
	covered := hand.Clone()
	defer covered.Close()
	box := s.hands[0].Box
	region := covered.Region(image.Rect(int(box.X), int(box.Y), int(box.X+box.W), int(box.Y+box.H)).Intersect(image.Rect(0, 0, hand.Cols(), hand.Rows())))
	region.SetTo(gocv.NewScalar(128, 128, 128, 0))
	region.Close()
	before := palmRuns(a)
	o, err := a.Observe(covered, 400, s)
	if err != nil {
		t.Fatal(err)
	}
	if len(o.Hands) != 0 {
		t.Fatalf("%d hands under the cover", len(o.Hands))
	}
	if palmRuns(a) == before {
		t.Error("palm detector did not look when the followed hand was lost")
	}
}
