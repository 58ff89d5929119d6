package eval

import (
	"reflect"
	"testing"

	"invigil/detectors/rules"
)

func truthOf(t *testing.T, s Scenario) []Interval {
	t.Helper()
	if err := s.Validate(); err != nil {
		t.Fatal(err)
	}
	got, err := s.Truth()
	if err != nil {
		t.Fatal(err)
	}
	return got
}

func TestTruthFollowsThePolicy(t *testing.T) {
	c := at("man", 320, 200, 170)
	n := Scene{Candidate: c, LeftHand: true, RightHand: true}
	cases := []struct {
		name string
		segs []Segment
		want []Interval
	}{
		{"leaving takes the hands along: one event",
			[]Segment{seg(5, n), seg(6, Scene{}), seg(5, n)},
			[]Interval{{rules.FaceOffScreen, 5000, 11000}}},
		{"shorter than the minimum is no violation",
			[]Segment{seg(5, n), seg(1.9, Scene{}), seg(5, n)}, nil},
		{"a gap shorter than the clear time joins two absences",
			[]Segment{seg(5, n), seg(3, Scene{}), seg(1, n), seg(3, Scene{}), seg(5, n)},
			[]Interval{{rules.FaceOffScreen, 5000, 12000}}},
		{"a blocked camera is only camera_blocked",
			[]Segment{seg(5, n), seg(4, Scene{Light: LightDark}), seg(5, n)},
			[]Interval{{rules.CameraBlocked, 5000, 9000}}},
		{"one hand gone",
			[]Segment{seg(5, n), seg(6, Scene{Candidate: c, RightHand: true}), seg(5, n)},
			[]Interval{{rules.HandsOutOfView, 5000, 11000}}},
		{"nearer than 45 cm, and a turned head at the same size is no distance event",
			[]Segment{seg(5, n), seg(6, Scene{Candidate: scaledBy(c, 1.35), LeftHand: true, RightHand: true}), seg(5, n),
				seg(4, Scene{Candidate: turnedLike("profile", c, false), LeftHand: true, RightHand: true}), seg(4, n)},
			[]Interval{{rules.HeadTurn, 16000, 20000}, {rules.Distance, 5000, 11000}}},
		{"10 % nearer is within tolerance",
			[]Segment{seg(5, n), seg(6, Scene{Candidate: scaledBy(c, 1.1), LeftHand: true, RightHand: true}), seg(5, n)}, nil},
		{"mostly outside the frame",
			[]Segment{seg(5, n), seg(4, Scene{Candidate: at("man", 640, 200, 170), LeftHand: true, RightHand: true}), seg(5, n)},
			[]Interval{{rules.FaceOffScreen, 5000, 9000}}},
		{"a hand at the ear for 5 s or more is a call, and a visible hand",
			[]Segment{seg(5, n), seg(6, Scene{Candidate: c, RightHand: true, Lift: HandAtEar}), seg(5, n),
				seg(4.9, Scene{Candidate: c, RightHand: true, Lift: HandAtCheek}), seg(5, n)},
			[]Interval{{rules.PhoneCall, 5000, 11000}}},
		{"fingers at the lips or a hand beside the head is no call",
			[]Segment{seg(5, n), seg(6, Scene{Candidate: c, RightHand: true, Lift: HandOnChin}), seg(5, n),
				seg(6, Scene{Candidate: c, LeftHand: true, Lift: HandBeside, LiftRight: true}), seg(5, n)}, nil},
		{"an extra face",
			[]Segment{seg(5, n), seg(3, Scene{Candidate: c, Extra: at("s3_left", 100, 100, 80), LeftHand: true, RightHand: true}), seg(5, n)},
			[]Interval{{rules.ExtraPerson, 5000, 8000}}},
	}
	for _, cs := range cases {
		s := Scenario{Name: "t", Policy: "rest_room", Background: "astra_color.jpg", CalibrateMS: 4000, Segments: cs.segs}
		if got := truthOf(t, s); !reflect.DeepEqual(got, cs.want) {
			t.Errorf("%s: truth %v, want %v", cs.name, got, cs.want)
		}
	}
	// Policies score only what they enable: waiting has no hands rule.
	s := Scenario{Name: "w", Policy: "waiting", Background: "astra_color.jpg",
		Segments: []Segment{seg(5, Scene{Candidate: c}), seg(6, Scene{Candidate: scaledBy(c, 1.4)})}}
	if got := truthOf(t, s); len(got) != 0 {
		t.Errorf("waiting policy scored %v", got)
	}
}

func TestSetCoversEveryType(t *testing.T) {
	events := map[rules.Type]int{}
	names := map[string]bool{}
	normal := 0
	for _, s := range Set() {
		if names[s.Name] {
			t.Errorf("duplicate scenario %s", s.Name)
		}
		names[s.Name] = true
		truth := truthOf(t, s)
		if len(truth) == 0 {
			normal++
		}
		p, _ := rules.DefaultPolicy(s.Policy)
		for _, iv := range truth {
			events[iv.Type]++
			if iv.StartMS < max(s.CalibrateMS, 4000) {
				t.Errorf("%s: %s starts at %d ms, inside the opening normal stretch", s.Name, iv.Type, iv.StartMS)
			}
			if iv.EndMS-iv.StartMS < silentMinMS(p, iv.Type)+1500 {
				t.Errorf("%s: %s lasts %d ms, too close to the %d ms minimum to be a clear case", s.Name, iv.Type, iv.EndMS-iv.StartMS, silentMinMS(p, iv.Type))
			}
			if s.DurationMS()-iv.EndMS < p.Rules[iv.Type].ClearMS {
				t.Errorf("%s: %s ends %d ms before the video does: too little to close", s.Name, iv.Type, s.DurationMS()-iv.EndMS)
			}
		}
		if s.isVideo() && s.VideoFromMS+s.DurationMS() > 31000 {
			t.Errorf("%s: uses the webcam video beyond 31 s, where the man moves (not labeled)", s.Name)
		}
	}
	for _, typ := range rules.AllTypes {
		// phone_call is judged on the camera: covered by video like the
		// others (with its minimum without speech, the videos being silent).
		if rules.IsAudio(typ) {
			// The scenes are silent videos: the audio types get their own
			// set of recorded and synthetic sounds (the Listening issue's
			// evaluation part), not built yet.
			if events[typ] > 0 {
				t.Errorf("%s has %d true events in a silent video set", typ, events[typ])
			}
			continue
		}
		if events[typ] < 5 {
			t.Errorf("%s has %d true events, want ≥ 5", typ, events[typ])
		}
	}
	if normal < 2 {
		t.Errorf("%d all-normal videos, want ≥ 2", normal)
	}
	total := int64(0)
	for _, s := range Set() {
		total += s.DurationMS()
	}
	if total > 12*60*1000 {
		t.Errorf("the set lasts %d s: too long to analyze in a few minutes", total/1000)
	}
}

// TestLiftedHandsInFrame: a lifted hand is drawn wholly inside the frame
// (a hand half outside is another scene, and one the detector misses).
func TestLiftedHandsInFrame(t *testing.T) {
	for _, s := range Set() {
		for i, sg := range s.Segments {
			sc := sg.Scene
			if sc.Lift == HandDown {
				continue
			}
			g, w := liftGeometries[sc.Lift], sc.Candidate.W
			side := -1.0
			if sc.LiftRight {
				side = 1
			}
			x := sc.Candidate.X + side*g.dx*w
			half := liftHalfWidth*g.height*w + 4 // and the sway
			top := sc.Candidate.Y + g.dy*w - g.height*w - 3
			if x-half < 0 || x+half > FrameWidth || top < 0 {
				t.Errorf("%s segment %d: the lifted hand spans x %.0f–%.0f from y %.0f, outside the %d×%d frame",
					s.Name, i, x-half, x+half, top, FrameWidth, FrameHeight)
			}
		}
	}
}

func TestSetHashIsStable(t *testing.T) {
	a, err := SetHash()
	if err != nil {
		t.Fatal(err)
	}
	b, _ := SetHash()
	if a != b || len(a) != 64 {
		t.Fatalf("hash %q then %q", a, b)
	}
}
