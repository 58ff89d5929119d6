package runner

import (
	"image"
	"slices"
	"testing"
	"time"

	"gocv.io/x/gocv"
)

// reportMedian adds the median time per call in milliseconds: on a shared
// 2-core machine the mean is pulled up by whatever else runs.
func reportMedian(b *testing.B, samples []time.Duration) {
	if len(samples) == 0 {
		return
	}
	slices.Sort(samples)
	b.ReportMetric(float64(samples[len(samples)/2].Microseconds())/1000, "ms-median")
}

type benchModel struct {
	name  string
	input int
	open  func(testing.TB) *net // the runner's network, owned by the runner
}

func benchModels() []benchModel {
	return []benchModel{
		{FaceShortRange.String(), 128, func(t testing.TB) *net { return newFaceDetector(t, FaceShortRange).ssd.net }},
		{FaceFullRange.String(), 192, func(t testing.TB) *net { return newFaceDetector(t, FaceFullRange).ssd.net }},
		{PalmLite.String(), 192, func(t testing.TB) *net { return newPalmDetector(t, PalmLite).ssd.net }},
		{PalmFull.String(), 192, func(t testing.TB) *net { return newPalmDetector(t, PalmFull).ssd.net }},
		{HandLandmarkLite.String(), 224, func(t testing.TB) *net { return newHandLandmarker(t, HandLandmarkLite).net }},
		{HandLandmarkFull.String(), 224, func(t testing.TB) *net { return newHandLandmarker(t, HandLandmarkFull).net }},
		{"face_landmark", 192, func(t testing.TB) *net { return newFaceLandmarker(t).net }},
	}
}

// BenchmarkInference is the bare network: one forward pass on a ready blob
// made from a real photo, nothing before or after.
func BenchmarkInference(b *testing.B) {
	for _, m := range benchModels() {
		b.Run(m.name, func(b *testing.B) {
			n := m.open(b)
			img := readPhoto(b, "handSrc.jpg")
			blob := gocv.BlobFromImage(img, 1/255.0, image.Pt(m.input, m.input), gocv.NewScalar(0, 0, 0, 0), true, false)
			defer blob.Close()
			samples := make([]time.Duration, 0, b.N)
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				start := time.Now()
				if err := n.run(blob); err != nil {
					b.Fatal(err)
				}
				samples = append(samples, time.Since(start))
			}
			b.StopTimer()
			reportMedian(b, samples)
		})
	}
}

// BenchmarkDetect is the whole call a worker makes on a 640×480 frame:
// validation, letterbox or crop, blob, inference, decoding, NMS, mapping.
func BenchmarkDetect(b *testing.B) {
	run := func(b *testing.B, detect func() error) {
		samples := make([]time.Duration, 0, b.N)
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			start := time.Now()
			if err := detect(); err != nil {
				b.Fatal(err)
			}
			samples = append(samples, time.Since(start))
		}
		b.StopTimer()
		reportMedian(b, samples)
	}
	for _, m := range []FaceModel{FaceShortRange, FaceFullRange} {
		b.Run(m.String(), func(b *testing.B) {
			d := newFaceDetector(b, m)
			img := readPhoto(b, "sample2.jpg")
			frame := gocv.NewMat()
			defer frame.Close()
			gocv.Resize(img, &frame, image.Pt(640, 480), 0, 0, gocv.InterpolationArea)
			run(b, func() error { _, err := d.Detect(frame); return err })
		})
	}
	for _, m := range []PalmModel{PalmLite, PalmFull} {
		b.Run(m.String(), func(b *testing.B) {
			d := newPalmDetector(b, m)
			img := readPhoto(b, "handSrc.jpg")
			run(b, func() error { _, err := d.Detect(img); return err })
		})
	}
	b.Run("face_landmark", func(b *testing.B) {
		l := newFaceLandmarker(b)
		img := readPhoto(b, "sample3.jpg")
		faces := detectFaces(b, img)
		run(b, func() error { _, err := l.Detect(img, FaceCrop(faces[0])); return err })
	})
	for _, m := range []HandLandmarkModel{HandLandmarkLite, HandLandmarkFull} {
		b.Run(m.String(), func(b *testing.B) {
			l := newHandLandmarker(b, m)
			img := readPhoto(b, "handSrc.jpg")
			crop := RotatedRect{Center: Point{297, 243}, Width: 730, Height: 730, Angle: 1.47}
			run(b, func() error { _, err := l.Detect(img, crop); return err })
		})
	}
}
