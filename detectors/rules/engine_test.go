package rules

import (
	"strings"
	"testing"
)

// frame builds observations at 5 fps for scripted scenes.
type scene struct {
	faces      int
	yaw, pitch float64
	distance   float64
	hands      int
	dark       bool
	finger     bool
	offscreen  bool
}

var normal = scene{faces: 1, distance: 50, hands: 2}

func (s scene) observe(t int64) *Observation {
	o := &Observation{TMS: t, Width: 640, Height: 480, Brightness: 120, Contrast: 40, Sharpness: 20, HandsChecked: true, HandsFresh: true}
	if s.dark {
		o.Brightness, o.Contrast, o.Sharpness = 5, 2, 0.5
		return o
	}
	if s.finger {
		// Measured on a defocused finger over a lens: light gets through,
		// edges do not.
		o.Brightness, o.Contrast, o.Sharpness = 51, 6.6, 0.9
		return o
	}
	for i := 0; i < s.faces; i++ {
		box := Rect{X: 250 + 150*float64(i), Y: 100, W: 140, H: 140}
		if i > 0 {
			box = Rect{X: 20 + 90*float64(i), Y: 60, W: 60, H: 60}
		}
		if s.offscreen && i == 0 {
			box.X = 560 // 80 of 140 px outside a 640-wide frame
		}
		o.Faces = append(o.Faces, Face{Box: box, Score: 0.9, YawDeg: s.yaw, PitchDeg: s.pitch, DistanceCM: s.distance})
	}
	for i := 0; i < s.hands; i++ {
		o.Hands = append(o.Hands, Hand{Box: Rect{X: 100 + 300*float64(i), Y: 380, W: 80, H: 80}, Score: 0.9})
	}
	return o
}

type segment struct {
	ms int64
	s  scene
}

// play runs the segments at 5 fps and returns all events, with the engine
// finished at the end.
func play(t *testing.T, policy string, segs ...segment) []Event {
	t.Helper()
	p, err := DefaultPolicy(policy)
	if err != nil {
		t.Fatal(err)
	}
	e, err := NewEngine(p)
	if err != nil {
		t.Fatal(err)
	}
	var events []Event
	var now int64
	for _, sg := range segs {
		for end := now + sg.ms; now < end; now += 200 {
			events = append(events, e.Observe(sg.s.observe(now))...)
		}
	}
	return append(events, e.Finish(now)...)
}

func closedOf(events []Event, typ Type) []Violation {
	var out []Violation
	for _, ev := range events {
		if ev.Kind == Closed && ev.Violation.Type == typ {
			out = append(out, ev.Violation)
		}
	}
	return out
}

func onlyTypes(t *testing.T, events []Event, want ...Type) {
	t.Helper()
	allowed := map[Type]bool{}
	for _, w := range want {
		allowed[w] = true
	}
	for _, ev := range events {
		if !allowed[ev.Violation.Type] {
			t.Errorf("unexpected %s %s (%s)", ev.Kind, ev.Violation.Type, ev.Violation.Reason)
		}
	}
}

func TestFaceLeavesBriefly(t *testing.T) {
	away := normal
	away.faces = 0
	ev := play(t, PolicyRestRoom, segment{4000, normal}, segment{1000, away}, segment{4000, normal})
	onlyTypes(t, ev)
}

func TestFaceLeavesAndReturns(t *testing.T) {
	away := normal
	away.faces, away.hands = 0, 0
	ev := play(t, PolicyRestRoom, segment{4000, normal}, segment{5000, away}, segment{4000, normal})
	onlyTypes(t, ev, FaceOffScreen) // the hands leave with the face: one event
	got := closedOf(ev, FaceOffScreen)
	if len(got) != 1 {
		t.Fatalf("%d face_off_screen violations, want 1: %+v", len(got), ev)
	}
	v := got[0]
	if v.StartMS != 4000 || v.EndMS != 9000 || v.OpenedMS != 6000 || v.Confidence != 1 {
		t.Errorf("violation %+v: want start 4000, end 9000, opened 6000, confidence 1", v)
	}
	if v.Details["face_count"] != 0 || !strings.Contains(v.Reason, "no face") {
		t.Errorf("details %v reason %q", v.Details, v.Reason)
	}
}

func TestNoFlapping(t *testing.T) {
	away := normal
	away.faces, away.hands = 0, 0
	// A single spurious detection inside a long absence must neither close
	// the violation nor open a second one.
	ev := play(t, PolicyRestRoom, segment{2000, normal}, segment{3000, away},
		segment{200, normal}, segment{3000, away}, segment{3000, normal})
	got := closedOf(ev, FaceOffScreen)
	if len(got) != 1 || got[0].StartMS != 2000 || got[0].EndMS != 8200 {
		t.Fatalf("want one violation 2000–8200, got %+v", got)
	}
}

func TestFaceMostlyOutside(t *testing.T) {
	edge := normal
	edge.offscreen = true
	ev := play(t, PolicyInterview, segment{2000, normal}, segment{4000, edge}, segment{3000, normal})
	got := closedOf(ev, FaceOffScreen)
	if len(got) != 1 || got[0].Details["visible_fraction"] >= 0.6 {
		t.Fatalf("got %+v", got)
	}
}

func TestExtraPerson(t *testing.T) {
	two := normal
	two.faces = 2
	ev := play(t, PolicyWaiting, segment{2000, normal}, segment{4000, two}, segment{4000, normal})
	onlyTypes(t, ev, ExtraPerson)
	got := closedOf(ev, ExtraPerson)
	if len(got) != 1 || got[0].Details["face_count"] != 2 || got[0].StartMS != 2000 || got[0].EndMS != 6000 {
		t.Fatalf("got %+v", got)
	}
}

func TestHeadTurnSustained(t *testing.T) {
	turned := normal
	turned.yaw = -55
	ev := play(t, PolicyInterview, segment{2000, normal}, segment{3000, turned}, segment{3000, normal})
	onlyTypes(t, ev, HeadTurn)
	got := closedOf(ev, HeadTurn)
	if len(got) != 1 || got[0].Details["yaw_deg"] != -55 || got[0].Confidence < 0.6 {
		t.Fatalf("got %+v", got)
	}
	// A glance shorter than the minimum is not a violation.
	onlyTypes(t, play(t, PolicyInterview, segment{2000, normal}, segment{1000, turned}, segment{3000, normal}))
}

func TestHeadTurnFrequent(t *testing.T) {
	left, right := normal, normal
	left.yaw, right.yaw = 30, -30 // beyond turn_deg 25, within the 35° limit
	var segs []segment
	segs = append(segs, segment{2000, normal})
	for i := 0; i < 4; i++ {
		glance := left
		if i%2 == 1 {
			glance = right
		}
		segs = append(segs, segment{800, glance}, segment{2000, normal})
	}
	segs = append(segs, segment{2000, normal})
	ev := play(t, PolicyInterview, segs...)
	got := closedOf(ev, HeadTurn)
	if len(got) != 1 || got[0].Details["turns"] < 4 {
		t.Fatalf("want one frequent-turn violation, got %+v", got)
	}
	// Three glances are not "looking around".
	onlyTypes(t, play(t, PolicyInterview, segs[:7]...))
}

func TestHandsOutOfView(t *testing.T) {
	one := normal
	one.hands = 1
	ev := play(t, PolicyRestRoom, segment{2000, normal}, segment{5000, one}, segment{4000, normal})
	onlyTypes(t, ev, HandsOutOfView)
	got := closedOf(ev, HandsOutOfView)
	if len(got) != 1 || got[0].Details["hands_visible"] != 1 {
		t.Fatalf("got %+v", got)
	}
	// The interview policy does not require hands.
	onlyTypes(t, play(t, PolicyInterview, segment{2000, normal}, segment{5000, one}))
}

func TestHandsNotCheckedYet(t *testing.T) {
	p, _ := DefaultPolicy(PolicyRestRoom)
	e, err := NewEngine(p)
	if err != nil {
		t.Fatal(err)
	}
	for ts := int64(0); ts < 10000; ts += 200 {
		o := normal.observe(ts)
		o.Hands, o.HandsChecked = nil, false
		if ev := e.Observe(o); len(ev) > 0 {
			t.Fatalf("event before the hand detector ran: %+v", ev)
		}
	}
}

func TestDistance(t *testing.T) {
	near, edge := normal, normal
	near.distance, edge.distance = 38, 54
	ev := play(t, PolicyInterview, segment{2000, normal}, segment{7000, near}, segment{3000, normal})
	onlyTypes(t, ev, Distance)
	got := closedOf(ev, Distance)
	if len(got) != 1 || !strings.Contains(got[0].Reason, "too close") || got[0].Details["distance_cm"] != 38 {
		t.Fatalf("got %+v", got)
	}
	onlyTypes(t, play(t, PolicyInterview, segment{10000, edge}))
}

func TestCameraBlocked(t *testing.T) {
	dark := scene{dark: true}
	ev := play(t, PolicyRestRoom, segment{2000, normal}, segment{4000, dark}, segment{3000, normal})
	onlyTypes(t, ev, CameraBlocked) // not also face_off_screen and hands
	if got := closedOf(ev, CameraBlocked); len(got) != 1 || got[0].StartMS != 2000 {
		t.Fatalf("got %+v", got)
	}
}

func TestFinishClosesOpen(t *testing.T) {
	away := normal
	away.faces, away.hands = 0, 0
	ev := play(t, PolicyRestRoom, segment{1000, normal}, segment{5000, away})
	got := closedOf(ev, FaceOffScreen)
	if len(got) != 1 || got[0].EndMS != 6000 || got[0].Open {
		t.Fatalf("got %+v", got)
	}
}

func TestOutOfOrderIgnored(t *testing.T) {
	p, _ := DefaultPolicy(PolicyWaiting)
	e, _ := NewEngine(p)
	away := scene{}
	for ts := int64(0); ts <= 4000; ts += 200 {
		e.Observe(away.observe(ts))
	}
	if len(e.OpenViolations()) != 1 {
		t.Fatal("absence did not open")
	}
	if ev := e.Observe(normal.observe(100)); ev != nil {
		t.Fatalf("late frame changed state: %+v", ev)
	}
}

func TestPolicies(t *testing.T) {
	for _, n := range PolicyNames {
		p, err := DefaultPolicy(n)
		if err != nil {
			t.Fatal(err)
		}
		if err := p.Validate(); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := DefaultPolicy("exam_hall"); err == nil {
		t.Error("unknown policy accepted")
	}
	p, err := ParsePolicyOverride(PolicyInterview, []byte(`{"yaw_limit_deg": 20, "rules": {"hands_out_of_view": {"enabled": false}}}`))
	if err != nil {
		t.Fatal(err)
	}
	if p.YawLimitDeg != 20 || !p.Rules[HeadTurn].Enabled || p.Rules[HeadTurn].MinMS != 2000 {
		t.Errorf("override lost defaults: %+v", p)
	}
	for _, bad := range []string{`{"yaw_limt_deg": 20}`, `{"analysis_fps": 0}`, `{"rules": {"teleport": {"enabled": true}}}`, `{"required_hands": 3}`, `[`} {
		if _, err := ParsePolicyOverride(PolicyRestRoom, []byte(bad)); err == nil {
			t.Errorf("override %s accepted", bad)
		}
	}
}

func TestFingerOverLens(t *testing.T) {
	ev := play(t, PolicyRestRoom, segment{2000, normal}, segment{4000, scene{finger: true}}, segment{3000, normal})
	onlyTypes(t, ev, CameraBlocked)
	got := closedOf(ev, CameraBlocked)
	if len(got) != 1 || !strings.Contains(got[0].Reason, "covered") {
		t.Fatalf("got %+v", got)
	}
}

// A profile that the detector finds only in some frames is one turn, not
// one per re-detection.
func TestFlickeringProfileIsOneTurn(t *testing.T) {
	profile, lost := normal, normal
	profile.yaw = 30 // past turn_deg, inside the limit
	lost.faces, lost.hands = 0, 0
	segs := []segment{{2000, normal}}
	for i := 0; i < 6; i++ {
		segs = append(segs, segment{400, profile}, segment{200, lost})
	}
	segs = append(segs, segment{3000, normal})
	for _, ev := range play(t, PolicyInterview, segs...) {
		if ev.Violation.Type == HeadTurn {
			t.Fatalf("flicker counted as looking around: %+v", ev.Violation)
		}
	}
}

// TestNextDeadline: a pending condition's deadline is its start plus the
// rule's minimum, a clearing one's its clear time plus the clear duration;
// observing only at the deadlines opens and closes the violation at the
// same stream times as observing every frame does.
func TestNextDeadline(t *testing.T) {
	p, err := DefaultPolicy(PolicyWaiting) // face_off_screen 3000/1500, nothing pending for a normal scene
	if err != nil {
		t.Fatal(err)
	}
	empty := scene{faces: 0}
	sceneAt := func(ms int64) scene {
		if ms >= 1000 && ms < 6000 {
			return empty
		}
		return normal
	}
	dense, err := NewEngine(p)
	if err != nil {
		t.Fatal(err)
	}
	var want []Event
	for ms := int64(0); ms <= 9000; ms += 100 {
		want = append(want, dense.Observe(sceneAt(ms).observe(ms))...)
	}

	sparse, err := NewEngine(p)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := sparse.NextDeadline(); ok {
		t.Error("deadline before any observation")
	}
	var got []Event
	observe := func(ms int64) {
		got = append(got, sparse.Observe(sceneAt(ms).observe(ms))...)
	}
	observe(0)
	if d, ok := sparse.NextDeadline(); ok {
		t.Errorf("deadline %d with nothing pending", d)
	}
	observe(1000) // the face leaves: pending
	if d, ok := sparse.NextDeadline(); !ok || d != 1000+p.Rules[FaceOffScreen].MinMS {
		t.Errorf("pending deadline %d %v, want %d", d, ok, 1000+p.Rules[FaceOffScreen].MinMS)
	}
	observe(2500) // a calm look in between changes nothing
	d, _ := sparse.NextDeadline()
	observe(d)
	if _, ok := sparse.NextDeadline(); ok {
		t.Error("deadline left after the violation opened")
	}
	observe(6000) // back: clearing
	d, ok := sparse.NextDeadline()
	if !ok || d != 6000+p.Rules[FaceOffScreen].ClearMS {
		t.Errorf("clearing deadline %d %v", d, ok)
	}
	observe(d)
	if len(got) != 2 || len(want) != 2 {
		t.Fatalf("events: sparse %+v, dense %+v", got, want)
	}
	for i := range want {
		g, w := got[i].Violation, want[i].Violation
		if got[i].Kind != want[i].Kind || g.StartMS != w.StartMS || g.OpenedMS != w.OpenedMS || g.EndMS != w.EndMS {
			t.Errorf("event %d: sparse %s %+v, dense %s %+v", i, got[i].Kind, g, want[i].Kind, w)
		}
	}
}
