package detectors

import (
	"fmt"
	"math"

	"gocv.io/x/gocv"

	"invigil/detectors/rules"
	"invigil/models/runner"
	"invigil/motion"
)

// The cascades skip an expensive network when what it would look at has
// not changed since it last looked, judged by package motion's grid of the
// frame's luma (the same measure as the pipeline's change detector), made
// from the light measures' 160×120 thumbnail, so it costs a few
// microseconds.

// makeChangeGrid averages the light measures' gray thumbnail into g.
func (a *Analyzer) makeChangeGrid(g *motion.Grid) error {
	if err := a.grid.FromGray(a.gray, g); err != nil {
		return fmt.Errorf("change grid: %w", err)
	}
	return nil
}

// changedOutside counts the cells that changed from ref to now whose
// centers lie outside every zone (in pixels of a width×height frame).
func changedOutside(ref, now *motion.Grid, zones []rules.Rect, width, height int) int {
	return motion.ChangedOutside(ref, now, width, height, func(x, y float64) bool {
		for _, z := range zones {
			if x >= z.X && x <= z.X+z.W && y >= z.Y && y <= z.Y+z.H {
				return true
			}
		}
		return false
	})
}

// headZone is where a face's own movement shows: the head and hair, the
// chin and neck that move when the candidate talks, around a face box.
// Hands matter beside the head (a hand at the ear is 0.2 to 1 face widths
// out from the face's center), so the zone stays narrow at the sides.
func headZone(face rules.Rect) rules.Rect {
	const side, above, below = 0.1, 0.6, 0.3
	return rules.Rect{
		X: face.X - side*face.W, Y: face.Y - above*face.H,
		W: face.W * (1 + 2*side), H: face.H * (1 + above + below),
	}
}

// ownMotion is where a followed face's own movement shows, for the face
// cascade's change check: the head with its hair and ears, which swing
// half a face width out when the candidate turns or nods (headZone's
// narrow sides are for the hands), and below it the shoulders, chest and
// hands, which talking, a shrug or a hand on the desk change all the time
// (shoulders are 2.5 to 3 face widths across). None of it moves the face,
// and a second person does not come in there; one who does is still found
// at the next regular look (face_detect_every). Measured on the webcam
// recording (BenchmarkWebcamAnalysis): every change that sent the cascade
// back to the detector with headZone alone lay within half a face width
// of the head's sides or below the chin; the detector ran 45 times in 300
// analyses then, 34 with these zones, and 28 against 19 at half the rate.
func ownMotion(face rules.Rect, frameHeight int) [2]rules.Rect {
	const side, above, below, shoulders = 0.45, 0.6, 0.3, 1.25
	top := face.Y + face.H*(1+below)
	return [2]rules.Rect{
		{X: face.X - side*face.W, Y: face.Y - above*face.H, W: face.W * (1 + 2*side), H: face.H * (1 + above + below)},
		{X: face.X - shoulders*face.W, Y: top, W: face.W * (1 + 2*shoulders), H: max(float64(frameHeight)-top, 0)},
	}
}

// faceGoneShare: on an analysis that would carry the faces (face_every),
// the face networks look anyway when at least this share of a carried
// face's box changed since they last looked. The face has then most
// likely left or turned away, and carrying it would put face_off_screen
// and head_turn off by a whole analysis, which under load is a second or
// more. Measured on the grid between looks 0.2 to 1 s apart: a candidate
// who talks and moves his head a lot (franck.mp4) changes a 90th
// percentile of 0.43–0.65 of his face box's cells and at most 0.81; a
// candidate who leaves (the evaluation's leave videos) 0.91–0.97, a face
// replaced by a turned head 0.83–0.93.
const faceGoneShare = 0.7

// facesDue tells whether the face networks look at this analysis: on the
// first, on every face_every-th, and sooner when most of a carried face's
// box changed since they last looked (faceGoneShare). A look brought
// forward starts the count to the next one again, so it costs nothing but
// the grid.
func (a *Analyzer) facesDue(frame gocv.Mat, s *Stream) bool {
	if !s.facesChecked || s.faceSkips+1 >= max(s.Policy.FaceEvery, 1) ||
		s.faceGridW != frame.Cols() || s.faceGridH != frame.Rows() {
		return true
	}
	for _, f := range s.faces {
		box := f.Box
		changed, cells := motion.ChangedWithin(&s.faceGrid, &a.changes, frame.Cols(), frame.Rows(), func(x, y float64) bool {
			return x >= box.X && x <= box.X+box.W && y >= box.Y && y <= box.Y+box.H
		})
		if cells > 0 && float64(changed) >= faceGoneShare*float64(cells) {
			return true
		}
	}
	return false
}

// palmLook is the palm detector's last look for a stream: the picture then
// and the zones whose later changes do not call for another look (the
// head, and the hands known then, which the landmark model follows).
type palmLook struct {
	valid  bool
	width  int
	height int
	grid   motion.Grid
	zones  []rules.Rect
	skips  int // hand analyses since, on which it did not run
}

// palmNeeded decides whether the palm detector must look for hands on this
// hand analysis, when fewer than two are followed: it must when a hand
// followed last time was lost (it may still be there, badly seen), when
// the picture changed outside the head and the followed hands since it
// last looked (a hand may have come in or risen to the ear), or when it
// has not looked for the policy's palm_still_every hand analyses (slow
// drifts, a hand that came in within an excluded zone).
func palmNeeded(s *Stream, grid *motion.Grid, zones []rules.Rect, lost bool, width, height int) bool {
	every := s.Policy.PalmStillEvery
	look := &s.palm
	if every <= 1 || lost || !look.valid || look.width != width || look.height != height || look.skips+1 >= every {
		return true
	}
	all := append(append([]rules.Rect(nil), zones...), look.zones...)
	return changedOutside(&look.grid, grid, all, width, height) >= motion.MinChangedCells
}

// The face cascade. MediaPipe follows a face from frame to frame with the
// landmark model alone, cropping each frame around the last landmarks,
// and runs the detector only when the face is lost. Invigil must also
// count people and measure the pose, so while exactly one large face is
// followed the full-range detector still runs on every face_detect_every-th
// face analysis (a second person) and at once when the picture changes
// outside the head, or the landmarks say the face left, moved far, turned
// or changed size. In between, the face reported is the detector's last
// one moved with the landmarks: its box and keypoints carried by the
// similarity (shift, scale, roll) that takes the landmarks then to the
// landmarks now. The pose fit over those keypoints gives the yaw the
// detector's keypoints gave (a similarity does not turn a head), to which
// the landmarks' own turn since is added (meshTurn's change, at most
// maxFollowYawDeg), and the distance scaled by the landmarks' change in
// size: calibration and measurement keep one source, the detector's
// keypoints.
//
// The regular look for a second person (face_detect_every) is cheaper
// still on every other turn: the short-range detector (128×128, a third
// of the full-range one's cost, faces within about 2 m) looks instead, and
// the follow goes on if it sees only the followed face; any other face, or
// not seeing the followed one, and the full-range detector looks. Someone
// farther than 2 m who came in moved the picture outside the head, which
// calls the full-range detector at once; the other turns are its own, for
// one who came in unseen by the change detector, and to take the
// measurements from the detector again (a longer follow drifts: on the
// webcam recording the followed distance's 90th percentile gap to the
// detector's is 1.9 % with every other turn short-range, 2.0 % with two
// of three, against the detector's own 1.5 % step).
const (
	// minFollowedFaceWidth is the least face box, as a share of the frame
	// width, the cascade follows: a candidate at 50 cm fills 26–30 % of a
	// 60° webcam's frame; small faces get the detector every time.
	minFollowedFaceWidth = 0.1
	// maxFollowScale is how far (as a ratio) the landmarks may grow or
	// shrink from the detector's look before it looks again: under half
	// the distance rule's ±10 %.
	maxFollowScale = 0.04
	// maxFollowShift is how far the face may move, in face widths.
	maxFollowShift = 0.2
	// maxFollowRollDeg and maxFollowYawDeg bound the head's roll and its
	// turn (meshTurn) before the detector looks again: a turn must reach
	// the pose fit within a few degrees.
	maxFollowRollDeg = 8
	maxFollowYawDeg  = 4
	// minMeshPresence is the landmark model's own confidence that a face
	// is in the crop, below which the face counts as lost (MediaPipe's).
	minMeshPresence = 0.5
	// fullRangeEvery: every fullRangeEvery-th regular look is the
	// full-range detector's, the others the short-range one's.
	fullRangeEvery = 2
	// minSameFaceIoU is how much the short-range detector's box must
	// overlap the followed face to be that face.
	minSameFaceIoU = 0.4
)

// stableLandmarks are face mesh points that move with the skull, not the
// jaw or the lips (which move when the candidate talks): forehead, nose,
// eye corners and lids, cheeks and the face's sides at eye level.
var stableLandmarks = [...]int{10, 151, 9, 168, 6, 197, 195, 5, 4, 1, 33, 133, 159, 145, 362, 263, 386, 374, 234, 454, 127, 356, 93, 323, 116, 345}

// faceAnchor is the face detector's last look, when it found one large
// face the cascade can follow.
type faceAnchor struct {
	valid         bool
	width, height int
	face          runner.Face
	score         float64
	points        [len(stableLandmarks)]runner.Point // the landmarks then
	meshTurn      Pose                               // meshTurn's pose then
	grid          motion.Grid
	box           rules.Rect // the detector's face box
	// crop is where the landmark model looks next: the detector's crop
	// carried along with the face.
	crop      runner.RotatedRect
	faceCrop  runner.RotatedRect
	followBox rules.Rect // the face's box at the last follow
	skips     int        // face analyses since a detector looked
	checks    int        // regular looks the short-range detector made since the full-range one looked
}

// setAnchor records the detector's look for the cascade: one face, large,
// whole in the frame, with landmarks the model is sure of.
func (a *Analyzer) setAnchor(s *Stream, faces []runner.Face, mesh *runner.FaceMesh, frame gocv.Mat) {
	s.anchor = faceAnchor{}
	if len(faces) != 1 || mesh.Presence < minMeshPresence {
		return
	}
	f := faces[0]
	w, h := float64(frame.Cols()), float64(frame.Rows())
	if f.Score < NewFaceScore || f.Box.W < minFollowedFaceWidth*w || f.Box.X < 0 || f.Box.Y < 0 || f.Box.X+f.Box.W > w || f.Box.Y+f.Box.H > h {
		return
	}
	turn, ok := meshTurn(mesh, frame, s)
	if !ok {
		return
	}
	box := rules.Rect{X: f.Box.X, Y: f.Box.Y, W: f.Box.W, H: f.Box.H}
	anchor := faceAnchor{valid: true, width: frame.Cols(), height: frame.Rows(), face: f, score: f.Score,
		meshTurn: turn, grid: a.changes, box: box, crop: runner.FaceCrop(f), faceCrop: runner.FaceCrop(f), followBox: box}
	for i, k := range stableLandmarks {
		anchor.points[i] = runner.Point{X: mesh.Landmarks[k].X, Y: mesh.Landmarks[k].Y}
	}
	s.anchor = anchor
}

// followFace follows the anchored face with the landmark model alone and
// reports it (followed true), or reports false when the detector must
// look: no face to follow, its turn (face_detect_every, on every other
// turn checked by the short-range detector instead), calibration (which
// wants the detector's own keypoints), a change outside the head, or a
// face that the landmarks say was lost, moved, turned or changed size.
func (a *Analyzer) followFace(frame gocv.Mat, tMS int64, s *Stream) (rules.Face, bool, error) {
	an := &s.anchor
	regular := an.skips+1 >= s.Policy.FaceDetectEvery
	if !an.valid || s.Policy.FaceDetectEvery <= 1 || (regular && an.checks+1 >= fullRangeEvery) ||
		an.width != frame.Cols() || an.height != frame.Rows() || (s.CalibrateUntilMS > 0 && !s.calibrated) {
		return rules.Face{}, false, nil
	}
	atAnchor, atFollow := ownMotion(an.box, frame.Rows()), ownMotion(an.followBox, frame.Rows())
	if changedOutside(&an.grid, &a.changes, append(atAnchor[:], atFollow[:]...), frame.Cols(), frame.Rows()) >= motion.MinChangedCells {
		return rules.Face{}, false, nil
	}
	if !cropInside(an.crop, frame.Cols(), frame.Rows()) {
		return rules.Face{}, false, nil // the face is leaving: the detector decides
	}
	mesh, err := a.mesh.Detect(frame, an.crop)
	if err != nil {
		return rules.Face{}, false, fmt.Errorf("face landmarks: %w", err)
	}
	if mesh.Presence < minMeshPresence {
		return rules.Face{}, false, nil
	}
	var now [len(stableLandmarks)]runner.Point
	for i, k := range stableLandmarks {
		now[i] = runner.Point{X: mesh.Landmarks[k].X, Y: mesh.Landmarks[k].Y}
	}
	t := fitSimilarity(an.points[:], now[:])
	_, pitch, ok := MeshPose(&mesh)
	turn, turnOK := meshTurn(&mesh, frame, s)
	if !ok || !turnOK {
		return rules.Face{}, false, nil
	}
	// The size change from the pose fit, not from the similarity: a turn
	// narrows the face in the picture, which a similarity reads as the
	// head moving away.
	t.scale = turn.PxPerMM / an.meshTurn.PxPerMM
	if math.Abs(t.scale-1) > maxFollowScale || math.Abs(t.angle)*180/math.Pi > maxFollowRollDeg ||
		math.Abs(turn.YawDeg-an.meshTurn.YawDeg) > maxFollowYawDeg {
		return rules.Face{}, false, nil
	}
	moved := t.apply(an.face.Box.Center())
	if math.Hypot(moved.X-an.face.Box.Center().X, moved.Y-an.face.Box.Center().Y) > maxFollowShift*an.face.Box.W {
		return rules.Face{}, false, nil
	}
	w, h := an.face.Box.W*t.scale, an.face.Box.H*t.scale
	box := rules.Rect{X: moved.X - w/2, Y: moved.Y - h/2, W: w, H: h}
	if box.X < 0 || box.Y < 0 || box.X+box.W > float64(frame.Cols()) || box.Y+box.H > float64(frame.Rows()) {
		return rules.Face{}, false, nil // at the frame's edge: face_off_screen wants the detector's box
	}
	f := rules.Face{Box: box, Score: an.score}
	for k, p := range an.face.Keypoints {
		q := t.apply(p)
		f.Keypoints[k] = rules.Point{X: q.X, Y: q.Y}
	}
	center := rules.Point{X: float64(frame.Cols()) / 2, Y: float64(frame.Rows()) / 2}
	if pose, ok := EstimatePose(f.Keypoints, center, s.Camera.FocalPx(frame.Cols())); ok {
		// The landmarks' turn since the detector looked: without it the
		// followed yaw stays the detector's until the turn reaches
		// maxFollowYawDeg.
		f.YawDeg = pose.YawDeg - s.neutralYaw + (turn.YawDeg - an.meshTurn.YawDeg)
		f.DistanceCM = s.Camera.DistanceCM(pose, frame.Cols())
	}
	f.PitchDeg = pitch
	if regular {
		alone, err := a.checkOthers(frame, box)
		if err != nil || !alone {
			return rules.Face{}, false, err
		}
		an.checks++
		an.skips = -1
	}
	an.crop = t.applyRect(an.faceCrop)
	an.followBox = box
	an.skips++
	s.mainBox = runner.Rect{X: box.X, Y: box.Y, W: box.W, H: box.H}
	s.mainSeenMS, s.hasMain = tMS, true
	return f, true, nil
}

// checkOthers runs the short-range detector for the face cascade's regular
// look: alone is true when it finds the followed face (its box overlapping
// followed) and no other face, even a weak one.
func (a *Analyzer) checkOthers(frame gocv.Mat, followed rules.Rect) (alone bool, err error) {
	a.short.MinScore = TrackFaceScore
	faces, err := a.short.Detect(frame)
	if err != nil {
		return false, fmt.Errorf("short-range face check: %w", err)
	}
	box := runner.Rect{X: followed.X, Y: followed.Y, W: followed.W, H: followed.H}
	var same int
	for _, f := range faces {
		if f.Box.IoU(box) < minSameFaceIoU {
			return false, nil
		}
		same++
	}
	return same == 1, nil
}

// meshTurn measures the head's yaw and scale on the landmarks to tell,
// against the detector's look, how far the head has turned and how much
// nearer or farther it is since: the pose fit over
// the six points of the detector's keypoints (eye centers, nose tip,
// mouth, the face's sides at the ears) taken from the landmarks. The
// landmarks' 2-D places follow a turn better than their depth does
// (MeshPose reads about half the turn near profile). Only its change is
// used: its zero and gain are not the detector keypoints'.
func meshTurn(m *runner.FaceMesh, frame gocv.Mat, s *Stream) (Pose, bool) {
	p := func(i ...int) rules.Point {
		var q rules.Point
		for _, k := range i {
			q.X += m.Landmarks[k].X / float64(len(i))
			q.Y += m.Landmarks[k].Y / float64(len(i))
		}
		return q
	}
	kp := [6]rules.Point{
		rules.RightEye: p(33, 133), rules.LeftEye: p(362, 263), rules.NoseTip: p(runner.MeshNoseTip),
		rules.Mouth: p(13, 14), rules.RightEar: p(234), rules.LeftEar: p(454),
	}
	center := rules.Point{X: float64(frame.Cols()) / 2, Y: float64(frame.Rows()) / 2}
	pose, ok := EstimatePose(kp, center, s.Camera.FocalPx(frame.Cols()))
	return pose, ok && pose.PxPerMM > 0
}

// cropInside reports whether a crop's center is in the frame (the landmark
// model refuses crops that are not).
func cropInside(c runner.RotatedRect, width, height int) bool {
	return c.Center.X >= 0 && c.Center.Y >= 0 && c.Center.X < float64(width) && c.Center.Y < float64(height) && c.Width > 1
}

// similarity maps p to scale·R(angle)·(p − from) + to.
type similarity struct {
	scale, angle float64
	from, to     runner.Point
}

// fitSimilarity is the least-squares similarity taking points a to b
// (Umeyama's method in the plane).
func fitSimilarity(a, b []runner.Point) similarity {
	var ma, mb runner.Point
	for i := range a {
		ma.X += a[i].X / float64(len(a))
		ma.Y += a[i].Y / float64(len(a))
		mb.X += b[i].X / float64(len(b))
		mb.Y += b[i].Y / float64(len(b))
	}
	var dot, cross, norm float64
	for i := range a {
		ax, ay := a[i].X-ma.X, a[i].Y-ma.Y
		bx, by := b[i].X-mb.X, b[i].Y-mb.Y
		dot += ax*bx + ay*by
		cross += ax*by - ay*bx
		norm += ax*ax + ay*ay
	}
	if norm == 0 {
		return similarity{scale: 1, from: ma, to: mb}
	}
	return similarity{scale: math.Hypot(dot, cross) / norm, angle: math.Atan2(cross, dot), from: ma, to: mb}
}

func (t similarity) apply(p runner.Point) runner.Point {
	c, s := math.Cos(t.angle)*t.scale, math.Sin(t.angle)*t.scale
	dx, dy := p.X-t.from.X, p.Y-t.from.Y
	return runner.Point{X: t.to.X + c*dx - s*dy, Y: t.to.Y + s*dx + c*dy}
}

func (t similarity) applyRect(r runner.RotatedRect) runner.RotatedRect {
	return runner.RotatedRect{Center: t.apply(r.Center), Width: r.Width * t.scale, Height: r.Height * t.scale, Angle: r.Angle + t.angle}
}
