package detectors

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"image"
	"image/color"
	"image/png"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"gocv.io/x/gocv"

	"invigil/detectors/rules"
	"invigil/internal/testassets"
)

func newTestAnalyzer(t testing.TB) *Analyzer {
	t.Helper()
	a, err := NewAnalyzer(AnalyzerOptions{ModelsDir: testassets.ModelsDir(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close() })
	return a
}

func restRoomStream(t testing.TB) *Stream {
	t.Helper()
	p, err := rules.DefaultPolicy(rules.PolicyRestRoom)
	if err != nil {
		t.Fatal(err)
	}
	p.HandsEvery = 1
	return NewStream(p, Camera{})
}

func readPhoto(t testing.TB, name string) gocv.Mat {
	t.Helper()
	img := gocv.IMRead(testassets.Photo(t, name), gocv.IMReadColor)
	if img.Empty() {
		t.Fatalf("cannot read %s", name)
	}
	t.Cleanup(func() { img.Close() })
	return img
}

func TestObservePhotos(t *testing.T) {
	a := newTestAnalyzer(t)
	for _, c := range []struct {
		photo      string
		faces      int
		minHands   int
		maxAbsYaw  float64
		wantBright bool
	}{
		{"messi5.jpg", 1, 0, 30, true},
		{"sample3.jpg", 3, 0, 45, true},
		{"fruits.jpg", 0, 0, 0, true},
		{"building.jpg", 0, 0, 0, true},
		{"handSrc.jpg", 0, 1, 0, true},
	} {
		t.Run(c.photo, func(t *testing.T) {
			o, err := a.Observe(readPhoto(t, c.photo), 0, restRoomStream(t))
			if err != nil {
				t.Fatal(err)
			}
			if len(o.Faces) != c.faces {
				t.Errorf("%d faces, want %d", len(o.Faces), c.faces)
			}
			for i, f := range o.Faces {
				if i > 0 && f.Box.Area() > o.Faces[i-1].Box.Area() {
					t.Error("faces not sorted largest first")
				}
				if math.Abs(f.YawDeg) > c.maxAbsYaw || f.DistanceCM <= 0 || f.Score < 0.6 {
					t.Errorf("face %d: %+v", i, f)
				}
			}
			if len(o.Hands) < c.minHands || !o.HandsFresh || !o.HandsChecked {
				t.Errorf("hands %+v fresh %v checked %v, want ≥ %d", o.Hands, o.HandsFresh, o.HandsChecked, c.minHands)
			}
			// Each hand carries its 21 landmarks (for phone_call), which
			// its box bounds.
			for i, h := range o.Hands {
				if len(h.Landmarks) != 21 {
					t.Errorf("hand %d: %d landmarks, want 21", i, len(h.Landmarks))
				}
				for _, p := range h.Landmarks {
					if p.X < h.Box.X-1 || p.X > h.Box.X+h.Box.W+1 || p.Y < h.Box.Y-1 || p.Y > h.Box.Y+h.Box.H+1 {
						t.Errorf("hand %d: landmark %v outside its box %v", i, p, h.Box)
						break
					}
				}
			}
			if o.Brightness < 40 || o.Contrast < 10 {
				t.Errorf("a real photo reads as dark or flat: %.0f / %.0f", o.Brightness, o.Contrast)
			}
		})
	}
}

func TestHandsRunOnSchedule(t *testing.T) {
	a := newTestAnalyzer(t)
	s := restRoomStream(t)
	s.Policy.HandsEvery = 3
	img := readPhoto(t, "handSrc.jpg")
	var fresh []bool
	for i := 0; i < 6; i++ {
		o, err := a.Observe(img, int64(i*200), s)
		if err != nil {
			t.Fatal(err)
		}
		fresh = append(fresh, o.HandsFresh)
		if len(o.Hands) == 0 {
			t.Fatalf("frame %d: carried hands lost", i)
		}
		if len(o.Hands[0].Landmarks) != 21 {
			t.Fatalf("frame %d: %d landmarks carried, want 21", i, len(o.Hands[0].Landmarks))
		}
	}
	want := []bool{true, false, false, true, false, false}
	for i := range want {
		if fresh[i] != want[i] {
			t.Fatalf("hands ran on %v, want %v", fresh, want)
		}
	}
}

func TestObserveDarkAndFlat(t *testing.T) {
	a := newTestAnalyzer(t)
	p, _ := rules.DefaultPolicy(rules.PolicyRestRoom)
	for name, v := range map[string]float64{"black": 3, "grey": 128} {
		img := gocv.NewMatWithSizeFromScalar(gocv.NewScalar(v, v, v, 0), 480, 640, gocv.MatTypeCV8UC3)
		o, err := a.Observe(img, 0, NewStream(p, Camera{}))
		img.Close()
		if err != nil {
			t.Fatal(err)
		}
		if len(o.Faces) != 0 || o.Contrast > 1 || math.Abs(o.Brightness-v) > 1 {
			t.Errorf("%s frame: %d faces, brightness %.1f, contrast %.1f", name, len(o.Faces), o.Brightness, o.Contrast)
		}
	}
}

func TestObserveBadFrames(t *testing.T) {
	a := newTestAnalyzer(t)
	s := restRoomStream(t)
	bad := map[string]gocv.Mat{
		"empty": gocv.NewMat(),
		"1x1":   gocv.NewMatWithSize(1, 1, gocv.MatTypeCV8UC3),
		"gray":  gocv.NewMatWithSize(480, 640, gocv.MatTypeCV8U),
		"bgra":  gocv.NewMatWithSize(480, 640, gocv.MatTypeCV8UC4),
		"float": gocv.NewMatWithSize(480, 640, gocv.MatTypeCV32FC3),
	}
	for name, m := range bad {
		_, err := a.Observe(m, 0, s)
		m.Close()
		if !errors.Is(err, ErrBadFrame) {
			t.Errorf("%s: error %v, want ErrBadFrame", name, err)
		}
	}
	// Odd but valid shapes give a result.
	for _, size := range [][2]int{{2, 2}, {3000, 40}, {40, 5000}, {2160, 3840}} {
		m := gocv.NewMatWithSizeFromScalar(gocv.NewScalar(90, 120, 150, 0), size[0], size[1], gocv.MatTypeCV8UC3)
		o, err := a.Observe(m, 0, s)
		m.Close()
		if err != nil {
			t.Errorf("%v: %v", size, err)
		}
		if max(o.Width, o.Height) > MaxFrameSide {
			t.Errorf("%v analyzed at %d×%d", size, o.Width, o.Height)
		}
	}
}

func TestCalibrationInStream(t *testing.T) {
	a := newTestAnalyzer(t)
	p, _ := rules.DefaultPolicy(rules.PolicyInterview)
	s := NewStream(p, Camera{})
	s.CalibrateUntilMS = 1000
	img := readPhoto(t, "messi5.jpg")
	var last rules.Observation
	for ts := int64(0); ts <= 1200; ts += 200 {
		o, err := a.Observe(img, ts, s)
		if err != nil {
			t.Fatal(err)
		}
		if ts < 1000 && o.Faces[0].DistanceCM != 0 {
			t.Fatalf("distance %.1f reported while calibrating", o.Faces[0].DistanceCM)
		}
		last = o
	}
	if !s.Calibrated() {
		t.Fatal("not calibrated")
	}
	// The same picture after calibration is, by definition, at 50 cm.
	if d := last.Faces[0].DistanceCM; math.Abs(d-50) > 1 {
		t.Errorf("calibrated distance %.1f, want 50", d)
	}
}

func TestEvidenceJPEG(t *testing.T) {
	a := newTestAnalyzer(t)
	img := readPhoto(t, "sample1.jpg")
	o, err := a.Observe(img, 1234, restRoomStream(t))
	if err != nil {
		t.Fatal(err)
	}
	v := rules.Violation{ID: 7, Type: rules.ExtraPerson, Reason: "3 faces in view", StartMS: 1234}
	jpeg, err := Evidence(img, &o, v)
	if err != nil {
		t.Fatal(err)
	}
	back, err := gocv.IMDecode(jpeg, gocv.IMReadColor)
	if err != nil {
		t.Fatal(err)
	}
	defer back.Close()
	if back.Cols() != img.Cols() || back.Rows() != img.Rows() {
		t.Fatalf("evidence is %d×%d, frame %d×%d", back.Cols(), back.Rows(), img.Cols(), img.Rows())
	}
	// The drawing changed the picture where the faces are.
	diff := gocv.NewMat()
	defer diff.Close()
	gocv.AbsDiff(img, back, &diff)
	gray := gocv.NewMat()
	defer gray.Close()
	gocv.CvtColor(diff, &gray, gocv.ColorBGRToGray)
	box := o.Faces[1].Box
	region := gray.Region(image.Rect(int(box.X)-3, int(box.Y)-3, int(box.X+box.W)+3, int(box.Y)+3))
	defer region.Close()
	if _, maxVal, _, _ := gocv.MinMaxLoc(region); maxVal < 100 {
		t.Error("no box drawn around the second face")
	}
}

func writePNG(t *testing.T, path string, img image.Image) {
	t.Helper()
	var b bytes.Buffer
	if err := png.Encode(&b, img); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

// hugePNG is a valid PNG header promising an enormous picture.
func hugePNG(w, h uint32) []byte {
	var b bytes.Buffer
	b.WriteString("\x89PNG\r\n\x1a\n")
	ihdr := make([]byte, 13)
	binary.BigEndian.PutUint32(ihdr[0:], w)
	binary.BigEndian.PutUint32(ihdr[4:], h)
	ihdr[8], ihdr[9] = 8, 2
	chunk := append([]byte("IHDR"), ihdr...)
	binary.Write(&b, binary.BigEndian, uint32(13))
	b.Write(chunk)
	binary.Write(&b, binary.BigEndian, crc32.ChecksumIEEE(chunk))
	return b.Bytes()
}

func analyzeCollect(t *testing.T, path string, opts AnalyzeOptions) ([]FrameRecord, []ViolationRecord, error) {
	t.Helper()
	if opts.ModelsDir == "" {
		opts.ModelsDir = testassets.ModelsDir(t)
	}
	var frames []FrameRecord
	var violations []ViolationRecord
	err := AnalyzeFile(context.Background(), path, opts, func(rec any) error {
		switch r := rec.(type) {
		case FrameRecord:
			frames = append(frames, r)
		case ViolationRecord:
			violations = append(violations, r)
		}
		return nil
	})
	return frames, violations, err
}

func TestAnalyzeBadFiles(t *testing.T) {
	dir := t.TempDir()
	messi, err := os.ReadFile(testassets.Photo(t, "messi5.jpg"))
	if err != nil {
		t.Fatal(err)
	}
	files := map[string][]byte{
		"garbage.jpg": bytes.Repeat([]byte("not an image "), 100),
		"empty.png":   {},
		"huge.png":    hugePNG(40000, 40000),
		"garbage.mp4": bytes.Repeat([]byte{0, 0, 0, 0x18, 'f', 't', 'y', 'p'}, 64),
		"empty.webm":  {},
		"noext":       bytes.Repeat([]byte{0xde, 0xad}, 500),
		"half.jpg":    messi[:len(messi)/2], // decodes, grey below the cut
	}
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for name := range files {
		_, _, err := analyzeCollect(t, filepath.Join(dir, name), AnalyzeOptions{})
		if name == "half.jpg" {
			if err != nil {
				t.Errorf("%s: a truncated JPEG still has a picture: %v", name, err)
			}
			continue
		}
		if !errors.Is(err, ErrUnreadable) {
			t.Errorf("%s: error %v, want ErrUnreadable", name, err)
		}
	}
	if _, _, err := analyzeCollect(t, filepath.Join(dir, "missing.jpg"), AnalyzeOptions{}); err == nil || !strings.Contains(err.Error(), "no such file") {
		t.Errorf("missing file: %v", err)
	}
}

// An image with alpha or one channel gives the same faces as the color
// original.
func TestAnalyzeImageChannels(t *testing.T) {
	dir := t.TempDir()
	f, err := os.Open(testassets.Photo(t, "sample3.jpg"))
	if err != nil {
		t.Fatal(err)
	}
	src, _, err := image.Decode(f)
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	b := src.Bounds()
	rgba := image.NewNRGBA(b)
	gray := image.NewGray(b)
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			c := color.NRGBAModel.Convert(src.At(x, y)).(color.NRGBA)
			c.A = 200
			rgba.SetNRGBA(x, y, c)
			gray.Set(x, y, src.At(x, y))
		}
	}
	writePNG(t, filepath.Join(dir, "alpha.png"), rgba)
	writePNG(t, filepath.Join(dir, "gray.png"), gray)
	want, _, err := analyzeCollect(t, testassets.Photo(t, "sample3.jpg"), AnalyzeOptions{Frames: true})
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"alpha.png", "gray.png"} {
		got, violations, err := analyzeCollect(t, filepath.Join(dir, name), AnalyzeOptions{Frames: true})
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if len(got) != 1 || len(got[0].Faces) != len(want[0].Faces) {
			t.Errorf("%s: %+v, want %d faces", name, got, len(want[0].Faces))
		}
		if !hasType(violations, rules.ExtraPerson) {
			t.Errorf("%s: no extra_person for a group photo: %+v", name, violations)
		}
	}
}

func hasType(vs []ViolationRecord, typ rules.Type) bool {
	for _, v := range vs {
		if v.Type == string(typ) {
			return true
		}
	}
	return false
}

// writeClip makes a 10 fps MJPG video: seconds of the first photo, then
// seconds of the second.
func writeClip(t *testing.T, path string, parts ...any) {
	t.Helper()
	var w *gocv.VideoWriter
	for i := 0; i < len(parts); i += 2 {
		img := readPhoto(t, parts[i].(string))
		frame := gocv.NewMat()
		gocv.Resize(img, &frame, image.Pt(640, 480), 0, 0, gocv.InterpolationArea)
		if w == nil {
			var err error
			if w, err = gocv.VideoWriterFile(path, "MJPG", 10, 640, 480, true); err != nil {
				t.Fatal(err)
			}
		}
		for n := 0; n < 10*parts[i+1].(int); n++ {
			if err := w.Write(frame); err != nil {
				t.Fatal(err)
			}
		}
		frame.Close()
	}
	w.Close()
}

func TestAnalyzeVideo(t *testing.T) {
	dir := t.TempDir()
	clip := filepath.Join(dir, "leave.avi")
	writeClip(t, clip, "messi5.jpg", 2, "building.jpg", 4, "messi5.jpg", 2)
	p, _ := rules.DefaultPolicy(rules.PolicyWaiting)
	p.AnalysisFPS = 5
	evidence := filepath.Join(dir, "evidence")
	annotated := filepath.Join(dir, "annotated.avi")
	var progressCalls, lastDone int
	frames, violations, err := analyzeCollect(t, clip, AnalyzeOptions{
		Policy: p, Frames: true, EvidenceDir: evidence, AnnotatePath: annotated,
		Progress: func(done, total int) { progressCalls++; lastDone = done },
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(frames) < 38 || len(frames) > 42 {
		t.Errorf("%d frame records for 8 s at 5 fps", len(frames))
	}
	if lastDone != 80 || progressCalls != 80 {
		t.Errorf("progress reported %d calls, last %d; want 80", progressCalls, lastDone)
	}
	if len(violations) != 1 || violations[0].Type != string(rules.FaceOffScreen) {
		t.Fatalf("violations %+v, want one face_off_screen", violations)
	}
	v := violations[0]
	if v.StartMS < 1900 || v.StartMS > 2300 || v.EndMS < 5900 || v.EndMS > 6300 {
		t.Errorf("violation %d–%d ms, want about 2000–6000", v.StartMS, v.EndMS)
	}
	shots, _ := filepath.Glob(filepath.Join(evidence, "*face_off_screen*.jpg"))
	if len(shots) != 1 {
		t.Errorf("evidence files %v", shots)
	}
	back, err := gocv.VideoCaptureFile(annotated)
	if err != nil {
		t.Fatal(err)
	}
	defer back.Close()
	if n := back.Get(gocv.VideoCaptureFrameCount); n != 80 {
		t.Errorf("annotated video has %v frames, want 80", n)
	}
}
