package simulate

import (
	"context"
	"encoding/json"
	"errors"
	"image"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"gocv.io/x/gocv"

	"invigil/internal/testassets"
	"invigil/vpx"
)

func TestParseScenario(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "s.json")
	if err := os.WriteFile(path, []byte(`[{"file": "face.jpg", "seconds": 5}, {"file": "/abs/empty.png", "seconds": 2.5}]`), 0o600); err != nil {
		t.Fatal(err)
	}
	clips, err := ReadScenario(path)
	if err != nil {
		t.Fatal(err)
	}
	want := []Clip{{File: filepath.Join(dir, "face.jpg"), Seconds: 5}, {File: "/abs/empty.png", Seconds: 2.5}}
	if len(clips) != 2 || clips[0] != want[0] || clips[1] != want[1] {
		t.Errorf("clips %+v, want %+v", clips, want)
	}
	for _, bad := range []string{``, `{}`, `[]`, `[{"file": ""}]`, `[{"file": "a.jpg", "seconds": -1}]`,
		`[{"file": "a.jpg", "secs": 1}]`, `[{"file": "a.jpg"}] []`, `[{"file": "a.jpg", "seconds": 1e9}]`} {
		if _, err := ParseScenario([]byte(bad)); err == nil {
			t.Errorf("scenario %q accepted", bad)
		}
	}
	if _, err := ReadScenario(filepath.Join(dir, "absent.json")); err == nil {
		t.Error("a missing scenario file was read")
	}
}

// writeVideo writes an MJPEG AVI of n frames per picture at fps.
func writeVideo(t *testing.T, path string, fps float64, n int, pics ...gocv.Mat) {
	t.Helper()
	w, err := gocv.VideoWriterFile(path, "MJPG", fps, pics[0].Cols(), pics[0].Rows(), true)
	if err != nil || !w.IsOpened() {
		t.Fatalf("video writer: %v", err)
	}
	defer w.Close()
	for _, p := range pics {
		for i := 0; i < n; i++ {
			if err := w.Write(p); err != nil {
				t.Fatal(err)
			}
		}
	}
}

func meanLevel(m gocv.Mat) float64 {
	return m.Mean().Val1/3 + m.Mean().Val2/3 + m.Mean().Val3/3
}

func solid(w, h int, level float64) gocv.Mat {
	m := gocv.NewMatWithSize(h, w, gocv.MatTypeCV8UC3)
	m.SetTo(gocv.NewScalar(level, level, level, 0))
	return m
}

// A scenario of an image and a video plays each for its time at the
// camera's rate and size, the video at its own speed, and loops.
func TestCameraPlaysTheScenario(t *testing.T) {
	dir := t.TempDir()
	white, black := solid(320, 240, 250), solid(320, 240, 5)
	defer white.Close()
	defer black.Close()
	video := filepath.Join(dir, "clip.avi")
	writeVideo(t, video, 10, 10, white, black) // 1 s white, 1 s black
	photo := testassets.Photo(t, "messi5.jpg") // 548×342: wider than 4:3

	cam, err := NewCamera([]Clip{{File: photo, Seconds: 1}, {File: video}, {File: video, Seconds: 3}},
		CameraOptions{Width: 160, Height: 120, FPS: 20})
	if err != nil {
		t.Fatal(err)
	}
	defer cam.Close()
	// 1 s of the photo, the video's own 2 s, then 3 s of the video looping.
	if got := cam.LoopFrames(); got != 20+40+60 {
		t.Fatalf("loop of %d frames, want 120", got)
	}
	frame := gocv.NewMat()
	defer frame.Close()
	var clips []int
	var levels []float64
	for i := 0; i < 130; i++ {
		clip, err := cam.Next(&frame)
		if err != nil {
			t.Fatalf("frame %d: %v", i, err)
		}
		if frame.Cols() != 160 || frame.Rows() != 120 || frame.Type() != gocv.MatTypeCV8UC3 {
			t.Fatalf("frame %d is %dx%d %v", i, frame.Cols(), frame.Rows(), frame.Type())
		}
		clips = append(clips, clip)
		levels = append(levels, meanLevel(frame))
	}
	for i, want := range map[int]int{0: 0, 19: 0, 20: 1, 59: 1, 60: 2, 119: 2, 120: 0, 129: 0} {
		if clips[i] != want {
			t.Errorf("frame %d shows clip %d, want %d", i, clips[i], want)
		}
	}
	// The video: white for its first second, black for its second, and
	// looping inside the 3 s clip (white again from 2 s in).
	for i, bright := range map[int]bool{22: true, 38: true, 42: false, 58: false, 62: true, 85: false, 102: true, 118: true} {
		if (levels[i] > 128) != bright {
			t.Errorf("frame %d has level %.0f, want bright %v", i, levels[i], bright)
		}
	}
	// The photo is scaled to cover the frame and center-cropped, not squashed.
	src := gocv.IMRead(photo, gocv.IMReadColor)
	defer src.Close()
	want := gocv.NewMat()
	defer want.Close()
	scaled := gocv.NewMat()
	defer scaled.Close()
	gocv.Resize(src, &scaled, image.Pt(int(math.Ceil(548*120.0/342)), 120), 0, 0, gocv.InterpolationArea)
	x0 := (scaled.Cols() - 160) / 2
	roi := scaled.Region(image.Rect(x0, 0, x0+160, 120))
	roi.CopyTo(&want)
	roi.Close()
	if _, err := cam.Next(&frame); err != nil { // frame 130: the photo again
		t.Fatal(err)
	}
	if p := psnr(frame, want); p < 40 {
		t.Errorf("the photo differs from a center crop: %.1f dB", p)
	}
}

func psnr(a, b gocv.Mat) float64 {
	x, y := a.ToBytes(), b.ToBytes()
	if len(x) != len(y) {
		return 0
	}
	var sum float64
	for i := range x {
		d := float64(x[i]) - float64(y[i])
		sum += d * d
	}
	if sum == 0 {
		return 99
	}
	return 10 * math.Log10(255*255/(sum/float64(len(x))))
}

func TestCameraRefusesBadInput(t *testing.T) {
	dir := t.TempDir()
	notVideo := filepath.Join(dir, "notes.mp4")
	if err := os.WriteFile(notVideo, []byte("not a video"), 0o600); err != nil {
		t.Fatal(err)
	}
	brokenImage := filepath.Join(dir, "broken.jpg")
	if err := os.WriteFile(brokenImage, []byte{0xff, 0xd8, 0xff, 0x00}, 0o600); err != nil {
		t.Fatal(err)
	}
	photo := testassets.Photo(t, "building.jpg")
	for _, c := range []struct {
		clips []Clip
		opts  CameraOptions
	}{
		{[]Clip{{File: filepath.Join(dir, "absent.png")}}, CameraOptions{}},
		{[]Clip{{File: notVideo}}, CameraOptions{}},
		{[]Clip{{File: brokenImage}}, CameraOptions{}},
		{[]Clip{{File: photo}, {File: photo, Seconds: 1}}, CameraOptions{}}, // an image without seconds among several
		{[]Clip{{File: photo}}, CameraOptions{Width: 641, Height: 480}},
		{[]Clip{{File: photo}}, CameraOptions{FPS: 500}},
		{[]Clip{{File: photo}}, CameraOptions{Noise: -1}},
		{nil, CameraOptions{}},
	} {
		if cam, err := NewCamera(c.clips, c.opts); err == nil {
			cam.Close()
			t.Errorf("camera of %+v %+v accepted", c.clips, c.opts)
		}
	}
	// A lone image shows forever.
	cam, err := NewCamera([]Clip{{File: photo}}, CameraOptions{Noise: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer cam.Close()
	if cam.LoopFrames() != 0 {
		t.Errorf("a lone image loops after %d frames", cam.LoopFrames())
	}
	a, b := gocv.NewMat(), gocv.NewMat()
	defer a.Close()
	defer b.Close()
	cam.Next(&a)
	cam.Next(&b)
	if p := psnr(a, b); p > 50 || p < 35 {
		t.Errorf("two noisy frames of a still picture differ by %.1f dB: want sensor noise, not a new picture", p)
	}
}

// A pre-encoded stream starts with a keyframe, has one every KeyframeEvery
// frames, keeps the scenario's clips, and decodes.
func TestEncodeStream(t *testing.T) {
	dir := t.TempDir()
	black := solid(640, 480, 5)
	defer black.Close()
	blackPath := filepath.Join(dir, "black.png")
	gocv.IMWrite(blackPath, black)
	cam, err := NewCamera([]Clip{{File: testassets.Photo(t, "building.jpg"), Seconds: 2}, {File: blackPath, Seconds: 1}},
		CameraOptions{FPS: 15, Noise: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer cam.Close()
	s, err := EncodeStream(t.Context(), cam, 0, EncodeOptions{BitrateKbps: 600, KeyframeEvery: 10})
	if err != nil {
		t.Fatal(err)
	}
	if len(s.Frames) != 45 || s.Width != 640 || s.Height != 480 || s.FPS != 15 {
		t.Fatalf("stream of %d frames %dx%d at %v fps", len(s.Frames), s.Width, s.Height, s.FPS)
	}
	dec, err := vpx.NewDecoder()
	if err != nil {
		t.Fatal(err)
	}
	defer dec.Close()
	for i, f := range s.Frames {
		if want := i%10 == 0; f.Keyframe != want {
			t.Errorf("frame %d keyframe %v", i, f.Keyframe)
		}
		if want := i / 30; f.Clip != want {
			t.Errorf("frame %d shows clip %d, want %d", i, f.Clip, want)
		}
		var data []byte
		for k, p := range f.Payloads {
			if len(p) > rtpMTU {
				t.Errorf("frame %d payload %d is %d bytes", i, k, len(p))
			}
			data = append(data, depacketize(t, p)...)
		}
		if img, err := dec.Decode(data); err != nil || img == nil || img.Width != 640 {
			t.Fatalf("frame %d does not decode: %v", i, err)
		}
	}
	// L1T3's rate control (a budget per layer) starts low: these 3 s
	// average ~300 kbit/s, 6 s ~500.
	if kbps := s.Bitrate() / 1000; kbps < 250 || kbps > 900 {
		t.Errorf("stream at %.0f kbps, asked for 600", kbps)
	}
	if s.nextKeyframe(11) != 20 || s.nextKeyframe(41) != 0 || s.nextKeyframe(20) != 20 {
		t.Error("nextKeyframe does not find the next keyframe, looping")
	}
}

// depacketize strips a VP8 payload descriptor (RFC 7741 §4.2).
func depacketize(t *testing.T, p []byte) []byte {
	t.Helper()
	i := 1
	if p[0]&0x80 != 0 { // X
		x := p[1]
		i = 2
		if x&0x80 != 0 { // I
			if p[i]&0x80 != 0 { // M: 15-bit picture ID
				i++
			}
			i++
		}
		if x&0x40 != 0 { // L
			i++
		}
		if x&0x30 != 0 { // T or K
			i++
		}
	}
	return p[i:]
}

func TestSineAudio(t *testing.T) {
	a, err := SineAudio(context.Background(), 440, 2)
	if err != nil {
		t.Fatal(err)
	}
	if n := len(a.Packets); n < 99 || n > 102 {
		t.Errorf("%d Opus packets for 2 s, want 100 of 20 ms", n)
	}
	for i, p := range a.Packets {
		// TOC byte: config 0–31; 20 ms frames are configs 1, 5, 9, 13, 15, 19, 23, 27, 31 (RFC 6716 §3.1).
		if cfg := p[0] >> 3; len(p) < 2 || (cfg%4 != 1 && cfg%4 != 3) {
			t.Errorf("packet %d (%d bytes, config %d) is not a 20 ms Opus packet", i, len(p), cfg)
			break
		}
	}
	if _, err := readOpusPackets(strings.NewReader("OggS garbage")); err == nil {
		t.Error("garbage read as Ogg Opus")
	}
}

func TestParseServer(t *testing.T) {
	for in, want := range map[string]Endpoints{
		"http://127.0.0.1:8080":          {API: "http://127.0.0.1:8080", Signaling: "ws://127.0.0.1:8080/sfu/ws"},
		"https://exam.example.org/":      {API: "https://exam.example.org", Signaling: "wss://exam.example.org/sfu/ws"},
		"https://example.org/invigil":    {API: "https://example.org/invigil", Signaling: "wss://example.org/invigil/sfu/ws"},
		"ws://127.0.0.1:8080/sfu/ws":     {API: "http://127.0.0.1:8080", Signaling: "ws://127.0.0.1:8080/sfu/ws"},
		"wss://example.org/x/sfu/ws?a=b": {API: "https://example.org/x", Signaling: "wss://example.org/x/sfu/ws?a=b"},
	} {
		got, err := ParseServer(in)
		if err != nil || got != want {
			t.Errorf("ParseServer(%q) = %+v, %v; want %+v", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "127.0.0.1:8080", "ftp://x", "http://"} {
		if _, err := ParseServer(bad); err == nil {
			t.Errorf("ParseServer(%q) accepted", bad)
		}
	}
}

// TestLoginWithCode: a login, and each error answer of the control plane
// in both shapes it has used (docs/API.md's {"error":{"code","message"}}
// and the older {"error":"…"}), told apart from a server that has no
// candidate login at all.
func TestLoginWithCode(t *testing.T) {
	answer := func(w http.ResponseWriter, status int, body string) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		_, _ = w.Write([]byte(body))
	}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /api/v1/candidate/login", func(w http.ResponseWriter, r *http.Request) {
		var req struct{ Code string }
		_ = json.NewDecoder(r.Body).Decode(&req)
		switch req.Code {
		case "123456":
			_ = json.NewEncoder(w).Encode(Login{Token: "tok", CandidateID: 1, Stage: "rest_room"})
		case "000000":
			answer(w, http.StatusNotFound, `{"error":{"code":"unknown_code","message":"Wrong invitation code. Please check it and try again.","message_zh":"邀请码错误，请核对后重新输入。","message_en":"Wrong invitation code. Please check it and try again."}}`)
		case "000001":
			answer(w, http.StatusNotFound, `{"error":"unknown invitation code"}`)
		case "111111":
			answer(w, http.StatusTooManyRequests, `{"error":{"code":"too_many_attempts","message":"Too many wrong codes. Please wait and try again."}}`)
		case "222222":
			answer(w, http.StatusForbidden, `{"error":"the exam has not started"}`)
		default:
			answer(w, http.StatusInternalServerError, `upstream broke`)
		}
	})
	withAPI := httptest.NewServer(mux)
	defer withAPI.Close()
	// The control plane without the candidate route: its JSON 404.
	noRoute := http.NewServeMux()
	noRoute.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		answer(w, http.StatusNotFound, `{"error":{"code":"no_such_route","message":"no API route POST /api/v1/candidate/login"}}`)
	})
	withoutLogin := httptest.NewServer(noRoute)
	defer withoutLogin.Close()
	plain := httptest.NewServer(http.NotFoundHandler())
	defer plain.Close()

	l, err := LoginWithCode(context.Background(), withAPI.URL, " 123456 ")
	if err != nil || l.Token != "tok" || l.CandidateID != 1 || l.Stage != "rest_room" {
		t.Errorf("login %+v, %v", l, err)
	}
	for _, c := range []struct {
		server, code string
		wrongCode    bool
		noLogin      bool
		says         string
	}{
		{withAPI.URL, "000000", true, false, "Wrong invitation code. Please check it and try again. (404 unknown_code)"},
		{withAPI.URL, "000001", true, false, "unknown invitation code"},
		{withAPI.URL, "111111", false, false, "Too many wrong codes. Please wait and try again. (429 too_many_attempts)"},
		{withAPI.URL, "222222", false, false, "the exam has not started (403)"},
		{withAPI.URL, "333333", false, false, "500 Internal Server Error: upstream broke"},
		{withoutLogin.URL, "123456", false, true, ""},
		{plain.URL, "123456", false, true, ""},
	} {
		_, err := LoginWithCode(context.Background(), c.server, c.code)
		t.Logf("code %s: %v", c.code, err)
		if err == nil {
			t.Errorf("code %s accepted", c.code)
			continue
		}
		if errors.Is(err, ErrWrongCode) != c.wrongCode || errors.Is(err, ErrNoCandidateLogin) != c.noLogin {
			t.Errorf("code %s: %v: wrong code %v (want %v), no candidate login %v (want %v)", c.code, err,
				errors.Is(err, ErrWrongCode), c.wrongCode, errors.Is(err, ErrNoCandidateLogin), c.noLogin)
		}
		if !strings.Contains(err.Error(), c.says) {
			t.Errorf("code %s: %q does not say %q", c.code, err, c.says)
		}
	}
	if _, err := LoginWithCode(context.Background(), withAPI.URL, ""); err == nil {
		t.Error("empty code accepted")
	}
}
