package pipeline

import (
	"context"
	"image"
	"invigil/internal/metrictest"
	"io"
	"log/slog"
	"math/rand"
	"os"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pion/rtp"
	"github.com/pion/rtp/codecs"
	"github.com/prometheus/client_golang/prometheus"
	"gocv.io/x/gocv"

	"invigil/detectors/rules"
	"invigil/internal/testassets"
	"invigil/media"
	"invigil/vpx"
)

const (
	testWidth  = 640
	testHeight = 480
	testFPS    = 15
	// rtpPerFrame is the RTP clock advance per frame at 15 fps.
	rtpPerFrame = 90000 / testFPS
)

// picture reads a test photo resized to 640×480, as a webcam would send it.
func picture(t testing.TB, name string) gocv.Mat {
	t.Helper()
	src := gocv.IMRead(testassets.Photo(t, name), gocv.IMReadColor)
	defer src.Close()
	if src.Empty() {
		t.Fatalf("cannot read %s", name)
	}
	dst := gocv.NewMat()
	gocv.Resize(src, &dst, image.Pt(testWidth, testHeight), 0, 0, gocv.InterpolationArea)
	t.Cleanup(func() { dst.Close() })
	return dst
}

// blackPicture is a covered lens.
func blackPicture(t testing.TB) gocv.Mat {
	t.Helper()
	m := gocv.NewMatWithSize(testHeight, testWidth, gocv.MatTypeCV8UC3)
	m.SetTo(gocv.NewScalar(0, 0, 0, 0))
	t.Cleanup(func() { m.Close() })
	return m
}

// scene is a picture shown for a number of frames.
type scene struct {
	pic    gocv.Mat
	frames int
}

// publisher plays scenes into a tap as a browser would: VP8 from our
// encoder at 15 fps in real time, packetised by pion, answering keyframe
// requests with a keyframe.
type publisher struct {
	t        testing.TB
	enc      *vpx.Encoder
	pkt      rtp.Packetizer
	info     media.Track
	wantKey  atomic.Bool
	requests atomic.Int64
	frame    int // frames encoded so far
	// clock normalises what play sends, as the SFU's does for every tap
	clock *media.Clock
}

func newPublisher(t testing.TB, identity string) *publisher {
	t.Helper()
	enc, err := vpx.NewEncoder(vpx.EncoderOptions{Width: testWidth, Height: testHeight, FPS: testFPS, BitrateKbps: 1200, KeyframeInterval: 3000})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { enc.Close() })
	p := &publisher{
		t:   t,
		enc: enc,
		pkt: rtp.NewPacketizer(1200, 96, rand.Uint32(), &codecs.VP8Payloader{EnablePictureID: true},
			rtp.NewRandomSequencer(), 90000),
	}
	p.info = media.Track{
		SessionID: "session-" + identity, Identity: identity, Role: "candidate", Room: "exam-1",
		TrackID: "video-" + identity, Kind: media.Video, MimeType: "video/VP8", ClockRate: 90000,
		PayloadType: 96, Connection: 1,
		RequestKeyframe: func() {
			p.requests.Add(1)
			p.wantKey.Store(true)
		},
	}
	return p
}

// start tells the tap about the track, as the SFU does on its first packet.
func (p *publisher) start(tap media.Tap) media.PacketWriter {
	p.t.Helper()
	p.info.Started = time.Now()
	p.clock = media.NewClock(p.info.ClockRate)
	w := tap.TrackStarted(p.info)
	if w == nil {
		p.t.Fatal("tap ignored a candidate video track")
	}
	return w
}

// writeStamped hands w the packet as the SFU would: normalised by the
// track's clock, and not at all when the clock finds it stray.
func writeStamped(w media.PacketWriter, c *media.Clock, p *rtp.Packet, at time.Time) {
	if s, ok := c.Stamp(p.Clone(), at); ok {
		w.WritePacket(s)
	}
}

// encode makes the RTP packets of the next frame.
func (p *publisher) encode(pic gocv.Mat) []*rtp.Packet {
	force := p.frame == 0 || p.wantKey.Swap(false)
	frames, err := p.enc.Encode(pic, force)
	if err != nil {
		p.t.Error(err)
		return nil
	}
	p.frame++
	var out []*rtp.Packet
	for _, f := range frames {
		out = append(out, p.pkt.Packetize(f, rtpPerFrame)...)
	}
	return out
}

// playOptions alter what reaches the tap.
type playOptions struct {
	// skip frames are encoded but not sent (joining mid-GOP).
	skip int
	// alter may drop or change packets: it returns the packets to send.
	alter func(frame int, pkts []*rtp.Packet) []*rtp.Packet
	// pauseAt pauses for pause before that frame (0: never).
	pauseAt int
	pause   time.Duration
	// noClose leaves the track open at the end.
	noClose bool
}

// streamMS is the stream time of frame i (the first frame sent is 0).
func streamMS(i int) int64 { return int64(i) * 1000 / testFPS }

// play sends the scenes in real time and closes the track; it returns the
// number of frames sent.
func (p *publisher) play(ctx context.Context, w media.PacketWriter, scenes []scene, o playOptions) int {
	start := time.Now()
	sent := 0
	i := 0
	for _, sc := range scenes {
		for k := 0; k < sc.frames; k++ {
			pkts := p.encode(sc.pic)
			i++
			if i <= o.skip {
				continue
			}
			if o.pauseAt > 0 && i == o.pauseAt {
				start = start.Add(o.pause)
			}
			due := start.Add(time.Duration(i-1) * time.Second / testFPS)
			select {
			case <-ctx.Done():
				return sent
			case <-time.After(time.Until(due)):
			}
			if o.alter != nil {
				pkts = o.alter(i-1, pkts)
			}
			for _, pk := range pkts {
				writeStamped(w, p.clock, pk, time.Now())
			}
			sent++
		}
	}
	if !o.noClose {
		w.Close()
	}
	return sent
}

// sinkRecord is one event a recordingSink received.
type sinkRecord struct {
	kind rules.EventKind
	v    Violation
}

// recordingSink keeps every event, like the control plane's store would.
type recordingSink struct {
	mu      sync.Mutex
	events  []sinkRecord
	changed chan struct{}
}

func newRecordingSink() *recordingSink { return &recordingSink{changed: make(chan struct{}, 1)} }

func (s *recordingSink) add(kind rules.EventKind, v Violation) {
	s.mu.Lock()
	s.events = append(s.events, sinkRecord{kind, v})
	s.mu.Unlock()
	select {
	case s.changed <- struct{}{}:
	default:
	}
}

func (s *recordingSink) ViolationOpened(_ context.Context, v Violation) error {
	s.add(rules.Opened, v)
	return nil
}

func (s *recordingSink) ViolationClosed(_ context.Context, v Violation) error {
	s.add(rules.Closed, v)
	return nil
}

func (s *recordingSink) all() []sinkRecord {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]sinkRecord(nil), s.events...)
}

// find returns the first event matching.
func (s *recordingSink) find(kind rules.EventKind, identity string, typ rules.Type) (Violation, bool) {
	for _, e := range s.all() {
		if e.kind == kind && e.v.Identity == identity && e.v.Type == typ {
			return e.v, true
		}
	}
	return Violation{}, false
}

// wait waits up to timeout (a test deadline, not a measurement) for an event.
func (s *recordingSink) wait(t testing.TB, timeout time.Duration, kind rules.EventKind, identity string, typ rules.Type) Violation {
	t.Helper()
	deadline := time.After(timeout)
	for {
		if v, ok := s.find(kind, identity, typ); ok {
			return v
		}
		select {
		case <-s.changed:
		case <-deadline:
			t.Fatalf("no %s %s for %s within %v; events: %v", typ, kind, identity, timeout, s.summary())
		}
	}
}

func (s *recordingSink) summary() string {
	var b strings.Builder
	for _, e := range s.all() {
		b.WriteString("\n  ")
		b.WriteString(string(e.kind) + " " + e.v.Identity + " " + string(e.v.Type) + " " + e.v.Policy)
	}
	return b.String()
}

// newTestPipeline starts a pipeline on the real models and checks, when the
// test ends, that Close leaves no goroutine of the package behind.
func newTestPipeline(t testing.TB, cfg Config) (*Pipeline, *prometheus.Registry) {
	t.Helper()
	cfg.ModelsDir = testassets.ModelsDir(t)
	reg, _ := cfg.Registry.(*prometheus.Registry)
	if reg == nil {
		reg = prometheus.NewRegistry()
		cfg.Registry = reg
	}
	if cfg.Workers == 0 {
		cfg.Workers = 2
	}
	if cfg.Logger == nil {
		cfg.Logger = testLogger(t)
	}
	p, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		start := time.Now()
		p.Close()
		t.Logf("Close took %v", time.Since(start))
		checkNoGoroutines(t)
	})
	return p, reg
}

func testLogger(t testing.TB) *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// checkNoGoroutines fails if a goroutine of the package (not of a test)
// is still running.
func checkNoGoroutines(t testing.TB) {
	t.Helper()
	var leaked []string
	for try := 0; try < 50; try++ {
		buf := make([]byte, 1<<20)
		buf = buf[:runtime.Stack(buf, true)]
		leaked = leaked[:0]
		for _, g := range strings.Split(string(buf), "\n\n") {
			if strings.Contains(g, "invigil/pipeline.") && !strings.Contains(g, "_test.go") {
				leaked = append(leaked, g)
			}
		}
		if len(leaked) == 0 {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Errorf("%d goroutines left after Close:\n%s", len(leaked), strings.Join(leaked, "\n\n"))
}

// metricValue sums the samples of a counter, gauge or histogram count
// whose labels include the given ones.
func metricValue(t testing.TB, reg *prometheus.Registry, name string, labels ...string) float64 {
	t.Helper()
	return metrictest.Sum(t, reg, name, labels...)
}

func mustPolicy(t testing.TB, name string) rules.Policy {
	t.Helper()
	p, err := rules.DefaultPolicy(name)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// waitFor polls cond until it holds, failing after a generous deadline.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(20 * time.Second); !cond(); {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// testReceiver is a receiver at the video clock rate with metrics in a
// registry of its own and a small Mat pool; done closes the receiver, then
// the pool.
func testReceiver(tb testing.TB, requestKeyframe func(string), keyframeInterval, gapKeyframe time.Duration) (r *receiver, pool *matPool, reg *prometheus.Registry, done func()) {
	tb.Helper()
	reg = prometheus.NewRegistry()
	m, err := newMetrics(reg, 1, func() float64 { return 0 })
	if err != nil {
		tb.Fatal(err)
	}
	pool = newMatPool(2)
	r, err = newReceiver(m, pool, 90000, requestKeyframe, keyframeInterval, gapKeyframe)
	if err != nil {
		pool.close()
		tb.Fatal(err)
	}
	return r, pool, reg, func() {
		r.close()
		pool.close()
	}
}
