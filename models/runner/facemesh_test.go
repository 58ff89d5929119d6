package runner

import (
	"math"
	"testing"

	"gocv.io/x/gocv"

	"invigil/internal/testassets"
)

func newFaceLandmarker(t testing.TB) *FaceLandmarker {
	t.Helper()
	l, err := NewFaceLandmarker(testassets.Model(t, "face_landmark.onnx"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

func detectFaces(t testing.TB, img gocv.Mat) []Face {
	t.Helper()
	faces, err := newFaceDetector(t, FaceFullRange).Detect(img)
	if err != nil || len(faces) == 0 {
		t.Fatalf("no face to benchmark on: %v", err)
	}
	return faces
}

func TestFaceLandmarksOnRealFaces(t *testing.T) {
	d := newFaceDetector(t, FaceFullRange)
	l := newFaceLandmarker(t)
	img := readPhoto(t, "sample3.jpg")
	faces, err := d.Detect(img)
	if err != nil || len(faces) != 3 {
		t.Fatalf("%d faces, %v", len(faces), err)
	}
	for i, f := range faces {
		m, err := l.Detect(img, FaceCrop(f))
		if err != nil {
			t.Fatal(err)
		}
		if m.Presence < 0.9 {
			t.Errorf("face %d: presence %.2f", i, m.Presence)
		}
		// The mesh's nose tip and eye corners fall inside the detector's box
		// and near its keypoints.
		nose := m.Landmarks[MeshNoseTip]
		if !inside(f.Box, nose.X, nose.Y) {
			t.Errorf("face %d: nose tip (%.0f,%.0f) outside %+v", i, nose.X, nose.Y, f.Box)
		}
		if d := math.Hypot(nose.X-f.Keypoints[NoseTip].X, nose.Y-f.Keypoints[NoseTip].Y); d > 0.15*f.Box.W {
			t.Errorf("face %d: mesh nose %.0f px from the detector's", i, d)
		}
		re, le := m.Landmarks[MeshRightEyeOuter], m.Landmarks[MeshLeftEyeOuter]
		if re.X >= le.X {
			t.Errorf("face %d: right eye corner (%.0f) not left of the left one (%.0f) in the image", i, re.X, le.X)
		}
	}
	// No face in the crop: presence low.
	fruits := readPhoto(t, "fruits.jpg")
	m, err := l.Detect(fruits, RotatedRect{Center: Point{256, 240}, Width: 300, Height: 300})
	if err != nil {
		t.Fatal(err)
	}
	if m.Presence >= 0.5 {
		t.Errorf("fruits: presence %.2f", m.Presence)
	}
	// Bad crops are errors, not crashes.
	for _, c := range []RotatedRect{{Width: math.NaN()}, {Width: 0.1}, {Center: Point{1e9, 0}, Width: 10}} {
		if _, err := l.Detect(img, c); err == nil {
			t.Errorf("crop %+v accepted", c)
		}
	}
}

func inside(r Rect, x, y float64) bool { return x >= r.X && y >= r.Y && x <= r.X+r.W && y <= r.Y+r.H }
