package runner

import (
	"fmt"
	"math"

	"gocv.io/x/gocv"
)

// PalmModel selects one of MediaPipe's palm detectors.
type PalmModel int

const (
	// PalmLite is the faster palm detector.
	PalmLite PalmModel = iota
	// PalmFull is the more accurate, slower palm detector.
	PalmFull
)

// FileName is the model's file name in $INVIGIL_MODELS.
func (m PalmModel) FileName() string { return m.String() + ".onnx" }

func (m PalmModel) String() string {
	switch m {
	case PalmLite:
		return "palm_detection_lite"
	case PalmFull:
		return "palm_detection_full"
	}
	return fmt.Sprintf("PalmModel(%d)", int(m))
}

// Palm keypoints used to orient the hand; the other five are the remaining
// knuckles and thumb joints, in the model's order.
const (
	PalmWrist     = 0
	PalmMiddleMCP = 2 // the middle finger's knuckle
)

// Palm is one detected palm.
type Palm struct {
	Box       Rect
	Score     float64
	Keypoints [7]Point
	// Crop is where HandLandmarker should look for this hand: a square
	// turned so the fingers point up in it, 2.6 times the palm's size.
	Crop RotatedRect
}

// PalmDetector finds palms with a MediaPipe palm detection model.
// It is not safe for concurrent use: give each worker its own.
type PalmDetector struct {
	// MinScore is the least score a palm needs (MediaPipe's 0.5 to start
	// with); it may be changed between calls to Detect.
	MinScore float64

	model PalmModel
	ssd   *ssd
}

// NewPalmDetector loads model, converted to ONNX, from onnxPath and checks
// it with one trial run: a file that is not that model is refused here,
// at start, rather than on the first frame.
func NewPalmDetector(onnxPath string, model PalmModel) (*PalmDetector, error) {
	if model != PalmLite && model != PalmFull {
		return nil, fmt.Errorf("unknown palm model %d", int(model))
	}
	cfg := ssdConfig{
		name:      model.String(),
		inputSize: 192,
		strides:   []int{8, 16, 16, 16},
		perLayer:  2,
		keypoints: 7,
		boxScale:  192,
		blobScale: 1 / 255.0, // RGB in [0, 1]
		minScore:  0.5,
		nmsIoU:    0.3,
		outputs:   []outputSpec{{names: []string{"Identity"}}, {names: []string{"Identity_1"}}},
	}
	s, err := newSSD(onnxPath, cfg)
	if err != nil {
		return nil, err
	}
	return &PalmDetector{MinScore: cfg.minScore, model: model, ssd: s}, nil
}

// Model reports which model d runs.
func (d *PalmDetector) Model() PalmModel { return d.model }

// Detect returns the palms in img (8-bit BGR), best score first.
func (d *PalmDetector) Detect(img gocv.Mat) ([]Palm, error) {
	dets, err := d.ssd.detect(img, clampScore(d.MinScore))
	if err != nil {
		return nil, err
	}
	palms := make([]Palm, len(dets))
	for i, det := range dets {
		palms[i] = Palm{Box: det.box, Score: det.score}
		copy(palms[i].Keypoints[:], det.keypoints)
		palms[i].Crop = palmCrop(palms[i].Box, palms[i].Keypoints[PalmWrist], palms[i].Keypoints[PalmMiddleMCP])
	}
	return palms, nil
}

// Close frees the network and scratch images. d must not be used after.
func (d *PalmDetector) Close() error {
	d.ssd.close()
	return nil
}

// palmCrop is MediaPipe's palm-to-hand rectangle, in pixels: turn so the
// wrist→middle-knuckle direction points up, move the center half the palm's
// height towards the fingers, square on the long side and grow 2.6 times to
// take in the whole hand.
func palmCrop(box Rect, wrist, knuckle Point) RotatedRect {
	return handRect(box.Center(), box.W, box.H, uprightAngle(wrist, knuckle), -0.5, 2.6)
}

// uprightAngle is the rotation that makes the direction from → to point up.
func uprightAngle(from, to Point) float64 {
	return normalizeRadians(math.Pi/2 - math.Atan2(-(to.Y-from.Y), to.X-from.X))
}

// handRect is MediaPipe's RectTransformationCalculator with square_long: the
// center moves shiftY·h along the rectangle's own y axis (negative: towards
// its top), then the rectangle becomes a square on its long side, scaled.
func handRect(c Point, w, h, angle, shiftY, scale float64) RotatedRect {
	c.X -= shiftY * h * math.Sin(angle)
	c.Y += shiftY * h * math.Cos(angle)
	side := math.Max(w, h) * scale
	return RotatedRect{Center: c, Width: side, Height: side, Angle: angle}
}

// Inference reports the runs and time spent in bare inference so far.
func (d *PalmDetector) Inference() Inference {
	if d.ssd == nil || d.ssd.net == nil {
		return Inference{}
	}
	return d.ssd.net.spent
}
