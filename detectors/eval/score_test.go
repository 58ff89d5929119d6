package eval

import (
	"math"
	"testing"

	"invigil/detectors/rules"
)

func iv(start, end int64) Interval {
	return Interval{Type: rules.FaceOffScreen, StartMS: start, EndMS: end}
}

func TestOverlapsHalfOfShorter(t *testing.T) {
	cases := []struct {
		name string
		a, b Interval
		want bool
	}{
		{"identical", iv(0, 1000), iv(0, 1000), true},
		{"exactly half of the shorter", iv(0, 1000), iv(500, 3000), true},                 // overlap 500 of 1000
		{"just under half", iv(0, 1000), iv(501, 3000), false},                            // 499 of 1000
		{"just over half", iv(0, 1000), iv(499, 3000), true},                              // 501 of 1000
		{"shorter inside longer", iv(0, 10000), iv(4000, 5000), true},                     // all of the shorter
		{"half of the longer is not needed", iv(0, 10000), iv(9000, 11000), true},         // 1000 of 2000
		{"under half of shorter, far under longer", iv(0, 10000), iv(9200, 11000), false}, // 800 of 1800
		{"touching", iv(0, 1000), iv(1000, 2000), false},
		{"disjoint", iv(0, 1000), iv(5000, 6000), false},
		{"empty interval", iv(500, 500), iv(0, 1000), false},
		{"reversed interval", iv(900, 100), iv(0, 1000), false},
	}
	for _, c := range cases {
		if got := Overlaps(c.a, c.b); got != c.want {
			t.Errorf("%s: Overlaps(%v, %v) = %v, want %v", c.name, c.a, c.b, got, c.want)
		}
		if got := Overlaps(c.b, c.a); got != c.want {
			t.Errorf("%s: not symmetric", c.name)
		}
	}
}

func TestMatchOneDetectionSpanningTwoTruths(t *testing.T) {
	truth := []Interval{iv(2000, 8000), iv(12000, 18000)}
	det := []Interval{iv(1000, 20000)} // overlaps each truth wholly
	m := Match(truth, det)
	if n := matchedCount(m); n != 1 {
		t.Fatalf("one detection matched %d truths (%v); each is used at most once", n, m)
	}
	// The nearer start wins the pairing (onset measured against it).
	if m[0] != 0 || m[1] != -1 {
		t.Errorf("matched %v, want the first truth", m)
	}
}

func TestMatchTwoDetectionsForOneTruth(t *testing.T) {
	truth := []Interval{iv(0, 10000)}
	det := []Interval{iv(0, 4000), iv(6000, 10000)} // the violation flapped
	m := Match(truth, det)
	if matchedCount(m) != 1 {
		t.Fatalf("matched %v, want exactly one pair", m)
	}
	s := Score([]VideoResult{{Policy: "interview", Truth: truth, Detected: dets(det...)}}, PolicyMinMS)[0]
	if s.TP != 1 || s.Detected != 2 || s.Precision != 0.5 || s.Recall != 1 {
		t.Errorf("score %+v: the second half of a flapping violation is a false alarm", s)
	}
}

func TestMatchIsMaximal(t *testing.T) {
	// A greedy pass would give D0 (the nearest start) to T0 and leave T1,
	// whose only match is D0, unmatched; the matching must find T0–D1 and
	// T1–D0.
	truth := []Interval{iv(0, 4000), iv(3000, 7000)}
	det := []Interval{iv(500, 5000), iv(1500, 3400)}
	if !Overlaps(truth[0], det[1]) || Overlaps(truth[1], det[1]) {
		t.Fatal("test intervals do not make the intended graph")
	}
	m := Match(truth, det)
	if matchedCount(m) != 2 {
		t.Fatalf("matched %v, want both truths", m)
	}
}

func TestMatchNeedsSameType(t *testing.T) {
	truth := []Interval{{Type: rules.HeadTurn, StartMS: 0, EndMS: 5000}}
	det := []Interval{{Type: rules.FaceOffScreen, StartMS: 0, EndMS: 5000}}
	if m := Match(truth, det); m[0] != -1 {
		t.Errorf("a face_off_screen matched a head_turn")
	}
}

func TestScore(t *testing.T) {
	results := []VideoResult{
		{Scenario: "a", Policy: "interview", Truth: []Interval{
			{rules.FaceOffScreen, 6000, 12000}, {rules.FaceOffScreen, 18000, 24000},
			{rules.Distance, 6000, 14000},
		}, Detected: []Detection{
			{Interval: Interval{rules.FaceOffScreen, 6000, 12100}},
			{Interval: Interval{rules.FaceOffScreen, 18400, 24000}},
			{Interval: Interval{rules.HeadTurn, 1000, 4000}}, // a false alarm
		}},
		{Scenario: "b", Policy: "waiting", Truth: []Interval{{rules.FaceOffScreen, 5000, 10000}}, Detected: []Detection{
			{Interval: Interval{rules.FaceOffScreen, 5200, 10000}},
		}},
	}
	byType := map[rules.Type]TypeScore{}
	for _, s := range Score(results, PolicyMinMS) {
		byType[s.Type] = s
	}
	fos := byType[rules.FaceOffScreen]
	if fos.Truth != 3 || fos.Detected != 3 || fos.TP != 3 || fos.Precision != 1 || fos.Recall != 1 {
		t.Errorf("face_off_screen %+v", fos)
	}
	// Onsets 0, 400 and 200 ms; alerts add 2 s (interview) or 3 s (waiting).
	if !near(fos.OnsetMeanMS, 200) || fos.OnsetMaxMS != 400 {
		t.Errorf("onset mean %g max %g, want 200 and 400", fos.OnsetMeanMS, fos.OnsetMaxMS)
	}
	if !near(fos.ReportMeanMS, (2000+2400+3200)/3.0) || fos.ReportMaxMS != 3200 {
		t.Errorf("time to alert mean %g max %g", fos.ReportMeanMS, fos.ReportMaxMS)
	}
	if d := byType[rules.Distance]; d.Recall != 0 || d.Precision != 1 || d.Detected != 0 {
		t.Errorf("distance %+v: a missed event with no detections is recall 0, precision undefined (1)", d)
	}
	if h := byType[rules.HeadTurn]; h.Precision != 0 || h.Recall != 1 || h.Truth != 0 {
		t.Errorf("head_turn %+v: a false alarm with no true events is precision 0", h)
	}
	if got := Shortfalls(Score(results, PolicyMinMS)); len(got) != 2 {
		t.Errorf("shortfalls %q, want head_turn and distance", got)
	}
}

func matchedCount(m []int) int {
	n := 0
	for _, j := range m {
		if j >= 0 {
			n++
		}
	}
	return n
}

func dets(ivs ...Interval) []Detection {
	out := make([]Detection, len(ivs))
	for i, v := range ivs {
		out[i] = Detection{Interval: v}
	}
	return out
}

func near(a, b float64) bool { return math.Abs(a-b) < 1e-6 }
