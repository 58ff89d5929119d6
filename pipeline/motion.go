package pipeline

import (
	"fmt"
	"image"

	"gocv.io/x/gocv"

	"invigil/motion"
)

// The scheduler analyzes a still picture at a low rate and a changing one
// at the policy's rate. What "changing" means is decided by package motion
// on each decoded frame's luma, the same measure the detectors' cascades
// use.

// thumbnail is a frame's luma on motion's grid.
type thumbnail = motion.Grid

// thumbnailer makes thumbnails; each track's goroutine owns one.
type thumbnailer struct {
	grid *motion.Gridder
}

func newThumbnailer() *thumbnailer { return &thumbnailer{grid: motion.NewGridder()} }

func (t *thumbnailer) close() { _ = t.grid.Close() }

// make writes the thumbnail of an I420 picture ((h*3/2)×w, 8UC1) into th.
// It reads the Y plane only: color adds nothing to "did anything move".
func (t *thumbnailer) make(i420 gocv.Mat, th *thumbnail) error {
	rows, cols := i420.Rows(), i420.Cols()
	if i420.Empty() || i420.Type() != gocv.MatTypeCV8UC1 || rows%3 != 0 || rows < 3 || cols < 2 {
		return fmt.Errorf("thumbnail: %d×%d Mat of type %v is not an I420 picture", cols, rows, i420.Type())
	}
	luma := i420.Region(image.Rect(0, 0, cols, rows*2/3))
	defer luma.Close()
	if err := t.grid.FromGray(luma, th); err != nil {
		return fmt.Errorf("thumbnail: %w", err)
	}
	return nil
}
