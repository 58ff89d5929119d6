// Package detectors turns camera frames into observations (faces with head
// pose and distance, hands, light) and observations into violations with
// evidence, using the converted MediaPipe models through GoCV and the
// temporal rules of package rules.
package detectors

import (
	"errors"
	"fmt"
	"image"
	"sort"
	"strings"

	"gocv.io/x/gocv"

	"invigil/detectors/rules"
	"invigil/models"
	"invigil/models/runner"
	"invigil/motion"
)

// MaxFrameSide bounds the frame the detectors look at: larger frames are
// scaled down first (the models see at most 224 px anyway), which bounds
// memory and time for hostile or 8K inputs.
const MaxFrameSide = 1920

// maxHands is how many hands one candidate can show.
const maxHands = 2

// Analyzer holds one set of networks. It is not safe for concurrent use:
// each pipeline worker owns one, and per-candidate state lives in Stream.
type Analyzer struct {
	face *runner.FaceDetector
	// short is the short-range face detector: the face cascade's cheap
	// check that nobody else is near (see checkOthers).
	short *runner.FaceDetector
	mesh  *runner.FaceLandmarker
	palm  *runner.PalmDetector
	hand  *runner.HandLandmarker

	gray, small, laplace gocv.Mat        // scratch for the light measures
	grid                 *motion.Gridder // for the cascades' change grid
	scaled               gocv.Mat        // scratch for oversized frames
	// changes is the change grid of the frame Observe is analyzing, made
	// once from the light measures' thumbnail for every cascade to compare
	// with the picture it last looked at.
	changes motion.Grid
}

// AnalyzerOptions picks the model variants.
type AnalyzerOptions struct {
	ModelsDir string
	// FullHands selects the full (slower, more accurate) palm and hand
	// landmark models instead of the lite ones.
	FullHands bool
}

// NewAnalyzer loads the face, palm and hand-landmark networks.
func NewAnalyzer(opts AnalyzerOptions) (*Analyzer, error) {
	if opts.ModelsDir == "" {
		dir, err := models.DefaultDir()
		if err != nil {
			return nil, err
		}
		opts.ModelsDir = dir
	}
	if err := models.CheckPresent(opts.ModelsDir); err != nil {
		return nil, err
	}
	a := &Analyzer{gray: gocv.NewMat(), small: gocv.NewMat(), scaled: gocv.NewMat(), laplace: gocv.NewMat(), grid: motion.NewGridder()}
	var err error
	if a.face, err = runner.NewFaceDetector(models.ONNXPath(opts.ModelsDir, models.FaceFullRange), runner.FaceFullRange); err != nil {
		a.Close()
		return nil, fmt.Errorf("load face detector: %w", err)
	}
	if a.short, err = runner.NewFaceDetector(models.ONNXPath(opts.ModelsDir, models.FaceShortRange), runner.FaceShortRange); err != nil {
		a.Close()
		return nil, fmt.Errorf("load short-range face detector: %w", err)
	}
	if a.mesh, err = runner.NewFaceLandmarker(models.ONNXPath(opts.ModelsDir, models.FaceLandmark)); err != nil {
		a.Close()
		return nil, fmt.Errorf("load face landmarker: %w", err)
	}
	palmModel, palmName := runner.PalmLite, models.PalmLite
	handModel, handName := runner.HandLandmarkLite, models.HandLandmarkLite
	if opts.FullHands {
		palmModel, palmName = runner.PalmFull, models.PalmFull
		handModel, handName = runner.HandLandmarkFull, models.HandLandmarkFull
	}
	if a.palm, err = runner.NewPalmDetector(models.ONNXPath(opts.ModelsDir, palmName), palmModel); err != nil {
		a.Close()
		return nil, fmt.Errorf("load palm detector: %w", err)
	}
	if a.hand, err = runner.NewHandLandmarker(models.ONNXPath(opts.ModelsDir, handName), handModel); err != nil {
		a.Close()
		return nil, fmt.Errorf("load hand landmarker: %w", err)
	}
	return a, nil
}

// Close frees the networks.
func (a *Analyzer) Close() error {
	if a.face != nil {
		a.face.Close()
	}
	if a.short != nil {
		a.short.Close()
	}
	if a.mesh != nil {
		a.mesh.Close()
	}
	if a.palm != nil {
		a.palm.Close()
	}
	if a.hand != nil {
		a.hand.Close()
	}
	a.gray.Close()
	a.small.Close()
	a.laplace.Close()
	a.scaled.Close()
	_ = a.grid.Close()
	return nil
}

// Stream is one candidate's analysis state: the hand tracker, the cost
// schedule and the camera calibration. A worker may serve many streams.
type Stream struct {
	Policy rules.Policy
	Camera Camera
	// CalibrateUntilMS, when positive, marks the frames before it as the
	// device check at 50 cm: the main face's scale there calibrates the
	// camera, and no distance is reported until calibration is done.
	CalibrateUntilMS int64

	calibFaces []calibFace
	calibrated bool
	neutralYaw float64 // the candidate's straight-ahead yaw from calibration

	mainBox    runner.Rect // where the main face was last seen
	mainSeenMS int64
	hasMain    bool

	analyzed     int
	faces        []rules.Face // as last detected
	facesChecked bool
	// faceSkips counts the analyses since the face networks last looked,
	// and faceGrid is the picture (of a faceGridW×faceGridH frame) then:
	// facesDue brings their next look forward when a face's box changed.
	faceSkips            int
	faceGrid             motion.Grid
	faceGridW, faceGridH int
	handsChecked         bool
	hands                []rules.Hand
	tracked              []runner.RotatedRect
	handRuns             int
	palm                 palmLook
	anchor               faceAnchor
}

// NewStream starts a stream under a policy.
func NewStream(p rules.Policy, cam Camera) *Stream {
	return &Stream{Policy: p, Camera: cam}
}

// ErrBadFrame reports a frame the detectors cannot take.
var ErrBadFrame = errors.New("bad frame")

// Observe analyses one BGR frame of any size for the stream.
func (a *Analyzer) Observe(img gocv.Mat, tMS int64, s *Stream) (rules.Observation, error) {
	if img.Empty() || img.Cols() < 2 || img.Rows() < 2 {
		return rules.Observation{}, fmt.Errorf("%w: empty or smaller than 2×2", ErrBadFrame)
	}
	if img.Type() != gocv.MatTypeCV8UC3 {
		return rules.Observation{}, fmt.Errorf("%w: type %v, want 8-bit BGR", ErrBadFrame, img.Type())
	}
	frame := img
	if side := max(img.Cols(), img.Rows()); side > MaxFrameSide {
		f := float64(MaxFrameSide) / float64(side)
		gocv.Resize(img, &a.scaled, image.Point{}, f, f, gocv.InterpolationArea)
		frame = a.scaled
	}
	o := rules.Observation{TMS: tMS, Width: frame.Cols(), Height: frame.Rows()}
	o.Brightness, o.Contrast, o.Sharpness = a.light(frame)
	if err := a.makeChangeGrid(&a.changes); err != nil {
		return o, err
	}

	if a.facesDue(frame, s) {
		face, followed, err := a.followFace(frame, tMS, s)
		if err != nil {
			return o, err
		}
		if followed {
			s.faces = []rules.Face{face}
		} else {
			a.face.MinScore = TrackFaceScore
			faces, err := a.face.Detect(frame)
			if err != nil {
				return o, fmt.Errorf("detect faces: %w", err)
			}
			if s.faces, err = a.faceObservations(s.keepFaces(faces, tMS), frame, tMS, s); err != nil {
				return o, err
			}
		}
		s.facesChecked = true
		s.faceSkips = 0
		s.faceGrid, s.faceGridW, s.faceGridH = a.changes, frame.Cols(), frame.Rows()
	} else {
		s.faceSkips++
	}
	o.Faces = append([]rules.Face(nil), s.faces...)

	if s.Policy.HandsEvery > 0 && s.analyzed%s.Policy.HandsEvery == 0 {
		var head []rules.Rect
		if len(o.Faces) > 0 {
			head = append(head, headZone(o.Faces[0].Box))
		}
		hands, err := a.detectHands(frame, s, head)
		if err != nil {
			return o, fmt.Errorf("detect hands: %w", err)
		}
		s.hands, s.handsChecked = hands, true
		o.HandsFresh = true
	}
	o.Hands = append([]rules.Hand(nil), s.hands...)
	o.HandsChecked = s.handsChecked
	s.analyzed++
	return o, nil
}

// Carry repeats prev, this stream's last observation, at tMS for a frame
// whose picture has not changed since (the pipeline's change detector
// says so): the detectors would find the same, so only time moves on (the
// rules' durations advance) and the candidate's face counts as seen now.
// It refuses (false) while calibrating, which needs real measurements, and
// before anything was detected. The detector cadence is not advanced.
func (s *Stream) Carry(prev rules.Observation, tMS int64) (rules.Observation, bool) {
	if !s.facesChecked || (s.CalibrateUntilMS > 0 && tMS < s.CalibrateUntilMS) {
		return rules.Observation{}, false
	}
	o := prev
	o.TMS = tMS
	o.Faces = append([]rules.Face(nil), prev.Faces...)
	o.Hands = append([]rules.Hand(nil), prev.Hands...)
	o.HandsFresh = false
	if len(o.Faces) > 0 && s.hasMain {
		s.mainSeenMS = tMS
	}
	return o, true
}

// light measures, on a thumbnail, the mean luma, its spread and the
// spread of its Laplacian (texture): cheap, and enough to tell a covered
// lens (dark, or lit through a finger: flat and without edges) or a dead
// camera (uniform).
func (a *Analyzer) light(frame gocv.Mat) (brightness, contrast, sharpness float64) {
	gocv.Resize(frame, &a.small, image.Pt(160, 120), 0, 0, gocv.InterpolationArea)
	gocv.CvtColor(a.small, &a.gray, gocv.ColorBGRToGray)
	mean, stddev := gocv.NewMat(), gocv.NewMat()
	defer mean.Close()
	defer stddev.Close()
	gocv.MeanStdDev(a.gray, &mean, &stddev)
	brightness, contrast = mean.GetDoubleAt(0, 0), stddev.GetDoubleAt(0, 0)
	gocv.Laplacian(a.gray, &a.laplace, gocv.MatTypeCV32F, 1, 1, 0, gocv.BorderDefault)
	gocv.MeanStdDev(a.laplace, &mean, &stddev)
	return brightness, contrast, stddev.GetDoubleAt(0, 0)
}

// Face score thresholds. MediaPipe's full-range model wants 0.6 for a new
// face; a face seen in the previous frame is kept down to TrackFaceScore
// while it stays in place, because a candidate who turns to profile or
// bows scores 0.4–0.6 and would otherwise "leave" the screen.
const (
	NewFaceScore   = 0.6
	TrackFaceScore = 0.4
)

// FaceMemoryMS is how long the main face's place is remembered after it was
// last seen: a turn scores low for a frame or two while the head moves.
const FaceMemoryMS = 2000

// keepFaces applies the two thresholds and remembers the main face.
func (s *Stream) keepFaces(faces []runner.Face, tMS int64) []runner.Face {
	remembered := s.hasMain && tMS-s.mainSeenMS <= FaceMemoryMS
	kept := faces[:0:0]
	for _, f := range faces {
		if f.Score >= NewFaceScore || (remembered && s.continues(f.Box)) {
			kept = append(kept, f)
		}
	}
	found := false
	for _, f := range kept {
		if !found || f.Box.Area() > s.mainBox.Area() {
			s.mainBox, found = f.Box, true
		}
	}
	if found {
		s.hasMain, s.mainSeenMS = true, tMS
	}
	return kept
}

// continues reports whether a box is where the main face was, not much
// smaller.
func (s *Stream) continues(b runner.Rect) bool {
	return b.IoU(s.mainBox) >= 0.3 && b.W >= 0.6*s.mainBox.W
}

// faceObservations sorts faces largest first (the candidate sits nearest)
// and adds head pose and distance; the candidate's pose comes from the
// face landmark model.
func (a *Analyzer) faceObservations(faces []runner.Face, frame gocv.Mat, tMS int64, s *Stream) ([]rules.Face, error) {
	sort.SliceStable(faces, func(i, j int) bool { return faces[i].Box.Area() > faces[j].Box.Area() })
	out := make([]poseFace, 0, len(faces))
	center := rules.Point{X: float64(frame.Cols()) / 2, Y: float64(frame.Rows()) / 2}
	focal := s.Camera.FocalPx(frame.Cols())
	var mainMesh runner.FaceMesh
	for i, f := range faces {
		rf := poseFace{Face: rules.Face{
			Box:   rules.Rect{X: f.Box.X, Y: f.Box.Y, W: f.Box.W, H: f.Box.H},
			Score: f.Score,
		}}
		for k, p := range f.Keypoints {
			rf.Keypoints[k] = rules.Point{X: p.X, Y: p.Y}
		}
		if pose, ok := EstimatePose(rf.Face.Keypoints, center, focal); ok {
			rf.YawDeg, rf.PitchDeg = pose.YawDeg, pose.PitchDeg
			rf.DistanceCM = s.Camera.DistanceCM(pose, frame.Cols())
			rf.pose = pose
		}
		if i == 0 {
			mesh, err := a.mesh.Detect(frame, runner.FaceCrop(f))
			if err != nil {
				return nil, fmt.Errorf("face landmarks: %w", err)
			}
			mainMesh = mesh
			// Pitch from the mesh, which measures it; yaw from the keypoint
			// fit, which holds up better in profile, where the mesh (cropped
			// by eye keypoints that a profile places badly) reads too little.
			if mesh.Presence >= 0.5 {
				if _, pitch, ok := MeshPose(&mesh); ok {
					rf.PitchDeg = pitch
				}
			}
			rf.rawYaw = rf.YawDeg
			rf.YawDeg -= s.neutralYaw
		}
		out = append(out, rf)
	}
	result := make([]rules.Face, len(out))
	for i, f := range out {
		result[i] = f.Face
	}
	s.calibrate(tMS, out, center, frame.Cols())
	a.setAnchor(s, faces, &mainMesh, frame)
	if s.CalibrateUntilMS > 0 && !s.calibrated {
		for i := range result {
			result[i].DistanceCM = 0
		}
	}
	return result, nil
}

// calibFace is one device-check sample of the candidate's face.
type calibFace struct {
	keypoints [6]rules.Point
	scale     float64
	center    rules.Point
	yaw       float64
}

// poseFace carries the head scale next to the observation for calibration.
type poseFace struct {
	rules.Face
	pose   Pose
	rawYaw float64 // before the neutral direction is taken off
}

// calibrate collects the main face's scale during the device check and,
// once it is over, sets the camera from the median (robust to a few frames
// where the candidate leaned in).
func (s *Stream) calibrate(tMS int64, faces []poseFace, center rules.Point, frameWidth int) {
	if s.CalibrateUntilMS <= 0 || s.calibrated {
		return
	}
	if tMS < s.CalibrateUntilMS {
		if len(faces) > 0 && faces[0].pose.PxPerMM > 0 {
			s.calibFaces = append(s.calibFaces, calibFace{faces[0].Keypoints, faces[0].pose.PxPerMM, center, faces[0].rawYaw})
		}
		return
	}
	if len(s.calibFaces) == 0 {
		return // no face seen yet: keep calibrating with the next one
	}
	// Straight ahead is wherever the candidate faced during the check (the
	// camera may sit beside the screen). Pitch has no such correction: a
	// candidate who bowed over the keyboard then would hide it for good.
	yaws := make([]float64, len(s.calibFaces))
	for i, f := range s.calibFaces {
		yaws[i] = f.yaw
	}
	sort.Float64s(yaws)
	s.neutralYaw = yaws[len(yaws)/2]
	sort.Slice(s.calibFaces, func(i, j int) bool { return s.calibFaces[i].scale < s.calibFaces[j].scale })
	median := s.calibFaces[len(s.calibFaces)/2]
	// The pose fit itself depends on the focal length, so settle both
	// together: a few rounds of fit, then calibrate with the new pose.
	for i := 0; i < 8; i++ {
		pose, ok := EstimatePose(median.keypoints, median.center, s.Camera.FocalPx(frameWidth))
		if !ok {
			return
		}
		s.Camera.Calibrate(pose, frameWidth)
	}
	s.calibrated = true
}

// Calibrated reports whether the device-check calibration is done.
func (s *Stream) Calibrated() bool { return s.calibrated }

// detectHands follows the hands found last time with the landmark model
// alone and runs the (expensive) palm detector only when fewer than two
// hands could be followed, as MediaPipe's hand tracking does, and then
// only when it may find something new (palmNeeded): the head zones' own
// movement does not count.
func (a *Analyzer) detectHands(frame gocv.Mat, s *Stream, head []rules.Rect) ([]rules.Hand, error) {
	var found []runner.Hand
	for _, crop := range s.tracked {
		h, err := a.hand.Detect(frame, crop)
		if err != nil {
			return nil, err
		}
		if h.Presence >= 0.5 && !overlapsAny(h.Box, found) {
			found = append(found, h)
		}
	}
	if len(found) < maxHands {
		zones := head
		for _, h := range found {
			zones = append(zones, handZone(h.Box))
		}
		lost := len(found) < len(s.tracked)
		if !palmNeeded(s, &a.changes, zones, lost, frame.Cols(), frame.Rows()) {
			s.palm.skips++
			return s.keepHands(found), nil
		}
		palms, err := a.palm.Detect(frame)
		if err != nil {
			return nil, err
		}
		for _, p := range palms {
			if len(found) >= maxHands {
				break
			}
			if overlapsAny(p.Box, found) {
				continue
			}
			h, err := a.hand.Detect(frame, p.Crop)
			if err != nil {
				return nil, err
			}
			if h.Presence >= 0.5 && !overlapsAny(h.Box, found) {
				found = append(found, h)
			}
		}
		// What this look saw, the hands it found included: until the
		// picture changes elsewhere, another look would find the same.
		s.palm = palmLook{valid: true, width: frame.Cols(), height: frame.Rows(), grid: a.changes, zones: head}
		for _, h := range found {
			s.palm.zones = append(s.palm.zones, handZone(h.Box))
		}
	}
	return s.keepHands(found), nil
}

// keepHands makes the found hands the ones to follow next time and the
// stream's observation of them.
func (s *Stream) keepHands(found []runner.Hand) []rules.Hand {
	s.handRuns++
	s.tracked = s.tracked[:0]
	out := make([]rules.Hand, 0, len(found))
	for _, h := range found {
		s.tracked = append(s.tracked, h.NextCrop())
		// The landmarks go along (one small slice per detection, shared
		// by the frames that carry it) for the rules that need the hand's
		// shape and place, such as a hand at the ear.
		lm := make([]rules.Point, len(h.Landmarks))
		for i, p := range h.Landmarks {
			lm[i] = rules.Point{X: p.X, Y: p.Y}
		}
		out = append(out, rules.Hand{Box: rules.Rect{X: h.Box.X, Y: h.Box.Y, W: h.Box.W, H: h.Box.H}, Score: h.Presence, Landmarks: lm})
	}
	return out
}

// handZone is where a followed hand's own movement shows: its landmarks'
// box and a quarter of it around (fingers flex, the hand shifts a little).
func handZone(b runner.Rect) rules.Rect {
	return rules.Rect{X: b.X - b.W/4, Y: b.Y - b.H/4, W: b.W * 1.5, H: b.H * 1.5}
}

func overlapsAny(r runner.Rect, hands []runner.Hand) bool {
	for _, h := range hands {
		if r.IoU(h.Box) > 0.3 {
			return true
		}
	}
	return false
}

// Inference sums the bare-inference runs and time of the analyzer's
// networks, to report the analysis overhead around them.
func (a *Analyzer) Inference() runner.Inference {
	var sum runner.Inference
	for _, n := range a.Networks() {
		sum = sum.Add(n.Inference)
	}
	return sum
}

// NetworkRuns is one network's bare-inference runs and time so far.
type NetworkRuns struct {
	Name string
	runner.Inference
}

// Networks lists the runs of each network so far, in a fixed order, so a
// caller can take the difference over a piece of work and see which
// networks it ran how often.
func (a *Analyzer) Networks() []NetworkRuns {
	return []NetworkRuns{
		{"face", a.face.Inference()},
		{"face_short", a.short.Inference()},
		{"face_mesh", a.mesh.Inference()},
		{"palm", a.palm.Inference()},
		{"hand", a.hand.Inference()},
	}
}

// InferenceReport lists each network's runs and mean bare-inference time.
func (a *Analyzer) InferenceReport() string {
	return FormatNetworkRuns(a.Networks(), 0)
}

// FormatNetworkRuns writes networks' runs and mean times on one line; with
// analyses > 0 also the runs per analysis.
func FormatNetworkRuns(networks []NetworkRuns, analyses int) string {
	var b strings.Builder
	for _, n := range networks {
		if n.Runs == 0 {
			continue
		}
		fmt.Fprintf(&b, "%s %d runs %.1f ms", n.Name, n.Runs, n.Time.Seconds()*1000/float64(n.Runs))
		if analyses > 0 {
			fmt.Fprintf(&b, " (%.2f per analysis)", float64(n.Runs)/float64(analyses))
		}
		b.WriteString("; ")
	}
	return b.String()
}

// SubtractRuns is after − before, network by network (both from Networks).
func SubtractRuns(after, before []NetworkRuns) []NetworkRuns {
	out := make([]NetworkRuns, len(after))
	for i, n := range after {
		out[i] = n
		if i < len(before) {
			out[i].Runs -= before[i].Runs
			out[i].Time -= before[i].Time
		}
	}
	return out
}
