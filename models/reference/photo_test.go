package reference_test

import (
	"fmt"
	"image"
	"image/draw"
	"image/jpeg"
	"os"
	"sync"
	"testing"

	"invigil/internal/testassets"
)

// photoInput loads a test photo as the NHWC float input of a size×size RGB
// model: the photo is letterboxed onto a black square (centered, as the
// runners do), shrunk by area averaging (each output pixel is the mean of
// the source pixels whose centers fall inside it) and each channel is
// mapped from [0,255] to [lo,hi]. The same slice feeds the reference and,
// transposed to NCHW, the converted ONNX model.
// Inputs are cached: decoding the large sample photos dominates otherwise.
// Callers must not modify the returned slice.
func photoInput(t testing.TB, name string, size int, lo, hi float32) []float32 {
	t.Helper()
	key := fmt.Sprint(name, size, lo, hi)
	photoCache.Lock()
	defer photoCache.Unlock()
	if in, ok := photoCache.m[key]; ok {
		return in
	}
	in := loadPhoto(t, name, size, lo, hi)
	photoCache.m[key] = in
	return in
}

var photoCache = struct {
	sync.Mutex
	m map[string][]float32
}{m: map[string][]float32{}}

func loadPhoto(t testing.TB, name string, size int, lo, hi float32) []float32 {
	t.Helper()
	f, err := os.Open(testassets.Photo(t, name))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, err := jpeg.Decode(f)
	if err != nil {
		t.Fatalf("decoding %s: %v", name, err)
	}
	b := img.Bounds()
	rgba := image.NewRGBA(image.Rect(0, 0, b.Dx(), b.Dy()))
	draw.Draw(rgba, rgba.Bounds(), img, b.Min, draw.Src)
	w, h := b.Dx(), b.Dy()

	side := max(w, h)
	offX, offY := (side-w)/2, (side-h)/2
	sums := make([]float64, size*size*3)
	counts := make([]float64, size*size)
	for y := 0; y < side; y++ {
		oy := y * size / side
		for x := 0; x < side; x++ {
			ox := x * size / side
			o := oy*size + ox
			counts[o]++
			ix, iy := x-offX, y-offY
			if ix < 0 || iy < 0 || ix >= w || iy >= h {
				continue // black letterbox border
			}
			p := rgba.Pix[iy*rgba.Stride+4*ix:]
			sums[3*o] += float64(p[0])
			sums[3*o+1] += float64(p[1])
			sums[3*o+2] += float64(p[2])
		}
	}
	out := make([]float32, len(sums))
	for i, s := range sums {
		v := s / counts[i/3] / 255
		out[i] = lo + float32(v)*(hi-lo)
	}
	return out
}
