package runner

import (
	"errors"
	"fmt"

	"gocv.io/x/gocv"
)

// checkImage refuses what OpenCV would abort on or misread: a closed or
// empty Mat, or anything but 8-bit 3-channel BGR.
func checkImage(img gocv.Mat) error {
	if img.Ptr() == nil {
		return errors.New("image: the Mat is closed")
	}
	if img.Empty() {
		return errors.New("image: empty Mat")
	}
	if dims := img.Size(); len(dims) != 2 {
		return fmt.Errorf("image: %d-dimensional Mat, want a 2-D image", len(dims))
	}
	if t := img.Type(); t != gocv.MatTypeCV8UC3 {
		return fmt.Errorf("image: Mat type %v with %d channels, want 8-bit BGR (CV_8UC3); convert it with gocv.CvtColor first", t, img.Channels())
	}
	if img.Rows() < 1 || img.Cols() < 1 {
		return fmt.Errorf("image: size %dx%d", img.Cols(), img.Rows())
	}
	return nil
}
