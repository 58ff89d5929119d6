// Package rules turns per-frame observations of a candidate into
// violations: each rule is a condition on one observation plus hysteresis
// in time (open after the condition held for its minimum duration, close
// after it was clear for its clear duration). It is pure Go so the logic is
// tested without OpenCV; package detectors produces the observations.
package rules

// Point is a position in image pixels.
type Point struct{ X, Y float64 }

// Rect is an axis-aligned box in image pixels.
type Rect struct{ X, Y, W, H float64 }

// Area is W×H (0 for degenerate boxes).
func (r Rect) Area() float64 {
	if r.W <= 0 || r.H <= 0 {
		return 0
	}
	return r.W * r.H
}

// Intersect is the overlap of two boxes.
func (r Rect) Intersect(o Rect) Rect {
	x0, y0 := max(r.X, o.X), max(r.Y, o.Y)
	x1, y1 := min(r.X+r.W, o.X+o.W), min(r.Y+r.H, o.Y+o.H)
	if x1 <= x0 || y1 <= y0 {
		return Rect{}
	}
	return Rect{x0, y0, x1 - x0, y1 - y0}
}

// Face keypoint indices, in the order of MediaPipe's face detector (sides
// are the subject's).
const (
	RightEye = iota
	LeftEye
	NoseTip
	Mouth
	RightEar
	LeftEar
)

// Face is one detected face with the pose estimates derived from its
// keypoints (see package detectors for how they are computed).
type Face struct {
	Box        Rect     `json:"-"`
	Score      float64  `json:"score"`
	Keypoints  [6]Point `json:"-"`
	YawDeg     float64  `json:"yaw_deg"`
	PitchDeg   float64  `json:"pitch_deg"`
	DistanceCM float64  `json:"distance_cm"`
}

// Hand is one detected hand.
type Hand struct {
	Box   Rect    `json:"-"`
	Score float64 `json:"score"`
	// Landmarks are the hand's 21 points in image pixels, in MediaPipe's
	// order (wrist first), or nil when unknown. The slice is shared by the
	// observations that carry this detection and must not be modified.
	Landmarks []Point `json:"-"`
}

// Observation is what the detectors saw in one analyzed frame.
type Observation struct {
	TMS    int64 // frame time in milliseconds since the stream started
	Width  int
	Height int
	// Faces, largest (the candidate) first.
	Faces []Face
	// Hands as last detected; HandsFresh is false when the hand detector
	// did not run on this frame and the previous result was carried.
	Hands      []Hand
	HandsFresh bool
	// HandsChecked is false until the hand detector has run at least once
	// (the hands rule stays silent until then).
	HandsChecked bool
	// Brightness is the mean luma (0–255) and Contrast its standard
	// deviation: a covered lens is dark, a dead camera uniform.
	// (Sharpness below complements them.)
	Brightness float64
	Contrast   float64
	// Sharpness is the standard deviation of the Laplacian of a 160×120
	// thumbnail: near 0 for a lens covered by a finger or a defocused blur.
	Sharpness float64
}

// MainFace returns the candidate's face (the largest), if any.
func (o *Observation) MainFace() (Face, bool) {
	if len(o.Faces) == 0 {
		return Face{}, false
	}
	return o.Faces[0], true
}

// VisibleFraction is the share of a face box inside the frame.
func (o *Observation) VisibleFraction(f Face) float64 {
	a := f.Box.Area()
	if a == 0 {
		return 0
	}
	in := f.Box.Intersect(Rect{0, 0, float64(o.Width), float64(o.Height)})
	return in.Area() / a
}
