package rules

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"sort"

	"invigil/contract"
)

// Type is a violation type; the names are API contracts (DESIGN.md):
// new ones may be added, none renamed.
type Type string

// The names come from package contract, which the pages and the control
// plane share.
const (
	FaceOffScreen  Type = contract.FaceOffScreen
	ExtraPerson    Type = contract.ExtraPerson
	HeadTurn       Type = contract.HeadTurn
	HandsOutOfView Type = contract.HandsOutOfView
	Distance       Type = contract.Distance
	CameraBlocked  Type = contract.CameraBlocked
	// Talking and MicrophoneOff are judged on the microphone's audio
	// (Engine.ObserveAudio), not on frames.
	Talking       Type = contract.Talking
	MicrophoneOff Type = contract.MicrophoneOff
	// PhoneCall is judged on the camera (a hand held at the ear or cheek)
	// with the microphone deciding how long it must last: shorter while
	// speech is heard.
	PhoneCall Type = contract.PhoneCall
)

// AllTypes lists every type the rules judge (the contract's camera and
// microphone types; the browser reports its own), in a stable order.
var AllTypes = func() []Type {
	var out []Type
	for _, name := range contract.ViolationNames(contract.SourceCamera, contract.SourceMicrophone) {
		out = append(out, Type(name))
	}
	return out
}()

// IsAudio reports whether t is judged on the microphone rather than the
// camera.
func IsAudio(t Type) bool { return contract.SourceOf(string(t)) == contract.SourceMicrophone }

// Timing is a rule's hysteresis: the condition must hold for MinMS before a
// violation opens and be clear for ClearMS before it closes.
type Timing struct {
	Enabled bool  `json:"enabled"`
	MinMS   int64 `json:"min_ms"`
	ClearMS int64 `json:"clear_ms"`
}

// Policy chooses the active rules, their thresholds and the analysis cost
// for one kind of room. Defaults come from DefaultPolicy; a config file may
// override any field.
type Policy struct {
	Name string `json:"name"`

	// AnalysisFPS is how many frames per second the pipeline analyses.
	AnalysisFPS float64 `json:"analysis_fps"`
	// FaceEvery runs the face detector and face landmarks on every Nth
	// analyzed frame (the light measures run on all), carrying the last
	// faces in between; 1 means every frame.
	FaceEvery int `json:"face_every"`
	// HandsEvery runs the (expensive) hand detector on every Nth analyzed
	// frame, carrying the last result in between; 0 disables it.
	HandsEvery int `json:"hands_every"`
	// PalmStillEvery: while fewer than two hands are followed, the palm
	// detector (the costliest network) looks for more on every hand
	// analysis where the picture changed outside the head and the followed
	// hands, or a followed hand was lost, and otherwise only on every Nth
	// one; 0 or 1 looks on every hand analysis.
	PalmStillEvery int `json:"palm_still_every"`
	// FaceDetectEvery: while one large face is followed by the face
	// landmark model, the face detector runs on every Nth face analysis
	// only (to find a second person), and at once when the picture changes
	// outside the head or the landmarks say the face left, moved, turned or
	// changed size; 0 or 1 runs it on every face analysis.
	FaceDetectEvery int `json:"face_detect_every"`

	Rules map[Type]Timing `json:"rules"`

	// face_off_screen: the main face counts as off screen when less than
	// this share of its box is inside the frame.
	MinVisibleFraction float64 `json:"min_visible_fraction"`
	// extra_person: faces beyond the first whose score reaches this count.
	ExtraFaceScore float64 `json:"extra_face_score"`
	// head_turn: sustained |yaw| or |pitch| beyond these limits, or
	// TurnCount turns beyond TurnDeg within TurnWindowMS ("左顾右盼").
	YawLimitDeg   float64 `json:"yaw_limit_deg"`
	PitchLimitDeg float64 `json:"pitch_limit_deg"`
	TurnDeg       float64 `json:"turn_deg"`
	TurnCount     int     `json:"turn_count"`
	TurnWindowMS  int64   `json:"turn_window_ms"`
	// hands_out_of_view: fewer visible hands than this.
	RequiredHands int     `json:"required_hands"`
	HandScore     float64 `json:"hand_score"`
	// distance: outside DistanceCM ± DistanceToleranceCM.
	DistanceCM          float64 `json:"distance_cm"`
	DistanceToleranceCM float64 `json:"distance_tolerance_cm"`
	// camera_blocked: mean luma below DarkBrightness, or luma standard
	// deviation below UniformContrast (a flat frame).
	DarkBrightness  float64 `json:"dark_brightness"`
	UniformContrast float64 `json:"uniform_contrast"`
	// camera_blocked also when no face is found and the picture has no
	// texture (Laplacian spread below BlurSharpness): a finger over the
	// lens lets light through but shows no edges.
	BlurSharpness float64 `json:"blur_sharpness"`

	// talking: at least the rule's min_ms of speech chunks within the last
	// TalkWindowMS. Summing over a window rather than requiring unbroken
	// speech smooths the detector's chunk-level flicker (a voice shifted by
	// a few hundred samples changes a fifth of the chunk decisions) and the
	// pauses between words.
	TalkWindowMS int64 `json:"talk_window_ms"`
	// microphone_off: every chunk below SilenceRMS (full-scale RMS) is
	// digital silence: a muted track or a dead microphone. A real quiet
	// room through a browser's noise suppression still sits above 1e-4.
	SilenceRMS float64 `json:"silence_rms"`

	// phone_call: a hand held against the side of the face (HandAtEar) for
	// the rule's min_ms while at least PhoneSpeechMS of speech is heard in
	// that time, or for PhoneSilentMS without (listening on a call, or no
	// microphone).
	PhoneSilentMS int64 `json:"phone_silent_ms"`
	PhoneSpeechMS int64 `json:"phone_speech_ms"`
}

// Policy names (per room).
const (
	PolicyWaiting   = "waiting"
	PolicyInterview = "interview"
	PolicyRestRoom  = "rest_room"
)

// PolicyNames lists the built-in policies.
var PolicyNames = []string{PolicyWaiting, PolicyInterview, PolicyRestRoom}

func base() Policy {
	return Policy{
		AnalysisFPS:         5,
		FaceEvery:           1,
		HandsEvery:          0,
		PalmStillEvery:      5,
		FaceDetectEvery:     3,
		MinVisibleFraction:  0.6,
		ExtraFaceScore:      0.6,
		YawLimitDeg:         30,
		PitchLimitDeg:       22,
		TurnDeg:             25,
		TurnCount:           4,
		TurnWindowMS:        20_000,
		RequiredHands:       0,
		HandScore:           0.5,
		DistanceCM:          50,
		DistanceToleranceCM: 5,
		DarkBrightness:      25,
		UniformContrast:     6,
		BlurSharpness:       3,
		TalkWindowMS:        5000,
		SilenceRMS:          1e-4,
		PhoneSilentMS:       5000,
		PhoneSpeechMS:       500,
		Rules:               map[Type]Timing{},
	}
}

// DefaultPolicy returns the built-in policy of that name.
//
//   - waiting: the candidate waits for a call; only leaving, a second
//     person and a blocked camera matter, and (as in the rest room)
//     talking and a microphone that is off.
//   - interview: on a call with the examiner; adds head turns and
//     distance (the guide's 50 cm ± 5 cm).
//   - rest_room: the strictest; adds both hands on the desk, talking and a
//     microphone that is off (the interview is a call: talking is its point).
//
// phone_call (a hand at the ear or cheek) is on in the rest room and the
// waiting rooms, where nobody watches the candidate live and a call is the
// way to get help; the waiting rooms look for hands once a second for it
// (hands_every 2 at 2 frames/s, about 3 % of a core). It is off in the
// interview policy, which also serves the device-check call: there the
// candidate talks with an examiner or assistant who sees them live, so a
// call would be seen, while a cheek resting on a hand or a headset being
// adjusted during an answer (speech heard, so the 2 s minimum) would alarm
// for nothing.
func DefaultPolicy(name string) (Policy, error) {
	p := base()
	p.Name = name
	on := func(min, clear int64) Timing { return Timing{Enabled: true, MinMS: min, ClearMS: clear} }
	switch name {
	case PolicyWaiting:
		p.AnalysisFPS = 2
		p.Rules[FaceOffScreen] = on(3000, 1500)
		p.Rules[ExtraPerson] = on(2000, 2000)
		p.Rules[CameraBlocked] = on(2000, 1500)
		p.Rules[Talking] = on(2000, 2000)
		p.Rules[MicrophoneOff] = on(10_000, 1000)
		p.HandsEvery = 2
		p.Rules[PhoneCall] = on(2000, 2000)
	case PolicyInterview:
		p.Rules[FaceOffScreen] = on(2000, 1500)
		p.Rules[ExtraPerson] = on(1000, 2000)
		p.Rules[HeadTurn] = on(2000, 1500)
		p.Rules[Distance] = on(5000, 2000)
		p.Rules[CameraBlocked] = on(1500, 1500)
	case PolicyRestRoom:
		// Faces at 2.5 and hands at 1 per second keep a candidate under a
		// tenth of a core; the rules' minimum durations (≥ 1 s) absorb it.
		p.FaceEvery = 2
		p.HandsEvery = 5
		p.RequiredHands = 2
		p.Rules[FaceOffScreen] = on(2000, 1500)
		p.Rules[ExtraPerson] = on(1000, 2000)
		p.Rules[HeadTurn] = on(2000, 1500)
		p.Rules[HandsOutOfView] = on(3000, 2000)
		p.Rules[Distance] = on(5000, 2000)
		p.Rules[CameraBlocked] = on(1500, 1500)
		p.Rules[Talking] = on(2000, 2000)
		p.Rules[MicrophoneOff] = on(10_000, 1000)
		p.Rules[PhoneCall] = on(2000, 2000)
	default:
		return Policy{}, fmt.Errorf("unknown policy %q (want one of %v)", name, PolicyNames)
	}
	for _, t := range AllTypes {
		if _, ok := p.Rules[t]; !ok {
			p.Rules[t] = Timing{MinMS: 2000, ClearMS: 1500}
		}
	}
	return p, nil
}

// Validate reports the first nonsensical setting.
func (p *Policy) Validate() error {
	switch {
	case p.AnalysisFPS <= 0 || p.AnalysisFPS > 60:
		return fmt.Errorf("policy %s: analysis_fps %g must be in (0, 60]", p.Name, p.AnalysisFPS)
	case p.FaceEvery < 1:
		return fmt.Errorf("policy %s: face_every %d must be ≥ 1", p.Name, p.FaceEvery)
	case p.HandsEvery < 0:
		return fmt.Errorf("policy %s: hands_every %d must be ≥ 0", p.Name, p.HandsEvery)
	case p.PalmStillEvery < 0:
		return fmt.Errorf("policy %s: palm_still_every %d must be ≥ 0", p.Name, p.PalmStillEvery)
	case p.FaceDetectEvery < 0:
		return fmt.Errorf("policy %s: face_detect_every %d must be ≥ 0", p.Name, p.FaceDetectEvery)
	case p.RequiredHands < 0 || p.RequiredHands > 2:
		return fmt.Errorf("policy %s: required_hands %d must be 0, 1 or 2", p.Name, p.RequiredHands)
	case p.RequiredHands > 0 && p.HandsEvery == 0 && p.Rules[HandsOutOfView].Enabled:
		return fmt.Errorf("policy %s: hands_out_of_view needs hands_every ≥ 1", p.Name)
	case p.DistanceCM <= 0 || p.DistanceToleranceCM < 0:
		return fmt.Errorf("policy %s: distance %g ± %g cm is invalid", p.Name, p.DistanceCM, p.DistanceToleranceCM)
	case p.MinVisibleFraction < 0 || p.MinVisibleFraction > 1:
		return fmt.Errorf("policy %s: min_visible_fraction %g must be in [0, 1]", p.Name, p.MinVisibleFraction)
	case p.TurnCount < 1 || p.TurnWindowMS <= 0:
		return fmt.Errorf("policy %s: turn_count and turn_window_ms must be positive", p.Name)
	case p.Rules[Talking].Enabled && (p.TalkWindowMS <= 0 || p.Rules[Talking].MinMS > p.TalkWindowMS):
		return fmt.Errorf("policy %s: talking's min_ms %d must fit in talk_window_ms %d", p.Name, p.Rules[Talking].MinMS, p.TalkWindowMS)
	case p.SilenceRMS < 0 || p.SilenceRMS >= 1:
		return fmt.Errorf("policy %s: silence_rms %g must be in [0, 1)", p.Name, p.SilenceRMS)
	case p.Rules[PhoneCall].Enabled && p.HandsEvery == 0:
		return fmt.Errorf("policy %s: phone_call needs hands_every ≥ 1", p.Name)
	case p.Rules[PhoneCall].Enabled && (p.PhoneSilentMS < p.Rules[PhoneCall].MinMS || p.PhoneSpeechMS < 0 || p.PhoneSpeechMS > p.Rules[PhoneCall].MinMS):
		return fmt.Errorf("policy %s: phone_call wants phone_speech_ms (%d) ≤ min_ms (%d) ≤ phone_silent_ms (%d)",
			p.Name, p.PhoneSpeechMS, p.Rules[PhoneCall].MinMS, p.PhoneSilentMS)
	}
	for t, tm := range p.Rules {
		if !knownType(t) {
			return fmt.Errorf("policy %s: unknown violation type %q", p.Name, t)
		}
		if tm.MinMS < 0 || tm.ClearMS < 0 {
			return fmt.Errorf("policy %s: %s durations must be ≥ 0", p.Name, t)
		}
	}
	return nil
}

func knownType(t Type) bool {
	for _, k := range AllTypes {
		if k == t {
			return true
		}
	}
	return false
}

// ParsePolicyOverride applies a JSON object of overrides (any Policy
// fields; rules merge per type) on top of the named default policy.
func ParsePolicyOverride(name string, override json.RawMessage) (Policy, error) {
	p, err := DefaultPolicy(name)
	if err != nil {
		return Policy{}, err
	}
	if len(override) == 0 {
		return p, nil
	}
	defaults := p.Rules
	p.Rules = nil
	dec := json.NewDecoder(bytes.NewReader(override))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&p); err != nil {
		return Policy{}, fmt.Errorf("policy %s: %w", name, err)
	}
	merged := map[Type]Timing{}
	for t, tm := range defaults {
		merged[t] = tm
	}
	for t, tm := range p.Rules {
		merged[t] = tm
	}
	p.Rules = merged
	p.Name = name
	return p, p.Validate()
}

// EnabledTypes lists the active rules in a stable order.
func (p *Policy) EnabledTypes() []Type {
	var out []Type
	for t, tm := range p.Rules {
		if tm.Enabled {
			out = append(out, t)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out
}

// The policy's judgements of a single observation, shared by the rules
// (which add durations before a violation opens) and by live feedback such
// as the device check, so the two never disagree.

// Blocked reports the camera_blocked condition: a dark or uniform picture,
// or one without texture and without a face (a finger over the lens).
func (p *Policy) Blocked(o *Observation) bool {
	return o.Brightness < p.DarkBrightness || o.Contrast < p.UniformContrast ||
		(len(o.Faces) == 0 && o.Sharpness < p.BlurSharpness)
}

// ExtraFaces counts the faces beside the candidate's that score at least
// ExtraFaceScore, and the best of their scores.
func (p *Policy) ExtraFaces(o *Observation) (n int, peak float64) {
	for _, f := range o.Faces[min(1, len(o.Faces)):] {
		if f.Score >= p.ExtraFaceScore {
			n++
			peak = max(peak, f.Score)
		}
	}
	return n, peak
}

// VisibleHands counts the hands scoring at least HandScore.
func (p *Policy) VisibleHands(o *Observation) int {
	n := 0
	for _, h := range o.Hands {
		if h.Score >= p.HandScore {
			n++
		}
	}
	return n
}

// FaceInView reports whether the candidate's face is there and enough of
// it is inside the frame (the opposite of the face_off_screen condition,
// blocked cameras aside).
func (p *Policy) FaceInView(o *Observation) bool {
	f, ok := o.MainFace()
	return ok && o.VisibleFraction(f) >= p.MinVisibleFraction
}

// DistanceOK reports whether a face's distance is known and within
// DistanceCM ± DistanceToleranceCM.
func (p *Policy) DistanceOK(f Face) bool {
	return f.DistanceCM > 0 && math.Abs(f.DistanceCM-p.DistanceCM) <= p.DistanceToleranceCM
}

// Where a hand at the ear or cheek is, in face widths from the center of
// the candidate's face box (x measured outwards, towards the side the hand
// is on; y downwards). The ears' tragions sit near x = 0.5 and the mouth
// near y = 0.25, so the zone covers the ear, the cheek beside the mouth
// and the side of the head above the ear, and leaves out the mouth and
// chin (x < 0.2) and a hand raised beside the head but clear of it
// (x > 1.0).
const (
	earZoneMinX, earZoneMaxX = 0.2, 1.0
	earZoneMinY, earZoneMaxY = -0.7, 0.55
	// earZonePoints of the 21 landmarks must lie in the zone, and the
	// hand's center too: a hand against the face, not one passing by.
	earZonePoints = 11
)

// HandAtEar reports whether a visible hand is held against the side of the
// candidate's face, at the ear or the cheek (the phone_call condition), and
// how many of its landmarks lie there. Hands without landmarks never are.
func (p *Policy) HandAtEar(o *Observation) (points int, ok bool) {
	face, hasFace := o.MainFace()
	if !hasFace || face.Box.W <= 0 {
		return 0, false
	}
	cx, cy, w := face.Box.X+face.Box.W/2, face.Box.Y+face.Box.H/2, face.Box.W
	for _, h := range o.Hands {
		if h.Score < p.HandScore || len(h.Landmarks) == 0 {
			continue
		}
		var mx, my float64
		for _, l := range h.Landmarks {
			mx += l.X
			my += l.Y
		}
		mx /= float64(len(h.Landmarks))
		my /= float64(len(h.Landmarks))
		side := 1.0
		if mx < cx {
			side = -1
		}
		in := func(x, y float64) bool {
			u, v := side*(x-cx)/w, (y-cy)/w
			return u >= earZoneMinX && u <= earZoneMaxX && v >= earZoneMinY && v <= earZoneMaxY
		}
		if !in(mx, my) {
			continue
		}
		n := 0
		for _, l := range h.Landmarks {
			if in(l.X, l.Y) {
				n++
			}
		}
		if n >= earZonePoints && n > points {
			points, ok = n, true
		}
	}
	return points, ok
}
