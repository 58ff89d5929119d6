package eval

import (
	"sort"

	"invigil/detectors/rules"
)

// Overlaps reports whether a detected interval matches a true one: their
// overlap is at least half of the shorter of the two.
func Overlaps(a, b Interval) bool {
	shorter := min(a.EndMS-a.StartMS, b.EndMS-b.StartMS)
	if shorter <= 0 {
		return false
	}
	ov := min(a.EndMS, b.EndMS) - max(a.StartMS, b.StartMS)
	return ov > 0 && 2*ov >= shorter
}

// Match pairs true and detected intervals of one type in one video, each
// used at most once, as many pairs as possible (a maximum bipartite
// matching, so one long detection spanning two truths counts once and the
// other truth is missed). It returns matched[i] = index into detected for
// truth i, or -1.
func Match(truth, detected []Interval) []int {
	edges := make([][]int, len(truth))
	for i, t := range truth {
		for j, d := range detected {
			if t.Type == d.Type && Overlaps(t, d) {
				edges[i] = append(edges[i], j)
			}
		}
		// Prefer the detection that starts nearest the truth, so onset
		// delays are measured against the right one.
		sort.SliceStable(edges[i], func(a, b int) bool {
			return abs64(detected[edges[i][a]].StartMS-t.StartMS) < abs64(detected[edges[i][b]].StartMS-t.StartMS)
		})
	}
	owner := make([]int, len(detected)) // detection → truth
	for j := range owner {
		owner[j] = -1
	}
	var try func(i int, seen []bool) bool
	try = func(i int, seen []bool) bool {
		for _, j := range edges[i] {
			if seen[j] {
				continue
			}
			seen[j] = true
			if owner[j] < 0 || try(owner[j], seen) {
				owner[j] = i
				return true
			}
		}
		return false
	}
	for i := range truth {
		try(i, make([]bool, len(detected)))
	}
	matched := make([]int, len(truth))
	for i := range matched {
		matched[i] = -1
	}
	for j, i := range owner {
		if i >= 0 {
			matched[i] = j
		}
	}
	return matched
}

func abs64(x int64) int64 {
	if x < 0 {
		return -x
	}
	return x
}

// Detection is one violation the analyzer reported.
type Detection struct {
	Interval
	Confidence float64 `json:"confidence"`
}

// VideoResult is the truth and the detections of one scenario video.
type VideoResult struct {
	Scenario string      `json:"scenario"`
	Policy   string      `json:"policy"`
	Truth    []Interval  `json:"truth"`
	Detected []Detection `json:"detected"`
	// Frames are the per-frame records, kept for diagnosis.
	Frames []FrameSummary `json:"-"`
}

// FrameSummary is the part of a frame record the report prints when a
// type falls short.
type FrameSummary struct {
	TMS   int64
	Faces []FaceSummary
	Hands int
}

// FaceSummary is one face of a frame.
type FaceSummary struct {
	Box                         [4]int
	Score, Yaw, Pitch, Distance float64
}

// TypeScore is the event-level score of one violation type over the set.
type TypeScore struct {
	Type      rules.Type
	Truth     int // true events
	Detected  int // detected events
	TP        int // matched pairs
	Precision float64
	Recall    float64
	// Onset: detected start − true start over matched pairs, in ms (the
	// rules date a violation from when its condition began).
	OnsetMeanMS, OnsetMaxMS float64
	// Report: when the violation is raised (detected start + the rule's
	// minimum duration) − true start, in ms: what a proctor waits.
	ReportMeanMS, ReportMaxMS float64
}

// Score computes per-type precision, recall and onset delays over all
// videos. minMS gives a rule's minimum duration under a policy.
func Score(results []VideoResult, minMS func(policy string, t rules.Type) int64) []TypeScore {
	byType := map[rules.Type]*TypeScore{}
	onsets := map[rules.Type][]float64{}
	reports := map[rules.Type][]float64{}
	for _, t := range rules.AllTypes {
		byType[t] = &TypeScore{Type: t}
	}
	for _, r := range results {
		for _, t := range rules.AllTypes {
			var truth, det []Interval
			for _, iv := range r.Truth {
				if iv.Type == t {
					truth = append(truth, iv)
				}
			}
			for _, d := range r.Detected {
				if d.Type == t {
					det = append(det, d.Interval)
				}
			}
			s := byType[t]
			s.Truth += len(truth)
			s.Detected += len(det)
			for i, j := range Match(truth, det) {
				if j < 0 {
					continue
				}
				s.TP++
				on := float64(det[j].StartMS - truth[i].StartMS)
				onsets[t] = append(onsets[t], on)
				reports[t] = append(reports[t], on+float64(minMS(r.Policy, t)))
			}
		}
	}
	out := make([]TypeScore, 0, len(rules.AllTypes))
	for _, t := range rules.AllTypes {
		s := byType[t]
		s.Precision, s.Recall = 1, 1
		if s.Detected > 0 {
			s.Precision = float64(s.TP) / float64(s.Detected)
		}
		if s.Truth > 0 {
			s.Recall = float64(s.TP) / float64(s.Truth)
		}
		s.OnsetMeanMS, s.OnsetMaxMS = meanMax(onsets[t])
		s.ReportMeanMS, s.ReportMaxMS = meanMax(reports[t])
		out = append(out, *s)
	}
	return out
}

func meanMax(xs []float64) (mean, maxv float64) {
	if len(xs) == 0 {
		return 0, 0
	}
	maxv = xs[0]
	for _, x := range xs {
		mean += x
		maxv = max(maxv, x)
	}
	return mean / float64(len(xs)), maxv
}

// PolicyMinMS is minMS for Score from the built-in policies (phone_call's
// is its minimum without speech: the videos are silent).
func PolicyMinMS(policy string, t rules.Type) int64 {
	p, err := rules.DefaultPolicy(policy)
	if err != nil {
		return 0
	}
	return silentMinMS(p, t)
}
