package pipeline

import (
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Drop reasons, the values of the reason label.
const (
	// packets (invigil_pipeline_packets_dropped_total)
	dropQueueFull = "queue_full" // the track's packet queue was full: WritePacket never waits
	dropOversized = "oversized"  // a payload no WebRTC sender makes
	dropLate      = "late"       // older than what was already assembled
	dropClosed    = "closed"     // the pipeline was closed
	// frames (invigil_pipeline_frames_dropped_total)
	dropSuperseded       = "superseded"        // a newer decoded frame replaced it before analysis
	dropAwaitingKeyframe = "awaiting_keyframe" // references lost: skipped until the next keyframe
	dropDecodeError      = "decode_error"      // libvpx refused it
	dropIncomplete       = "incomplete"        // packets lost: the frame never assembled
	dropTrackEnded       = "track_ended"       // decoded, but the track ended before analysis
	dropStale            = "stale"             // not newer than the last analyzed frame
	dropAnalysisError    = "analysis_error"    // the detectors refused it
)

// Keyframe request reasons.
const (
	keyStart       = "start"        // the track did not begin with a keyframe
	keyLoss        = "loss"         // packets or whole frames were lost
	keyDecodeError = "decode_error" // libvpx refused a frame
	keyGap         = "gap"          // no frame for a long time
)

// Stages of the per-frame cost split.
const (
	stageDepacketize = "depacketize"
	stageDecode      = "decode"
	stageConvert     = "convert"
	stageInference   = "inference"
	stageRules       = "rules"
	stageEvidence    = "evidence"
	stageThumbnail   = "thumbnail" // the adaptive rate's change detection, per decoded frame
)

type metrics struct {
	packets          prometheus.Counter
	packetsDropped   *prometheus.CounterVec
	framesDecoded    prometheus.Counter
	framesSkipped    prometheus.Counter
	decodeErrors     prometheus.Counter
	keyframeRequests *prometheus.CounterVec
	framesAnalysed   prometheus.Counter
	carried          prometheus.Counter
	networkRuns      *prometheus.CounterVec
	analyses         *prometheus.CounterVec
	framesDropped    *prometheus.CounterVec
	latency          prometheus.Histogram
	stageSeconds     *prometheus.CounterVec
	workers          prometheus.Gauge
	workersBusy      prometheus.Gauge
	candidatesActive prometheus.Gauge
	tracksActive     prometheus.Gauge
	violations       *prometheus.CounterVec
	sinkErrors       prometheus.Counter

	util *utilization
}

func newMetrics(reg prometheus.Registerer, workers int, sinkQueueLen func() float64) (*metrics, error) {
	m := &metrics{
		packets: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "invigil_pipeline_packets_total",
			Help: "RTP packets of candidate video tracks handed to the pipeline.",
		}),
		packetsDropped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "invigil_pipeline_packets_dropped_total",
			Help: "RTP packets the pipeline dropped before frame assembly, by reason (queue_full: the per-track queue was full, WritePacket never waits).",
		}, []string{"reason"}),
		framesDecoded: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "invigil_pipeline_frames_decoded_total",
			Help: "VP8 frames decoded.",
		}),
		framesSkipped: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "invigil_pipeline_frames_skipped_total",
			Help: "VP8 frames above the base temporal layer, not decoded: analysis needs the base layer only (staff and the recording get every frame).",
		}),
		decodeErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "invigil_pipeline_decode_errors_total",
			Help: "VP8 frames that failed to decode.",
		}),
		keyframeRequests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "invigil_pipeline_keyframe_requests_total",
			Help: "Keyframe requests (PLI) sent to publishers, by reason.",
		}, []string{"reason"}),
		framesAnalysed: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "invigil_pipeline_frames_analysed_total",
			Help: "Frames that went through the detectors and rules.",
		}),
		carried: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "invigil_pipeline_analyses_carried_total",
			Help: "Analyses of a picture unchanged since the detectors last ran: their observation was repeated and only the rules ran (included in invigil_pipeline_frames_analysed_total).",
		}),
		networkRuns: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "invigil_pipeline_network_runs_total",
			Help: "Runs of each detector network (face, face_mesh, palm, hand): with invigil_pipeline_frames_analysed_total, how often the cascades let the costly ones run.",
		}, []string{"network"}),
		analyses: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "invigil_pipeline_analyses_total",
			Help: "Frames handed to a worker, by what made the candidate due (full_rate: adaptation off; refresh: a new track, settings or a retry; change: the picture changed; deadline: a rule opens or closes at this frame; calm: the periodic look at a still picture).",
		}, []string{"trigger"}),
		framesDropped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "invigil_pipeline_frames_dropped_total",
			Help: "Frames assembled or decoded but not analyzed, by reason (superseded: a newer frame replaced it).",
		}, []string{"reason"}),
		latency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "invigil_pipeline_analysis_latency_seconds",
			Help:    "Time from a frame's last packet arriving to its observation being done (rules included).",
			Buckets: []float64{0.01, 0.025, 0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1, 1.5, 2, 3, 5},
		}),
		stageSeconds: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "invigil_pipeline_stage_seconds_total",
			Help: "Time spent per stage (depacketize, decode, thumbnail, convert, inference, rules, evidence): the per-frame cost split.",
		}, []string{"stage"}),
		workers: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "invigil_pipeline_workers",
			Help: "Analysis workers (one set of networks each).",
		}),
		workersBusy: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "invigil_pipeline_workers_busy",
			Help: "Analysis workers busy right now.",
		}),
		candidatesActive: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "invigil_pipeline_candidates_active",
			Help: "Candidates with at least one video track being analyzed.",
		}),
		tracksActive: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "invigil_pipeline_tracks_active",
			Help: "Candidate video tracks being received.",
		}),
		violations: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "invigil_pipeline_violations_total",
			Help: "Violations opened and closed, by type.",
		}, []string{"type", "event"}),
		sinkErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "invigil_pipeline_sink_errors_total",
			Help: "Violation events the sink returned an error for.",
		}),
		util: newUtilization(workers),
	}
	for _, r := range []string{dropQueueFull, dropOversized, dropLate, dropClosed} {
		m.packetsDropped.WithLabelValues(r)
	}
	for _, r := range []string{dropSuperseded, dropAwaitingKeyframe, dropDecodeError, dropIncomplete, dropTrackEnded, dropStale, dropAnalysisError} {
		m.framesDropped.WithLabelValues(r)
	}
	for _, r := range []string{triggerFullRate, triggerRefresh, triggerChange, triggerDeadline, triggerCalm} {
		m.analyses.WithLabelValues(r)
	}
	for _, r := range []string{keyStart, keyLoss, keyDecodeError, keyGap} {
		m.keyframeRequests.WithLabelValues(r)
	}
	for _, s := range []string{stageDepacketize, stageDecode, stageThumbnail, stageConvert, stageInference, stageRules, stageEvidence} {
		m.stageSeconds.WithLabelValues(s)
	}
	m.workers.Set(float64(workers))
	collectors := []prometheus.Collector{
		m.packets, m.packetsDropped, m.framesDecoded, m.framesSkipped, m.decodeErrors, m.keyframeRequests,
		m.framesAnalysed, m.carried, m.networkRuns, m.analyses, m.framesDropped, m.latency, m.stageSeconds, m.workers, m.workersBusy,
		m.candidatesActive, m.tracksActive, m.violations, m.sinkErrors,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "invigil_pipeline_worker_utilisation",
			Help: "Share of worker time spent analyzing over the last 10 s (0–1).",
		}, m.util.ratio),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "invigil_pipeline_worker_busy_seconds_total",
			Help: "Worker time spent analyzing, summed over workers.",
		}, func() float64 { return m.util.busy(time.Now()).Seconds() }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "invigil_pipeline_sink_queue",
			Help: "Violation events waiting for the sink.",
		}, sinkQueueLen),
	}
	var errs []error
	for _, c := range collectors {
		if err := reg.Register(c); err != nil {
			errs = append(errs, err)
		}
	}
	if len(errs) > 0 {
		for _, c := range collectors {
			reg.Unregister(c)
		}
		return nil, fmt.Errorf("register pipeline metrics: %w", errors.Join(errs...))
	}
	return m, nil
}

func (m *metrics) stage(name string, d time.Duration) {
	m.stageSeconds.WithLabelValues(name).Add(d.Seconds())
}

// utilization tracks how busy the workers are: total busy time (finished
// jobs plus the running ones) sampled every second into a 10 s window.
type utilization struct {
	mu        sync.Mutex
	workers   int
	since     []time.Time // per worker; zero while idle
	done      time.Duration
	window    [11]utilSample
	n, next   int
	startedAt time.Time
}

type utilSample struct {
	t    time.Time
	busy time.Duration
}

func newUtilization(workers int) *utilization {
	return &utilization{workers: workers, since: make([]time.Time, workers), startedAt: time.Now()}
}

func (u *utilization) start(worker int, now time.Time) {
	u.mu.Lock()
	u.since[worker] = now
	u.mu.Unlock()
}

func (u *utilization) stop(worker int, now time.Time) {
	u.mu.Lock()
	if !u.since[worker].IsZero() {
		u.done += now.Sub(u.since[worker])
		u.since[worker] = time.Time{}
	}
	u.mu.Unlock()
}

func (u *utilization) busy(now time.Time) time.Duration {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.busyLocked(now)
}

func (u *utilization) busyLocked(now time.Time) time.Duration {
	b := u.done
	for _, s := range u.since {
		if !s.IsZero() && now.After(s) {
			b += now.Sub(s)
		}
	}
	return b
}

// sample records the busy total; the sampler goroutine calls it each second.
func (u *utilization) sample(now time.Time) {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.window[u.next] = utilSample{now, u.busyLocked(now)}
	u.next = (u.next + 1) % len(u.window)
	if u.n < len(u.window) {
		u.n++
	}
}

// ratio is busy time over worker time across the window (since the start
// until the window has filled).
func (u *utilization) ratio() float64 {
	now := time.Now()
	u.mu.Lock()
	defer u.mu.Unlock()
	first := utilSample{u.startedAt, 0}
	if u.n == len(u.window) {
		first = u.window[u.next] // the oldest sample
	}
	span := now.Sub(first.t)
	if span <= 0 || u.workers == 0 {
		return 0
	}
	r := float64(u.busyLocked(now)-first.busy) / float64(span) / float64(u.workers)
	return min(max(r, 0), 1)
}
