package pipeline

import (
	"context"
	"sync"
	"time"

	"gocv.io/x/gocv"

	"invigil/detectors"
	"invigil/detectors/rules"
	"invigil/media"
)

// frame is a decoded picture waiting in a candidate's newest-frame slot.
type frame struct {
	i420  gocv.Mat
	pool  *matPool
	gen   int       // the candidate activation it belongs to
	epoch time.Time // the activation's stream time 0
	tMS   int64     // stream time: ms since epoch
	// arrival is when its last packet arrived.
	arrival time.Time
	track   *media.Track
}

func (f *frame) release() { f.pool.put(f.i420) }

// candidate is one candidate's analysis: the newest-frame slot and the
// schedule (guarded by scheduler.mu) and the detector and rules state
// (guarded by analysisMu, held by the one worker analysing it).
type candidate struct {
	identity string

	// Guarded by scheduler.mu.
	tracks        int       // active video tracks
	gen           int       // activation: incremented each time tracks goes 0 → 1
	epoch         time.Time // stream time 0 of this activation
	frame         *frame    // newest unanalysed frame
	busy          bool
	nextDue       time.Time // when the policy rate allows the next analysis
	lastServed    time.Time // when a worker last took its frame
	policy        rules.Policy
	policyVersion int
	explicit      bool // SetPolicy or Calibrate was called: keep while inactive
	calibrate     time.Time
	calibVersion  int

	analysisMu sync.Mutex
	// Guarded by analysisMu.
	engine        *rules.Engine
	engineGen     int
	engineEpoch   time.Time
	engineKey     string // makes violation keys unique across engines
	stream        *detectors.Stream
	camera        detectors.Camera // survives activations once calibrated
	appliedPolicy int
	appliedCalib  int
	lastTMS       int64
	analysedAny   bool
	lastTrack     *media.Track
	finishedGen   int // activations whose engine was finished: their late frames are dropped
}

// job is one analysis handed to a worker, with the settings that were
// current when it was scheduled.
type job struct {
	c             *candidate
	f             *frame
	policy        rules.Policy
	policyVersion int
	calibrate     time.Time
	calibVersion  int
}

// scheduler holds the candidates and hands the newest frame of each due
// candidate to the workers. A candidate is due once its policy interval has
// passed since its last analysis; among the due ones the least recently
// analysed goes first. So when the workers cannot keep up, the due
// candidates are served round robin: each gets the same share of the
// workers, or its policy rate if that is less (max-min fairness). Nothing
// queues: a candidate has at most one frame waiting, and is analysed by at
// most one worker at a time.
type scheduler struct {
	mu         sync.Mutex
	candidates map[string]*candidate
	changed    chan struct{} // closed and replaced on every change
	closed     bool
	m          *metrics
}

func newScheduler(m *metrics) *scheduler {
	return &scheduler{candidates: map[string]*candidate{}, changed: make(chan struct{}), m: m}
}

// wakeLocked tells waiting workers that something changed.
func (s *scheduler) wakeLocked() {
	close(s.changed)
	s.changed = make(chan struct{})
}

func interval(p rules.Policy) time.Duration {
	return time.Duration(float64(time.Second) / p.AnalysisFPS)
}

// publish puts a decoded frame into the candidate's slot, replacing (and
// counting) an unanalysed one.
func (s *scheduler) publish(c *candidate, f *frame) {
	s.mu.Lock()
	if s.closed || f.gen != c.gen || c.tracks == 0 {
		s.mu.Unlock()
		f.release()
		s.m.framesDropped.WithLabelValues(dropTrackEnded).Inc()
		return
	}
	old := c.frame
	c.frame = f
	if !c.busy && !c.nextDue.After(time.Now()) {
		s.wakeLocked()
	}
	s.mu.Unlock()
	if old != nil {
		old.release()
		s.m.framesDropped.WithLabelValues(dropSuperseded).Inc()
	}
}

// next blocks until a candidate is due with a frame and no worker on it,
// and hands it out; ok is false once the scheduler is closed or ctx done.
func (s *scheduler) next(ctx context.Context) (job, bool) {
	var timer *time.Timer
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	s.mu.Lock()
	for {
		if s.closed || ctx.Err() != nil {
			s.mu.Unlock()
			return job{}, false
		}
		now := time.Now()
		var best *candidate
		var wakeAt time.Time
		for _, c := range s.candidates {
			if c.frame == nil || c.busy {
				continue
			}
			if c.nextDue.After(now) {
				if wakeAt.IsZero() || c.nextDue.Before(wakeAt) {
					wakeAt = c.nextDue
				}
				continue
			}
			if best == nil || c.lastServed.Before(best.lastServed) {
				best = c
			}
		}
		if best != nil {
			j := job{c: best, f: best.frame, policy: best.policy, policyVersion: best.policyVersion,
				calibrate: best.calibrate, calibVersion: best.calibVersion}
			best.frame = nil
			best.busy = true
			// On schedule, the next analysis is one interval later (late
			// frames do not make the rate drift); behind schedule (the
			// workers are saturated, or the frames paused) it is due at
			// once, without a burst to catch up on analyses that no longer
			// matter.
			if best.nextDue.IsZero() { // first analysis of this activation
				best.nextDue = now
			}
			best.nextDue = maxTime(best.nextDue.Add(interval(best.policy)), now)
			best.lastServed = now
			s.mu.Unlock()
			return j, true
		}
		changed := s.changed
		s.mu.Unlock()
		var fire <-chan time.Time
		if !wakeAt.IsZero() {
			if timer == nil {
				timer = time.NewTimer(wakeAt.Sub(now))
			} else {
				timer.Reset(wakeAt.Sub(now))
			}
			fire = timer.C
		}
		select {
		case <-ctx.Done():
			return job{}, false
		case <-changed:
		case <-fire:
		}
		s.mu.Lock()
	}
}

// done returns a candidate to the schedule after its analysis.
func (s *scheduler) done(c *candidate) {
	s.mu.Lock()
	c.busy = false
	if c.frame != nil {
		s.wakeLocked()
	}
	s.mu.Unlock()
}

func maxTime(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// close stops handing out jobs and returns the frames still waiting.
func (s *scheduler) close() []*frame {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	s.wakeLocked()
	var frames []*frame
	for _, c := range s.candidates {
		if c.frame != nil {
			frames = append(frames, c.frame)
			c.frame = nil
		}
	}
	return frames
}
