package pipeline

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"gocv.io/x/gocv"

	"invigil/detectors"
	"invigil/detectors/rules"
	"invigil/media"
	"invigil/motion"
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
	// thumb is the frame's luma thumbnail, when hasThumb: what the
	// scheduler compares to tell a still picture from a changing one.
	thumb    thumbnail
	hasThumb bool
}

func (f *frame) release() { f.pool.put(f.i420) }

// candidate is one candidate's analysis: the newest-frame slot and the
// schedule (guarded by scheduler.mu) and the detector and rules state
// (guarded by analysisMu, held by the one worker analyzing it).
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

	// The adaptive rate (see scheduler), guarded by scheduler.mu.
	ref         thumbnail // of the frame last handed to a worker
	haveRef     bool
	hold        int       // analyses still due at the full rate after the picture changed
	refresh     bool      // the next analysis comes at the full rate: a new activation, new settings, a failed analysis
	calmDue     time.Time // when a still picture is looked at again
	deadline    int64     // stream time at which a rule opens or closes if nothing changes
	hasDeadline bool
	// metDeadline is the deadline last handed out ahead of its turn (see
	// urgentLocked); hasMet is false before any.
	metDeadline int64
	hasMet      bool
	fullAt      time.Time // when the detectors last ran (a job that was not carried)

	// snapshot is the newest analyzed observation (Pipeline.Latest):
	// written by the worker analyzing the candidate, read by anyone.
	snapshot atomic.Pointer[Snapshot]

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
	// lastObs is the last observation the detectors made, repeated for
	// carried analyses; hasLastObs is false until there is one for the
	// current stream and policy.
	lastObs     rules.Observation
	hasLastObs  bool
	lastTrack   *media.Track
	finishedGen int // activations whose engine was finished: their late frames are dropped

	// audioTracks counts live microphone tracks; audioGone is when the
	// last one ended (UnixNano, 0: never had one). Atomic: the audio and
	// video goroutines read them without a common lock.
	audioTracks atomic.Int32
	audioGone   atomic.Int64
	// audioLive counts the microphone tracks that are sending (not ended,
	// not stalled); mic is the clip ring of the newest of them (nil
	// without one). Written by the audio goroutines, read by anyone.
	audioLive atomic.Int32
	mic       atomic.Pointer[micRing]
	// lastPicture is the newest analyzed frame, kept while a microphone is
	// live, for the evidence image of the audio rules (analysisMu).
	lastPicture keptFrame
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
	// carry: the picture is unchanged since the detectors last ran, so the
	// worker may repeat their last observation (see carryLimit).
	carry bool
}

// carryLimit bounds how long a still picture is carried: the detectors
// look again at least this often, a safety net for changes too slow or too
// small for the change detector.
const carryLimit = 5 * time.Second

// scheduler holds the candidates and hands the newest frame of each due
// candidate to the workers. A candidate is due once its policy interval has
// passed since its last analysis; among the due ones the least recently
// analyzed goes first. So when the workers cannot keep up, the due
// candidates are served round robin: each gets the same share of the
// workers, or its policy rate if that is less (max-min fairness). Nothing
// queues: a candidate has at most one frame waiting, and is analyzed by at
// most one worker at a time.
//
// The rate adapts to the picture. Analyzing a still picture again tells
// nothing new, and most of the time candidates sit still, so a candidate
// is analyzed at the policy's rate only while its picture changes (each
// decoded frame's thumbnail against the one last analyzed) and for a few
// analyses after, enough for the detectors that run on every Nth analysis
// (faces, hands) to see the new picture. Otherwise it is looked at once
// per calm interval, and once more when its first frame at or past the
// rules' next deadline arrives (a pending condition opening after its
// minimum duration, an open one closing): the rules work on stream time,
// so a violation opens at the same frame time as at the full rate.
// Under saturation the calm candidates, wanting little, get their rate
// first and the changing ones share the rest; ahead of all of them goes a
// candidate whose frame has reached its rules' deadline (urgentLocked),
// so a violation opens when it should and not a round of the workers
// later.
type scheduler struct {
	mu         sync.Mutex
	candidates map[string]*candidate
	changed    chan struct{} // closed and replaced on every change
	closed     bool
	m          *metrics
	// calm is the least interval between analyses of a still picture; 0
	// analyses every candidate at its policy rate.
	calm time.Duration
}

func newScheduler(m *metrics, calm time.Duration) *scheduler {
	return &scheduler{candidates: map[string]*candidate{}, changed: make(chan struct{}), m: m, calm: max(calm, 0)}
}

// Why a candidate's frame was handed out, the trigger label of
// invigil_pipeline_analyses_total.
const (
	triggerFullRate = "full_rate" // the adaptive rate is off
	triggerRefresh  = "refresh"   // a new activation, new settings, calibration, or the last analysis failed
	triggerChange   = "change"    // the picture changed (or just did)
	triggerDeadline = "deadline"  // a rule opens or closes at this frame's time if nothing changed
	triggerCalm     = "calm"      // a still picture, looked at once per calm interval
)

// holdAnalyses is how many analyses follow a change at the full rate:
// enough for the detectors that run every Nth analysis to see it.
func holdAnalyses(p rules.Policy) int { return max(p.FaceEvery, p.HandsEvery, 2) }

// readyLocked says when the candidate's waiting frame may be analyzed, and
// why (c.frame set).
func (s *scheduler) readyLocked(c *candidate, now time.Time) (time.Time, string) {
	switch {
	case s.calm <= 0:
		return c.nextDue, triggerFullRate
	case c.refresh || now.Before(c.calibrate):
		return c.nextDue, triggerRefresh
	case c.hold > 0:
		return c.nextDue, triggerChange
	case c.hasDeadline && c.frame.tMS >= c.deadline:
		return c.nextDue, triggerDeadline
	}
	return maxTime(c.nextDue, c.calmDue), triggerCalm
}

// urgentLocked says whether the candidate's waiting frame is at or past
// its rules' deadline, not yet handed out for it: the analysis that opens
// a pending violation (or closes a clearing one). It goes ahead of the
// others' turns once per deadline, so a deadline the rules keep (the
// condition changed meanwhile) cannot claim the workers for itself.
func (c *candidate) urgentLocked() bool {
	return c.hasDeadline && c.frame.tMS >= c.deadline && !(c.hasMet && c.metDeadline == c.deadline)
}

// resetScheduleLocked starts a new activation's schedule (scheduler.mu held).
func (c *candidate) resetScheduleLocked() {
	c.nextDue, c.calmDue, c.fullAt = time.Time{}, time.Time{}, time.Time{}
	c.haveRef, c.hold, c.hasDeadline, c.hasMet = false, 0, false, false
	c.refresh = true
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
	if !f.hasThumb || !c.haveRef || motion.PictureChanged(&c.ref, &f.thumb) {
		c.hold = holdAnalyses(c.policy)
	}
	if now := time.Now(); !c.busy {
		if at, _ := s.readyLocked(c, now); !at.After(now) {
			s.wakeLocked()
		}
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
		var bestTrigger string
		var bestUrgent bool
		var wakeAt time.Time
		for _, c := range s.candidates {
			if c.frame == nil || c.busy {
				continue
			}
			at, trigger := s.readyLocked(c, now)
			if at.After(now) {
				if wakeAt.IsZero() || at.Before(wakeAt) {
					wakeAt = at
				}
				continue
			}
			urgent := c.urgentLocked()
			if best == nil || (urgent && !bestUrgent) || (urgent == bestUrgent && c.lastServed.Before(best.lastServed)) {
				best, bestTrigger, bestUrgent = c, trigger, urgent
			}
		}
		if best != nil {
			j := job{c: best, f: best.frame, policy: best.policy, policyVersion: best.policyVersion,
				calibrate: best.calibrate, calibVersion: best.calibVersion}
			// A calm or deadline analysis sees the picture the detectors saw
			// last (no change since): it only needs the rules to move on.
			j.carry = (bestTrigger == triggerCalm || bestTrigger == triggerDeadline) &&
				!best.fullAt.IsZero() && now.Sub(best.fullAt) < carryLimit
			if bestUrgent {
				best.metDeadline, best.hasMet = best.deadline, true
			}
			best.frame = nil
			best.busy = true
			// On schedule, the next analysis is one interval later (late
			// frames do not make the rate drift); behind schedule (the
			// workers are saturated, the frames paused, or the picture
			// was still) it is due at once, without a burst to catch up on
			// analyses that no longer matter.
			if best.nextDue.IsZero() { // first analysis of this activation
				best.nextDue = now
			}
			best.nextDue = maxTime(best.nextDue.Add(interval(best.policy)), now)
			best.calmDue = now.Add(s.calm)
			best.lastServed = now
			// Later frames are compared with the last one the detectors
			// saw, so slow drifts add up to a change.
			if !j.carry {
				best.ref, best.haveRef = j.f.thumb, j.f.hasThumb
				best.fullAt = now
			}
			best.hold = max(best.hold-1, 0)
			best.refresh = false
			s.m.analyses.WithLabelValues(bestTrigger).Inc()
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

// analysisResult is what the schedule needs to know of one analysis.
type analysisResult struct {
	// analyzed is false when the frame was dropped instead.
	analyzed bool
	// The rules' next deadline in stream time (rules.Engine.NextDeadline).
	deadline    int64
	hasDeadline bool
}

// done returns a candidate to the schedule after its analysis.
func (s *scheduler) done(c *candidate, r analysisResult) {
	s.mu.Lock()
	c.busy = false
	if r.analyzed {
		c.deadline, c.hasDeadline = r.deadline, r.hasDeadline
	} else {
		c.refresh = true // look again at the next frame rather than in a calm interval
	}
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
