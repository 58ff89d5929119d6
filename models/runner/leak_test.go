//go:build matprofile

package runner

import (
	"bytes"
	"image"
	"testing"

	"gocv.io/x/gocv"

	"invigil/internal/testassets"
)

// TestNoMatLeaks runs every runner through its whole life — load, detect on
// real photos, refuse bad input, close — and checks that every Mat made on
// the way was closed. gocv counts Mats only when built with -tags
// matprofile.
func TestNoMatLeaks(t *testing.T) {
	before := gocv.MatProfile.Count()
	func() {
		face := newFaceDetectorNoCleanup(t, FaceShortRange)
		defer face.Close()
		full := newFaceDetectorNoCleanup(t, FaceFullRange)
		defer full.Close()
		palm, err := NewPalmDetector(testassets.Model(t, PalmLite.FileName()), PalmLite)
		if err != nil {
			t.Fatal(err)
		}
		defer palm.Close()
		lm, err := NewHandLandmarker(testassets.Model(t, HandLandmarkLite.FileName()), HandLandmarkLite)
		if err != nil {
			t.Fatal(err)
		}
		defer lm.Close()

		for _, name := range []string{"messi5.jpg", "sample2.jpg", "handSrc.jpg", "fruits.jpg"} {
			img := gocv.IMRead(testassets.Photo(t, name), gocv.IMReadColor)
			for i := 0; i < 3; i++ {
				if _, err := face.Detect(img); err != nil {
					t.Fatal(err)
				}
				if _, err := full.Detect(img); err != nil {
					t.Fatal(err)
				}
				palms, err := palm.Detect(img)
				if err != nil {
					t.Fatal(err)
				}
				for _, p := range palms {
					h, err := lm.Detect(img, p.Crop)
					if err != nil {
						t.Fatal(err)
					}
					if _, err := lm.Detect(img, h.NextCrop()); err != nil {
						t.Fatal(err)
					}
				}
			}
			// A view into the image, as a caller cropping a frame passes.
			reg := img.Region(image.Rect(10, 10, img.Cols()-10, img.Rows()-10))
			if _, err := full.Detect(reg); err != nil {
				t.Fatal(err)
			}
			reg.Close()
			img.Close()
		}
		gray := gocv.NewMatWithSize(20, 20, gocv.MatTypeCV8UC1)
		if _, err := face.Detect(gray); err == nil {
			t.Error("gray image accepted")
		}
		gray.Close()
		tiny := gocv.NewMatWithSize(1, 1, gocv.MatTypeCV8UC3)
		if _, err := palm.Detect(tiny); err != nil {
			t.Error(err)
		}
		tiny.Close()
	}()
	// A model that fails its trial run must not leave its scratch Mats.
	if _, err := NewFaceDetector(testassets.Model(t, FaceFullRange.FileName()), FaceShortRange); err == nil {
		t.Error("wrong model accepted")
	}
	if after := gocv.MatProfile.Count(); after != before {
		var b bytes.Buffer
		gocv.MatProfile.WriteTo(&b, 1)
		t.Errorf("%d Mats before, %d after: leaked where made:\n%s", before, after, b.String())
	}
}

func newFaceDetectorNoCleanup(t *testing.T, m FaceModel) *FaceDetector {
	t.Helper()
	d, err := NewFaceDetector(testassets.Model(t, m.FileName()), m)
	if err != nil {
		t.Fatal(err)
	}
	return d
}
