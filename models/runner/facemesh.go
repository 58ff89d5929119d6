package runner

import (
	"fmt"
	"image"
	"math"

	"gocv.io/x/gocv"
)

// MediaPipe's face landmark model: 468 points with depth on a 192×192 crop
// around a detected face.
const (
	faceMeshInputSize = 192
	NumFaceLandmarks  = 468
)

// Face mesh landmark indices used for head pose (MediaPipe's numbering;
// sides are the subject's).
const (
	MeshForehead      = 10
	MeshChin          = 152
	MeshNoseTip       = 1
	MeshRightEyeOuter = 33
	MeshLeftEyeOuter  = 263
)

// FaceMesh is the landmark model's reading of one face.
type FaceMesh struct {
	// Landmarks in image pixels; Z is depth in the same pixel scale,
	// smaller is nearer the camera.
	Landmarks [NumFaceLandmarks]Point3
	// Presence is the probability that the crop holds a face.
	Presence float64
	Crop     RotatedRect
}

// FaceLandmarker runs MediaPipe's face landmark model. It is not safe for
// concurrent use: give each worker its own.
type FaceLandmarker struct {
	net    *net
	affine gocv.Mat
	crop   gocv.Mat
}

// NewFaceLandmarker loads the converted face landmark model from onnxPath
// and checks it with one trial run.
func NewFaceLandmarker(onnxPath string) (*FaceLandmarker, error) {
	specs := []outputSpec{
		{names: []string{"conv2d_21"}, shape: []int{1, 1, 1, 3 * NumFaceLandmarks}},
		{names: []string{"conv2d_31"}, shape: []int{1, 1, 1, 1}},
	}
	n, err := loadNet(onnxPath, faceMeshInputSize, faceMeshInputSize, specs)
	if err != nil {
		return nil, fmt.Errorf("face_landmark: %w", err)
	}
	return &FaceLandmarker{net: n, affine: gocv.NewMatWithSize(2, 3, gocv.MatTypeCV64F), crop: gocv.NewMat()}, nil
}

// FaceCrop is MediaPipe's region for the landmark model from a detection:
// a square 1.5 times the box's long side around its center, turned so the
// eyes are level.
func FaceCrop(f Face) RotatedRect {
	re, le := f.Keypoints[RightEye], f.Keypoints[LeftEye]
	side := 1.5 * math.Max(f.Box.W, f.Box.H)
	return RotatedRect{
		Center: f.Box.Center(),
		Width:  side, Height: side,
		Angle: math.Atan2(le.Y-re.Y, le.X-re.X),
	}
}

// Detect runs the model on the part of img (8-bit BGR) inside crop.
func (l *FaceLandmarker) Detect(img gocv.Mat, crop RotatedRect) (FaceMesh, error) {
	if l.net == nil {
		return FaceMesh{}, fmt.Errorf("face_landmark: landmarker is closed")
	}
	if err := checkImage(img); err != nil {
		return FaceMesh{}, fmt.Errorf("face_landmark: %w", err)
	}
	if err := checkCrop(crop, img.Cols(), img.Rows()); err != nil {
		return FaceMesh{}, fmt.Errorf("face_landmark: %w", err)
	}
	crop, frame := warpCrop(img, crop, faceMeshInputSize, l.affine, &l.crop)
	// MediaPipe feeds this model RGB in [0, 1].
	blob := gocv.BlobFromImage(l.crop, 1/255.0, image.Pt(faceMeshInputSize, faceMeshInputSize),
		gocv.NewScalar(0, 0, 0, 0), true, false)
	defer blob.Close()
	if err := l.net.forward(blob); err != nil {
		return FaceMesh{}, fmt.Errorf("face_landmark: %w", err)
	}
	out := l.net.outputs
	logit := math.Max(-100, math.Min(100, float64(out[1][0])))
	m := FaceMesh{Presence: 1 / (1 + math.Exp(-logit)), Crop: crop}
	for i := range m.Landmarks {
		m.Landmarks[i] = frame.toImage(float64(out[0][3*i]), float64(out[0][3*i+1]), float64(out[0][3*i+2]))
	}
	return m, nil
}

// Close frees the network and scratch images.
func (l *FaceLandmarker) Close() error {
	if l.net == nil {
		return nil
	}
	l.net.close()
	l.net = nil
	l.affine.Close()
	l.crop.Close()
	return nil
}

// Inference reports the runs and time spent in bare inference so far.
func (l *FaceLandmarker) Inference() Inference {
	if l.net == nil {
		return Inference{}
	}
	return l.net.spent
}
