package pipeline

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"invigil/detectors/rules"
	"invigil/motion"
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
	s := newScheduler(m, 0)
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
		s.done(j.c, analysisResult{analyzed: true})
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
	// In a synctest bubble the clock moves only when every goroutine waits,
	// so the counts are exact however busy the machine is.
	synctest.Test(t, func(t *testing.T) {
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
	})
}

// TestSchedulerRate: with spare capacity each candidate is analyzed at its
// policy rate, not faster.
func TestSchedulerRate(t *testing.T) {
	// In a synctest bubble the clock moves only when every goroutine waits,
	// so the counts are exact however busy the machine is.
	synctest.Test(t, func(t *testing.T) {
		fast, slow := mustPolicy(t, rules.PolicyRestRoom), mustPolicy(t, rules.PolicyWaiting)
		counts, _, _ := schedulerRun(t, []rules.Policy{fast, slow}, time.Millisecond, 2*time.Second)
		t.Logf("analyses in 2 s at 5 and 2 fps: %v", counts)
		if counts[0] < 8 || counts[0] > 11 || counts[1] < 3 || counts[1] > 5 {
			t.Errorf("analyses %v, want about 10 and 4", counts)
		}
	})
}

// stillThumb and movedThumb are two pictures of which the second differs
// in a block of cells, as when a person leaves.
func stillThumb() thumbnail {
	var th thumbnail
	for i := range th {
		th[i] = uint8(60 + i%97)
	}
	return th
}

func movedThumb() thumbnail {
	th := stillThumb()
	for y := 8; y < 16; y++ {
		for x := 12; x < 20; x++ {
			th[y*motion.GridW+x] += 40
		}
	}
	return th
}

// TestSchedulerAdaptiveDecisions walks one candidate through the adaptive
// rate's decisions: the first look at a new activation, the full rate
// while the picture changes and for the hold after, the calm interval for
// a still picture, a change bringing the full rate back, a rule deadline
// reached by the frame's stream time, and a failed analysis.
func TestSchedulerAdaptiveDecisions(t *testing.T) {
	reg := prometheus.NewRegistry()
	m, err := newMetrics(reg, 1, func() float64 { return 0 })
	if err != nil {
		t.Fatal(err)
	}
	const calm = time.Second
	s := newScheduler(m, calm)
	pool := newMatPool(4)
	defer pool.close()
	policy := mustPolicy(t, rules.PolicyRestRoom)
	c := s.candidateLocked("c", policy)
	c.tracks, c.gen = 1, 1
	c.resetScheduleLocked()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	var tMS int64
	publish := func(th thumbnail) {
		tMS += 1000 / testFPS
		s.publish(c, &frame{i420: pool.get(), pool: pool, gen: 1, tMS: tMS, thumb: th, hasThumb: true})
	}
	ready := func() (time.Duration, string) {
		s.mu.Lock()
		defer s.mu.Unlock()
		now := time.Now()
		at, trigger := s.readyLocked(c, now)
		return at.Sub(now), trigger
	}
	// analyze hands the waiting frame to a "worker" without waiting for the
	// policy or calm interval (the decisions are tested, not the clock).
	analyze := func(r analysisResult) {
		t.Helper()
		s.mu.Lock()
		c.nextDue, c.calmDue = time.Time{}.Add(1), time.Time{}.Add(1) // long past
		s.mu.Unlock()
		j, ok := s.next(ctx)
		if !ok || j.c != c {
			t.Fatal("no job")
		}
		j.f.release()
		s.done(c, r)
	}
	analyzed := analysisResult{analyzed: true}

	publish(stillThumb())
	if _, trigger := ready(); trigger != triggerRefresh {
		t.Errorf("a new activation's first frame: %s, want %s", trigger, triggerRefresh)
	}
	analyze(analyzed)
	hold := holdAnalyses(policy)
	for i := 1; i < hold; i++ {
		publish(stillThumb())
		if wait, trigger := ready(); trigger != triggerChange || wait > interval(policy) {
			t.Errorf("analysis %d of the hold: %s in %v, want %s within the policy interval", i, trigger, wait, triggerChange)
		}
		analyze(analyzed)
	}
	publish(stillThumb())
	if wait, trigger := ready(); trigger != triggerCalm || wait < calm/2 {
		t.Errorf("a still picture after the hold: %s in %v, want %s in about %v", trigger, wait, triggerCalm, calm)
	}
	publish(movedThumb())
	if _, trigger := ready(); trigger != triggerChange {
		t.Errorf("a changed picture: %s, want %s", trigger, triggerChange)
	}
	for i := 0; i < hold; i++ {
		analyze(analyzed)
		publish(movedThumb())
	}
	// A rule is pending: it opens at stream time tMS+500 if nothing changes.
	deadline := tMS + 500
	analyze(analysisResult{analyzed: true, deadline: deadline, hasDeadline: true})
	for tMS+1000/testFPS < deadline {
		publish(movedThumb())
		if _, trigger := ready(); trigger != triggerCalm {
			t.Fatalf("frame at %d ms before the deadline at %d: %s, want %s", tMS, deadline, trigger, triggerCalm)
		}
	}
	publish(movedThumb())
	if _, trigger := ready(); trigger != triggerDeadline {
		t.Errorf("frame at %d ms, deadline %d: %s, want %s", tMS, deadline, trigger, triggerDeadline)
	}
	analyze(analysisResult{analyzed: false}) // dropped, say as stale
	publish(movedThumb())
	if _, trigger := ready(); trigger != triggerRefresh {
		t.Errorf("after a failed analysis: %s, want %s", trigger, triggerRefresh)
	}
	analyze(analyzed)
	for _, f := range s.close() {
		f.release()
	}
	for _, trig := range []string{triggerRefresh, triggerChange, triggerDeadline} {
		if n := metricValue(t, reg, "invigil_pipeline_analyses_total", "trigger", trig); n == 0 {
			t.Errorf("no analyses counted for %s", trig)
		}
	}
}

// TestSchedulerCalmAnalysedLess: of two candidates with the same policy
// and a fresh frame every 10 ms, the one whose picture stays still is
// analyzed far less often than the one whose picture keeps changing.
func TestSchedulerCalmAnalysedLess(t *testing.T) {
	// In a synctest bubble the clock moves only when every goroutine waits,
	// so the counts are exact however busy the machine is.
	synctest.Test(t, func(t *testing.T) {
		reg := prometheus.NewRegistry()
		m, err := newMetrics(reg, 1, func() float64 { return 0 })
		if err != nil {
			t.Fatal(err)
		}
		const calm = 500 * time.Millisecond
		s := newScheduler(m, calm)
		pool := newMatPool(16)
		defer pool.close()
		policy := mustPolicy(t, rules.PolicyRestRoom)
		still, moving := s.candidateLocked("still", policy), s.candidateLocked("moving", policy)
		for _, c := range []*candidate{still, moving} {
			c.tracks, c.gen = 1, 1
			c.resetScheduleLocked()
		}
		const run = 3 * time.Second
		ctx, cancel := context.WithTimeout(context.Background(), run)
		defer cancel()
		var wg sync.WaitGroup
		wg.Add(1)
		go func() { // the decoders
			defer wg.Done()
			tick := time.NewTicker(10 * time.Millisecond)
			defer tick.Stop()
			for i := 0; ; i++ {
				s.publish(still, &frame{i420: pool.get(), pool: pool, gen: 1, tMS: int64(i * 10), thumb: stillThumb(), hasThumb: true})
				th := stillThumb()
				if i%2 == 1 {
					th = movedThumb()
				}
				s.publish(moving, &frame{i420: pool.get(), pool: pool, gen: 1, tMS: int64(i * 10), thumb: th, hasThumb: true})
				select {
				case <-ctx.Done():
					return
				case <-tick.C:
				}
			}
		}()
		counts := map[*candidate]int{}
		for {
			j, ok := s.next(ctx)
			if !ok {
				break
			}
			counts[j.c]++
			j.f.release()
			s.done(j.c, analysisResult{analyzed: true})
		}
		wg.Wait()
		for _, f := range s.close() {
			f.release()
		}
		full := int(run.Seconds() * policy.AnalysisFPS)
		t.Logf("in %v at %g fps: still picture analyzed %d times, changing picture %d", run, policy.AnalysisFPS, counts[still], counts[moving])
		// The still one: its hold after the first look, then one look per calm
		// interval.
		if limit := holdAnalyses(policy) + int(run/calm) + 1; counts[still] > limit {
			t.Errorf("still picture analyzed %d times, want at most %d", counts[still], limit)
		}
		if counts[moving] < full*2/3 || counts[moving] > full+1 {
			t.Errorf("changing picture analyzed %d times, want about %d (the policy rate)", counts[moving], full)
		}
		if n := metricValue(t, reg, "invigil_pipeline_analyses_total", "trigger", triggerCalm); n == 0 {
			t.Error("no calm analyses counted")
		}
	})
}

// TestSchedulerDeadlineFirst: with several candidates due, the one whose
// frame has reached its rules' deadline (a violation about to open) goes
// ahead of the ones waiting longer, once per deadline; otherwise the one
// served longest ago goes first.
func TestSchedulerDeadlineFirst(t *testing.T) {
	m, err := newMetrics(prometheus.NewRegistry(), 1, func() float64 { return 0 })
	if err != nil {
		t.Fatal(err)
	}
	s := newScheduler(m, time.Second)
	pool := newMatPool(8)
	defer pool.close()
	policy := mustPolicy(t, rules.PolicyRestRoom)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var cands []*candidate
	for i := range 3 {
		c := s.candidateLocked(fmt.Sprintf("c%d", i), policy)
		c.tracks, c.gen = 1, 1
		cands = append(cands, c)
	}
	const none = -1
	for _, step := range []struct {
		frameMS, deadline, met int64
		want                   string
	}{
		{800, none, none, "c0"}, // no deadline: the one served longest ago
		{600, 800, none, "c0"},  // c2's frame is before its deadline
		{800, 800, none, "c2"},  // at it: c2 first
		{1000, 800, none, "c2"}, // past it
		{1000, 800, 800, "c0"},  // this deadline was already met ahead of turn
		{1200, 1200, 800, "c2"}, // a new deadline
	} {
		base := time.Now().Add(-time.Minute)
		for i, c := range cands {
			s.mu.Lock()
			c.resetScheduleLocked()
			c.refresh = false
			c.lastServed = base.Add(time.Duration(i) * time.Second) // c0 longest ago
			c.hasDeadline, c.deadline = false, 0
			if c == cands[2] && step.deadline != none {
				c.hasDeadline, c.deadline = true, step.deadline
			}
			c.hasMet, c.metDeadline = step.met != none, step.met
			s.mu.Unlock()
			s.publish(c, &frame{i420: pool.get(), pool: pool, gen: 1, tMS: step.frameMS})
		}
		j, ok := s.next(ctx)
		if !ok {
			t.Fatal("no job")
		}
		if j.c.identity != step.want {
			t.Errorf("frames at %d ms, c2's deadline %d (met %d): %s served first, want %s", step.frameMS, step.deadline, step.met, j.c.identity, step.want)
		}
		j.f.release()
		s.done(j.c, analysisResult{analyzed: true, deadline: j.c.deadline, hasDeadline: j.c.hasDeadline})
	}
	for _, f := range s.close() {
		f.release()
	}
}
