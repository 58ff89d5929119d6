package detectors

import (
	"math"

	"invigil/detectors/rules"
	"invigil/models/runner"
)

// Pitch comes from MediaPipe's face landmark model (MeshPose): its 468
// landmarks carry depth, so the head's axes are measured rather than
// fitted. The fit below, over the face detector's six keypoints, gives yaw
// (it holds up in profile, where the mesh does not), the head's scale
// (hence the distance), and pitch only when the mesh is unsure: on its own
// its pitch is poor, because the detector places the keypoints close to a
// frontal template whatever the head does.
//
// Head pose and distance from the face detector's six keypoints.
//
// The six keypoints (eyes, nose tip, mouth, ear tragions) are fitted to a
// generic 3-D head with a scaled orthographic camera (the "POS" method):
// centered image points p ≈ M·X for a 2×3 matrix M whose rows are the first
// two rows of the head's rotation, scaled by s pixels per millimeter. The
// rotation gives yaw (positive when the face turns towards the image's
// right) and pitch (positive when it looks up); s gives the distance, since
// a pinhole camera with focal length f pixels sees s = f / Z at depth Z.
// f comes from a per-candidate calibration (s measured while the candidate
// sits at 50 cm during the device check) or, without one, from an assumed
// horizontal field of view (60° by default, typical of laptop webcams).

// headModel holds the generic head in millimeters: x to the image right, y
// down, z away from the camera, origin at the nose tip. The frontal layout
// (x, y) is not textbook anthropometry but where MediaPipe's detector puts
// its six keypoints on real faces: averaged over the 23 faces of the test
// photos (roll removed, scaled so the eyes are 63 mm apart) the nose tip
// is 0.62 eye-distances below the eyes, the mouth 1.05, and the "tragion"
// points only 0.1 below eye level and 1.1 out to each side. Depths (z) are
// adult averages: eyes 28 mm and ears 95 mm behind the nose tip.
var headModel = [6][3]float64{
	rules.RightEye: {-31.5, -39, 28},
	rules.LeftEye:  {31.5, -39, 28},
	rules.NoseTip:  {0, 0, 0},
	rules.Mouth:    {0, 27, 14},
	rules.RightEar: {-69, -33, 95},
	rules.LeftEar:  {69, -33, 95},
}

// modelPinv is (XᵀX)⁻¹Xᵀ for the centered head model, fixed at start.
var modelCentred, modelPinv = func() ([6][3]float64, [3][6]float64) {
	var mean [3]float64
	for _, p := range headModel {
		for k := range mean {
			mean[k] += p[k] / 6
		}
	}
	var x [6][3]float64
	for i, p := range headModel {
		for k := range mean {
			x[i][k] = p[k] - mean[k]
		}
	}
	var xtx [3][3]float64
	for i := range x {
		for a := 0; a < 3; a++ {
			for b := 0; b < 3; b++ {
				xtx[a][b] += x[i][a] * x[i][b]
			}
		}
	}
	inv := invert3(xtx)
	var pinv [3][6]float64
	for a := 0; a < 3; a++ {
		for i := 0; i < 6; i++ {
			for b := 0; b < 3; b++ {
				pinv[a][i] += inv[a][b] * x[i][b]
			}
		}
	}
	return x, pinv
}()

func invert3(m [3][3]float64) [3][3]float64 {
	det := m[0][0]*(m[1][1]*m[2][2]-m[1][2]*m[2][1]) -
		m[0][1]*(m[1][0]*m[2][2]-m[1][2]*m[2][0]) +
		m[0][2]*(m[1][0]*m[2][1]-m[1][1]*m[2][0])
	var r [3][3]float64
	r[0][0] = (m[1][1]*m[2][2] - m[1][2]*m[2][1]) / det
	r[0][1] = (m[0][2]*m[2][1] - m[0][1]*m[2][2]) / det
	r[0][2] = (m[0][1]*m[1][2] - m[0][2]*m[1][1]) / det
	r[1][0] = (m[1][2]*m[2][0] - m[1][0]*m[2][2]) / det
	r[1][1] = (m[0][0]*m[2][2] - m[0][2]*m[2][0]) / det
	r[1][2] = (m[0][2]*m[1][0] - m[0][0]*m[1][2]) / det
	r[2][0] = (m[1][0]*m[2][1] - m[1][1]*m[2][0]) / det
	r[2][1] = (m[0][1]*m[2][0] - m[0][0]*m[2][1]) / det
	r[2][2] = (m[0][0]*m[1][1] - m[0][1]*m[1][0]) / det
	return r
}

// Pose is the head's orientation and distance.
type Pose struct {
	YawDeg   float64
	PitchDeg float64
	// PxPerMM is the head's scale in the image (focal length over depth).
	PxPerMM float64
	// EyeDepthMM is the depth of the eyes relative to the head model's
	// center along the camera axis (negative: nearer than the center).
	EyeDepthMM float64
}

// poseIterations of perspective correction (POSIT): each scales the image
// points by the depth the previous fit implies, which removes most of the
// error a scaled-orthographic fit makes at 40–60 cm.
const poseIterations = 6

// EstimatePose fits the head model to keypoints given in pixels, for a
// camera with its principal point at center and the given focal length in
// pixels. ok is false for degenerate input.
func EstimatePose(kp [6]rules.Point, center rules.Point, focalPx float64) (Pose, bool) {
	var eps [6]float64
	var pose Pose
	for iter := 0; iter < poseIterations; iter++ {
		var q [6]rules.Point
		for i, p := range kp {
			q[i] = rules.Point{X: (p.X - center.X) * (1 + eps[i]), Y: (p.Y - center.Y) * (1 + eps[i])}
		}
		r1, r2, r3, scale, ok := fitRotation(q)
		if !ok {
			return Pose{}, false
		}
		// The face looks along −z of the model; in camera axes that
		// direction is −(third column of R).
		fx, fy, fz := -r1[2], -r2[2], -r3[2]
		pose = Pose{
			YawDeg:   math.Atan2(fx, -fz) * 180 / math.Pi,
			PitchDeg: math.Atan2(-fy, math.Hypot(fx, fz)) * 180 / math.Pi,
			PxPerMM:  scale,
		}
		eyes := [3]float64{}
		for k := 0; k < 3; k++ {
			eyes[k] = (modelCentred[rules.RightEye][k] + modelCentred[rules.LeftEye][k]) / 2
		}
		pose.EyeDepthMM = dot(r3, eyes)
		if focalPx <= 0 {
			break
		}
		z0 := focalPx / scale
		for i := range eps {
			eps[i] = dot(r3, modelCentred[i]) / z0
		}
	}
	return pose, true
}

// fitRotation solves p = s·[r1; r2]·X in the least-squares sense and
// returns the orthonormalised rotation rows and the scale.
func fitRotation(q [6]rules.Point) (r1, r2, r3 [3]float64, scale float64, ok bool) {
	var mx, my float64
	for _, p := range q {
		mx += p.X / 6
		my += p.Y / 6
	}
	for a := 0; a < 3; a++ {
		for i, p := range q {
			r1[a] += modelPinv[a][i] * (p.X - mx)
			r2[a] += modelPinv[a][i] * (p.Y - my)
		}
	}
	n1, n2 := norm(r1), norm(r2)
	if n1 < 1e-9 || n2 < 1e-9 || math.IsNaN(n1+n2) || math.IsInf(n1+n2, 0) {
		return r1, r2, r3, 0, false
	}
	scale = (n1 + n2) / 2
	for k := range r1 {
		r1[k] /= n1
	}
	// Make the second row orthogonal to the first (Gram–Schmidt).
	d := dot(r1, r2) / n2
	for k := range r2 {
		r2[k] = r2[k]/n2 - d*r1[k]
	}
	n := norm(r2)
	if n < 1e-9 {
		return r1, r2, r3, 0, false
	}
	for k := range r2 {
		r2[k] /= n
	}
	return r1, r2, cross(r1, r2), scale, true
}

func dot(a, b [3]float64) float64 { return a[0]*b[0] + a[1]*b[1] + a[2]*b[2] }
func norm(a [3]float64) float64   { return math.Sqrt(dot(a, a)) }
func cross(a, b [3]float64) [3]float64 {
	return [3]float64{a[1]*b[2] - a[2]*b[1], a[2]*b[0] - a[0]*b[2], a[0]*b[1] - a[1]*b[0]}
}

// DefaultHFOVDeg is the assumed horizontal field of view of a webcam.
const DefaultHFOVDeg = 60

// Camera turns a head's image scale into a distance.
type Camera struct {
	// HFOVDeg is the horizontal field of view assumed without calibration.
	HFOVDeg float64
	// CalibratedFocalPx, when set, is the focal length measured for this
	// candidate at CalibrationWidth pixels of frame width.
	CalibratedFocalPx float64
	CalibrationWidth  int
}

// CalibrationDistanceCM is where the guide asks the candidate to sit.
const CalibrationDistanceCM = 50

// Calibrate records the focal length implied by a pose taken while the
// candidate sits at CalibrationDistanceCM.
func (c *Camera) Calibrate(p Pose, frameWidth int) {
	c.CalibratedFocalPx = p.PxPerMM * (CalibrationDistanceCM*10 - p.EyeDepthMM)
	c.CalibrationWidth = frameWidth
}

// FocalPx is the focal length in pixels for a frame of the given width;
// calibration scales with the frame (browsers change resolution).
func (c *Camera) FocalPx(frameWidth int) float64 {
	if c.CalibratedFocalPx > 0 && c.CalibrationWidth > 0 {
		return c.CalibratedFocalPx * float64(frameWidth) / float64(c.CalibrationWidth)
	}
	hfov := c.HFOVDeg
	if hfov <= 0 || hfov >= 180 {
		hfov = DefaultHFOVDeg
	}
	return float64(frameWidth) / 2 / math.Tan(hfov/2*math.Pi/180)
}

// DistanceCM is the distance of the eyes from the camera.
func (c *Camera) DistanceCM(p Pose, frameWidth int) float64 {
	if p.PxPerMM <= 0 {
		return 0
	}
	return (c.FocalPx(frameWidth)/p.PxPerMM + p.EyeDepthMM) / 10
}

// MeshPose reads yaw and pitch from face landmarks: the eye line (outer
// corners) is the head's x axis, the forehead-to-chin line its y axis, and
// the face looks along −(x × y). Yaw is positive towards the image's right,
// pitch positive looking up; on the test photos, faces looking at the
// camera read within about ±10° of level.
func MeshPose(m *runner.FaceMesh) (yawDeg, pitchDeg float64, ok bool) {
	p := func(i int) [3]float64 {
		q := m.Landmarks[i]
		return [3]float64{q.X, q.Y, q.Z}
	}
	sub := func(a, b [3]float64) [3]float64 { return [3]float64{a[0] - b[0], a[1] - b[1], a[2] - b[2]} }
	x := sub(p(runner.MeshLeftEyeOuter), p(runner.MeshRightEyeOuter))
	y := sub(p(runner.MeshChin), p(runner.MeshForehead))
	nx := norm(x)
	if nx < 1e-6 || math.IsNaN(nx) {
		return 0, 0, false
	}
	for k := range x {
		x[k] /= nx
	}
	d := dot(y, x)
	for k := range y {
		y[k] -= d * x[k]
	}
	ny := norm(y)
	if ny < 1e-6 || math.IsNaN(ny) {
		return 0, 0, false
	}
	for k := range y {
		y[k] /= ny
	}
	z := cross(x, y)
	fx, fy, fz := -z[0], -z[1], -z[2]
	return math.Atan2(fx, -fz) * 180 / math.Pi, math.Atan2(-fy, math.Hypot(fx, fz)) * 180 / math.Pi, true
}
