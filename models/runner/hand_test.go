package runner

import (
	"math"
	"strings"
	"testing"

	"gocv.io/x/gocv"
)

// handSrc.jpg: a left hand, palm to the camera, fingers pointing right,
// the wrist just beyond the left edge. Labeled by looking at the photo.
var (
	handSrcHand = Rect{-60, 0, 610, 455} // the hand, wrist included

	handSrcPalm = Rect{0, 120, 310, 270} // the palm: knuckles to the image edge
	handSrcTips = map[int]Point{         // ends of the fingers
		ThumbTip:  {262, 18},
		IndexTip:  {492, 136},
		MiddleTip: {545, 260},
		RingTip:   {522, 322},
		PinkyTip:  {440, 432},
	}
)

func TestPalmAndLandmarksOnHand(t *testing.T) {
	img := readPhoto(t, "handSrc.jpg")
	for _, pm := range []PalmModel{PalmLite, PalmFull} {
		palms, err := newPalmDetector(t, pm).Detect(img)
		if err != nil {
			t.Fatal(err)
		}
		if len(palms) != 1 {
			t.Fatalf("%v: %d palms, want 1: %+v", pm, len(palms), palms)
		}
		p := palms[0]
		t.Logf("%v: palm %s score %.3f IoU %.2f crop %+v", pm, fmtRect(p.Box), p.Score, p.Box.IoU(handSrcPalm), p.Crop)
		if iou := p.Box.IoU(handSrcPalm); iou < 0.5 {
			t.Errorf("%v: palm %s IoU %.2f with the labeled palm %s", pm, fmtRect(p.Box), iou, fmtRect(handSrcPalm))
		}
		// The fingers point right, so the crop is turned a quarter clockwise.
		if d := math.Abs(normalizeRadians(p.Crop.Angle - math.Pi/2)); d > 0.35 {
			t.Errorf("%v: crop angle %.2f rad, want about π/2", pm, p.Crop.Angle)
		}
		for _, lm := range []HandLandmarkModel{HandLandmarkLite, HandLandmarkFull} {
			l := newHandLandmarker(t, lm)
			h, err := l.Detect(img, p.Crop)
			if err != nil {
				t.Fatal(err)
			}
			checkHandSrc(t, pm.String()+"+"+lm.String(), h)
			// Tracking: the crop derived from these landmarks finds the
			// hand again without the palm detector.
			again, err := l.Detect(img, h.NextCrop())
			if err != nil {
				t.Fatal(err)
			}
			checkHandSrc(t, pm.String()+"+"+lm.String()+" tracked", again)
		}
	}
}

func checkHandSrc(t *testing.T, what string, h Hand) {
	t.Helper()
	t.Logf("%s: presence %.3f right-hand %.3f box %s", what, h.Presence, h.RightHand, fmtRect(h.Box))
	if h.Presence < 0.5 {
		t.Errorf("%s: presence %.3f, want > 0.5", what, h.Presence)
	}
	// With the wrist out of view the lite model is unsure (0.44–0.47 here),
	// so only the full model is held to the answer.
	if strings.Contains(what, HandLandmarkFull.String()) && h.RightHand > 0.5 {
		t.Errorf("%s: right-hand probability %.3f for a left hand", what, h.RightHand)
	}
	const margin = 10
	for i, p := range h.Landmarks {
		if p.X < handSrcHand.X-margin || p.Y < handSrcHand.Y-margin ||
			p.X > handSrcHand.X+handSrcHand.W+margin || p.Y > handSrcHand.Y+handSrcHand.H+margin {
			t.Errorf("%s: landmark %d at (%.0f, %.0f) outside the hand %s", what, i, p.X, p.Y, fmtRect(handSrcHand))
		}
	}
	for i, want := range handSrcTips {
		got := h.Landmarks[i]
		if d := math.Hypot(got.X-want.X, got.Y-want.Y); d > 40 {
			t.Errorf("%s: landmark %d at (%.0f, %.0f), %.0f px from the fingertip at (%.0f, %.0f)", what, i, got.X, got.Y, d, want.X, want.Y)
		}
	}
	if iou := h.Box.IoU(handSrcHand); iou < 0.6 {
		t.Errorf("%s: hand box %s IoU %.2f with %s", what, fmtRect(h.Box), iou, fmtRect(handSrcHand))
	}
}

// On photos without hands the palm detector may fire on fur or texture (the
// lite model finds a "palm" on the mandrill at 0.6), but the landmark model
// then rejects it: no hand comes out of the two together.
func TestNoHandWhereThereIsNone(t *testing.T) {
	l := newHandLandmarker(t, HandLandmarkFull)
	for _, pm := range []PalmModel{PalmLite, PalmFull} {
		d := newPalmDetector(t, pm)
		for _, name := range []string{"fruits.jpg", "building.jpg", "baboon.jpg"} {
			img := readPhoto(t, name)
			palms, err := d.Detect(img)
			if err != nil {
				t.Fatal(err)
			}
			for _, p := range palms {
				h, err := l.Detect(img, p.Crop)
				if err != nil {
					t.Fatal(err)
				}
				t.Logf("%v on %s: palm at %s score %.3f, hand presence %.3f", pm, name, fmtRect(p.Box), p.Score, h.Presence)
				if h.Presence > 0.5 {
					t.Errorf("%v on %s: a hand at %s (palm score %.3f, presence %.3f)", pm, name, fmtRect(h.Box), p.Score, h.Presence)
				}
			}
		}
	}
}

// Pointed at something that is not a hand, the landmark model says so.
func TestLandmarkerPresenceWithoutHand(t *testing.T) {
	img := readPhoto(t, "fruits.jpg")
	crop := RotatedRect{Center: Point{256, 240}, Width: 300, Height: 300}
	for _, lm := range []HandLandmarkModel{HandLandmarkLite, HandLandmarkFull} {
		h, err := newHandLandmarker(t, lm).Detect(img, crop)
		if err != nil {
			t.Fatal(err)
		}
		if h.Presence > 0.5 {
			t.Errorf("%v: presence %.3f on fruit", lm, h.Presence)
		}
	}
}

// The crop is cut and mapped back where it says: the photo turned a quarter
// clockwise, with the crop turned with it, gives the same landmarks turned
// the same way. (The crop stays inside the photo, so both see the same
// pixels.)
func TestLandmarksFollowRotation(t *testing.T) {
	img := readPhoto(t, "handSrc.jpg")
	turned := gocv.NewMat()
	defer turned.Close()
	gocv.Rotate(img, &turned, gocv.Rotate90Clockwise)
	h := float64(img.Rows())
	// Continuous coordinates: (x, y) → (h − y, x).
	turn := func(p Point) Point { return Point{h - p.Y, p.X} }

	crop := RotatedRect{Center: Point{300, 240}, Width: 400, Height: 400, Angle: math.Pi / 2}
	crop2 := crop
	crop2.Center = turn(crop.Center)
	crop2.Angle = normalizeRadians(crop.Angle + math.Pi/2)

	l := newHandLandmarker(t, HandLandmarkFull)
	a, err := l.Detect(img, crop)
	if err != nil {
		t.Fatal(err)
	}
	b, err := l.Detect(turned, crop2)
	if err != nil {
		t.Fatal(err)
	}
	if a.Presence < 0.5 {
		t.Fatalf("presence %.3f in the unturned crop", a.Presence)
	}
	for i := range a.Landmarks {
		want := turn(Point{a.Landmarks[i].X, a.Landmarks[i].Y})
		got := b.Landmarks[i]
		if d := math.Hypot(got.X-want.X, got.Y-want.Y); d > 1 {
			t.Errorf("landmark %d: (%.1f, %.1f) in the turned photo, want (%.1f, %.1f)", i, got.X, got.Y, want.X, want.Y)
		}
	}
}
