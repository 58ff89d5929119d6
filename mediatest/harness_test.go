package mediatest_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"invigil/internal/metrictest"
	"io"
	"log/slog"
	"math"
	"net"
	"net/http"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pion/rtcp"
	"github.com/pion/rtp/codecs"
	"github.com/pion/webrtc/v4"
	"github.com/pion/webrtc/v4/pkg/media/samplebuilder"
	"github.com/prometheus/client_golang/prometheus"
	"gocv.io/x/gocv"

	"invigil/detectors/rules"
	"invigil/internal/testassets"
	"invigil/media"
	"invigil/pipeline"
	"invigil/recording"
	"invigil/sfu"
	"invigil/sfu/client"
	"invigil/simulate"
	"invigil/vpx"
)

// testTimeout bounds each test's waits: generous, since the machine is
// shared; no test asserts on how long anything took in wall time.
const testTimeout = 3 * time.Minute

const room = "exam-1"

var tokenKey = []byte("mediatest-token-key-0123456789abcdef")

func testLogger() *slog.Logger {
	if os.Getenv("MEDIATEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// stack is the media plane as `invigil serve` wires it: the SFU on
// 127.0.0.1 with the recorder and the live analysis as taps, and a sink
// that keeps the violations.
type stack struct {
	t       testing.TB
	dataDir string
	reg     *prometheus.Registry
	sfu     *sfu.Server
	rec     *recording.Recorder
	pipe    *pipeline.Pipeline
	sink    *sink
	url     string
	tokens  sfu.HMACTokens
	http    *http.Server
	done    chan struct{}
}

type stackOptions struct {
	workers int
	// noTaps runs the SFU alone; noPipeline leaves out the analysis.
	noRecorder, noPipeline bool
}

func newStack(t testing.TB, o stackOptions) *stack {
	t.Helper()
	s := &stack{t: t, dataDir: t.TempDir(), reg: prometheus.NewRegistry(), sink: newSink(),
		tokens: sfu.HMACTokens{Key: tokenKey}, done: make(chan struct{})}
	log := testLogger()
	var taps []media.Tap
	var err error
	if !o.noRecorder {
		if s.rec, err = recording.New(recording.Config{DataDir: s.dataDir, Logger: log, Registerer: s.reg}); err != nil {
			t.Fatal(err)
		}
		taps = append(taps, s.rec)
	}
	if !o.noPipeline {
		if o.workers == 0 {
			o.workers = runtime.NumCPU()
		}
		s.pipe, err = pipeline.New(pipeline.Config{Workers: o.workers, ModelsDir: testassets.ModelsDir(t), Sink: s.sink,
			Registry: s.reg, Logger: log, DefaultPolicy: benchPolicy(t)})
		if err != nil {
			t.Fatal(err)
		}
		taps = append(taps, s.pipe)
	}
	s.sfu, err = sfu.New(sfu.Config{Tokens: s.tokens, Taps: taps, Registry: s.reg, Logger: log,
		ICE: sfu.ICEConfig{LoopbackOnly: true}})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("/sfu/ws", s.sfu)
	s.http = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		defer close(s.done)
		_ = s.http.Serve(ln)
	}()
	s.url = "ws://" + ln.Addr().String() + "/sfu/ws"
	t.Cleanup(s.close)
	return s
}

// cascadesEnv=off runs the stack's analysis without the detector cascades
// (the face and palm detectors on every face and hand analysis), to compare
// their cost on the same machine in the same session.
const cascadesEnv = "MEDIATEST_CASCADES"

// benchPolicy is the rest-room policy the pipeline applies, with the
// cascades off when cascadesEnv says so.
func benchPolicy(t testing.TB) rules.Policy {
	p, err := rules.DefaultPolicy(rules.PolicyRestRoom)
	if err != nil {
		t.Fatal(err)
	}
	if os.Getenv(cascadesEnv) == "off" {
		p.FaceDetectEvery, p.PalmStillEvery = 1, 1
	}
	return p
}

// close stops everything in the order serve does.
func (s *stack) close() {
	_ = s.http.Close()
	<-s.done
	if err := s.sfu.Close(); err != nil {
		s.t.Errorf("close sfu: %v", err)
	}
	if s.pipe != nil {
		_ = s.pipe.Close()
	}
	if s.rec != nil {
		_ = s.rec.Close()
	}
}

// stopMedia closes the SFU and the taps now (tests that inspect the
// finished recordings and the last violations).
func (s *stack) stopMedia() {
	if err := s.sfu.Close(); err != nil {
		s.t.Errorf("close sfu: %v", err)
	}
	if s.pipe != nil {
		_ = s.pipe.Close()
	}
	if s.rec != nil {
		_ = s.rec.Close()
	}
}

func (s *stack) token(g sfu.Grants) string {
	s.t.Helper()
	g.Room = room
	g.ExpiresAt = time.Now().Add(time.Hour)
	tok, err := s.tokens.Issue(g)
	if err != nil {
		s.t.Fatal(err)
	}
	return tok
}

func (s *stack) candidateToken(identity string) string {
	return s.token(sfu.Grants{Identity: identity, Role: "candidate", CanPublish: true, CanSubscribe: true})
}

// metric sums a counter, gauge or histogram count over the series whose
// labels include the given pairs.
func (s *stack) metric(name string, labels ...string) float64 {
	s.t.Helper()
	return metrictest.Sum(s.t, s.reg, name, labels...)
}

// pipelineMetrics summarizes the pipeline's counters and the SFU's RTP
// counters, for failures.
func (s *stack) pipelineMetrics() string {
	mfs, err := s.reg.Gather()
	if err != nil {
		return err.Error()
	}
	var b strings.Builder
	for _, mf := range mfs {
		if !strings.HasPrefix(mf.GetName(), "invigil_pipeline_") && !strings.HasPrefix(mf.GetName(), "invigil_sfu_rtp") {
			continue
		}
		for _, m := range mf.GetMetric() {
			var v float64
			switch {
			case m.Counter != nil:
				v = m.Counter.GetValue()
			case m.Gauge != nil:
				v = m.Gauge.GetValue()
			case m.Histogram != nil:
				v = float64(m.Histogram.GetSampleCount())
			}
			if v == 0 {
				continue
			}
			fmt.Fprintf(&b, "\n  %s", mf.GetName())
			for _, l := range m.GetLabel() {
				fmt.Fprintf(&b, " %s=%s", l.GetName(), l.GetValue())
			}
			fmt.Fprintf(&b, " %v", v)
		}
	}
	return b.String()
}

// sinkEvent is one violation event the pipeline delivered.
type sinkEvent struct {
	kind rules.EventKind
	v    pipeline.Violation
	at   time.Time // when the sink received it
}

// sink is the test's ViolationSink: it keeps every event, as the control
// plane's store will.
type sink struct {
	mu      sync.Mutex
	events  []sinkEvent
	changed chan struct{}
}

func newSink() *sink { return &sink{changed: make(chan struct{})} }

func (s *sink) add(kind rules.EventKind, v pipeline.Violation) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.events = append(s.events, sinkEvent{kind, v, time.Now()})
	close(s.changed)
	s.changed = make(chan struct{})
}

func (s *sink) ViolationOpened(_ context.Context, v pipeline.Violation) error {
	s.add(rules.Opened, v)
	return nil
}

func (s *sink) ViolationClosed(_ context.Context, v pipeline.Violation) error {
	s.add(rules.Closed, v)
	return nil
}

func (s *sink) all() []sinkEvent {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]sinkEvent(nil), s.events...)
}

// wait waits for the first event that matches.
func (s *sink) wait(ctx context.Context, t testing.TB, what string, match func(sinkEvent) bool) sinkEvent {
	t.Helper()
	for {
		s.mu.Lock()
		for _, e := range s.events {
			if match(e) {
				s.mu.Unlock()
				return e
			}
		}
		ch := s.changed
		s.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			t.Fatalf("no %s: %v; events so far:%s", what, ctx.Err(), s.summary())
		}
	}
}

func (s *sink) summary() string {
	var b strings.Builder
	for _, e := range s.all() {
		fmt.Fprintf(&b, "\n  %s %s %s start %d ms opened %d ms key %s", e.kind, e.v.Identity, e.v.Type, e.v.StartMS, e.v.OpenedMS, e.v.Key)
	}
	return b.String()
}

func isEvent(kind rules.EventKind, identity string, typ rules.Type) func(sinkEvent) bool {
	return func(e sinkEvent) bool { return e.kind == kind && e.v.Identity == identity && e.v.Type == typ }
}

// frameLog keeps what a synthetic candidate sent, to know in stream time
// when its scene changed.
type frameLog struct {
	mu     sync.Mutex
	frames []simulate.SentFrame
}

func (l *frameLog) add(f simulate.SentFrame) {
	l.mu.Lock()
	l.frames = append(l.frames, f)
	l.mu.Unlock()
}

func (l *frameLog) all() []simulate.SentFrame {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]simulate.SentFrame(nil), l.frames...)
}

// firstOf is the first frame on connection conn showing clip.
func (l *frameLog) firstOf(conn, clip int) (simulate.SentFrame, bool) {
	for _, f := range l.all() {
		if f.Connection == conn && f.Clip == clip {
			return f, true
		}
	}
	return simulate.SentFrame{}, false
}

// waitFor polls until cond holds.
func waitFor(ctx context.Context, t testing.TB, what string, cond func() bool) {
	t.Helper()
	for !cond() {
		select {
		case <-ctx.Done():
			t.Fatalf("timed out waiting for %s", what)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// candidate joins a synthetic candidate that shows clips (live VP8 from
// libvpx, as a browser sends) and runs it until the test's cleanup.
type runningCandidate struct {
	*simulate.Candidate
	identity string
	frames   *frameLog
	cancel   context.CancelFunc
	done     chan error
}

func (s *stack) joinCandidate(ctx context.Context, identity string, clips []simulate.Clip) *runningCandidate {
	s.t.Helper()
	cam, err := simulate.NewCamera(clips, simulate.CameraOptions{Width: frameW, Height: frameH, FPS: 15})
	if err != nil {
		s.t.Fatal(err)
	}
	rc := &runningCandidate{identity: identity, frames: &frameLog{}, done: make(chan error, 1)}
	c, err := simulate.Join(ctx, simulate.Config{URL: s.url, Token: s.candidateToken(identity), Camera: cam,
		Encode: simulate.EncodeOptions{BitrateKbps: 1200}, LoopbackOnly: true, Logger: testLogger(), OnFrame: rc.frames.add})
	if err != nil {
		s.t.Fatalf("join %s: %v", identity, err)
	}
	rc.Candidate = c
	runCtx, cancel := context.WithCancel(context.Background())
	rc.cancel = cancel
	go func() { rc.done <- c.Run(runCtx) }()
	s.t.Cleanup(func() { rc.leave(s.t) })
	return rc
}

// leave stops sending and leaves (once).
func (rc *runningCandidate) leave(t testing.TB) {
	if rc.cancel == nil {
		return
	}
	rc.cancel()
	rc.cancel = nil
	if err := <-rc.done; err != nil {
		t.Errorf("candidate %s: %v", rc.identity, err)
	}
	rc.Leave()
}

// staff is a hidden proctor who subscribes to candidates and decodes what
// the SFU forwards, as the dashboard's video tiles do.
type staff struct {
	cl *client.Client
	mu sync.Mutex
	// by publisher identity
	last         map[string][]byte // last decoded picture, BGR bytes
	decoded      map[string]int
	packets      map[string]int
	gaps         map[string]time.Duration // longest gap between two packets
	decodeErrors map[string]int
	lastAt       map[string]time.Time
	errs         []error
	wg           sync.WaitGroup
}

func (s *stack) joinStaff(ctx context.Context, identity string, decode bool) *staff {
	s.t.Helper()
	st := &staff{last: map[string][]byte{}, decoded: map[string]int{}, packets: map[string]int{},
		gaps: map[string]time.Duration{}, lastAt: map[string]time.Time{}, decodeErrors: map[string]int{}}
	api, err := client.NewAPI(client.APIOptions{LoopbackOnly: true, Logger: testLogger()})
	if err != nil {
		s.t.Fatal(err)
	}
	cl, err := client.Dial(ctx, client.Config{URL: s.url, API: api, Logger: testLogger(),
		Token: s.token(sfu.Grants{Identity: identity, Role: "proctor", CanSubscribe: true, Hidden: true, Subscribe: []string{"*"}}),
		OnTrack: func(id string, tr *webrtc.TrackRemote, _ *webrtc.RTPReceiver) {
			st.wg.Add(1)
			defer st.wg.Done()
			st.receive(id, tr, decode)
		}})
	if err != nil {
		s.t.Fatalf("staff join: %v", err)
	}
	st.cl = cl
	s.t.Cleanup(st.close)
	return st
}

func (st *staff) close() {
	if st.cl != nil {
		st.cl.Leave()
		st.wg.Wait()
		st.cl = nil
	}
}

func (st *staff) receive(identity string, tr *webrtc.TrackRemote, decode bool) {
	if tr.Kind() != webrtc.RTPCodecTypeVideo {
		for {
			if _, _, err := tr.ReadRTP(); err != nil {
				return
			}
		}
	}
	var dec *vpx.Decoder
	if decode {
		var err error
		if dec, err = vpx.NewDecoder(); err != nil {
			st.fail(err)
			return
		}
		defer dec.Close()
	}
	sb := samplebuilder.New(256, &codecs.VP8Packet{}, 90000)
	bgr := gocv.NewMat()
	defer bgr.Close()
	// Like a browser, ask for a keyframe when the picture cannot be
	// decoded (at most once a second).
	var lastPLI time.Time
	pli := func() {
		if time.Since(lastPLI) < time.Second {
			return
		}
		lastPLI = time.Now()
		if pc := st.cl.Subscriber(); pc != nil {
			_ = pc.WriteRTCP([]rtcp.Packet{&rtcp.PictureLossIndication{MediaSSRC: uint32(tr.SSRC())}})
		}
	}
	for {
		p, _, err := tr.ReadRTP()
		if err != nil {
			return
		}
		now := time.Now()
		st.mu.Lock()
		st.packets[identity]++
		if prev, ok := st.lastAt[identity]; ok && now.Sub(prev) > st.gaps[identity] {
			st.gaps[identity] = now.Sub(prev)
		}
		st.lastAt[identity] = now
		st.mu.Unlock()
		if dec == nil {
			continue
		}
		sb.Push(p)
		for sample := sb.Pop(); sample != nil; sample = sb.Pop() {
			img, err := dec.Decode(sample.Data)
			if err != nil {
				st.mu.Lock()
				st.decodeErrors[identity]++
				st.mu.Unlock()
				pli()
				continue
			}
			if img == nil {
				continue
			}
			if err := img.ToBGR(&bgr); err != nil {
				st.fail(err)
				continue
			}
			pic := append([]byte(nil), bgr.ToBytes()...)
			st.mu.Lock()
			st.last[identity] = pic
			st.decoded[identity]++
			st.mu.Unlock()
		}
	}
}

func (st *staff) fail(err error) {
	st.mu.Lock()
	st.errs = append(st.errs, err)
	st.mu.Unlock()
}

func (st *staff) picture(identity string) ([]byte, int) {
	st.mu.Lock()
	defer st.mu.Unlock()
	return st.last[identity], st.decoded[identity]
}

func (st *staff) packetCount(identity string) int {
	st.mu.Lock()
	defer st.mu.Unlock()
	return st.packets[identity]
}

// psnr compares two 8-bit pictures of the same size, in dB.
func psnr(a, b []byte) float64 {
	if len(a) != len(b) || len(a) == 0 {
		return 0
	}
	var sum float64
	for i := range a {
		d := float64(a[i]) - float64(b[i])
		sum += d * d
	}
	mse := sum / float64(len(a))
	if mse == 0 {
		return 99
	}
	return 10 * math.Log10(255*255/mse)
}

// readBGR reads an image file as BGR bytes.
func readBGR(t testing.TB, path string) []byte {
	t.Helper()
	m := gocv.IMRead(path, gocv.IMReadColor)
	defer m.Close()
	if m.Empty() {
		t.Fatalf("cannot read %s", path)
	}
	return append([]byte(nil), m.ToBytes()...)
}

// ffprobe describes a recording as ffmpeg reads it.
type probe struct {
	Duration float64 // container duration, s
	Frames   int     // video frames decoded
	Width    int
	Height   int
	Audio    bool
}

func ffprobe(t testing.TB, path string) probe {
	t.Helper()
	out, err := exec.Command("ffprobe", "-v", "error", "-count_frames", "-show_entries",
		"format=duration:stream=codec_type,codec_name,width,height,nb_read_frames", "-of", "json", path).Output()
	if err != nil {
		t.Fatalf("ffprobe %s: %v", path, err)
	}
	var r struct {
		Format struct {
			Duration string `json:"duration"`
		} `json:"format"`
		Streams []struct {
			Type   string `json:"codec_type"`
			Codec  string `json:"codec_name"`
			Width  int    `json:"width"`
			Height int    `json:"height"`
			Frames string `json:"nb_read_frames"`
		} `json:"streams"`
	}
	if err := json.Unmarshal(out, &r); err != nil {
		t.Fatalf("ffprobe %s: %v\n%s", path, err, out)
	}
	var p probe
	p.Duration, _ = strconv.ParseFloat(r.Format.Duration, 64)
	for _, s := range r.Streams {
		switch s.Type {
		case "video":
			p.Frames, _ = strconv.Atoi(s.Frames)
			p.Width, p.Height = s.Width, s.Height
		case "audio":
			p.Audio = true
		}
	}
	return p
}

// decodeErrors decodes a whole file with ffmpeg and returns what it
// complained about.
func decodeErrors(t testing.TB, path string) string {
	t.Helper()
	var stderr bytes.Buffer
	cmd := exec.Command("ffmpeg", "-nostdin", "-v", "error", "-i", path, "-f", "null", "-")
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("ffmpeg cannot decode %s: %v\n%s", path, err, stderr.String())
	}
	return stderr.String()
}

// frameAt extracts the picture at offset into a recording, as BGR bytes
// of frameW×frameH.
func frameAt(t testing.TB, path string, offset time.Duration) []byte {
	t.Helper()
	var stderr bytes.Buffer
	cmd := exec.Command("ffmpeg", "-nostdin", "-v", "error", "-ss", fmt.Sprintf("%.3f", offset.Seconds()), "-i", path,
		"-frames:v", "1", "-f", "rawvideo", "-pix_fmt", "bgr24", "-")
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("extract frame at %v of %s: %v\n%s", offset, path, err, stderr.String())
	}
	if len(out) != frameW*frameH*3 {
		t.Fatalf("frame at %v of %s: %d bytes, want %d×%d BGR", offset, path, len(out), frameW, frameH)
	}
	return out
}
