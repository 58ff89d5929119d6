package pipeline

import (
	"context"
	"sync/atomic"
	"time"

	"gocv.io/x/gocv"

	"invigil/detectors"
	"invigil/detectors/rules"
	"invigil/vpx"
)

// worker owns one set of networks and analyses one frame at a time.
type worker struct {
	id  int
	p   *Pipeline
	a   *detectors.Analyzer
	bgr gocv.Mat
	// runs are the analyzer's network runs as last counted into the
	// metrics.
	runs []detectors.NetworkRuns
	// thread is the OS thread the worker runs on once it lowered its
	// priority (0 before, or where threads have no priority of their own).
	thread atomic.Int64
}

// countRuns adds the networks' runs since the last count to the metrics.
func (w *worker) countRuns(m *metrics) {
	now := w.a.Networks()
	for i, n := range detectors.SubtractRuns(now, w.runs) {
		if n.Runs > 0 {
			m.networkRuns.WithLabelValues(now[i].Name).Add(float64(n.Runs))
		}
	}
	w.runs = now
}

func (w *worker) close() {
	w.a.Close()
	w.bgr.Close()
}

func (w *worker) run(ctx context.Context) {
	defer w.p.wg.Done()
	tid, err := lowerWorkerPriority()
	if err != nil {
		w.p.log.Warn("cannot lower the analysis worker's priority; media and analysis compete as equals", "err", err)
	}
	w.thread.Store(int64(tid))
	m := w.p.m
	for {
		j, ok := w.p.sched.next(ctx)
		if !ok {
			return
		}
		m.util.start(w.id, time.Now())
		m.workersBusy.Inc()
		r := w.process(ctx, j)
		m.workersBusy.Dec()
		m.util.stop(w.id, time.Now())
		w.p.sched.done(j.c, r)
	}
}

// process analyses one frame; the result tells the scheduler when the
// rules next need a look.
func (w *worker) process(ctx context.Context, j job) (r analysisResult) {
	p, m, c, f := w.p, w.p.m, j.c, j.f
	defer f.release()
	c.analysisMu.Lock()
	defer c.analysisMu.Unlock()
	if f.gen <= c.finishedGen {
		m.framesDropped.WithLabelValues(dropTrackEnded).Inc()
		return r
	}
	if c.engine != nil && c.engineGen != f.gen {
		p.finishEngineLocked(ctx, c) // a previous activation nobody finished
	}
	if c.engine == nil {
		if err := p.startEngineLocked(c, j); err != nil {
			p.log.Error("cannot start rules", "identity", c.identity, "err", err)
			m.framesDropped.WithLabelValues(dropAnalysisError).Inc()
			return r
		}
	} else {
		p.applySettingsLocked(ctx, c, j)
	}
	if c.analysedAny && f.tMS <= c.lastTMS {
		m.framesDropped.WithLabelValues(dropStale).Inc()
		return r
	}

	start := time.Now()
	var obs rules.Observation
	carried := false
	if j.carry && c.hasLastObs {
		obs, carried = c.stream.Carry(c.lastObs, f.tMS)
	}
	converted := false
	if !carried {
		if err := vpx.I420ToBGR(f.i420, &w.bgr); err != nil {
			p.log.Warn("cannot convert frame", "identity", c.identity, "err", err)
			m.framesDropped.WithLabelValues(dropAnalysisError).Inc()
			return r
		}
		converted = true
		t := time.Now()
		m.stage(stageConvert, t.Sub(start))
		start = t
		var err error
		obs, err = w.a.Observe(w.bgr, f.tMS, c.stream)
		m.stage(stageInference, time.Since(start))
		w.countRuns(m)
		if err != nil {
			p.log.Warn("cannot analyze frame", "identity", c.identity, "t_ms", f.tMS, "err", err)
			m.framesDropped.WithLabelValues(dropAnalysisError).Inc()
			return r
		}
		c.lastObs, c.hasLastObs = obs, true
	} else {
		m.carried.Inc()
	}
	observed := time.Now()
	events := c.engine.Observe(&obs)
	events = append(events, p.audioMissingLocked(c, f.tMS)...)
	r.analyzed = true
	r.deadline, r.hasDeadline = c.engine.NextDeadline()
	c.snapshot.Store(newSnapshot(c, f, &obs))
	if c.mic.Load() != nil {
		// The audio rules' evidence image (micEvidenceLocked).
		c.lastPicture.keep(f.i420, &obs)
	} else if c.lastPicture.i420 != nil {
		c.lastPicture = keptFrame{}
	}
	done := time.Now()
	m.stage(stageRules, done.Sub(observed))
	c.lastTMS, c.analysedAny, c.lastTrack = f.tMS, true, f.track
	m.framesAnalysed.Inc()
	m.latency.Observe(done.Sub(f.arrival).Seconds())

	for _, ev := range events {
		var evidence []byte
		if ev.Kind == rules.Opened {
			t := time.Now()
			if !converted { // a carried analysis: the picture is needed now
				if err := vpx.I420ToBGR(f.i420, &w.bgr); err != nil {
					p.log.Warn("cannot convert frame for evidence", "identity", c.identity, "err", err)
				}
				converted = true
			}
			var err error
			evidence, err = detectors.Evidence(w.bgr, &obs, ev.Violation)
			if err != nil {
				p.log.Warn("no evidence picture", "identity", c.identity, "err", err)
			}
			m.stage(stageEvidence, time.Since(t))
		}
		p.emitWith(ctx, c, ev, evidence, p.micEvidenceLocked(c, ev, false))
	}
	return r
}
