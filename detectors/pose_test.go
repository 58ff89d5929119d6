package detectors

import (
	"math"
	"testing"

	"invigil/detectors/rules"
	"invigil/models/runner"
)

// project renders the head model rotated by yaw and pitch at depth z (mm)
// through a true pinhole camera, the way a webcam sees it.
func project(yawDeg, pitchDeg, zMM, focal float64) [6]rules.Point {
	var kp [6]rules.Point
	for i, m := range headModel {
		x, y, z := rotate(m, yawDeg, pitchDeg)
		kp[i] = rules.Point{X: 320 + focal*x/(zMM+z), Y: 240 + focal*y/(zMM+z)}
	}
	return kp
}

// rotate turns a model point: yaw moves the nose (in front, z=0) towards
// the image right, pitch moves it up.
func rotate(m [3]float64, yawDeg, pitchDeg float64) (x, y, z float64) {
	yw, p := yawDeg*math.Pi/180, pitchDeg*math.Pi/180
	x = m[0]*math.Cos(yw) - m[2]*math.Sin(yw)
	z = m[0]*math.Sin(yw) + m[2]*math.Cos(yw)
	y = m[1]*math.Cos(p) + z*math.Sin(p)
	z = -m[1]*math.Sin(p) + z*math.Cos(p)
	return x, y, z
}

func TestEstimatePose(t *testing.T) {
	cam := Camera{}
	focal := cam.FocalPx(640)
	for _, c := range []struct{ yaw, pitch, dist float64 }{
		{0, 0, 500}, {30, 0, 500}, {-45, 0, 500}, {0, 20, 500}, {0, -25, 450},
		{20, 15, 600}, {-60, -10, 500}, {10, 0, 380},
	} {
		kp := project(c.yaw, c.pitch, c.dist, focal)
		pose, ok := EstimatePose(kp, rules.Point{X: 320, Y: 240}, focal)
		if !ok {
			t.Fatalf("%+v: no pose", c)
		}
		// Pitch is poorly determined when the head is turned far aside.
		pitchTol := 2.0
		if math.Abs(c.yaw) > 45 {
			pitchTol = 6
		}
		if math.Abs(pose.YawDeg-c.yaw) > 2 || math.Abs(pose.PitchDeg-c.pitch) > pitchTol {
			t.Errorf("yaw %.1f pitch %.1f: estimated %.1f, %.1f", c.yaw, c.pitch, pose.YawDeg, pose.PitchDeg)
		}
		// The scene puts the nose tip at dist; the eyes are behind it.
		_, _, ez := rotate([3]float64{0, -39, 28}, c.yaw, c.pitch)
		eyes := (c.dist + ez) / 10
		if d := cam.DistanceCM(pose, 640); math.Abs(d-eyes) > 1 {
			t.Errorf("distance %.1f cm: estimated %.1f", eyes, d)
		}
	}
}

func TestCalibration(t *testing.T) {
	var cam Camera
	// A webcam that is really 78° wide: uncalibrated estimates are off,
	// calibrated at 50 cm they are right, also after a resolution change.
	focal := 320 / math.Tan(39*math.Pi/180)
	c := rules.Point{X: 320, Y: 240}
	// The nose tip 472 mm away puts the eyes at 50 cm.
	at50, _ := EstimatePose(project(0, 0, 472, focal), c, cam.FocalPx(640))
	at40, _ := EstimatePose(project(0, 0, 372, focal), c, cam.FocalPx(640))
	if d := cam.DistanceCM(at40, 640); math.Abs(d-40) < 4 {
		t.Fatalf("uncalibrated estimate %.1f should be off for a 78° camera", d)
	}
	cam.Calibrate(at50, 640)
	if d := cam.DistanceCM(at40, 640); math.Abs(d-40) > 2 {
		t.Errorf("calibrated distance %.1f, want 40", d)
	}
	halfKP := project(0, 0, 372, focal/2)
	for i := range halfKP {
		halfKP[i].X = (halfKP[i].X - 320) + 160
		halfKP[i].Y = (halfKP[i].Y - 240) + 120
	}
	half, _ := EstimatePose(halfKP, rules.Point{X: 160, Y: 120}, cam.FocalPx(320))
	if d := cam.DistanceCM(half, 320); math.Abs(d-40) > 2 {
		t.Errorf("at half resolution %.1f, want 40", d)
	}
}

func TestEstimatePoseDegenerate(t *testing.T) {
	var kp [6]rules.Point
	if _, ok := EstimatePose(kp, rules.Point{}, 500); ok {
		t.Error("pose from coincident points")
	}
	for i := range kp {
		kp[i] = rules.Point{X: math.NaN(), Y: 1}
	}
	if _, ok := EstimatePose(kp, rules.Point{}, 500); ok {
		t.Error("pose from NaN points")
	}
}

func TestMeshPose(t *testing.T) {
	for _, c := range []struct{ yaw, pitch float64 }{{0, 0}, {25, 0}, {-40, 0}, {0, -30}, {0, 15}, {20, -25}} {
		var m runner.FaceMesh
		set := func(i int, p [3]float64) {
			x, y, z := rotate(p, c.yaw, c.pitch)
			m.Landmarks[i] = runner.Point3{X: 300 + x, Y: 200 + y, Z: z}
		}
		set(runner.MeshForehead, [3]float64{0, -70, 20})
		set(runner.MeshChin, [3]float64{0, 60, 20})
		set(runner.MeshRightEyeOuter, [3]float64{-45, -35, 30})
		set(runner.MeshLeftEyeOuter, [3]float64{45, -35, 30})
		yaw, pitch, ok := MeshPose(&m)
		// Turned and tilted at once, the two Euler orders differ by ~2°.
		tol := 0.5
		if c.yaw != 0 && c.pitch != 0 {
			tol = 3
		}
		if !ok || math.Abs(yaw-c.yaw) > tol || math.Abs(pitch-c.pitch) > tol {
			t.Errorf("yaw %.0f pitch %.0f: read %.1f, %.1f (ok %v)", c.yaw, c.pitch, yaw, pitch, ok)
		}
	}
	var flat runner.FaceMesh
	if _, _, ok := MeshPose(&flat); ok {
		t.Error("pose from coincident landmarks")
	}
}
