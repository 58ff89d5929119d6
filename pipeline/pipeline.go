// Package pipeline analyses candidates' camera tracks live. For each
// candidate video track the SFU taps: RTP → VP8 frames (our own assembler,
// see assembler.go) → libvpx decode on the track's own goroutine, which
// keeps up with every frame it decodes → the candidate's newest-frame slot → a scheduler that
// hands the newest frame of each due candidate to a bounded pool of
// workers at the candidate's policy rate → detectors → the candidate's
// rules → violations, opened and closed, to a ViolationSink.
//
// A camera that sends VP8 temporal layers (the candidate page asks Chrome
// for L1T3) is decoded on its base layer only: a quarter of the frames,
// 3.75 a second from a 15 fps camera, which reference nothing above them.
// That is as often as the adaptive rate analyses a moving candidate, and
// decoding was the largest cost of a candidate. Frames above the base are
// assembled but neither copied nor decoded (frames_skipped), and their
// loss costs nothing: a lost base-layer frame shows as a gap in TL0PICIDX.
// A camera without layers is decoded frame by frame.
//
// Freshness beats completeness: a frame that a newer one replaces before a
// worker takes it is dropped and counted. When the workers are saturated,
// every candidate falls behind its rate by the same share; nothing queues
// without bound, and nothing in here can slow the SFU's forwarding.
//
// The rate adapts: a candidate whose picture is still is analyzed once per
// Config.CalmInterval, one whose picture changes at the policy's rate, and
// the rules' timings hold either way (see scheduler). Pipeline.Latest
// gives the newest analyzed observation of a candidate, for live feedback.
//
// Stream time: each candidate's analysis runs on one clock, milliseconds
// since its first track of the current activation started (media.Track's
// Started), advanced by the RTP timestamps, so violations map back to wall
// clock and to the recording.
//
// Metrics (registered on Config.Registry):
//
//	invigil_pipeline_packets_total                   RTP packets tapped
//	invigil_pipeline_packets_dropped_total{reason}   queue_full, oversized, late, closed
//	invigil_pipeline_frames_decoded_total
//	invigil_pipeline_frames_skipped_total            above the base temporal layer, not decoded
//	invigil_pipeline_decode_errors_total
//	invigil_pipeline_keyframe_requests_total{reason} start, loss, decode_error, gap
//	invigil_pipeline_frames_analysed_total
//	invigil_pipeline_analyses_total{trigger}         full_rate, refresh, change, deadline, calm
//	invigil_pipeline_frames_dropped_total{reason}    superseded, awaiting_keyframe, decode_error,
//	                                                 incomplete, track_ended, stale, analysis_error
//	invigil_pipeline_analysis_latency_seconds        last packet of a frame → its observation done
//	invigil_pipeline_stage_seconds_total{stage}      depacketize, decode, thumbnail, convert, inference, rules, evidence
//	invigil_pipeline_workers, _workers_busy, _worker_busy_seconds_total
//	invigil_pipeline_worker_utilisation              share of worker time busy over the last 10 s
//	invigil_pipeline_network_runs_total{network}     face, face_short, face_mesh, palm, hand: how often the detectors' cascades let each run
//	invigil_pipeline_candidates_active, _tracks_active
//	invigil_pipeline_violations_total{type,event}, _sink_errors_total, _sink_queue
package pipeline

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"reflect"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"gocv.io/x/gocv"

	"invigil/detectors"
	"invigil/detectors/rules"
	"invigil/media"
	"invigil/models/runner"
	"invigil/vad"
)

// ViolationSink receives the violations the pipeline finds. The consumer
// (the control plane) implements it; the pipeline calls it from one
// goroutine, in order, so a violation's close always follows its open. A
// slow sink delays analysis, never media forwarding; it must honor ctx.
type ViolationSink interface {
	ViolationOpened(ctx context.Context, v Violation) error
	ViolationClosed(ctx context.Context, v Violation) error
}

// Violation is a rules.Violation of one candidate with its identity and
// wall-clock times.
type Violation struct {
	// Key identifies the violation across its open and close events, and is
	// unique across engines and restarts.
	Key       string `json:"key"`
	Identity  string `json:"identity"`
	SessionID string `json:"session_id"`
	Room      string `json:"room"`
	TrackID   string `json:"track_id"`
	Policy    string `json:"policy"`
	rules.Violation
	// StartedAt is when the condition began, OpenedAt when the violation
	// opened (the evidence frame), EndedAt when it cleared (zero while
	// open). Stream times map to wall clock through the track's Started
	// and the RTP timestamps.
	StartedAt time.Time `json:"started_at"`
	OpenedAt  time.Time `json:"opened_at"`
	EndedAt   time.Time `json:"ended_at,omitzero"`
	// Evidence is a JPEG of the frame at the onset with what the detectors
	// saw (for an audio rule: the newest analyzed frame); set on open only.
	Evidence []byte `json:"-"`
	// Clip is a WAV (16 kHz mono, at most 10 s) of what the candidate's
	// microphone heard up to the opening; set on open only, and only
	// while the candidate has a live microphone.
	Clip []byte `json:"-"`
}

// Config configures a Pipeline; zero values take the defaults.
type Config struct {
	// Workers is the number of analysis workers, each with its own set of
	// networks (default: the number of CPUs).
	Workers int
	// ModelsDir holds the converted models (default: models.DefaultDir).
	ModelsDir string
	// FullHands selects the larger hand models.
	FullHands bool
	// Sink receives violations; nil discards them.
	Sink ViolationSink
	// Registry receives the invigil_pipeline_* metrics (default: a private
	// registry, so several pipelines can coexist in tests).
	Registry prometheus.Registerer
	Logger   *slog.Logger
	// DefaultPolicy applies to candidates without SetPolicy (default:
	// rest_room, as for `invigil analyze`).
	DefaultPolicy rules.Policy
	// Camera is the camera model of uncalibrated candidates.
	Camera detectors.Camera
	// InferenceThreads sets OpenCV's process-wide thread pool: parallelism
	// comes from the workers, so the default is 1; -1 leaves it alone.
	InferenceThreads int
	// PacketQueue is the per-track packet queue between WritePacket and the
	// track's goroutine (default 512); when full, packets are dropped.
	PacketQueue int
	// KeyframeInterval is the least time between two keyframe requests of
	// one track (default 1 s).
	KeyframeInterval time.Duration
	// GapKeyframe: a frame arriving after a silence this long asks for a
	// keyframe (default 2 s).
	GapKeyframe time.Duration
	// SinkQueue bounds the violation events waiting for the sink (default
	// 256); a full queue makes workers wait.
	SinkQueue int
	// SinkTimeout bounds one sink call (default 10 s).
	SinkTimeout time.Duration
	// CloseTimeout bounds how long Close waits for the sink to take the
	// last events (default 10 s).
	CloseTimeout time.Duration
	// CalmInterval is how often a candidate whose picture does not change
	// is analyzed (default 1 s; never more often than its policy rate). A
	// negative value analyses every candidate at its policy rate.
	CalmInterval time.Duration
}

func (c *Config) setDefaults() error {
	if c.Workers == 0 {
		c.Workers = runtime.NumCPU()
	}
	if c.Workers < 1 || c.Workers > 256 {
		return fmt.Errorf("pipeline: %d workers, want 1 to 256", c.Workers)
	}
	if c.DefaultPolicy.Name == "" {
		p, err := rules.DefaultPolicy(rules.PolicyRestRoom)
		if err != nil {
			return err
		}
		c.DefaultPolicy = p
	}
	if err := c.DefaultPolicy.Validate(); err != nil {
		return fmt.Errorf("pipeline: default policy: %w", err)
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Registry == nil {
		c.Registry = prometheus.NewRegistry()
	}
	if c.InferenceThreads == 0 {
		c.InferenceThreads = 1
	}
	if c.PacketQueue <= 0 {
		c.PacketQueue = 512
	}
	if c.KeyframeInterval <= 0 {
		c.KeyframeInterval = time.Second
	}
	if c.GapKeyframe <= 0 {
		c.GapKeyframe = 2 * time.Second
	}
	if c.SinkQueue <= 0 {
		c.SinkQueue = 256
	}
	if c.SinkTimeout <= 0 {
		c.SinkTimeout = 10 * time.Second
	}
	if c.CloseTimeout <= 0 {
		c.CloseTimeout = 10 * time.Second
	}
	if c.CalmInterval == 0 {
		c.CalmInterval = time.Second
	}
	return nil
}

// Pipeline is the live analysis; it implements media.Tap.
type Pipeline struct {
	cfg   Config
	log   *slog.Logger
	m     *metrics
	sched *scheduler
	sink  *sinkQueue
	// The listening path (audio.go).
	am     *audioMetrics
	vadCfg vad.Config

	ctx     context.Context // canceled by Close: stops tracks and workers
	cancel  context.CancelFunc
	wg      sync.WaitGroup // tracks, workers, sampler
	closed  atomic.Bool
	closing sync.Once

	workers []*worker
}

var _ media.Tap = (*Pipeline)(nil)

// New loads one set of networks per worker and starts the workers.
func New(cfg Config) (*Pipeline, error) {
	if err := cfg.setDefaults(); err != nil {
		return nil, err
	}
	if cfg.InferenceThreads > 0 {
		runner.SetNumThreads(cfg.InferenceThreads)
	}
	p := &Pipeline{cfg: cfg, log: cfg.Logger.With("component", "pipeline")}
	p.sink = newSinkQueue(cfg.Sink, cfg.SinkQueue, cfg.SinkTimeout, p.log)
	m, err := newMetrics(cfg.Registry, cfg.Workers, func() float64 { return float64(len(p.sink.ch)) })
	if err != nil {
		return nil, err
	}
	p.m = m
	p.sink.m = m
	p.sched = newScheduler(m, cfg.CalmInterval)
	if p.am, err = newAudioMetrics(cfg.Registry); err != nil {
		return nil, err
	}
	if p.vadCfg, err = loadListening(cfg.ModelsDir); err != nil {
		return nil, err
	}
	vadCfg := p.vadCfg
	if err := cfg.Registry.Register(prometheus.NewCounterFunc(prometheus.CounterOpts{
		Name: "invigil_pipeline_audio_model_runs_total",
		Help: "Runs of the speech model (process-wide); candidates' chunks share runs, so the judged chunks (audio_chunks_total without gated) over this are the mean batch.",
	}, func() float64 { runs, _ := vad.ModelRuns(vadCfg); return float64(runs) })); err != nil {
		return nil, fmt.Errorf("pipeline: register audio metrics: %w", err)
	}
	for i := 0; i < cfg.Workers; i++ {
		a, err := detectors.NewAnalyzer(detectors.AnalyzerOptions{ModelsDir: cfg.ModelsDir, FullHands: cfg.FullHands})
		if err != nil {
			for _, w := range p.workers {
				w.close()
			}
			return nil, fmt.Errorf("pipeline: worker %d: %w", i, err)
		}
		w := &worker{id: i, p: p, a: a, bgr: gocv.NewMat(), runs: a.Networks()}
		for _, n := range w.runs {
			m.networkRuns.WithLabelValues(n.Name) // shown at 0 before the first run
		}
		p.workers = append(p.workers, w)
	}
	p.ctx, p.cancel = context.WithCancel(context.Background())
	p.sink.start()
	for _, w := range p.workers {
		p.wg.Add(1)
		go w.run(p.ctx)
	}
	p.wg.Add(1)
	go p.sampleUtilisation()
	return p, nil
}

func (p *Pipeline) sampleUtilisation() {
	defer p.wg.Done()
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-p.ctx.Done():
			return
		case now := <-t.C:
			p.m.util.sample(now)
		}
	}
}

// TrackStarted implements media.Tap: it takes candidates' VP8 video and
// Opus audio tracks and ignores the rest (other codecs, staff).
func (p *Pipeline) TrackStarted(t media.Track) media.PacketWriter {
	if t.Kind == media.Audio && t.Role == "candidate" && strings.EqualFold(t.MimeType, "audio/opus") {
		return p.startAudioTrack(t)
	}
	if t.Kind != media.Video || t.Role != "candidate" || !strings.EqualFold(t.MimeType, "video/VP8") {
		return nil
	}
	if t.Identity == "" {
		p.log.Warn("candidate video track without identity; not analyzed", "session", t.SessionID, "track", t.TrackID)
		return nil
	}
	if p.closed.Load() {
		return nil
	}
	if t.ClockRate == 0 {
		t.ClockRate = 90000
	}
	if t.Started.IsZero() {
		t.Started = time.Now()
	}
	tr := &track{
		p:       p,
		info:    t,
		packets: make(chan queuedPacket, p.cfg.PacketQueue),
		done:    make(chan struct{}),
		pool:    newMatPool(3),
		thumbs:  newThumbnailer(),
	}
	rcv, err := newReceiver(p.m, tr.pool, t.ClockRate, tr.requestKeyframe, p.cfg.KeyframeInterval, p.cfg.GapKeyframe)
	if err != nil {
		tr.thumbs.close()
		p.log.Error("cannot analyze candidate track", "identity", t.Identity, "track", t.TrackID, "err", err)
		return nil
	}
	tr.rcv = rcv

	s := p.sched
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		rcv.close()
		tr.thumbs.close()
		return nil
	}
	c := s.candidateLocked(t.Identity, p.cfg.DefaultPolicy)
	if c.tracks == 0 {
		c.gen++
		c.epoch = t.Started
		c.resetScheduleLocked()
		p.m.candidatesActive.Inc()
	}
	c.tracks++
	tr.c, tr.gen, tr.epoch = c, c.gen, c.epoch
	p.wg.Add(1) // under s.mu: Close cannot be waiting yet
	s.mu.Unlock()

	p.m.tracksActive.Inc()
	p.log.Info("analyzing candidate track", "identity", t.Identity, "session", t.SessionID, "room", t.Room,
		"track", t.TrackID, "connection", t.Connection)
	go tr.run()
	return tr
}

// candidateLocked returns the candidate, making it with the default policy.
func (s *scheduler) candidateLocked(identity string, def rules.Policy) *candidate {
	c := s.candidates[identity]
	if c == nil {
		c = &candidate{identity: identity, policy: clonePolicy(def), policyVersion: 1}
		s.candidates[identity] = c
	}
	return c
}

func clonePolicy(p rules.Policy) rules.Policy {
	p.Rules = maps.Clone(p.Rules)
	return p
}

// SetPolicy sets a candidate's policy (the control plane changes it with
// the room or stage). The analysis rate changes at once; the rules change
// at the next analysis. The rules engine is rebuilt only when the rules
// themselves change (name, rule timings or thresholds, not the analysis
// rate or hand cadence), and then the violations open under the old rules
// are closed first. Setting the same policy again changes nothing.
func (p *Pipeline) SetPolicy(identity string, pol rules.Policy) error {
	if err := pol.Validate(); err != nil {
		return fmt.Errorf("pipeline: policy for %s: %w", identity, err)
	}
	s := p.sched
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return errors.New("pipeline: closed")
	}
	c := s.candidateLocked(identity, p.cfg.DefaultPolicy)
	c.explicit = true
	if policiesEqual(c.policy, pol) {
		return nil
	}
	c.policy = clonePolicy(pol)
	c.policyVersion++
	// A faster rate takes effect now rather than after the old interval,
	// and the new rules look at the picture without waiting for it to
	// change.
	if limit := time.Now().Add(interval(pol)); c.nextDue.After(limit) {
		c.nextDue = limit
	}
	c.refresh = true
	s.wakeLocked()
	return nil
}

// Calibrate marks the frames a candidate's camera captures until the given
// wall-clock time as the device check at 50 cm: their median head scale
// calibrates the distance estimate (detectors.Stream.CalibrateUntilMS).
// The control plane knows wall-clock time, not stream time, hence a
// time.Time. It restarts calibration if one was done before.
func (p *Pipeline) Calibrate(identity string, until time.Time) error {
	s := p.sched
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return errors.New("pipeline: closed")
	}
	c := s.candidateLocked(identity, p.cfg.DefaultPolicy)
	c.explicit = true
	c.calibrate = until
	c.calibVersion++
	// Calibration samples the picture at the full rate until then.
	c.refresh = true
	s.wakeLocked()
	return nil
}

// Forget drops what SetPolicy and Calibrate keep for a candidate between
// tracks, and its Latest snapshot (call it when the candidate leaves). A
// candidate still publishing keeps its settings until its tracks end, and
// its next analysis makes a new snapshot.
func (p *Pipeline) Forget(identity string) {
	s := p.sched
	s.mu.Lock()
	defer s.mu.Unlock()
	if c := s.candidates[identity]; c != nil {
		c.explicit = false
		c.snapshot.Store(nil)
		if c.tracks == 0 {
			delete(s.candidates, identity)
		}
	}
}

// Close stops every goroutine: tracks and workers stop, open violations
// are closed at the last analyzed frame and handed to the sink (waiting up
// to CloseTimeout for it), and the networks are freed. Safe to call twice.
func (p *Pipeline) Close() error {
	p.closing.Do(func() {
		p.closed.Store(true)
		leftovers := p.sched.close()
		p.cancel()
		p.wg.Wait()
		for _, f := range leftovers {
			f.release()
			p.m.framesDropped.WithLabelValues(dropTrackEnded).Inc()
		}
		ctx, cancel := context.WithTimeout(context.Background(), p.cfg.CloseTimeout)
		defer cancel()
		p.sched.mu.Lock()
		cands := make([]*candidate, 0, len(p.sched.candidates))
		for _, c := range p.sched.candidates {
			cands = append(cands, c)
		}
		p.sched.mu.Unlock()
		for _, c := range cands {
			c.analysisMu.Lock()
			if c.engine != nil {
				p.finishEngineLocked(ctx, c)
			}
			c.analysisMu.Unlock()
		}
		p.sink.stop(ctx)
		for _, w := range p.workers {
			w.close()
		}
		p.m.candidatesActive.Set(0)
		p.m.tracksActive.Set(0)
	})
	return nil
}

// finishEngineLocked closes the candidate's open violations at its last
// analyzed frame and retires its engine: later frames of the same
// activation are dropped (analysisMu held).
func (p *Pipeline) finishEngineLocked(ctx context.Context, c *candidate) {
	p.closeViolationsLocked(ctx, c)
	if c.stream != nil && c.stream.Calibrated() {
		c.camera = c.stream.Camera
	}
	c.finishedGen = max(c.finishedGen, c.engineGen)
	c.engine, c.stream = nil, nil
}

func (p *Pipeline) closeViolationsLocked(ctx context.Context, c *candidate) {
	for _, ev := range c.engine.Finish(c.lastTMS) {
		p.emit(ctx, c, ev, nil)
	}
}

// emit turns a rules event into a Violation for the sink.
func (p *Pipeline) emit(ctx context.Context, c *candidate, ev rules.Event, evidence []byte) {
	p.emitWith(ctx, c, ev, evidence, nil)
}

// emitWith is emit with evidence for the sink's goroutine to encode.
func (p *Pipeline) emitWith(ctx context.Context, c *candidate, ev rules.Event, evidence []byte, pending *pendingEvidence) {
	v := Violation{
		Key:       fmt.Sprintf("%s-%d", c.engineKey, ev.Violation.ID),
		Identity:  c.identity,
		Policy:    c.engine.Policy().Name,
		Violation: ev.Violation,
		StartedAt: c.engineEpoch.Add(time.Duration(ev.Violation.StartMS) * time.Millisecond),
		OpenedAt:  c.engineEpoch.Add(time.Duration(ev.Violation.OpenedMS) * time.Millisecond),
		Evidence:  evidence,
	}
	if t := c.lastTrack; t != nil {
		v.SessionID, v.Room, v.TrackID = t.SessionID, t.Room, t.TrackID
	}
	if ev.Kind == rules.Closed {
		v.EndedAt = c.engineEpoch.Add(time.Duration(ev.Violation.EndMS) * time.Millisecond)
	}
	p.m.violations.WithLabelValues(string(ev.Violation.Type), string(ev.Kind)).Inc()
	p.log.Info("violation "+string(ev.Kind), "identity", v.Identity, "type", v.Type, "key", v.Key,
		"start_ms", v.StartMS, "reason", v.Reason)
	if pending.empty() {
		pending = nil
	}
	p.sink.enqueue(ctx, sinkEvent{kind: ev.Kind, v: v, pending: pending})
}

// micEvidenceLocked is the evidence an opening violation gets from the
// candidate's live microphone: the clip up to the opening and, when pic,
// the newest analyzed frame (analysisMu held).
func (p *Pipeline) micEvidenceLocked(c *candidate, ev rules.Event, pic bool) *pendingEvidence {
	if ev.Kind != rules.Opened {
		return nil
	}
	e := &pendingEvidence{}
	if m := c.mic.Load(); m != nil {
		e.mic = m
		e.clipEnd = m.position(c.engineEpoch.Add(time.Duration(ev.Violation.OpenedMS) * time.Millisecond))
	}
	if pic {
		e.pic = c.lastPicture.clone()
	}
	return e
}

// startEngineLocked starts the rules and detector state of a new
// activation (analysisMu held).
func (p *Pipeline) startEngineLocked(c *candidate, j job) error {
	engine, err := rules.NewEngine(j.policy)
	if err != nil {
		return err
	}
	c.engine = engine
	c.engineGen = j.f.gen
	c.engineEpoch = j.f.epoch
	c.engineKey = newKey()
	c.appliedPolicy = j.policyVersion
	c.lastTMS, c.analysedAny = 0, false
	p.newStreamLocked(c, j)
	return nil
}

// newStreamLocked (re)starts the detector state, calibrating if asked.
func (p *Pipeline) newStreamLocked(c *candidate, j job) {
	cam := c.camera
	if cam == (detectors.Camera{}) {
		cam = p.cfg.Camera
	}
	c.stream = detectors.NewStream(j.policy, cam)
	c.hasLastObs = false
	if !j.calibrate.IsZero() {
		if until := j.calibrate.Sub(c.engineEpoch).Milliseconds(); until > c.lastTMS {
			c.stream.Camera = p.cfg.Camera // a new calibration starts from scratch
			c.stream.CalibrateUntilMS = until
		}
	}
	c.appliedCalib = j.calibVersion
}

// applySettingsLocked brings the engine and stream up to the settings of
// the job (analysisMu held).
func (p *Pipeline) applySettingsLocked(ctx context.Context, c *candidate, j job) {
	if j.policyVersion != c.appliedPolicy {
		if !sameRules(c.engine.Policy(), j.policy) {
			engine, err := rules.NewEngine(j.policy)
			if err != nil { // SetPolicy validated it; keep the old rules
				p.log.Error("policy rejected", "identity", c.identity, "err", err)
			} else {
				p.closeViolationsLocked(ctx, c)
				c.engine, c.engineKey = engine, newKey()
			}
		}
		c.stream.Policy = j.policy
		c.appliedPolicy = j.policyVersion
		c.hasLastObs = false // the detectors look again under the new policy
	}
	if j.calibVersion != c.appliedCalib {
		p.newStreamLocked(c, j)
	}
}

// sameRules reports whether two policies make the same rules engine: they
// may differ in the analysis rate and hand cadence.
func sameRules(a, b rules.Policy) bool {
	a.AnalysisFPS, b.AnalysisFPS = 0, 0
	a.HandsEvery, b.HandsEvery = 0, 0
	return policiesEqual(a, b)
}

func policiesEqual(a, b rules.Policy) bool { return reflect.DeepEqual(a, b) }

func newKey() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// matPool recycles a track's I420 Mats between its decoder and the
// workers; Mats returned after the track ended are closed.
type matPool struct {
	mu     sync.Mutex
	free   []gocv.Mat
	max    int
	closed bool
}

func newMatPool(max int) *matPool { return &matPool{max: max} }

func (p *matPool) get() gocv.Mat {
	p.mu.Lock()
	defer p.mu.Unlock()
	if n := len(p.free); n > 0 {
		m := p.free[n-1]
		p.free = p.free[:n-1]
		return m
	}
	return gocv.NewMat()
}

func (p *matPool) put(m gocv.Mat) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed || len(p.free) >= p.max {
		m.Close()
		return
	}
	p.free = append(p.free, m)
}

func (p *matPool) close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.closed = true
	for _, m := range p.free {
		m.Close()
	}
	p.free = nil
}
