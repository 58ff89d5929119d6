package runner

import (
	"fmt"
	"image"
	"math"

	"gocv.io/x/gocv"
)

// ssdConfig describes one MediaPipe single-shot detector (face or palm).
type ssdConfig struct {
	name      string // for messages
	inputSize int
	strides   []int
	perLayer  int
	keypoints int
	boxScale  float64 // raw outputs are in input pixels: divide by this
	blobScale float64 // pixel → model range: (v − blobMean)·blobScale
	blobMean  float64
	minScore  float64
	nmsIoU    float64
	outputs   []outputSpec // [regressors, classificators]
}

// ssd runs one detector; FaceDetector and PalmDetector wrap it.
type ssd struct {
	cfg     ssdConfig
	net     *net
	anchors []Point
	scaled  gocv.Mat
	input   gocv.Mat
	dets    []detection
}

func newSSD(path string, cfg ssdConfig) (*ssd, error) {
	anchors := ssdAnchors(cfg.inputSize, cfg.strides, cfg.perLayer)
	coords := 4 + 2*cfg.keypoints
	cfg.outputs[0].shape = []int{1, len(anchors), coords}
	cfg.outputs[1].shape = []int{1, len(anchors), 1}
	n, err := loadNet(path, cfg.inputSize, cfg.inputSize, cfg.outputs)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", cfg.name, err)
	}
	return &ssd{cfg: cfg, net: n, anchors: anchors, scaled: gocv.NewMat(), input: gocv.NewMat()}, nil
}

func (s *ssd) close() {
	if s.net == nil {
		return
	}
	s.net.close()
	s.net = nil
	s.scaled.Close()
	s.input.Close()
}

// detect returns the detections in img after weighted NMS, mapped to image
// pixels, best first.
func (s *ssd) detect(img gocv.Mat, minScore float64) ([]detection, error) {
	if s.net == nil {
		return nil, fmt.Errorf("%s: detector is closed", s.cfg.name)
	}
	if err := checkImage(img); err != nil {
		return nil, fmt.Errorf("%s: %w", s.cfg.name, err)
	}
	lb := newLetterbox(img.Cols(), img.Rows(), s.cfg.inputSize)
	lb.apply(img, &s.scaled, &s.input)
	if err := s.infer(s.input); err != nil {
		return nil, err
	}
	dets := weightedNMS(s.decode(minScore), s.cfg.nmsIoU)
	for i := range dets {
		dets[i].box = lb.rectToImage(dets[i].box)
		for k := range dets[i].keypoints {
			dets[i].keypoints[k] = lb.toImage(dets[i].keypoints[k])
		}
	}
	return dets, nil
}

// infer runs the net on an input-sized BGR image.
func (s *ssd) infer(input gocv.Mat) error {
	blob := gocv.BlobFromImage(input, s.cfg.blobScale, image.Pt(s.cfg.inputSize, s.cfg.inputSize),
		gocv.NewScalar(s.cfg.blobMean, s.cfg.blobMean, s.cfg.blobMean, 0), true, false)
	defer blob.Close()
	if err := s.net.forward(blob); err != nil {
		return fmt.Errorf("%s: %w", s.cfg.name, err)
	}
	return nil
}

// decode turns the raw outputs into detections scoring at least minScore, in
// [0,1] input coordinates.
func (s *ssd) decode(minScore float64) []detection {
	reg, cls := s.net.outputs[0], s.net.outputs[1]
	coords := 4 + 2*s.cfg.keypoints
	// Compare logits rather than taking every anchor's sigmoid.
	minLogit := math.Log(minScore / (1 - minScore))
	s.dets = s.dets[:0]
	for i, a := range s.anchors {
		logit := math.Max(-100, math.Min(100, float64(cls[i])))
		if logit < minLogit || math.IsNaN(logit) {
			continue
		}
		r := reg[i*coords : (i+1)*coords]
		cx := float64(r[0])/s.cfg.boxScale + a.X
		cy := float64(r[1])/s.cfg.boxScale + a.Y
		w := float64(r[2]) / s.cfg.boxScale
		h := float64(r[3]) / s.cfg.boxScale
		if sum := cx + cy + w + h; !(w > 0 && h > 0) || math.IsNaN(sum) || math.IsInf(sum, 0) {
			continue
		}
		kps := make([]Point, s.cfg.keypoints)
		for k := range kps {
			kps[k] = Point{float64(r[4+2*k])/s.cfg.boxScale + a.X, float64(r[5+2*k])/s.cfg.boxScale + a.Y}
		}
		s.dets = append(s.dets, detection{
			box:       Rect{cx - w/2, cy - h/2, w, h},
			score:     sigmoid(logit),
			keypoints: kps,
		})
	}
	return s.dets
}
