package pipeline

import (
	"fmt"
	"image"

	"gocv.io/x/gocv"
)

// The scheduler analyses a still picture at a low rate and a changing one
// at the policy's rate. What "changing" means is decided on a thumbnail of
// each decoded frame's luma: thumbW×thumbH cells, each the mean of a 20×20
// block of a 640×480 picture. Averaging that many pixels leaves a camera's
// sensor noise and the codec's flicker well under a level, while a person
// moving changes tens of cells by tens of levels.
const (
	thumbW = 32
	thumbH = 24
	// cellDelta is how far (of 255) a cell's mean luma must move to count
	// as changed. A still picture with sensor noise through VP8 at 300 to
	// 1200 kbit/s moves cells by at most 4 (measured on the test photos).
	cellDelta = 10
	// minChangedCells is how many cells must change for the picture to
	// count as changed: under 1 % of the picture, less than a hand at the
	// bottom of the frame or a second face in a corner.
	minChangedCells = 6
)

// thumbnail is a frame's luma at thumbW×thumbH.
type thumbnail [thumbW * thumbH]uint8

// thumbnailer makes thumbnails; each track's goroutine owns one.
type thumbnailer struct {
	small gocv.Mat
}

func newThumbnailer() *thumbnailer { return &thumbnailer{small: gocv.NewMat()} }

func (t *thumbnailer) close() { t.small.Close() }

// make writes the thumbnail of an I420 picture ((h*3/2)×w, 8UC1) into th.
// It reads the Y plane only: color adds nothing to "did anything move".
func (t *thumbnailer) make(i420 gocv.Mat, th *thumbnail) error {
	rows, cols := i420.Rows(), i420.Cols()
	if i420.Empty() || i420.Type() != gocv.MatTypeCV8UC1 || rows%3 != 0 || rows < 3 || cols < 2 {
		return fmt.Errorf("thumbnail: %d×%d Mat of type %v is not an I420 picture", cols, rows, i420.Type())
	}
	luma := i420.Region(image.Rect(0, 0, cols, rows*2/3))
	defer luma.Close()
	// Area interpolation averages whole blocks (and is exact and fast for
	// the common sizes, whose sides are multiples of 32×24).
	gocv.Resize(luma, &t.small, image.Pt(thumbW, thumbH), 0, 0, gocv.InterpolationArea)
	data, err := t.small.DataPtrUint8()
	if err != nil {
		return fmt.Errorf("thumbnail: %w", err)
	}
	if len(data) != len(th) {
		return fmt.Errorf("thumbnail: %d bytes, want %d", len(data), len(th))
	}
	copy(th[:], data)
	return nil
}

// changedCells counts the cells whose luma moved by more than cellDelta.
func changedCells(a, b *thumbnail) int {
	n := 0
	for i := range a {
		d := int(a[i]) - int(b[i])
		if d > cellDelta || d < -cellDelta {
			n++
		}
	}
	return n
}

// pictureChanged reports whether b shows something a's picture did not.
func pictureChanged(a, b *thumbnail) bool { return changedCells(a, b) >= minChangedCells }
