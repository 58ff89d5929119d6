package runner

import (
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"gocv.io/x/gocv"

	"invigil/internal/testassets"
)

// detectFunc runs one runner on an image; every runner must refuse or
// handle each bad image without taking the process down.
type detectFunc func(gocv.Mat) (int, error)

func allRunners(t *testing.T) map[string]detectFunc {
	short := newFaceDetector(t, FaceShortRange)
	full := newFaceDetector(t, FaceFullRange)
	palm := newPalmDetector(t, PalmLite)
	lm := newHandLandmarker(t, HandLandmarkLite)
	return map[string]detectFunc{
		"face short": func(m gocv.Mat) (int, error) { f, err := short.Detect(m); return len(f), err },
		"face full":  func(m gocv.Mat) (int, error) { f, err := full.Detect(m); return len(f), err },
		"palm":       func(m gocv.Mat) (int, error) { p, err := palm.Detect(m); return len(p), err },
		"landmarks": func(m gocv.Mat) (int, error) {
			// Not from m's size: m may be closed, and asking a closed
			// Mat its size is exactly the crash being tested for.
			_, err := lm.Detect(m, RotatedRect{Center: Point{0.5, 0.5}, Width: 50, Height: 50})
			return 1, err
		},
	}
}

func TestBadImagesAreRefused(t *testing.T) {
	runners := allRunners(t)
	closed := gocv.NewMatWithSize(10, 10, gocv.MatTypeCV8UC3)
	closed.Close()
	cases := map[string]gocv.Mat{
		"empty":      gocv.NewMat(),
		"zero value": {},
		"closed":     closed,
		"gray":       gocv.NewMatWithSize(100, 100, gocv.MatTypeCV8UC1),
		"BGRA":       gocv.NewMatWithSize(100, 100, gocv.MatTypeCV8UC4),
		"float BGR":  gocv.NewMatWithSize(100, 100, gocv.MatTypeCV32FC3),
		"16-bit BGR": gocv.NewMatWithSize(100, 100, gocv.MatTypeCV16UC3),
		"3-D":        gocv.NewMatWithSizes([]int{4, 4, 4}, gocv.MatTypeCV8UC3),
	}
	for name, img := range cases {
		for rname, run := range runners {
			if _, err := run(img); err == nil {
				t.Errorf("%s on a %s image: no error", rname, name)
			} else if strings.Contains(name, "gray") && !strings.Contains(err.Error(), "CV_8UC3") {
				t.Errorf("%s on a %s image: error %q does not say what is wanted", rname, name, err)
			}
		}
		if name != "closed" && name != "zero value" {
			img.Close()
		}
	}
}

func TestOddSizedImagesWork(t *testing.T) {
	runners := allRunners(t)
	sizes := [][2]int{{1, 1}, {2, 3}, {4000, 1}, {1, 4000}, {3000, 7}, {127, 129}, {128, 128}, {192, 192}}
	for _, sz := range sizes {
		img := gocv.NewMatWithSizeFromScalar(gocv.NewScalar(90, 120, 200, 0), sz[1], sz[0], gocv.MatTypeCV8UC3)
		for rname, run := range runners {
			n, err := run(img)
			if err != nil {
				t.Errorf("%s on %dx%d: %v", rname, sz[0], sz[1], err)
			}
			if rname != "landmarks" && n != 0 {
				t.Errorf("%s on a flat %dx%d image: %d detections", rname, sz[0], sz[1], n)
			}
		}
		img.Close()
	}
}

func TestBadCropsAreRefused(t *testing.T) {
	img := readPhoto(t, "handSrc.jpg")
	l := newHandLandmarker(t, HandLandmarkLite)
	nan := math.NaN()
	for name, crop := range map[string]RotatedRect{
		"zero":       {Center: Point{100, 100}},
		"negative":   {Center: Point{100, 100}, Width: -50, Height: -50},
		"NaN center": {Center: Point{nan, 100}, Width: 50, Height: 50},
		"inf angle":  {Center: Point{100, 100}, Width: 50, Height: 50, Angle: math.Inf(1)},
		"huge":       {Center: Point{100, 100}, Width: 1e9, Height: 1e9},
		"far away":   {Center: Point{1e7, -1e7}, Width: 50, Height: 50},
	} {
		if _, err := l.Detect(img, crop); err == nil {
			t.Errorf("%s crop: no error", name)
		}
	}
	// A crop partly outside the image is fine: the border is replicated.
	if _, err := l.Detect(img, RotatedRect{Center: Point{0, 0}, Width: 300, Height: 200, Angle: 1}); err != nil {
		t.Errorf("crop over the corner: %v", err)
	}
}

func TestClosedRunnersRefuse(t *testing.T) {
	img := readPhoto(t, "messi5.jpg")
	f, err := NewFaceDetector(testassets.Model(t, FaceFullRange.FileName()), FaceFullRange)
	if err != nil {
		t.Fatal(err)
	}
	f.Close()
	f.Close()
	if _, err := f.Detect(img); err == nil {
		t.Error("closed face detector: no error")
	}
	l, err := NewHandLandmarker(testassets.Model(t, HandLandmarkLite.FileName()), HandLandmarkLite)
	if err != nil {
		t.Fatal(err)
	}
	l.Close()
	l.Close()
	if _, err := l.Detect(img, RotatedRect{Center: Point{100, 100}, Width: 50, Height: 50}); err == nil {
		t.Error("closed landmarker: no error")
	}
}

func TestBadModelFilesAreRefused(t *testing.T) {
	dir := t.TempDir()
	write := func(name string, data []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	real, err := os.ReadFile(testassets.Model(t, FaceShortRange.FileName()))
	if err != nil {
		t.Fatal(err)
	}
	cases := map[string]struct {
		path string
		want string // in the error
	}{
		"missing":   {filepath.Join(dir, "nope.onnx"), "invigil models fetch"},
		"directory": {dir, "not a regular file"},
		"empty":     {write("empty.onnx", nil), "empty"},
		"tflite":    {write("model.onnx", append([]byte{0x1c, 0, 0, 0}, []byte("TFL3 and the rest")...)), "TFLite"},
		"text":      {write("text.onnx", []byte("<html>404 not found</html>")), "not an ONNX model"},
		"truncated": {write("half.onnx", real[:len(real)/2]), "not an ONNX model"},
		// Well-formed protobuf that OpenCV's importer throws on: the error
		// must come back instead of aborting the process.
		"unknown op": {write("bogus.onnx", bogusONNX()), "OpenCV cannot import"},
	}
	for name, c := range cases {
		_, err := NewFaceDetector(c.path, FaceShortRange)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %v, want one containing %q", name, err, c.want)
		}
	}
	// The right format but the wrong model: outputs of another shape.
	full := testassets.Model(t, FaceFullRange.FileName())
	if _, err := NewFaceDetector(full, FaceShortRange); err == nil || !strings.Contains(err.Error(), "right model") {
		t.Errorf("full-range file as short range: %v", err)
	}
	if _, err := NewPalmDetector(full, PalmLite); err == nil {
		t.Error("face model as palm detector: no error")
	}
	if _, err := NewHandLandmarker(full, HandLandmarkLite); err == nil {
		t.Error("face model as hand landmarker: no error")
	}
	if _, err := NewFaceDetector(full, FaceModel(7)); err == nil {
		t.Error("unknown face model: no error")
	}
}

// bogusONNX is a one-node ONNX model whose only op does not exist.
func bogusONNX() []byte {
	field := func(num int, payload []byte) []byte {
		out := []byte{byte(num<<3 | 2)}
		n := len(payload)
		for n >= 0x80 {
			out = append(out, byte(n)|0x80)
			n >>= 7
		}
		out = append(out, byte(n))
		return append(out, payload...)
	}
	str := func(num int, s string) []byte { return field(num, []byte(s)) }
	cat := func(parts ...[]byte) []byte {
		var out []byte
		for _, p := range parts {
			out = append(out, p...)
		}
		return out
	}
	// TypeProto{tensor_type{elem_type FLOAT, shape{dim 1, dim 3}}}
	shape := field(2, cat(field(1, []byte{0x08, 0x01}), field(1, []byte{0x08, 0x03})))
	typ := field(2, field(1, cat([]byte{0x08, 0x01}, shape)))
	node := field(1, cat(str(1, "x"), str(2, "y"), str(3, "n"), str(4, "NoSuchOp")))
	graph := cat(node, str(2, "g"), field(11, cat(str(1, "x"), typ)), field(12, cat(str(1, "y"), typ)))
	opset := field(8, []byte{0x10, 13}) // opset_import{version: 13}
	return cat([]byte{0x08, 0x07}, opset, field(7, graph))
}
