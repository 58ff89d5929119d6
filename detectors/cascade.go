package detectors

import (
	"fmt"
	"image"

	"gocv.io/x/gocv"

	"invigil/detectors/rules"
)

// The cascades skip an expensive network when what it would look at has
// not changed since it last looked. "Changed" is judged on a coarse grid of
// the frame's luma, the same measure as the pipeline's change detector:
// changeGridW×changeGridH cells (20×20 pixels of a 640×480 frame), made
// from the light measures' 160×120 thumbnail, so it costs a few
// microseconds. A cell counts as changed when its mean moves by more than
// changeCellDelta levels; sensor noise and the codec stay under 5.
const (
	changeGridW     = 32
	changeGridH     = 24
	changeCellDelta = 10
	// minChangedCells is how many cells outside the excluded zones must
	// change for a network to look again: under 1 % of the frame, less than
	// a hand at its edge or a face in a corner.
	minChangedCells = 6
)

// changeGrid is a frame's luma on the coarse grid.
type changeGrid [changeGridW * changeGridH]uint8

// makeChangeGrid averages the light measures' gray thumbnail into cells.
func (a *Analyzer) makeChangeGrid(g *changeGrid) error {
	gocv.Resize(a.gray, &a.grid, image.Pt(changeGridW, changeGridH), 0, 0, gocv.InterpolationArea)
	data, err := a.grid.DataPtrUint8()
	if err != nil {
		return fmt.Errorf("change grid: %w", err)
	}
	if len(data) != len(g) {
		return fmt.Errorf("change grid: %d cells, want %d", len(data), len(g))
	}
	copy(g[:], data)
	return nil
}

// changedOutside counts the cells that changed from ref to now whose
// centers lie outside every zone (in pixels of a width×height frame).
func changedOutside(ref, now *changeGrid, zones []rules.Rect, width, height int) int {
	cw, ch := float64(width)/changeGridW, float64(height)/changeGridH
	n := 0
	for y := 0; y < changeGridH; y++ {
		for x := 0; x < changeGridW; x++ {
			i := y*changeGridW + x
			if d := int(now[i]) - int(ref[i]); d <= changeCellDelta && d >= -changeCellDelta {
				continue
			}
			px, py := (float64(x)+0.5)*cw, (float64(y)+0.5)*ch
			inside := false
			for _, z := range zones {
				if px >= z.X && px <= z.X+z.W && py >= z.Y && py <= z.Y+z.H {
					inside = true
					break
				}
			}
			if !inside {
				n++
			}
		}
	}
	return n
}

// headZone is where a face's own movement shows: the head and hair, the
// chin and neck that move when the candidate talks, around a face box.
// Hands matter beside the head (a hand at the ear is 0.2 to 1 face widths
// out from the face's center), so the zone stays narrow at the sides.
func headZone(face rules.Rect) rules.Rect {
	const side, above, below = 0.1, 0.6, 0.3
	return rules.Rect{
		X: face.X - side*face.W, Y: face.Y - above*face.H,
		W: face.W * (1 + 2*side), H: face.H * (1 + above + below),
	}
}

// palmLook is the palm detector's last look for a stream: the picture then
// and the zones whose later changes do not call for another look (the
// head, and the hands known then, which the landmark model follows).
type palmLook struct {
	valid  bool
	width  int
	height int
	grid   changeGrid
	zones  []rules.Rect
	skips  int // hand analyses since, on which it did not run
}

// palmNeeded decides whether the palm detector must look for hands on this
// hand analysis, when fewer than two are followed: it must when a hand
// followed last time was lost (it may still be there, badly seen), when
// the picture changed outside the head and the followed hands since it
// last looked (a hand may have come in or risen to the ear), or when it
// has not looked for the policy's palm_still_every hand analyses (slow
// drifts, a hand that came in within an excluded zone).
func palmNeeded(s *Stream, grid *changeGrid, zones []rules.Rect, lost bool, width, height int) bool {
	every := s.Policy.PalmStillEvery
	look := &s.palm
	if every <= 1 || lost || !look.valid || look.width != width || look.height != height || look.skips+1 >= every {
		return true
	}
	all := append(append([]rules.Rect(nil), zones...), look.zones...)
	return changedOutside(&look.grid, grid, all, width, height) >= minChangedCells
}
