package runner

import (
	"image"
	"math"
)

// Point is a position in image pixels.
type Point struct{ X, Y float64 }

// Point3 is a landmark: X and Y in image pixels, Z a depth in the same pixel
// scale (see Hand).
type Point3 struct{ X, Y, Z float64 }

// Rect is an axis-aligned box in image pixels.
type Rect struct{ X, Y, W, H float64 }

// Center returns the middle of r.
func (r Rect) Center() Point { return Point{r.X + r.W/2, r.Y + r.H/2} }

// Area returns W·H, or 0 for an empty box.
func (r Rect) Area() float64 {
	if r.W <= 0 || r.H <= 0 {
		return 0
	}
	return r.W * r.H
}

// IoU returns the intersection over union of r and o (0 when either is empty).
func (r Rect) IoU(o Rect) float64 {
	ix := math.Min(r.X+r.W, o.X+o.W) - math.Max(r.X, o.X)
	iy := math.Min(r.Y+r.H, o.Y+o.H) - math.Max(r.Y, o.Y)
	if ix <= 0 || iy <= 0 {
		return 0
	}
	inter := ix * iy
	union := r.Area() + o.Area() - inter
	if union <= 0 {
		return 0
	}
	return inter / union
}

// Image returns r rounded outwards to whole pixels.
func (r Rect) Image() image.Rectangle {
	return image.Rect(int(math.Floor(r.X)), int(math.Floor(r.Y)),
		int(math.Ceil(r.X+r.W)), int(math.Ceil(r.Y+r.H)))
}

// RotatedRect is a rectangle turned by Angle radians about its center. Angle
// is measured from the image's x axis towards its y axis (clockwise on screen,
// since y points down); the rectangle's own "up" is the direction
// (sin Angle, −cos Angle).
type RotatedRect struct {
	Center        Point
	Width, Height float64
	Angle         float64
}

// Corners returns the four corners, starting top-left of the unrotated
// rectangle and going clockwise on screen.
func (r RotatedRect) Corners() [4]Point {
	c, s := math.Cos(r.Angle), math.Sin(r.Angle)
	hw, hh := r.Width/2, r.Height/2
	var out [4]Point
	for i, d := range [4][2]float64{{-hw, -hh}, {hw, -hh}, {hw, hh}, {-hw, hh}} {
		out[i] = Point{r.Center.X + c*d[0] - s*d[1], r.Center.Y + s*d[0] + c*d[1]}
	}
	return out
}

// Bounds returns the axis-aligned box around r.
func (r RotatedRect) Bounds() Rect {
	pts := r.Corners()
	return boundsOf(pts[:])
}

func boundsOf(pts []Point) Rect {
	minX, minY := math.Inf(1), math.Inf(1)
	maxX, maxY := math.Inf(-1), math.Inf(-1)
	for _, p := range pts {
		minX, maxX = math.Min(minX, p.X), math.Max(maxX, p.X)
		minY, maxY = math.Min(minY, p.Y), math.Max(maxY, p.Y)
	}
	return Rect{minX, minY, maxX - minX, maxY - minY}
}

// normalizeRadians maps a to [−π, π).
func normalizeRadians(a float64) float64 {
	return a - 2*math.Pi*math.Floor((a+math.Pi)/(2*math.Pi))
}

func sigmoid(x float64) float64 { return 1 / (1 + math.Exp(-x)) }
