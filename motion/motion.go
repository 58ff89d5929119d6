// Package motion tells whether a picture changed, by one measure for all
// who ask: the pipeline's adaptive rate (analyze a changing picture at the
// policy's rate, a still one seldom) and the detectors' cascades (run a
// costly network again only where something moved).
//
// A picture's luma is averaged on a GridW×GridH grid: each cell is the
// mean of a 20×20 block of a 640×480 picture. Averaging that many pixels
// leaves a camera's sensor noise and the codec's flicker well under a
// level, while a person moving changes tens of cells by tens of levels.
package motion

import (
	"fmt"
	"image"

	"gocv.io/x/gocv"
)

const (
	GridW = 32
	GridH = 24
	// CellDelta is how far (of 255) a cell's mean luma must move to count
	// as changed. A still picture with sensor noise through VP8 at 300 to
	// 1200 kbit/s moves cells by at most 4 (measured on the test photos).
	CellDelta = 10
	// MinChangedCells is how many cells must change for a picture (or the
	// part of it a cascade watches) to count as changed: under 1 % of it,
	// less than a hand at the bottom of the frame or a second face in a
	// corner.
	MinChangedCells = 6
)

// Grid is a picture's luma on the grid, row by row.
type Grid [GridW * GridH]uint8

// Gridder makes grids. Its scratch picture is reused, so one goroutine
// owns a Gridder; Close frees it.
type Gridder struct {
	small gocv.Mat
}

// NewGridder makes a Gridder.
func NewGridder() *Gridder { return &Gridder{small: gocv.NewMat()} }

// Close frees the scratch picture.
func (g *Gridder) Close() error { return g.small.Close() }

// FromGray averages an 8-bit one-channel picture of any size into out.
func (g *Gridder) FromGray(gray gocv.Mat, out *Grid) error {
	if gray.Empty() || gray.Type() != gocv.MatTypeCV8UC1 {
		return fmt.Errorf("motion grid: a %d×%d picture of type %v, want 8-bit gray", gray.Cols(), gray.Rows(), gray.Type())
	}
	// Area interpolation averages whole blocks (and is exact and fast for
	// the common sizes, whose sides are multiples of 32×24).
	gocv.Resize(gray, &g.small, image.Pt(GridW, GridH), 0, 0, gocv.InterpolationArea)
	data, err := g.small.DataPtrUint8()
	if err != nil {
		return fmt.Errorf("motion grid: %w", err)
	}
	if len(data) != len(out) {
		return fmt.Errorf("motion grid: %d cells, want %d", len(data), len(out))
	}
	copy(out[:], data)
	return nil
}

// Changed counts the cells whose luma moved by more than CellDelta from a
// to b.
func Changed(a, b *Grid) int {
	return ChangedOutside(a, b, 0, 0, nil)
}

// PictureChanged reports whether b shows something a's picture did not.
func PictureChanged(a, b *Grid) bool { return Changed(a, b) >= MinChangedCells }

// ChangedWithin counts the cells whose centers inside accepts (in pixels
// of a width×height picture), and how many of them changed from a to b: a
// cascade asks how much of a face's box changed.
func ChangedWithin(a, b *Grid, width, height int, inside func(x, y float64) bool) (changed, cells int) {
	cw, ch := float64(width)/GridW, float64(height)/GridH
	for y := range GridH {
		for x := range GridW {
			if !inside((float64(x)+0.5)*cw, (float64(y)+0.5)*ch) {
				continue
			}
			cells++
			i := y*GridW + x
			if d := int(b[i]) - int(a[i]); d > CellDelta || d < -CellDelta {
				changed++
			}
		}
	}
	return changed, cells
}

// ChangedOutside counts the changed cells whose centers lie outside what
// inside accepts, in pixels of a width×height picture (a cascade leaves
// out the zones where movement tells it nothing new, such as the head of a
// candidate who talks). A nil inside counts every cell.
func ChangedOutside(a, b *Grid, width, height int, inside func(x, y float64) bool) int {
	cw, ch := float64(width)/GridW, float64(height)/GridH
	n := 0
	for y := range GridH {
		for x := range GridW {
			i := y*GridW + x
			if d := int(b[i]) - int(a[i]); d <= CellDelta && d >= -CellDelta {
				continue
			}
			if inside != nil && inside((float64(x)+0.5)*cw, (float64(y)+0.5)*ch) {
				continue
			}
			n++
		}
	}
	return n
}
