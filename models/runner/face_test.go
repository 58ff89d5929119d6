package runner

import (
	"image"
	"testing"
)

// Faces labeled by looking at each photo (x, y, w, h in pixels).
var labelledFaces = map[string][]labeled{
	"messi5.jpg": {{box: Rect{221, 96, 37, 35}}},
	"sample1.jpg": {
		{box: Rect{415, 410, 180, 190}},
		{box: Rect{832, 458, 195, 200}},
		{box: Rect{1488, 235, 190, 205}}, // head tilted about 30°
	},
	"sample2.jpg": {
		{box: Rect{362, 185, 180, 235}, minIoU: 0.3, why: "profile with a hand at the mouth; the box lands on the front of the face"},
		{box: Rect{905, 290, 165, 160}}, // looking down, hair over the brow
		{box: Rect{1440, 205, 200, 190}},
	},
	"sample3.jpg": {
		{box: Rect{598, 375, 197, 225}},
		{box: Rect{1080, 260, 210, 245}},
		{box: Rect{1522, 345, 168, 230}},
	},
	"sample4.jpg": {
		{box: Rect{275, 255, 140, 185}},
		{box: Rect{660, 115, 175, 185}},
		{box: Rect{985, 215, 185, 205}},
		{box: Rect{1283, 200, 120, 215}}, // looking down, hair over half the face
	},
	"sample5.jpg": {
		{box: Rect{782, 150, 158, 195}},
		{box: Rect{625, 475, 165, 190}},
		{box: Rect{1100, 255, 180, 190}},
		{box: Rect{1400, 455, 200, 210}},
		{box: Rect{380, 930, 180, 245}},
	},
	"sample6.jpg": {
		{box: Rect{258, 545, 212, 225}},
		{box: Rect{678, 375, 172, 240}},
		{box: Rect{1178, 360, 192, 230}},
		{box: Rect{1482, 310, 208, 248}},
	},
}

// Photos with no human face: a mandrill, fruit, a building, a hand.
var noFacePhotos = []string{"baboon.jpg", "fruits.jpg", "building.jpg", "handSrc.jpg"}

func TestFullRangeFindsLabelledFaces(t *testing.T) {
	d := newFaceDetector(t, FaceFullRange)
	for name, labels := range labelledFaces {
		t.Run(name, func(t *testing.T) {
			faces, err := d.Detect(readPhoto(t, name))
			if err != nil {
				t.Fatal(err)
			}
			checkFaces(t, faces, labels)
		})
	}
}

// The short-range model wants faces that fill much of the frame, as a
// candidate's webcam shows them: crops around one face each.
func TestShortRangeFindsCloseFaces(t *testing.T) {
	d := newFaceDetector(t, FaceShortRange)
	cases := []struct {
		photo string
		crop  image.Rectangle
		face  Rect // in the photo's coordinates
	}{
		{"sample3.jpg", image.Rect(450, 200, 950, 800), Rect{598, 375, 197, 225}},
		{"sample6.jpg", image.Rect(100, 400, 620, 900), Rect{258, 545, 212, 225}},
		{"sample5.jpg", image.Rect(1300, 300, 1800, 850), Rect{1400, 455, 200, 210}},
		{"sample1.jpg", image.Rect(330, 330, 680, 680), Rect{415, 410, 180, 190}},
	}
	for _, c := range cases {
		t.Run(c.photo, func(t *testing.T) {
			faces, err := d.Detect(photoRegion(t, c.photo, c.crop))
			if err != nil {
				t.Fatal(err)
			}
			for i := range faces {
				faces[i].Box.X += float64(c.crop.Min.X)
				faces[i].Box.Y += float64(c.crop.Min.Y)
				for k := range faces[i].Keypoints {
					faces[i].Keypoints[k].X += float64(c.crop.Min.X)
					faces[i].Keypoints[k].Y += float64(c.crop.Min.Y)
				}
			}
			checkFaces(t, faces, []labeled{{box: c.face}})
		})
	}
}

func TestNoFaceWhereThereIsNone(t *testing.T) {
	for _, m := range []FaceModel{FaceShortRange, FaceFullRange} {
		d := newFaceDetector(t, m)
		for _, name := range noFacePhotos {
			faces, err := d.Detect(readPhoto(t, name))
			if err != nil {
				t.Fatal(err)
			}
			for _, f := range faces {
				t.Errorf("%v on %s: found a face at %s score %.3f", m, name, fmtRect(f.Box), f.Score)
			}
		}
	}
}

func checkFaces(t *testing.T, faces []Face, labels []labeled) {
	t.Helper()
	boxes := make([]Rect, len(faces))
	scores := make([]float64, len(faces))
	for i, f := range faces {
		boxes[i], scores[i] = f.Box, f.Score
		t.Logf("face %s score %.3f", fmtRect(f.Box), f.Score)
		if i > 0 && f.Score > faces[i-1].Score {
			t.Errorf("faces not sorted by score: %.3f after %.3f", f.Score, faces[i-1].Score)
		}
		// Keypoints are the subject's: the right eye is on the image's
		// left for a face turned towards the camera, and both eyes lie
		// above the mouth.
		kp := f.Keypoints
		if kp[RightEye].X >= kp[LeftEye].X || kp[RightEye].Y >= kp[Mouth].Y || kp[LeftEye].Y >= kp[Mouth].Y {
			t.Errorf("face %s: keypoints out of place: %v", fmtRect(f.Box), kp)
		}
		grown := Rect{f.Box.X - f.Box.W/2, f.Box.Y - f.Box.H/2, 2 * f.Box.W, 2 * f.Box.H}
		for k, p := range kp {
			if p.X < grown.X || p.Y < grown.Y || p.X > grown.X+grown.W || p.Y > grown.Y+grown.H {
				t.Errorf("face %s: keypoint %d %v far outside the box", fmtRect(f.Box), k, p)
			}
		}
	}
	matched, problems := matchBoxes(labels, boxes, scores)
	for _, m := range matched {
		t.Logf("label %s", m)
	}
	for _, p := range problems {
		t.Error(p)
	}
}
