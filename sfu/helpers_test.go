package sfu_test

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pion/webrtc/v4"
	pmedia "github.com/pion/webrtc/v4/pkg/media"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"invigil/media"
	"invigil/sfu"
	"invigil/sfu/client"
	"invigil/sfu/protocol"
)

// testTimeout bounds every wait: generous, since the machine is shared; no
// test asserts on how long anything took.
const testTimeout = 30 * time.Second

var testKey = []byte("0123456789abcdef0123456789abcdef")

type testServer struct {
	t      *testing.T
	srv    *sfu.Server
	http   *httptest.Server
	url    string
	tokens sfu.HMACTokens
	reg    *prometheus.Registry
	tap    *recordingTap
	api    *webrtc.API
}

func testLogger() *slog.Logger {
	if os.Getenv("SFU_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// newTestServer starts an SFU on 127.0.0.1 with a recording tap. It checks
// at cleanup that the server's and the clients' goroutines have ended.
func newTestServer(t *testing.T, adjust func(*sfu.Config)) *testServer {
	t.Helper()
	checkGoroutines(t)
	ts := &testServer{t: t, tokens: sfu.HMACTokens{Key: testKey}, reg: prometheus.NewRegistry(), tap: newRecordingTap()}
	cfg := sfu.Config{
		Tokens:   ts.tokens,
		Taps:     []media.Tap{ts.tap},
		Registry: ts.reg,
		Logger:   testLogger(),
		ICE:      sfu.ICEConfig{LoopbackOnly: true},
	}
	if adjust != nil {
		adjust(&cfg)
	}
	srv, err := sfu.New(cfg)
	if err != nil {
		t.Fatalf("new server: %v", err)
	}
	ts.srv = srv
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ts.http = &httptest.Server{Listener: ln, Config: &http.Server{Handler: srv}}
	ts.http.Start()
	ts.url = "ws" + strings.TrimPrefix(ts.http.URL, "http")
	api, err := client.NewAPI(client.APIOptions{LoopbackOnly: true, Logger: testLogger()})
	if err != nil {
		t.Fatal(err)
	}
	ts.api = api
	t.Cleanup(func() {
		if err := srv.Close(); err != nil {
			t.Errorf("close server: %v", err)
		}
		ts.http.Close()
	})
	return ts
}

// checkGoroutines fails the test if, after its cleanups, more goroutines
// run than before it started (after letting stragglers finish).
func checkGoroutines(t *testing.T) {
	t.Helper()
	before := runtime.NumGoroutine()
	t.Cleanup(func() {
		deadline := time.Now().Add(15 * time.Second)
		for {
			n := runtime.NumGoroutine()
			if n <= before {
				return
			}
			if time.Now().After(deadline) {
				buf := make([]byte, 1<<20)
				buf = buf[:runtime.Stack(buf, true)]
				t.Errorf("goroutine leak: %d before, %d after\n%s", before, n, buf)
				return
			}
			time.Sleep(50 * time.Millisecond)
		}
	})
}

func (ts *testServer) token(g sfu.Grants) string {
	ts.t.Helper()
	if g.Room == "" {
		g.Room = "exam-1"
	}
	if g.ExpiresAt.IsZero() {
		g.ExpiresAt = time.Now().Add(time.Hour)
	}
	tok, err := ts.tokens.Issue(g)
	if err != nil {
		ts.t.Fatal(err)
	}
	return tok
}

func candidateGrants(id string) sfu.Grants {
	return sfu.Grants{Identity: id, Role: "candidate", CanPublish: true, CanSubscribe: true}
}

func staffGrants(id string, sees ...string) sfu.Grants {
	return sfu.Grants{Identity: id, Role: "examiner", CanPublish: true, CanSubscribe: true, Subscribe: sees}
}

// receiver counts the packets each publisher's tracks deliver to a client.
type receiver struct {
	mu      sync.Mutex
	packets map[string]int // by publisher identity
	tracks  map[string]int // OnTrack calls by publisher identity
	changed chan struct{}
	read    bool
}

func newReceiver(read bool) *receiver {
	return &receiver{packets: map[string]int{}, tracks: map[string]int{}, changed: make(chan struct{}), read: read}
}

func (r *receiver) onTrack(identity string, t *webrtc.TrackRemote, _ *webrtc.RTPReceiver) {
	r.bump(func() { r.tracks[identity]++ })
	if !r.read {
		// A subscriber that never reads what it is sent.
		return
	}
	for {
		if _, _, err := t.ReadRTP(); err != nil {
			return
		}
		r.bump(func() { r.packets[identity]++ })
	}
}

func (r *receiver) bump(f func()) {
	r.mu.Lock()
	defer r.mu.Unlock()
	f()
	close(r.changed)
	r.changed = make(chan struct{})
}

func (r *receiver) count(identity string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.packets[identity]
}

// waitPackets waits until identity's tracks delivered at least n packets.
func (r *receiver) waitPackets(ctx context.Context, t *testing.T, identity string, n int) {
	t.Helper()
	r.waitUntil(ctx, t, func() bool { return r.packets[identity] >= n }, "%d packets from %s", n, identity)
}

func (r *receiver) waitTracks(ctx context.Context, t *testing.T, identity string, n int) {
	t.Helper()
	r.waitUntil(ctx, t, func() bool { return r.tracks[identity] >= n }, "%d tracks from %s", n, identity)
}

func (r *receiver) waitUntil(ctx context.Context, t *testing.T, cond func() bool, what string, args ...any) {
	t.Helper()
	for {
		r.mu.Lock()
		ok := cond()
		ch := r.changed
		r.mu.Unlock()
		if ok {
			return
		}
		select {
		case <-ch:
		case <-ctx.Done():
			t.Fatalf("waiting for "+what+": %v", append(args, ctx.Err())...)
		}
	}
}

// join dials the test server as g; the client is closed at cleanup.
func (ts *testServer) join(ctx context.Context, g sfu.Grants, rcv *receiver) *client.Client {
	ts.t.Helper()
	return ts.joinResume(ctx, g, rcv, "")
}

func (ts *testServer) joinResume(ctx context.Context, g sfu.Grants, rcv *receiver, resume string) *client.Client {
	ts.t.Helper()
	cfg := client.Config{URL: ts.url, Token: ts.token(g), API: ts.api, ResumeSession: resume, Logger: testLogger()}
	if rcv != nil {
		cfg.OnTrack = rcv.onTrack
	}
	c, err := client.Dial(ctx, cfg)
	if err != nil {
		ts.t.Fatalf("join as %s: %v", g.Identity, err)
	}
	ts.t.Cleanup(c.Close)
	return c
}

// publishVideo publishes a VP8 track whose frames are random bytes (the
// SFU forwards without decoding, so garbage payloads must pass) until the
// test ends.
func publishVideo(ctx context.Context, t *testing.T, c *client.Client) {
	t.Helper()
	track, err := webrtc.NewTrackLocalStaticSample(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeVP8}, "camera", "cam")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Publish(ctx, track); err != nil {
		t.Fatalf("publish: %v", err)
	}
	sendFrames(t, track, 2500)
}

func sendFrames(t *testing.T, track *webrtc.TrackLocalStaticSample, size int) {
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		frame := make([]byte, size)
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
			}
			_, _ = rand.Read(frame)
			_ = track.WriteSample(pmedia.Sample{Data: frame, Duration: 20 * time.Millisecond})
		}
	}()
	t.Cleanup(func() { close(stop); <-done })
}

// recordingTap remembers every track and counts its packets.
type recordingTap struct {
	mu      sync.Mutex
	tracks  []*tapWriter
	changed chan struct{}
}

type tapWriter struct {
	tap     *recordingTap
	track   media.Track
	packets int
	closed  bool
}

func newRecordingTap() *recordingTap { return &recordingTap{changed: make(chan struct{})} }

func (r *recordingTap) TrackStarted(t media.Track) media.PacketWriter {
	r.mu.Lock()
	defer r.mu.Unlock()
	w := &tapWriter{tap: r, track: t}
	r.tracks = append(r.tracks, w)
	r.notifyLocked()
	return w
}

func (r *recordingTap) notifyLocked() {
	close(r.changed)
	r.changed = make(chan struct{})
}

func (w *tapWriter) WritePacket(p media.Packet) {
	w.tap.mu.Lock()
	defer w.tap.mu.Unlock()
	if w.closed {
		panic("WritePacket after Close")
	}
	if p.RTP == nil || p.Arrival.IsZero() || p.Wall.IsZero() {
		panic("tap got no packet, arrival or wall time")
	}
	w.packets++
	if w.packets%25 == 0 {
		w.tap.notifyLocked()
	}
}

func (w *tapWriter) Close() {
	w.tap.mu.Lock()
	defer w.tap.mu.Unlock()
	if w.closed {
		panic("Close twice")
	}
	w.closed = true
	w.tap.notifyLocked()
}

// snapshot copies the tap's state.
type tapTrack struct {
	Track   media.Track
	Packets int
	Closed  bool
}

func (r *recordingTap) snapshot() []tapTrack {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []tapTrack
	for _, w := range r.tracks {
		out = append(out, tapTrack{w.track, w.packets, w.closed})
	}
	return out
}

func (r *recordingTap) waitFor(ctx context.Context, t *testing.T, what string, cond func([]tapTrack) bool) []tapTrack {
	t.Helper()
	for {
		r.mu.Lock()
		ch := r.changed
		r.mu.Unlock()
		if s := r.snapshot(); cond(s) {
			return s
		}
		select {
		case <-ch:
		case <-ctx.Done():
			t.Fatalf("tap: waiting for %s: %v (have %+v)", what, ctx.Err(), r.snapshot())
		}
	}
}

// waitEvent waits for a notification of type typ (and code, for errors).
func waitEvent(ctx context.Context, t *testing.T, c *client.Client, typ, code string) protocol.Message {
	t.Helper()
	m, err := c.WaitFor(ctx, func(m protocol.Message) bool {
		return m.Type == typ && (code == "" || m.Code == code)
	})
	if err != nil {
		t.Fatalf("waiting for %s %s: %v (events %+v)", typ, code, err, c.Events())
	}
	return m
}

// metric reads a counter or gauge's value for the given labels.
func metric(t *testing.T, reg *prometheus.Registry, name string, labels map[string]string) float64 {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var total float64
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
		for _, m := range f.GetMetric() {
			if !labelsMatch(m, labels) {
				continue
			}
			if c := m.GetCounter(); c != nil {
				total += c.GetValue()
			}
			if g := m.GetGauge(); g != nil {
				total += g.GetValue()
			}
		}
	}
	return total
}

func labelsMatch(m *dto.Metric, want map[string]string) bool {
	for k, v := range want {
		found := false
		for _, l := range m.GetLabel() {
			if l.GetName() == k && l.GetValue() == v {
				found = true
			}
		}
		if !found {
			return false
		}
	}
	return true
}

func dialErr(ctx context.Context, ts *testServer, g sfu.Grants) (*client.Client, error) {
	c, err := client.Dial(ctx, client.Config{URL: ts.url, Token: ts.token(g), API: ts.api, Logger: testLogger()})
	if err == nil {
		ts.t.Cleanup(c.Close)
	}
	return c, err
}

func waitParticipant(ctx context.Context, t *testing.T, ts *testServer, identity string, cond func(sfu.ParticipantInfo) bool) {
	t.Helper()
	for {
		for _, p := range ts.srv.Participants("exam-1") {
			if p.Identity == identity && cond(p) {
				return
			}
		}
		select {
		case <-ctx.Done():
			t.Fatalf("waiting for participant %s: %v (%+v)", identity, ctx.Err(), ts.srv.Participants("exam-1"))
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// remoteUfrag is the server's ICE username fragment as the client's
// publisher connection knows it.
func remoteUfrag(c *client.Client) string {
	pc := c.Publisher()
	if pc == nil || pc.RemoteDescription() == nil {
		return ""
	}
	for _, line := range strings.Split(pc.RemoteDescription().SDP, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "a=ice-ufrag:"); ok {
			return v
		}
	}
	return ""
}

func b64(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }

// signed signs an arbitrary payload with the test key, as a forger who
// knew the key could.
func signed(t *testing.T, tokens sfu.HMACTokens, payload string) string {
	t.Helper()
	mac := hmac.New(sha256.New, tokens.Key)
	mac.Write([]byte(payload))
	return payload + "." + base64.RawURLEncoding.EncodeToString(mac.Sum(nil))
}

func ufragOf(sdp string) string {
	for _, line := range strings.Split(sdp, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "a=ice-ufrag:"); ok {
			return v
		}
	}
	return ""
}
