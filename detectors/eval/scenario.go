package eval

import (
	"fmt"
	"image"
	"math"

	"invigil/detectors/rules"
)

// Faces are the real faces the scenarios are made of, labeled by looking
// at them. Boxes are in the source photo's pixels.
var Faces = map[string]FaceCrop{
	"man":       {Source: "face_swapped.jpg", Box: image.Rect(91, 77, 217, 203), Label: "a man looking into the camera"},
	"s3_mid":    {Source: "sample3.jpg", Box: image.Rect(1039, 254, 1291, 506), Label: "a blonde woman smiling at the camera"},
	"s3_left":   {Source: "sample3.jpg", Box: image.Rect(558, 349, 797, 588), Label: "a curly-haired woman facing the camera"},
	"s3_right":  {Source: "sample3.jpg", Box: image.Rect(1484, 333, 1712, 561), Label: "a dark-haired woman facing the camera"},
	"s6_2nd":    {Source: "sample6.jpg", Box: image.Rect(619, 352, 897, 630), Label: "a dark-haired woman facing the camera"},
	"s6_1st":    {Source: "sample6.jpg", Box: image.Rect(245, 519, 483, 757), Label: "a woman facing the camera, head slightly tilted"},
	"s5_bottom": {Source: "sample5.jpg", Box: image.Rect(348, 905, 600, 1157), Label: "a woman facing the camera"},
	"profile": {Source: "sample2.jpg", Box: image.Rect(320, 186, 493, 359), Turned: true,
		Label: "a woman in profile, turned about 70–80° to her right, finger at her lips"},
	"bowed": {Source: "sample2.jpg", Box: image.Rect(893, 232, 1099, 438), Turned: true,
		Label: "a woman with her head bowed about 45°, eyes on her lap"},
}

// Placement puts a face at a point of the frame: (X, Y) is the face box
// center and W its width, both in frame pixels.
type Placement struct {
	Face   string
	Mirror bool
	X, Y   float64
	W      float64
}

// box is the face box the placement puts in the frame.
func (p *Placement) box() rules.Rect {
	return rules.Rect{X: p.X - p.W/2, Y: p.Y - p.W/2, W: p.W, H: p.W}
}

// Light is what happens to the whole picture.
type Light int

const (
	LightNormal  Light = iota
	LightDark          // lens covered by a palm: ×0.05 brightness
	LightUniform       // camera sends a flat grey picture
	LightBlack         // camera sends black
	LightCovered       // a finger right on the lens: a blurred, dim skin blur
)

func (l Light) blocked() bool { return l != LightNormal }

// HandPose is where a hand lifted from the desk is, relative to the
// candidate's face.
type HandPose int

const (
	HandDown    HandPose = iota // no hand lifted
	HandAtEar                   // held over the ear, fingers up the side of the head, as a phone is held: phone_call
	HandAtCheek                 // the palm against the cheek, as a phone is held closer to the mouth: phone_call
	HandOnChin                  // fingers over the chin and mouth (thinking): not a call
	HandBeside                  // raised beside the head, clear of it (stretching, a wave): not a call
)

func (h HandPose) call() bool { return h == HandAtEar || h == HandAtCheek }

// Scene is what the camera sees during one segment.
type Scene struct {
	// Candidate is the candidate's face on a photo background; nil means
	// nobody is there, unless the background is a webcam video, whose
	// person is the candidate.
	Candidate *Placement
	Extra     *Placement
	LeftHand  bool
	RightHand bool
	// Lift is a hand of the candidate's lifted to the face or beside it,
	// on the image's left side (the candidate's right) or, with
	// LiftRight, on its right; it is the real open hand of handSrc.jpg,
	// like the desk hands, and counts as a hand in view.
	Lift      HandPose
	LiftRight bool
	Light     Light
	// Zoom > 1 enlarges the whole frame about the scenario's ZoomAt (the
	// candidate leaning towards the camera in a webcam video).
	Zoom float64
}

// Segment is a stretch of a scenario.
type Segment struct {
	MS    int64
	Scene Scene
}

// Scenario is one evaluation video: a background (a photo or a real
// webcam video), a timeline of scenes, and the policy it is analyzed with.
type Scenario struct {
	Name        string
	Description string
	Policy      string
	// Background is a source photo, or a source video (.mp4) from which
	// VideoFromMS on is used.
	Background  string
	VideoFromMS int64
	ZoomAt      image.Point
	// CalibrateMS is the device check at 50 cm at the start (the normal
	// candidate), used to calibrate distance.
	CalibrateMS int64
	Segments    []Segment
}

// DurationMS is the scenario's length.
func (s *Scenario) DurationMS() int64 {
	var d int64
	for _, sg := range s.Segments {
		d += sg.MS
	}
	return d
}

func (s *Scenario) isVideo() bool {
	return len(s.Background) > 4 && s.Background[len(s.Background)-4:] == ".mp4"
}

// sceneAt returns the scene at time t.
func (s *Scenario) sceneAt(t int64) Scene {
	var start int64
	for _, sg := range s.Segments {
		if t < start+sg.MS {
			return sg.Scene
		}
		start += sg.MS
	}
	return s.Segments[len(s.Segments)-1].Scene
}

// Interval is a violation in time, true or detected.
type Interval struct {
	Type    rules.Type `json:"type"`
	StartMS int64      `json:"start_ms"`
	EndMS   int64      `json:"end_ms"`
}

// conditions are the ground truth of one frame: which violation
// conditions a person sees in it, following the policy's definitions (a
// blocked camera hides everything else; hands count only while the
// candidate is there).
func (s *Scenario) conditions(sc Scene, p rules.Policy) map[rules.Type]bool {
	c := map[rules.Type]bool{}
	if sc.Light.blocked() {
		c[rules.CameraBlocked] = true
		return c
	}
	present := s.isVideo()
	var crop FaceCrop
	scale := 1.0
	if sc.Zoom > 0 {
		scale = sc.Zoom
	}
	if cand := sc.Candidate; cand != nil {
		crop = Faces[cand.Face]
		visible := rules.Observation{Width: FrameWidth, Height: FrameHeight}
		present = visible.VisibleFraction(rules.Face{Box: cand.box()}) >= p.MinVisibleFraction
		if n := s.normalFaceWidth(); n > 0 {
			scale *= cand.W / n
		}
	}
	if !present {
		c[rules.FaceOffScreen] = true
	}
	if sc.Extra != nil {
		c[rules.ExtraPerson] = true
	}
	if present && crop.Turned {
		c[rules.HeadTurn] = true
	}
	hands := 0
	if sc.LeftHand {
		hands++
	}
	if sc.RightHand {
		hands++
	}
	if sc.Lift != HandDown && sc.Candidate != nil {
		hands++
		if present && sc.Lift.call() {
			c[rules.PhoneCall] = true
		}
	}
	if present && hands < p.RequiredHands {
		c[rules.HandsOutOfView] = true
	}
	if present && !crop.Turned {
		d := float64(CalibrationCM) / scale
		if math.Abs(d-p.DistanceCM) > p.DistanceToleranceCM {
			c[rules.Distance] = true
		}
	}
	return c
}

// silentMinMS is a rule's minimum duration in these silent videos: a hand
// at the ear without speech heard must stay there for phone_silent_ms.
func silentMinMS(p rules.Policy, t rules.Type) int64 {
	if t == rules.PhoneCall {
		return p.PhoneSilentMS
	}
	return p.Rules[t].MinMS
}

// CalibrationCM is where the candidate sits during the device check.
const CalibrationCM = 50

// normalFaceWidth is the candidate's face width during calibration (the
// first segment), which stands for 50 cm.
func (s *Scenario) normalFaceWidth() float64 {
	if c := s.Segments[0].Scene.Candidate; c != nil {
		return c.W
	}
	return 0
}

// Truth derives the ground-truth violations: maximal stretches where a
// condition holds, joined across gaps shorter than the rule's clear time,
// keeping those that last at least the rule's minimum duration (shorter
// ones are not violations by the policy's own definition). Only types the
// policy enables are returned.
func (s *Scenario) Truth() ([]Interval, error) {
	p, err := rules.DefaultPolicy(s.Policy)
	if err != nil {
		return nil, err
	}
	end := s.DurationMS()
	var out []Interval
	for _, typ := range rules.AllTypes {
		tm := p.Rules[typ]
		if !tm.Enabled {
			continue
		}
		tm.MinMS = silentMinMS(p, typ)
		var runs []Interval
		open := int64(-1)
		for t := int64(0); t < end; t += frameMS {
			on := s.conditions(s.sceneAt(t), p)[typ]
			switch {
			case on && open < 0:
				open = t
			case !on && open >= 0:
				runs = append(runs, Interval{typ, open, t})
				open = -1
			}
		}
		if open >= 0 {
			runs = append(runs, Interval{typ, open, end})
		}
		var joined []Interval
		for _, r := range runs {
			if n := len(joined); n > 0 && r.StartMS-joined[n-1].EndMS < tm.ClearMS {
				joined[n-1].EndMS = r.EndMS
				continue
			}
			joined = append(joined, r)
		}
		for _, r := range joined {
			if r.EndMS-r.StartMS >= tm.MinMS {
				out = append(out, r)
			}
		}
	}
	return out, nil
}

// Validate checks a scenario is well formed.
func (s *Scenario) Validate() error {
	if _, err := rules.DefaultPolicy(s.Policy); err != nil {
		return fmt.Errorf("scenario %s: %w", s.Name, err)
	}
	if len(s.Segments) == 0 {
		return fmt.Errorf("scenario %s: no segments", s.Name)
	}
	for i, sg := range s.Segments {
		if sg.MS <= 0 || sg.MS%frameMS != 0 {
			return fmt.Errorf("scenario %s: segment %d lasts %d ms, want a positive multiple of %d", s.Name, i, sg.MS, frameMS)
		}
		for _, p := range []*Placement{sg.Scene.Candidate, sg.Scene.Extra} {
			if p == nil {
				continue
			}
			if _, ok := Faces[p.Face]; !ok {
				return fmt.Errorf("scenario %s: unknown face %q", s.Name, p.Face)
			}
		}
		if sg.Scene.Lift != HandDown && sg.Scene.Candidate == nil {
			return fmt.Errorf("scenario %s: segment %d lifts a hand without a candidate placed", s.Name, i)
		}
		if sg.Scene.Zoom != 0 && sg.Scene.Zoom < 1 {
			return fmt.Errorf("scenario %s: zoom %g < 1 (move the face instead)", s.Name, sg.Scene.Zoom)
		}
	}
	return nil
}
