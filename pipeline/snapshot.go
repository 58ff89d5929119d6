package pipeline

import (
	"time"

	"invigil/detectors/rules"
)

// Snapshot is the newest analyzed observation of a candidate's camera:
// what the device check shows the candidate live (is a face found, at 50
// cm, in enough light, with nobody else), and what a dashboard may show
// between violations. The judgements are the candidate's policy's, on
// this frame alone: the rules add their durations before a violation
// opens.
type Snapshot struct {
	// At is the frame's capture time on the wall clock (the track's start
	// plus its stream time), StreamMS its stream time.
	At       time.Time
	StreamMS int64
	Width    int
	Height   int
	// Faces counts the faces found, the candidate's (the largest) first;
	// the pose and distance are the candidate's face's, 0 without one.
	// DistanceCM is also 0 while the camera is being calibrated.
	Faces      int
	DistanceCM float64
	YawDeg     float64
	PitchDeg   float64
	// Hands counts the hands that score the policy's HandScore, as last
	// checked (HandsChecked is false until the hand detector has run: the
	// policy may not look for hands at all).
	Hands        int
	HandsChecked bool
	// Light: mean luma (0–255), its spread, and the spread of its
	// Laplacian (texture).
	Brightness float64
	Contrast   float64
	Sharpness  float64
	Policy     string

	// FaceInView: the candidate's face is found and enough of it is
	// inside the frame.
	FaceInView bool
	// Alone: no other face scores the policy's ExtraFaceScore.
	Alone bool
	// DistanceOK: the distance is known and within TargetDistanceCM ±
	// DistanceToleranceCM.
	DistanceOK          bool
	TargetDistanceCM    float64
	DistanceToleranceCM float64
	// Calibrating: the device-check calibration is still collecting.
	Calibrating bool
	// TooDark: mean luma under the policy's DarkBrightness. Blocked: the
	// camera_blocked condition (dark, uniform, or textureless without a
	// face: a finger over the lens); good light is !Blocked.
	TooDark bool
	Blocked bool
	// Open lists the violations open after this frame.
	Open []rules.Type
}

// newSnapshot summarizes an analyzed frame (c.analysisMu held).
func newSnapshot(c *candidate, f *frame, o *rules.Observation) *Snapshot {
	pol := c.engine.Policy()
	extra, _ := pol.ExtraFaces(o)
	s := &Snapshot{
		At:                  c.engineEpoch.Add(time.Duration(f.tMS) * time.Millisecond),
		StreamMS:            f.tMS,
		Width:               o.Width,
		Height:              o.Height,
		Faces:               len(o.Faces),
		HandsChecked:        o.HandsChecked,
		Brightness:          o.Brightness,
		Contrast:            o.Contrast,
		Sharpness:           o.Sharpness,
		Policy:              pol.Name,
		FaceInView:          pol.FaceInView(o),
		Alone:               extra == 0,
		TargetDistanceCM:    pol.DistanceCM,
		DistanceToleranceCM: pol.DistanceToleranceCM,
		Calibrating:         c.stream.CalibrateUntilMS > 0 && !c.stream.Calibrated(),
		TooDark:             o.Brightness < pol.DarkBrightness,
		Blocked:             pol.Blocked(o),
	}
	if o.HandsChecked {
		s.Hands = pol.VisibleHands(o)
	}
	if face, ok := o.MainFace(); ok {
		s.DistanceCM, s.YawDeg, s.PitchDeg = face.DistanceCM, face.YawDeg, face.PitchDeg
		s.DistanceOK = pol.DistanceOK(face)
	}
	for _, v := range c.engine.OpenViolations() {
		s.Open = append(s.Open, v.Type)
	}
	return s
}

// Latest returns the newest analyzed observation of the candidate's video,
// if one was analyzed since Forget. At tells how old it is: when the
// candidate's tracks end it stays as long as the pipeline keeps the
// candidate (with SetPolicy or Calibrate, until Forget). Cheap, and safe to
// call from any goroutine while the workers analyze.
func (p *Pipeline) Latest(identity string) (Snapshot, bool) {
	s := p.sched
	s.mu.Lock()
	c := s.candidates[identity]
	s.mu.Unlock()
	if c == nil {
		return Snapshot{}, false
	}
	snap := c.snapshot.Load()
	if snap == nil {
		return Snapshot{}, false
	}
	out := *snap
	out.Open = append([]rules.Type(nil), snap.Open...) // the caller's to keep
	return out, true
}
