package pipeline

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"invigil/detectors/rules"
)

// schedulerRun feeds every candidate a fresh frame every 10 ms and runs
// one worker whose analyses take work, for d; it returns the analyses per
// candidate.
func schedulerRun(t *testing.T, policies []rules.Policy, work, d time.Duration) ([]int, *scheduler, *prometheus.Registry) {
	t.Helper()
	reg := prometheus.NewRegistry()
	m, err := newMetrics(reg, 1, func() float64 { return 0 })
	if err != nil {
		t.Fatal(err)
	}
	s := newScheduler(m)
	pool := newMatPool(64)
	defer pool.close()
	cands := make([]*candidate, len(policies))
	index := map[*candidate]int{}
	for i, p := range policies {
		c := s.candidateLocked(fmt.Sprintf("c%d", i), p)
		c.tracks, c.gen = 1, 1
		cands[i] = c
		index[c] = i
	}
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { // the decoders
		defer wg.Done()
		tick := time.NewTicker(10 * time.Millisecond)
		defer tick.Stop()
		for {
			for _, c := range cands {
				s.publish(c, &frame{i420: pool.get(), pool: pool, gen: 1})
			}
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
		}
	}()
	counts := make([]int, len(policies))
	for {
		// Cameras never stop: every candidate has a frame whenever the
		// scheduler decides, however late the feeder runs on a busy machine.
		for _, c := range cands {
			s.mu.Lock()
			empty := c.frame == nil && !c.busy
			s.mu.Unlock()
			if empty {
				s.publish(c, &frame{i420: pool.get(), pool: pool, gen: 1})
			}
		}
		j, ok := s.next(ctx)
		if !ok {
			break
		}
		counts[index[j.c]]++
		time.Sleep(work)
		j.f.release()
		s.done(j.c)
	}
	wg.Wait()
	for _, f := range s.close() {
		f.release()
	}
	return counts, s, reg
}

// TestSchedulerFairUnderSaturation: one worker for five candidates that
// each want 5 analyses a second and one that wants 2: the five get equal
// shares, and the sixth, needing less than a share, gets its rate (max-min
// fairness).
func TestSchedulerFairUnderSaturation(t *testing.T) {
	p := mustPolicy(t, rules.PolicyRestRoom)
	slow := mustPolicy(t, rules.PolicyWaiting) // 2 fps
	policies := []rules.Policy{p, p, p, p, p, slow}
	const run = 3 * time.Second
	counts, _, reg := schedulerRun(t, policies, 60*time.Millisecond, run)
	t.Logf("analyses per candidate: %v", counts)
	lo, hi := counts[0], counts[0]
	for _, n := range counts[:5] {
		lo, hi = min(lo, n), max(hi, n)
	}
	if hi-lo > 1 || lo == 0 {
		t.Errorf("unequal shares under saturation: %v", counts)
	}
	if n := counts[5]; n > hi || n > int(run.Seconds()*slow.AnalysisFPS)+1 {
		t.Errorf("the 2 fps candidate got %d analyses, more than its rate or the others' share", n)
	}
	if lo >= int(run.Seconds()*p.AnalysisFPS) {
		t.Errorf("not saturated: %v", counts)
	}
	if n := metricValue(t, reg, "invigil_pipeline_frames_dropped_total", "reason", "superseded"); n == 0 {
		t.Error("no superseded frames counted")
	}
}

// TestSchedulerRate: with spare capacity each candidate is analysed at its
// policy rate, not faster.
func TestSchedulerRate(t *testing.T) {
	fast, slow := mustPolicy(t, rules.PolicyRestRoom), mustPolicy(t, rules.PolicyWaiting)
	counts, _, _ := schedulerRun(t, []rules.Policy{fast, slow}, time.Millisecond, 2*time.Second)
	t.Logf("analyses in 2 s at 5 and 2 fps: %v", counts)
	if counts[0] < 8 || counts[0] > 11 || counts[1] < 3 || counts[1] > 5 {
		t.Errorf("analyses %v, want about 10 and 4", counts)
	}
}
