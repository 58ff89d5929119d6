package rules

import "testing"

// The candidate's face box in phoneObs: 140 px wide, centered at (320, 170).
const phoneFaceX, phoneFaceY, phoneFaceW = 320.0, 170.0, 140.0

// handPose is where phoneObs puts a hand, in face widths from the face
// box's center (x outwards to the image's left, y down): its 21 landmarks
// spread over a hand 1.2 face widths tall, wrist at the bottom.
type handPose struct{ x, y float64 }

var (
	atEar   = handPose{0.6, -0.05} // palm over the ear and cheek
	onChin  = handPose{0.0, 0.6}   // fingers over mouth and chin
	beside  = handPose{1.5, -0.1}  // raised beside the head, clear of it
	onDesk  = handPose{}           // the zero pose: hands on the desk
	desk    = []handPose{onDesk, onDesk}
	oneDesk = []handPose{onDesk}
)

// handAt lays 21 landmarks out in a hand-shaped column around center c.
func handAt(c Point, w float64) []Point {
	pts := make([]Point, 21)
	h := 1.2 * w
	pts[0] = Point{c.X, c.Y + h/2} // wrist
	for f := 0; f < 5; f++ {       // thumb to little finger, 4 points each
		fx := c.X + (float64(f)-2)*0.12*w
		for k := 0; k < 4; k++ {
			pts[1+4*f+k] = Point{fx, c.Y + h/2 - float64(k+1)*h/4.5}
		}
	}
	return pts
}

// phoneObs is a frame at t with the candidate's face and the given hands.
func phoneObs(t int64, hands ...handPose) *Observation {
	o := &Observation{TMS: t, Width: 640, Height: 480, Brightness: 120, Contrast: 40, Sharpness: 20, HandsChecked: true, HandsFresh: true,
		Faces: []Face{{Box: Rect{X: phoneFaceX - phoneFaceW/2, Y: phoneFaceY - phoneFaceW/2, W: phoneFaceW, H: phoneFaceW}, Score: 0.9, DistanceCM: 50}}}
	for i, hp := range hands {
		var c Point
		if hp == onDesk {
			c = Point{100 + 440*float64(i), 420}
		} else {
			c = Point{phoneFaceX - hp.x*phoneFaceW, phoneFaceY + hp.y*phoneFaceW}
		}
		pts := handAt(c, phoneFaceW)
		o.Hands = append(o.Hands, Hand{Box: Rect{X: c.X - 40, Y: c.Y - 80, W: 80, H: 160}, Score: 0.9, Landmarks: pts})
	}
	return o
}

type phoneSeg struct {
	ms     int64
	hands  []handPose
	speech bool
}

// playCall runs the segments at 5 fps with the microphone's 32 ms chunks
// (speech or a quiet room) fed just before each frame, and returns the
// phone_call events.
func playCall(t *testing.T, policy string, segs ...phoneSeg) []Event {
	t.Helper()
	e := audioEngine(t, policy)
	var evs []Event
	var now, heard int64
	for _, sg := range segs {
		for end := now + sg.ms; now < end; now += 200 {
			evs = append(evs, e.ObserveAudio(chunks(heard, now+200, sg.speech, 0.01))...)
			heard += 32 * ((now + 200 - heard + 31) / 32) // the next chunk's start
			evs = append(evs, e.Observe(phoneObs(now, sg.hands...))...)
		}
	}
	evs = append(evs, e.Finish(now)...)
	return onlyType(evs, PhoneCall)
}

func TestHandAtEarGeometry(t *testing.T) {
	p, _ := DefaultPolicy(PolicyRestRoom)
	for _, c := range []struct {
		name  string
		hands []handPose
		want  bool
	}{
		{"hand at the ear", []handPose{atEar, onDesk}, true},
		{"hand at the other ear", []handPose{{-0.6, -0.05}}, true},
		{"hand at the cheek", []handPose{{0.45, 0.1}}, true},
		{"hand on the chin and mouth", []handPose{onChin}, false},
		{"hand raised beside the head, clear of it", []handPose{beside}, false},
		{"hands on the desk", desk, false},
		{"hand high above the head", []handPose{{0.6, -1.3}}, false},
	} {
		n, got := p.HandAtEar(phoneObs(0, c.hands...))
		if got != c.want {
			t.Errorf("%s: at ear %v (%d points), want %v", c.name, got, n, c.want)
		}
	}
	// Without landmarks (an older detector) or a face there is no call.
	o := phoneObs(0, atEar)
	o.Hands[0].Landmarks = nil
	if _, ok := p.HandAtEar(o); ok {
		t.Error("a hand without landmarks counted as at the ear")
	}
	o = phoneObs(0, atEar)
	o.Faces = nil
	if _, ok := p.HandAtEar(o); ok {
		t.Error("a hand counted as at the ear without a face")
	}
}

func TestPhoneCallWithSpeechOpensAfter2s(t *testing.T) {
	evs := playCall(t, PolicyRestRoom,
		phoneSeg{4000, desk, false}, phoneSeg{2600, []handPose{atEar, onDesk}, true}, phoneSeg{4000, desk, false})
	if len(evs) != 2 || evs[0].Kind != Opened || evs[1].Kind != Closed {
		t.Fatalf("events %v, want one opened and closed phone_call", evs)
	}
	v := evs[0].Violation
	if v.StartMS != 4000 || v.OpenedMS < 6000 || v.OpenedMS > 6400 {
		t.Errorf("phone_call from %d opened at %d, want from 4000 opened at about 6000", v.StartMS, v.OpenedMS)
	}
	if v.Details["speech_ms"] < 1500 || v.Reason != "hand held at the ear while speaking" || v.Details["hand_points_at_face"] < 11 {
		t.Errorf("phone_call reads %q %v", v.Reason, v.Details)
	}
	if end := evs[1].Violation.EndMS; end != 6600 {
		t.Errorf("phone_call ended at %d, want 6600 (the hand came down)", end)
	}
}

func TestPhoneCallWithoutSpeechNeeds5s(t *testing.T) {
	if evs := playCall(t, PolicyRestRoom,
		phoneSeg{4000, desk, false}, phoneSeg{2600, []handPose{atEar, onDesk}, false}, phoneSeg{4000, desk, false}); len(evs) != 0 {
		t.Errorf("2.6 s at the ear in silence opened %v", evs)
	}
	evs := playCall(t, PolicyWaiting,
		phoneSeg{4000, oneDesk, false}, phoneSeg{6000, []handPose{atEar}, false}, phoneSeg{4000, oneDesk, false})
	if len(evs) != 2 || evs[0].Kind != Opened {
		t.Fatalf("events %v, want one phone_call", evs)
	}
	v := evs[0].Violation
	if v.StartMS != 4000 || v.OpenedMS != 9000 || v.Reason != "hand held at the ear" || v.Details["speech_ms"] != 0 {
		t.Errorf("phone_call from %d opened at %d (%q %v), want from 4000 at 9000 without speech", v.StartMS, v.OpenedMS, v.Reason, v.Details)
	}
}

// TestPhoneCallSpeechLateInTheSpan: silence at first, then speech: the
// call opens as soon as both 2 s at the ear and enough speech are there.
func TestPhoneCallSpeechLateInTheSpan(t *testing.T) {
	evs := playCall(t, PolicyRestRoom,
		phoneSeg{4000, desk, false}, phoneSeg{3000, []handPose{atEar}, false}, phoneSeg{1000, []handPose{atEar}, true}, phoneSeg{4000, desk, false})
	if len(evs) == 0 || evs[0].Violation.StartMS != 4000 || evs[0].Violation.OpenedMS != 7600 {
		t.Fatalf("events %v, want a call from 4000 opened at 7600 (500 ms of speech heard)", evs)
	}
}

func TestPhoneCallIgnoresChinAndRaisedHand(t *testing.T) {
	evs := playCall(t, PolicyRestRoom,
		phoneSeg{4000, desk, false},
		phoneSeg{1500, []handPose{onChin, onDesk}, true}, // a brief touch of the chin while talking
		phoneSeg{3000, desk, true},
		phoneSeg{8000, []handPose{onChin, onDesk}, true}, // resting the chin on a hand, talking
		phoneSeg{3000, desk, false},
		phoneSeg{8000, []handPose{beside, onDesk}, true}, // a hand raised beside the head
		phoneSeg{3000, desk, false})
	if len(evs) != 0 {
		t.Errorf("hand on the chin or beside the head opened %v", evs)
	}
	// A short touch of the ear while speaking stays below 2 s.
	if evs := playCall(t, PolicyRestRoom, phoneSeg{4000, desk, false}, phoneSeg{1600, []handPose{atEar}, true}, phoneSeg{4000, desk, false}); len(evs) != 0 {
		t.Errorf("1.6 s at the ear opened %v", evs)
	}
}

// TestPhoneCallClearsAfterClearMS: a hand that leaves the ear for less than
// clear_ms keeps one call; longer closes it, dated to when the hand left.
func TestPhoneCallClearsAfterClearMS(t *testing.T) {
	p, _ := DefaultPolicy(PolicyRestRoom)
	clear := p.Rules[PhoneCall].ClearMS
	evs := playCall(t, PolicyRestRoom,
		phoneSeg{4000, desk, false}, phoneSeg{3000, []handPose{atEar}, true},
		phoneSeg{clear - 400, desk, true}, phoneSeg{3000, []handPose{atEar}, true},
		phoneSeg{clear + 1000, desk, false})
	if len(evs) != 2 || evs[1].Kind != Closed {
		t.Fatalf("events %v, want one call opened and closed", evs)
	}
	want := 4000 + 3000 + (clear - 400) + 3000
	if got := evs[1].Violation.EndMS; got != want {
		t.Errorf("call ended at %d, want %d", got, want)
	}
	if !p.Rules[PhoneCall].Enabled {
		t.Error("phone_call is off in the rest room")
	}
}

func TestPhoneCallPolicies(t *testing.T) {
	for name, want := range map[string]bool{PolicyRestRoom: true, PolicyWaiting: true, PolicyInterview: false} {
		p, _ := DefaultPolicy(name)
		if got := p.Rules[PhoneCall].Enabled; got != want {
			t.Errorf("%s: phone_call enabled %v, want %v", name, got, want)
		}
		if want && p.HandsEvery == 0 {
			t.Errorf("%s: phone_call on without hand detection", name)
		}
	}
	if _, err := ParsePolicyOverride(PolicyWaiting, []byte(`{"hands_every": 0}`)); err == nil {
		t.Error("phone_call without hands_every accepted")
	}
	if _, err := ParsePolicyOverride(PolicyRestRoom, []byte(`{"phone_silent_ms": 1000}`)); err == nil {
		t.Error("phone_silent_ms below min_ms accepted")
	}
}

// TestPhoneCallNextDeadline: a pending call is due at 2 s with speech, 5 s
// without.
func TestPhoneCallNextDeadline(t *testing.T) {
	e := audioEngine(t, PolicyRestRoom)
	e.Observe(phoneObs(1000, atEar, onDesk))
	if at, ok := e.NextDeadline(); !ok || at != 6000 {
		t.Errorf("silent: deadline %d %v, want 6000", at, ok)
	}
	e.ObserveAudio(chunks(1000, 1800, true, 0.01))
	e.Observe(phoneObs(1800, atEar, onDesk))
	if at, ok := e.NextDeadline(); !ok || at != 3000 {
		t.Errorf("speaking: deadline %d %v, want 3000", at, ok)
	}
}

// TestSpeechMemoryIsBounded: hours of speech keep only the horizon.
func TestSpeechMemoryIsBounded(t *testing.T) {
	e := audioEngine(t, PolicyRestRoom)
	for t0 := int64(0); t0 < 3_600_000; t0 += 10_000 {
		e.ObserveAudio(chunks(t0, t0+3000, true, 0.01))
	}
	if n := len(e.speech); n > 3 {
		t.Errorf("%d speech spans kept", n)
	}
}
