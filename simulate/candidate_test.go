package simulate

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pion/rtcp"
	"github.com/pion/rtp/codecs"
	"github.com/pion/webrtc/v4"
	"github.com/pion/webrtc/v4/pkg/media/samplebuilder"
	"gocv.io/x/gocv"

	"invigil/internal/testassets"
	"invigil/sfu"
	"invigil/sfu/client"
	"invigil/vpx"
)

var testKey = []byte("simulate-test-key-0123456789abcdef")

func quietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// testSFU is a real SFU on 127.0.0.1 (no taps: the candidates' side is
// what is tested here; package mediatest tests the whole media plane).
func testSFU(t *testing.T) (*sfu.Server, string) {
	t.Helper()
	srv, err := sfu.New(sfu.Config{Tokens: sfu.HMACTokens{Key: testKey}, Logger: quietLogger(), ICE: sfu.ICEConfig{LoopbackOnly: true}})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hs := &http.Server{Handler: srv}
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = hs.Serve(ln)
	}()
	t.Cleanup(func() {
		_ = hs.Close()
		<-done
		_ = srv.Close()
	})
	return srv, "ws://" + ln.Addr().String()
}

// watcher is a hidden proctor decoding what the SFU forwards.
type watcher struct {
	cl      *client.Client
	mu      sync.Mutex
	tracks  map[string]int
	decoded map[string]int
	audio   map[string]int
	last    map[string][]byte
	ssrc    map[string]webrtc.SSRC
	wg      sync.WaitGroup
}

func watch(t *testing.T, url string) *watcher {
	t.Helper()
	w := &watcher{tracks: map[string]int{}, decoded: map[string]int{}, audio: map[string]int{}, last: map[string][]byte{}, ssrc: map[string]webrtc.SSRC{}}
	api, err := client.NewAPI(client.APIOptions{LoopbackOnly: true, Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	tok, err := sfu.HMACTokens{Key: testKey}.Issue(sfu.Grants{Identity: "proctor", Role: "proctor", Room: "sim", CanSubscribe: true,
		Hidden: true, Subscribe: []string{"*"}, ExpiresAt: time.Now().Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	w.cl, err = client.Dial(ctx, client.Config{URL: url, Token: tok, API: api, Logger: quietLogger(),
		OnTrack: func(id string, tr *webrtc.TrackRemote, _ *webrtc.RTPReceiver) {
			w.wg.Add(1)
			defer w.wg.Done()
			w.receive(id, tr)
		}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		w.cl.Leave()
		w.wg.Wait()
	})
	return w
}

func (w *watcher) receive(id string, tr *webrtc.TrackRemote) {
	w.mu.Lock()
	if tr.Kind() == webrtc.RTPCodecTypeVideo {
		w.tracks[id]++
		w.ssrc[id] = tr.SSRC()
	}
	w.mu.Unlock()
	if tr.Kind() == webrtc.RTPCodecTypeAudio {
		for {
			if _, _, err := tr.ReadRTP(); err != nil {
				return
			}
			w.mu.Lock()
			w.audio[id]++
			w.mu.Unlock()
		}
	}
	dec, err := vpx.NewDecoder()
	if err != nil {
		return
	}
	defer dec.Close()
	sb := samplebuilder.New(256, &codecs.VP8Packet{}, 90000)
	bgr := gocv.NewMat()
	defer bgr.Close()
	for {
		p, _, err := tr.ReadRTP()
		if err != nil {
			return
		}
		sb.Push(p)
		for s := sb.Pop(); s != nil; s = sb.Pop() {
			img, err := dec.Decode(s.Data)
			if err != nil || img == nil || img.ToBGR(&bgr) != nil {
				continue
			}
			w.mu.Lock()
			w.decoded[id]++
			w.last[id] = append(w.last[id][:0], bgr.ToBytes()...)
			w.mu.Unlock()
		}
	}
}

func (w *watcher) get(f func(w *watcher) bool) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return f(w)
}

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(60 * time.Second); !cond(); {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func bytesPSNR(x, y []byte) float64 {
	a, _ := gocv.NewMatFromBytes(1, len(x), gocv.MatTypeCV8U, x)
	b, _ := gocv.NewMatFromBytes(1, len(y), gocv.MatTypeCV8U, y)
	defer a.Close()
	defer b.Close()
	return psnr(a, b)
}

// A live candidate publishes its camera (VP8 from libvpx) and microphone
// (Opus): the proctor decodes the picture it shows, a keyframe request is
// answered with a keyframe, and after its connection drops it resumes the
// same session and the proctor receives it again. A replaying candidate
// is decoded as well. Leaving ends both sessions.
func TestCandidatesPublishThroughTheSFU(t *testing.T) {
	checkGoroutines(t)
	srv, url := testSFU(t)
	w := watch(t, url)
	photo := testassets.Photo(t, "building.jpg")
	tokens := HMACTokens(testKey, "sim", "sim-", time.Hour)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	audio, err := SineAudio(ctx, 440, 1)
	if err != nil {
		t.Fatal(err)
	}
	cam, err := NewCamera([]Clip{{File: photo}}, CameraOptions{})
	if err != nil {
		t.Fatal(err)
	}
	want := gocv.NewMat()
	defer want.Close()
	if _, err := cam.Next(&want); err != nil { // the picture every frame shows
		t.Fatal(err)
	}
	tok, err := tokens(0)
	if err != nil {
		t.Fatal(err)
	}
	live, err := Join(ctx, Config{URL: url, Token: tok, Camera: cam, Audio: audio, LoopbackOnly: true, Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	if live.Identity() != "sim-1" {
		t.Errorf("identity %q", live.Identity())
	}

	stream := func() *Stream {
		cam, err := NewCamera([]Clip{{File: photo}}, CameraOptions{Noise: 2})
		if err != nil {
			t.Fatal(err)
		}
		defer cam.Close()
		s, err := EncodeStream(ctx, cam, 60, EncodeOptions{KeyframeEvery: 15})
		if err != nil {
			t.Fatal(err)
		}
		return s
	}()
	tok2, _ := tokens(1)
	replay, err := Join(ctx, Config{URL: url, Token: tok2, Stream: stream, StartFrame: 20, LoopbackOnly: true, Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}

	runCtx, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	errs := make(chan error, 2)
	for _, c := range []*Candidate{live, replay} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- c.Run(runCtx)
		}()
	}
	for _, id := range []string{"sim-1", "sim-2"} {
		if err := w.cl.Subscribe(id); err != nil {
			t.Fatal(err)
		}
	}
	waitUntil(t, "decoded frames of both", func() bool {
		return w.get(func(w *watcher) bool {
			return w.decoded["sim-1"] >= 15 && w.decoded["sim-2"] >= 15 && w.audio["sim-1"] >= 25
		})
	})
	w.get(func(w *watcher) bool {
		for _, id := range []string{"sim-1", "sim-2"} {
			if p := bytesPSNR(w.last[id], want.ToBytes()); p < 28 {
				t.Errorf("%s: the proctor's picture is %.1f dB from the camera's", id, p)
			}
		}
		return true
	})

	// A keyframe request reaches the live candidate, which answers it.
	keyframes := live.Stats().Keyframes
	var ssrc webrtc.SSRC
	w.get(func(w *watcher) bool { ssrc = w.ssrc["sim-1"]; return true })
	if err := w.cl.Subscriber().WriteRTCP([]rtcp.Packet{&rtcp.PictureLossIndication{MediaSSRC: uint32(ssrc)}}); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "a keyframe answering the PLI", func() bool {
		s := live.Stats()
		return s.KeyframeRequests >= 1 && s.Keyframes > keyframes
	})

	// The connection drops; the candidate resumes its session.
	session := live.SessionID()
	live.Drop()
	waitUntil(t, "the resumed track at the proctor", func() bool {
		return live.Stats().Reconnects == 1 && w.get(func(w *watcher) bool { return w.tracks["sim-1"] == 2 })
	})
	if live.SessionID() != session {
		t.Errorf("resumed as %s, want session %s", live.SessionID(), session)
	}
	var decoded int
	w.get(func(w *watcher) bool { decoded = w.decoded["sim-1"]; return true })
	waitUntil(t, "frames after the resume", func() bool {
		return w.get(func(w *watcher) bool { return w.decoded["sim-1"] >= decoded+15 })
	})

	stop()
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Errorf("run: %v", err)
		}
	}
	live.Leave()
	replay.Leave()
	if err := live.Run(ctx); !errors.Is(err, ErrClosed) {
		t.Errorf("Run after Leave: %v", err)
	}
	waitUntil(t, "the candidates gone", func() bool {
		for _, p := range srv.Participants("sim") {
			if strings.HasPrefix(p.Identity, "sim-") {
				return false
			}
		}
		return true
	})
	s := live.Stats()
	t.Logf("live candidate: %+v", s)
	if s.Frames < 30 || s.AudioPackets < 25 || s.Bytes == 0 {
		t.Errorf("stats %+v", s)
	}
}

func TestJoinRefusals(t *testing.T) {
	checkGoroutines(t)
	_, url := testSFU(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cam := func() *Camera {
		c, err := NewCamera([]Clip{{File: testassets.Photo(t, "building.jpg")}}, CameraOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	if _, err := Join(ctx, Config{URL: url, Token: "bogus", Camera: cam(), LoopbackOnly: true, Logger: quietLogger()}); err == nil ||
		!strings.Contains(err.Error(), "unauthorized") {
		t.Errorf("a bad token joined: %v", err)
	}
	if _, err := Join(ctx, Config{URL: url, Token: "x", Logger: quietLogger()}); err == nil {
		t.Error("joined with no camera")
	}
	if _, err := Join(ctx, Config{URL: "ws://127.0.0.1:1/sfu/ws", Token: "x", Camera: cam(), Logger: quietLogger()}); err == nil {
		t.Error("joined a server that is not there")
	}
}

// checkGoroutines fails the test if, once its cleanups have run, more
// goroutines are left than it started with.
func checkGoroutines(t *testing.T) {
	t.Helper()
	before := runtime.NumGoroutine()
	t.Cleanup(func() {
		deadline := time.Now().Add(15 * time.Second)
		for runtime.NumGoroutine() > before {
			if time.Now().After(deadline) {
				buf := make([]byte, 1<<20)
				t.Errorf("goroutine leak: %d before, %d after\n%s", before, runtime.NumGoroutine(), buf[:runtime.Stack(buf, true)])
				return
			}
			time.Sleep(50 * time.Millisecond)
		}
	})
}
