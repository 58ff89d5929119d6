package runner

import (
	"image"
	"image/color"
	"math"

	"gocv.io/x/gocv"
)

// letterbox fits a w×h image into a size×size model input keeping its aspect
// ratio: scaled so the long side fills the input, centered, the rest padded
// black (MediaPipe's keep_aspect_ratio with a zero border).
type letterbox struct {
	size            int
	srcW, srcH      int
	dstW, dstH      int // the scaled image inside the input
	padLeft, padTop int
}

func newLetterbox(w, h, size int) letterbox {
	s := float64(size) / float64(max(w, h))
	dw := min(size, max(1, int(math.Round(float64(w)*s))))
	dh := min(size, max(1, int(math.Round(float64(h)*s))))
	return letterbox{
		size: size, srcW: w, srcH: h, dstW: dw, dstH: dh,
		padLeft: (size - dw) / 2, padTop: (size - dh) / 2,
	}
}

// toImage maps a point in [0,1] input coordinates to image pixels.
func (l letterbox) toImage(p Point) Point {
	return Point{
		(p.X*float64(l.size) - float64(l.padLeft)) * float64(l.srcW) / float64(l.dstW),
		(p.Y*float64(l.size) - float64(l.padTop)) * float64(l.srcH) / float64(l.dstH),
	}
}

// toInput maps image pixels to [0,1] input coordinates (toImage's inverse).
func (l letterbox) toInput(p Point) Point {
	return Point{
		(p.X*float64(l.dstW)/float64(l.srcW) + float64(l.padLeft)) / float64(l.size),
		(p.Y*float64(l.dstH)/float64(l.srcH) + float64(l.padTop)) / float64(l.size),
	}
}

func (l letterbox) rectToImage(r Rect) Rect {
	a := l.toImage(Point{r.X, r.Y})
	b := l.toImage(Point{r.X + r.W, r.Y + r.H})
	return Rect{a.X, a.Y, b.X - a.X, b.Y - a.Y}
}

// apply writes the letterboxed input image into dst, using scaled as scratch.
// Shrinking averages pixels (INTER_AREA) instead of MediaPipe's bilinear
// warp: camera frames are 3–15 times the model input, and bilinear
// sampling at that ratio aliases enough to lose faces (on sample2.jpg the
// full-range model misses the woman looking down with it).
func (l letterbox) apply(img gocv.Mat, scaled, dst *gocv.Mat) {
	interp := gocv.InterpolationArea
	if l.dstW > l.srcW || l.dstH > l.srcH {
		interp = gocv.InterpolationLinear
	}
	gocv.Resize(img, scaled, image.Pt(l.dstW, l.dstH), 0, 0, interp)
	gocv.CopyMakeBorder(*scaled, dst, l.padTop, l.size-l.dstH-l.padTop, l.padLeft, l.size-l.dstW-l.padLeft,
		gocv.BorderConstant, color.RGBA{0, 0, 0, 0})
}
