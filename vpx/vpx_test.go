package vpx

import (
	"bytes"
	"errors"
	"image"
	"math"
	"math/rand"
	"testing"

	"gocv.io/x/gocv"

	"invigil/internal/testassets"
)

// photo reads a test photo scaled to w×h as BGR.
func photo(t testing.TB, name string, w, h int) gocv.Mat {
	t.Helper()
	src := gocv.IMRead(testassets.Photo(t, name), gocv.IMReadColor)
	defer src.Close()
	if src.Empty() {
		t.Fatalf("cannot read %s", name)
	}
	dst := gocv.NewMat()
	gocv.Resize(src, &dst, image.Pt(w, h), 0, 0, gocv.InterpolationArea)
	t.Cleanup(func() { dst.Close() })
	return dst
}

func newEncoder(t testing.TB, opts EncoderOptions) *Encoder {
	t.Helper()
	e, err := NewEncoder(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close() })
	return e
}

func newDecoder(t testing.TB) *Decoder {
	t.Helper()
	d, err := NewDecoder()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	return d
}

// encodeStill encodes n frames of the same picture, the first a keyframe.
func encodeStill(t testing.TB, e *Encoder, bgr gocv.Mat, n int) [][]byte {
	t.Helper()
	var out [][]byte
	for i := 0; i < n; i++ {
		frames, err := e.Encode(bgr, i == 0)
		if err != nil {
			t.Fatal(err)
		}
		if len(frames) != 1 {
			t.Fatalf("frame %d: %d compressed frames, want 1 (realtime mode)", i, len(frames))
		}
		out = append(out, frames...)
	}
	return out
}

// psnr compares two BGR pictures of the same size.
func psnr(t testing.TB, a, b gocv.Mat) float64 {
	t.Helper()
	if a.Rows() != b.Rows() || a.Cols() != b.Cols() || a.Type() != b.Type() {
		t.Fatalf("PSNR of %dx%d %v and %dx%d %v", a.Cols(), a.Rows(), a.Type(), b.Cols(), b.Rows(), b.Type())
	}
	x, y := a.ToBytes(), b.ToBytes()
	var sum float64
	for i := range x {
		d := float64(x[i]) - float64(y[i])
		sum += d * d
	}
	mse := sum / float64(len(x))
	if mse == 0 {
		return math.Inf(1)
	}
	return 10 * math.Log10(255*255/mse)
}

func TestRoundTripPhotos(t *testing.T) {
	for _, c := range []struct {
		photo   string
		minPSNR float64
	}{
		{"messi5.jpg", 35},
		{"sample1.jpg", 35},
		{"building.jpg", 36},
		{"fruits.jpg", 33},
		{"baboon.jpg", 28}, // fur is the worst case for any codec
	} {
		t.Run(c.photo, func(t *testing.T) {
			src := photo(t, c.photo, 640, 480)
			e := newEncoder(t, EncoderOptions{Width: 640, Height: 480, FPS: 15, BitrateKbps: 2000})
			frames := encodeStill(t, e, src, 15)
			if !IsKeyframe(frames[0]) {
				t.Fatal("first frame is not a keyframe")
			}
			for i, f := range frames[1:] {
				if IsKeyframe(f) {
					t.Fatalf("frame %d is a keyframe without being asked", i+1)
				}
			}
			d := newDecoder(t)
			i420, bgr := gocv.NewMat(), gocv.NewMat()
			defer i420.Close()
			defer bgr.Close()
			var first float64
			for i, f := range frames {
				shown, err := d.DecodeBGR(f, &i420, &bgr)
				if err != nil {
					t.Fatalf("frame %d: %v", i, err)
				}
				if !shown {
					t.Fatalf("frame %d: no picture", i)
				}
				if i == 0 {
					first = psnr(t, src, bgr)
				}
			}
			if w, h := d.Size(); w != 640 || h != 480 {
				t.Errorf("decoder size %dx%d", w, h)
			}
			last := psnr(t, src, bgr)
			t.Logf("%s: PSNR keyframe %.1f dB, after %d frames %.1f dB, keyframe %d bytes", c.photo, first, len(frames), last, len(frames[0]))
			if last < c.minPSNR {
				t.Errorf("PSNR %.1f dB, want ≥ %.0f", last, c.minPSNR)
			}
		})
	}
}

// TestDecodePathsAgree: Decode (Go planes) → ToBGR and DecodeBGR (straight
// into the Mat) give the same picture.
func TestDecodePathsAgree(t *testing.T) {
	src := photo(t, "sample2.jpg", 320, 240)
	e := newEncoder(t, EncoderOptions{Width: 320, Height: 240, FPS: 15})
	frames := encodeStill(t, e, src, 3)
	d1, d2 := newDecoder(t), newDecoder(t)
	i420, viaMat, viaImage := gocv.NewMat(), gocv.NewMat(), gocv.NewMat()
	defer i420.Close()
	defer viaMat.Close()
	defer viaImage.Close()
	for i, f := range frames {
		img, err := d1.Decode(f)
		if err != nil || img == nil {
			t.Fatalf("frame %d: Decode: %v, %v", i, img, err)
		}
		if img.Width != 320 || img.Height != 240 || len(img.Y) != 320*240 || len(img.U) != 160*120 {
			t.Fatalf("image %dx%d planes %d/%d", img.Width, img.Height, len(img.Y), len(img.U))
		}
		if err := img.ToBGR(&viaImage); err != nil {
			t.Fatal(err)
		}
		if _, err := d2.DecodeBGR(f, &i420, &viaMat); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(viaImage.ToBytes(), viaMat.ToBytes()) {
			t.Fatalf("frame %d: the two decode paths differ", i)
		}
	}
}

// TestEncodeImage: the I420 input path and BGRToImage round trip.
func TestEncodeImage(t *testing.T) {
	src := photo(t, "messi5.jpg", 320, 240)
	img, err := BGRToImage(src)
	if err != nil {
		t.Fatal(err)
	}
	e := newEncoder(t, EncoderOptions{Width: 320, Height: 240, FPS: 10, BitrateKbps: 1500})
	d := newDecoder(t)
	bgr := gocv.NewMat()
	defer bgr.Close()
	for i := 0; i < 10; i++ {
		frames, err := e.EncodeImage(img, false)
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range frames {
			out, err := d.Decode(f)
			if err != nil {
				t.Fatal(err)
			}
			if err := out.ToBGR(&bgr); err != nil {
				t.Fatal(err)
			}
		}
	}
	if p := psnr(t, src, bgr); p < 30 {
		t.Errorf("PSNR %.1f dB via EncodeImage", p)
	}
	black, err := NewImage(320, 240)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.EncodeImage(black, true); err != nil {
		t.Fatal(err)
	}
}

func TestForceKeyframe(t *testing.T) {
	src := photo(t, "sample1.jpg", 320, 240)
	e := newEncoder(t, EncoderOptions{Width: 320, Height: 240, FPS: 15, KeyframeInterval: 1000})
	for i := 0; i < 6; i++ {
		frames, err := e.Encode(src, i == 4)
		if err != nil {
			t.Fatal(err)
		}
		if want := i == 0 || i == 4; IsKeyframe(frames[0]) != want {
			t.Errorf("frame %d keyframe=%v, want %v", i, IsKeyframe(frames[0]), want)
		}
	}
}

func TestEncoderRejectsBadInput(t *testing.T) {
	for _, o := range []EncoderOptions{
		{Width: 0, Height: 480},
		{Width: 641, Height: 480},
		{Width: 640, Height: 480, FPS: -1},
		{Width: 640, Height: 480, FPS: math.NaN()},
		{Width: 640, Height: 480, BitrateKbps: -5},
		{Width: 640, Height: 480, KeyframeInterval: -1},
		{Width: 640, Height: 480, Threads: 1000},
		{Width: 640, Height: 480, CPUUsed: 99},
		{Width: 1 << 20, Height: 480},
	} {
		if e, err := NewEncoder(o); err == nil {
			e.Close()
			t.Errorf("%+v accepted", o)
		}
	}
	e := newEncoder(t, EncoderOptions{Width: 320, Height: 240})
	wrongSize := photo(t, "messi5.jpg", 160, 120)
	if _, err := e.Encode(wrongSize, false); err == nil {
		t.Error("wrong-size picture accepted")
	}
	gray := gocv.NewMatWithSize(240, 320, gocv.MatTypeCV8UC1)
	defer gray.Close()
	if _, err := e.Encode(gray, false); err == nil {
		t.Error("gray picture accepted")
	}
	empty := gocv.NewMat()
	defer empty.Close()
	if _, err := e.Encode(empty, false); err == nil {
		t.Error("empty Mat accepted")
	}
	if _, err := e.EncodeImage(&Image{Width: 320, Height: 240, Y: make([]byte, 10)}, false); err == nil {
		t.Error("short planes accepted")
	}
	if _, err := e.EncodeImage(nil, false); err == nil {
		t.Error("nil image accepted")
	}
	e.Close()
	e.Close()
	if _, err := e.Encode(wrongSize, false); !errors.Is(err, ErrClosed) {
		t.Errorf("Encode after Close: %v", err)
	}
}

// realStream is a keyframe and inter frames of a moving picture.
func realStream(t testing.TB, n int) [][]byte {
	t.Helper()
	a := photo(t, "messi5.jpg", 320, 240)
	b := photo(t, "building.jpg", 320, 240)
	e := newEncoder(t, EncoderOptions{Width: 320, Height: 240, FPS: 15})
	var out [][]byte
	for i := 0; i < n; i++ {
		src := a
		if i%4 >= 2 {
			src = b
		}
		frames, err := e.Encode(src, i == 0)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, frames...)
	}
	return out
}

func TestDecoderSurvivesGarbage(t *testing.T) {
	stream := realStream(t, 8)
	key := stream[0]
	d := newDecoder(t)
	bgr, i420 := gocv.NewMat(), gocv.NewMat()
	defer bgr.Close()
	defer i420.Close()

	mustFail := func(name string, frame []byte) {
		t.Helper()
		if _, err := d.Decode(frame); err == nil {
			t.Errorf("%s: decoded without error", name)
		}
	}
	mustFail("nil", nil)
	mustFail("empty", []byte{})
	mustFail("inter frame before any keyframe", stream[1])
	mustFail("one byte", []byte{0})
	huge := append([]byte(nil), key...)
	huge[6], huge[7], huge[8], huge[9] = 0xff, 0x3f, 0xff, 0x3f // 16383×16383
	mustFail("16383×16383 keyframe", huge)
	noStart := append([]byte(nil), key...)
	noStart[3] = 0
	mustFail("keyframe without start code", noStart)
	mustFail("oversized", make([]byte, MaxFrameBytes+1))
	for _, n := range []int{3, 9, 10, 11, 20, len(key) / 3, len(key) / 2, len(key) - 1} {
		d.Decode(key[:n]) // error or a damaged picture; it must not crash
	}
	rng := rand.New(rand.NewSource(1))
	for i := 0; i < 200; i++ {
		junk := make([]byte, rng.Intn(4000))
		rng.Read(junk)
		d.Decode(junk)
		if len(junk) > 10 {
			junk[0] &^= 1 // claim a keyframe
			copy(junk[3:], []byte{0x9d, 0x01, 0x2a})
			d.Decode(junk)
		}
	}
	// After all that, the stream decodes again from its keyframe.
	for i, f := range stream {
		if _, err := d.DecodeBGR(f, &i420, &bgr); err != nil {
			t.Fatalf("frame %d after garbage: %v", i, err)
		}
	}
	if bgr.Cols() != 320 || bgr.Rows() != 240 {
		t.Errorf("picture %dx%d", bgr.Cols(), bgr.Rows())
	}
	d.Close()
	if _, err := d.Decode(key); !errors.Is(err, ErrClosed) {
		t.Errorf("Decode after Close: %v", err)
	}
}

// TestDecoderCorruptInterFrames flips bytes in inter frames of a real
// stream: errors or damaged pictures, never a crash, and the next keyframe
// heals.
func TestDecoderCorruptInterFrames(t *testing.T) {
	stream := realStream(t, 12)
	d := newDecoder(t)
	rng := rand.New(rand.NewSource(2))
	errs := 0
	for round := 0; round < 30; round++ {
		for i, f := range stream {
			if i > 0 {
				f = append([]byte(nil), f...)
				for k := 0; k < 1+rng.Intn(8); k++ {
					f[3+rng.Intn(len(f)-3)] ^= byte(1 + rng.Intn(255))
				}
				if rng.Intn(3) == 0 {
					f = f[:3+rng.Intn(len(f)-3)]
				}
			}
			if _, err := d.Decode(f); err != nil {
				errs++
			}
		}
	}
	t.Logf("%d of %d corrupted frames reported as errors", errs, 30*(len(stream)-1))
	if _, err := d.Decode(stream[0]); err != nil {
		t.Fatalf("keyframe after corruption: %v", err)
	}
}

func TestParseHeader(t *testing.T) {
	stream := realStream(t, 2)
	h, err := ParseHeader(stream[0])
	if err != nil || !h.Keyframe || !h.Show || h.Width != 320 || h.Height != 240 {
		t.Errorf("keyframe header %+v, %v", h, err)
	}
	h, err = ParseHeader(stream[1])
	if err != nil || h.Keyframe || h.Width != 0 {
		t.Errorf("inter header %+v, %v", h, err)
	}
	if w, h := EvenSize(641, 481); w != 640 || h != 480 {
		t.Errorf("EvenSize %d×%d", w, h)
	}
}

func TestImageConversionsRejectBadInput(t *testing.T) {
	m := gocv.NewMat()
	defer m.Close()
	for _, img := range []*Image{
		nil,
		{Width: 0, Height: 4},
		{Width: 4, Height: 4, Y: make([]byte, 16), U: make([]byte, 4), V: make([]byte, 3)},
		{Width: 1, Height: 1, Y: make([]byte, 1), U: make([]byte, 1), V: make([]byte, 1)},
	} {
		if err := img.ToBGR(&m); err == nil {
			t.Errorf("%+v converted", img)
		}
	}
	bad := gocv.NewMatWithSize(5, 4, gocv.MatTypeCV8UC1)
	defer bad.Close()
	if err := I420ToBGR(bad, &m); err == nil {
		t.Error("5-row I420 Mat converted")
	}
	odd := gocv.NewMatWithSize(3, 5, gocv.MatTypeCV8UC3)
	defer odd.Close()
	if _, err := BGRToImage(odd); err == nil {
		t.Error("odd BGR converted")
	}
	// An odd-sized Image converts by dropping the last row and column.
	img, err := NewImage(5, 3)
	if err != nil {
		t.Fatal(err)
	}
	if err := img.ToBGR(&m); err != nil || m.Cols() != 4 || m.Rows() != 2 {
		t.Errorf("odd image → %dx%d, %v", m.Cols(), m.Rows(), err)
	}
}

// FuzzDecode feeds arbitrary bytes to a decoder, both fresh and primed with
// a real keyframe (so the inter-frame path is reached too).
func FuzzDecode(f *testing.F) {
	stream := realStream(f, 4)
	for _, s := range stream {
		f.Add(s)
	}
	f.Add([]byte{})
	f.Add([]byte{0x10, 0x02, 0x00, 0x9d, 0x01, 0x2a, 0x40, 0x01, 0xf0, 0x00})
	key := stream[0]
	fresh, primed := newDecoder(f), newDecoder(f)
	i420, bgr := gocv.NewMat(), gocv.NewMat()
	f.Cleanup(func() { i420.Close(); bgr.Close() })
	f.Fuzz(func(t *testing.T, data []byte) {
		fresh.DecodeBGR(data, &i420, &bgr)
		if _, err := primed.Decode(key); err != nil {
			t.Fatalf("real keyframe: %v", err)
		}
		primed.DecodeBGR(data, &i420, &bgr)
	})
}
