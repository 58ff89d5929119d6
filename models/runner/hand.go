package runner

import (
	"errors"
	"fmt"
	"image"
	"image/color"
	"math"

	"gocv.io/x/gocv"
)

// HandLandmarkModel selects one of MediaPipe's hand landmark models.
type HandLandmarkModel int

const (
	// HandLandmarkLite is the faster hand landmark model.
	HandLandmarkLite HandLandmarkModel = iota
	// HandLandmarkFull is the more accurate, slower hand landmark model.
	HandLandmarkFull
)

// FileName is the model's file name in $INVIGIL_MODELS.
func (m HandLandmarkModel) FileName() string { return m.String() + ".onnx" }

func (m HandLandmarkModel) String() string {
	switch m {
	case HandLandmarkLite:
		return "hand_landmark_lite"
	case HandLandmarkFull:
		return "hand_landmark_full"
	}
	return fmt.Sprintf("HandLandmarkModel(%d)", int(m))
}

// Hand landmarks, MediaPipe's numbering.
const (
	Wrist = iota
	ThumbCMC
	ThumbMCP
	ThumbIP
	ThumbTip
	IndexMCP
	IndexPIP
	IndexDIP
	IndexTip
	MiddleMCP
	MiddlePIP
	MiddleDIP
	MiddleTip
	RingMCP
	RingPIP
	RingDIP
	RingTip
	PinkyMCP
	PinkyPIP
	PinkyDIP
	PinkyTip
	NumHandLandmarks
)

// Hand is the result of running the landmark model on one crop.
type Hand struct {
	// Landmarks in image pixels; Z is the depth relative to the wrist in
	// the same pixel scale, smaller is nearer the camera.
	Landmarks [NumHandLandmarks]Point3
	// World landmarks in meters around the hand's center, turned with the
	// image so X and Y follow the image's axes.
	World [NumHandLandmarks]Point3
	// Presence is the probability that the crop holds a hand at all; below
	// 0.5 the landmarks mean nothing.
	Presence float64
	// RightHand is the probability that this is the subject's right hand in
	// an unmirrored camera image. (MediaPipe labels the same score "Left":
	// its graphs assume a mirrored selfie image.)
	RightHand float64
	// Box bounds the landmarks.
	Box Rect
	// Crop is where the landmarks were looked for.
	Crop RotatedRect
}

// NextCrop is where to look for this hand in the next frame, derived from
// the landmarks the way MediaPipe tracks hands without running the palm
// detector again: oriented wrist → middle knuckles, around the palm's
// landmarks, moved a tenth towards the fingers and doubled.
func (h Hand) NextCrop() RotatedRect {
	lm := func(i int) Point { return Point{h.Landmarks[i].X, h.Landmarks[i].Y} }
	mid := Point{(lm(IndexMCP).X + lm(RingMCP).X) / 2, (lm(IndexMCP).Y + lm(RingMCP).Y) / 2}
	mid = Point{(mid.X + lm(MiddleMCP).X) / 2, (mid.Y + lm(MiddleMCP).Y) / 2}
	angle := uprightAngle(lm(Wrist), mid)

	palm := []int{Wrist, ThumbCMC, ThumbMCP, ThumbIP, IndexMCP, IndexPIP, MiddleMCP, MiddlePIP, RingMCP, RingPIP, PinkyMCP, PinkyPIP}
	pts := make([]Point, len(palm))
	for i, j := range palm {
		pts[i] = lm(j)
	}
	axis := boundsOf(pts).Center()
	c, s := math.Cos(angle), math.Sin(angle)
	minX, minY := math.Inf(1), math.Inf(1)
	maxX, maxY := math.Inf(-1), math.Inf(-1)
	for _, p := range pts {
		dx, dy := p.X-axis.X, p.Y-axis.Y
		px, py := dx*c+dy*s, -dx*s+dy*c
		minX, maxX = math.Min(minX, px), math.Max(maxX, px)
		minY, maxY = math.Min(minY, py), math.Max(maxY, py)
	}
	pcx, pcy := (minX+maxX)/2, (minY+maxY)/2
	center := Point{axis.X + pcx*c - pcy*s, axis.Y + pcx*s + pcy*c}
	return handRect(center, maxX-minX, maxY-minY, angle, -0.1, 2.0)
}

const handInputSize = 224

// HandLandmarker finds the 21 landmarks of a hand inside a crop (from
// Palm.Crop or Hand.NextCrop) with a MediaPipe hand landmark model.
// It is not safe for concurrent use: give each worker its own.
type HandLandmarker struct {
	model  HandLandmarkModel
	net    *net
	affine gocv.Mat
	crop   gocv.Mat
}

// NewHandLandmarker loads model, converted to ONNX, from onnxPath and checks
// it with one trial run: a file that is not that model is refused here,
// at start, rather than on the first frame.
func NewHandLandmarker(onnxPath string, model HandLandmarkModel) (*HandLandmarker, error) {
	if model != HandLandmarkLite && model != HandLandmarkFull {
		return nil, fmt.Errorf("unknown hand landmark model %d", int(model))
	}
	// [1,63] and [1,1] appear twice each, so the names decide.
	specs := []outputSpec{
		{names: []string{"Identity"}, shape: []int{1, 3 * NumHandLandmarks}},
		{names: []string{"Identity_1"}, shape: []int{1, 1}},
		{names: []string{"Identity_2"}, shape: []int{1, 1}},
		{names: []string{"Identity_3"}, shape: []int{1, 3 * NumHandLandmarks}},
	}
	n, err := loadNet(onnxPath, handInputSize, handInputSize, specs)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", model, err)
	}
	return &HandLandmarker{
		model:  model,
		net:    n,
		affine: gocv.NewMatWithSize(2, 3, gocv.MatTypeCV64F),
		crop:   gocv.NewMat(),
	}, nil
}

// Model reports which model l runs.
func (l *HandLandmarker) Model() HandLandmarkModel { return l.model }

// Detect runs the landmark model on the part of img (8-bit BGR) inside crop.
// A non-square crop is squared on its long side. Check Hand.Presence: the
// model always returns landmarks, hand or not.
func (l *HandLandmarker) Detect(img gocv.Mat, crop RotatedRect) (Hand, error) {
	if l.net == nil {
		return Hand{}, fmt.Errorf("%s: landmarker is closed", l.model)
	}
	if err := checkImage(img); err != nil {
		return Hand{}, fmt.Errorf("%s: %w", l.model, err)
	}
	if err := checkCrop(crop, img.Cols(), img.Rows()); err != nil {
		return Hand{}, fmt.Errorf("%s: %w", l.model, err)
	}
	crop, frame := warpCrop(img, crop, handInputSize, l.affine, &l.crop)

	blob := gocv.BlobFromImage(l.crop, 1/255.0, image.Pt(handInputSize, handInputSize),
		gocv.NewScalar(0, 0, 0, 0), true, false)
	defer blob.Close()
	if err := l.net.forward(blob); err != nil {
		return Hand{}, fmt.Errorf("%s: %w", l.model, err)
	}
	out := l.net.outputs
	h := Hand{
		Presence:  float64(out[1][0]),
		RightHand: float64(out[2][0]),
		Crop:      crop,
	}
	pts := make([]Point, NumHandLandmarks)
	for i := range h.Landmarks {
		h.Landmarks[i] = frame.toImage(float64(out[0][3*i]), float64(out[0][3*i+1]), float64(out[0][3*i+2]))
		pts[i] = Point{h.Landmarks[i].X, h.Landmarks[i].Y}
		h.World[i] = frame.rotate(float64(out[3][3*i]), float64(out[3][3*i+1]), float64(out[3][3*i+2]))
	}
	h.Box = boundsOf(pts)
	return h, nil
}

// cropFrame maps a landmark model's crop coordinates back to the image.
type cropFrame struct {
	center  Point
	k, c, s float64 // input pixels per image pixel; cos and sin of the angle
	half    float64 // half the input size
}

// warpCrop samples crop (squared on its long side) from img into dst at
// size×size pixels, turned so the crop's angle becomes upright, and returns
// the squared crop and the way back to image coordinates.
func warpCrop(img gocv.Mat, crop RotatedRect, size int, affine gocv.Mat, dst *gocv.Mat) (RotatedRect, cropFrame) {
	side := math.Max(crop.Width, crop.Height)
	crop.Width, crop.Height = side, side
	f := cropFrame{center: crop.Center, k: float64(size) / side, c: math.Cos(crop.Angle), s: math.Sin(crop.Angle), half: float64(size) / 2}

	// Image → crop, continuous coordinates: u = k·R(−angle)·(p − center) + size/2.
	// warpAffine counts pixel centers at integers, hence the half-pixel terms.
	m := [2][2]float64{{f.k * f.c, f.k * f.s}, {-f.k * f.s, f.k * f.c}}
	for r := 0; r < 2; r++ {
		t := f.half - m[r][0]*crop.Center.X - m[r][1]*crop.Center.Y
		t += m[r][0]*0.5 + m[r][1]*0.5 - 0.5
		affine.SetDoubleAt(r, 0, m[r][0])
		affine.SetDoubleAt(r, 1, m[r][1])
		affine.SetDoubleAt(r, 2, t)
	}
	gocv.WarpAffineWithParams(img, dst, affine, image.Pt(size, size),
		gocv.InterpolationLinear, gocv.BorderReplicate, color.RGBA{})
	return crop, f
}

// toImage maps a landmark in input pixels (z in the same scale) to image
// pixels.
func (f cropFrame) toImage(x, y, z float64) Point3 {
	u, v := x-f.half, y-f.half
	return Point3{
		X: f.center.X + (f.c*u-f.s*v)/f.k,
		Y: f.center.Y + (f.s*u+f.c*v)/f.k,
		Z: z / f.k,
	}
}

// rotate turns a vector from crop axes to image axes.
func (f cropFrame) rotate(x, y, z float64) Point3 {
	return Point3{f.c*x - f.s*y, f.s*x + f.c*y, z}
}

// checkCrop refuses crops warpAffine cannot sample sensibly.
func checkCrop(r RotatedRect, imgW, imgH int) error {
	for _, v := range []float64{r.Center.X, r.Center.Y, r.Width, r.Height, r.Angle} {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return errors.New("crop: not a finite rectangle")
		}
	}
	side := math.Max(r.Width, r.Height)
	if side < 1 {
		return fmt.Errorf("crop: side %.3g px, want at least 1", side)
	}
	limit := 4 * float64(max(imgW, imgH, 256))
	if side > limit || math.Abs(r.Center.X) > limit || math.Abs(r.Center.Y) > limit {
		return fmt.Errorf("crop: %.0f px square at (%.0f, %.0f) is far outside the %dx%d image", side, r.Center.X, r.Center.Y, imgW, imgH)
	}
	return nil
}

// Close frees the network and scratch images. l must not be used after.
func (l *HandLandmarker) Close() error {
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
func (l *HandLandmarker) Inference() Inference {
	if l.net == nil {
		return Inference{}
	}
	return l.net.spent
}
