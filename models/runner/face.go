package runner

import (
	"fmt"

	"gocv.io/x/gocv"
)

// FaceModel selects one of MediaPipe's face detectors.
type FaceModel int

const (
	// FaceShortRange is the 128×128 model for faces within about 2 m that
	// fill a good part of the frame (under ~15 % of it they score below 0.5).
	FaceShortRange FaceModel = iota
	// FaceFullRange is the 192×192 model that also finds small and distant
	// faces: use it to count people.
	FaceFullRange
)

// FileName is the model's file name in $INVIGIL_MODELS.
func (m FaceModel) FileName() string { return m.String() + ".onnx" }

func (m FaceModel) String() string {
	switch m {
	case FaceShortRange:
		return "face_detection_short_range"
	case FaceFullRange:
		return "face_detection_full_range"
	}
	return fmt.Sprintf("FaceModel(%d)", int(m))
}

func (m FaceModel) config() (ssdConfig, error) {
	cfg := ssdConfig{
		name:      m.String(),
		keypoints: 6,
		blobScale: 1 / 127.5, // RGB in [−1, 1]
		blobMean:  127.5,
		nmsIoU:    0.3,
	}
	switch m {
	case FaceShortRange:
		cfg.inputSize, cfg.strides, cfg.perLayer = 128, []int{8, 16, 16, 16}, 2
		cfg.minScore = 0.5
		cfg.outputs = []outputSpec{{names: []string{"regressors"}}, {names: []string{"classificators"}}}
	case FaceFullRange:
		cfg.inputSize, cfg.strides, cfg.perLayer = 192, []int{4}, 1
		cfg.minScore = 0.6
		cfg.outputs = []outputSpec{{names: []string{"reshaped_regressor_face_4"}}, {names: []string{"reshaped_classifier_face_4"}}}
	default:
		return ssdConfig{}, fmt.Errorf("unknown face model %d", int(m))
	}
	cfg.boxScale = float64(cfg.inputSize)
	return cfg, nil
}

// Face keypoints, the subject's own sides (the right eye is on the image's
// left in an unmirrored frame).
const (
	RightEye = iota
	LeftEye
	NoseTip
	Mouth
	RightEarTragion
	LeftEarTragion
)

// Face is one detected face.
type Face struct {
	Box       Rect
	Score     float64
	Keypoints [6]Point // indexed by RightEye … LeftEarTragion
}

// FaceDetector finds faces with a MediaPipe face detection model.
// It is not safe for concurrent use: give each worker its own.
type FaceDetector struct {
	// MinScore is the least score a face needs; it starts at MediaPipe's
	// value for the model (0.5 short range, 0.6 full range) and may be
	// changed between calls to Detect.
	MinScore float64

	model FaceModel
	ssd   *ssd
}

// NewFaceDetector loads model, converted to ONNX, from onnxPath and checks
// it with one trial run: a file that is not that model is refused here,
// at start, rather than on the first frame.
func NewFaceDetector(onnxPath string, model FaceModel) (*FaceDetector, error) {
	cfg, err := model.config()
	if err != nil {
		return nil, err
	}
	s, err := newSSD(onnxPath, cfg)
	if err != nil {
		return nil, err
	}
	return &FaceDetector{MinScore: cfg.minScore, model: model, ssd: s}, nil
}

// Model reports which model d runs.
func (d *FaceDetector) Model() FaceModel { return d.model }

// Detect returns the faces in img (8-bit BGR), best score first.
func (d *FaceDetector) Detect(img gocv.Mat) ([]Face, error) {
	dets, err := d.ssd.detect(img, clampScore(d.MinScore))
	if err != nil {
		return nil, err
	}
	faces := make([]Face, len(dets))
	for i, det := range dets {
		faces[i] = Face{Box: det.box, Score: det.score}
		copy(faces[i].Keypoints[:], det.keypoints)
	}
	return faces, nil
}

// Close frees the network and scratch images. d must not be used after.
func (d *FaceDetector) Close() error {
	d.ssd.close()
	return nil
}

// clampScore keeps a threshold inside (0, 1) so its logit is finite.
func clampScore(s float64) float64 {
	const eps = 1e-6
	if !(s > eps) {
		return eps
	}
	if s > 1-eps {
		return 1 - eps
	}
	return s
}

// Inference reports the runs and time spent in bare inference so far.
func (d *FaceDetector) Inference() Inference {
	if d.ssd == nil || d.ssd.net == nil {
		return Inference{}
	}
	return d.ssd.net.spent
}
