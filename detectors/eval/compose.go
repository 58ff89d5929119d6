package eval

import (
	"fmt"
	"image"
	"image/color"
	"math"

	"gocv.io/x/gocv"
)

// Frame geometry of every scenario video: a typical webcam stream.
const (
	FrameWidth  = 640
	FrameHeight = 480
	FPS         = 10
	frameMS     = 1000 / FPS
)

// bgr is an 8-bit BGR picture held in Go memory: compositing works on
// these, and gocv only decodes, resizes, blurs and encodes.
type bgr struct {
	w, h int
	pix  []uint8
}

func newBGR(w, h int) *bgr { return &bgr{w: w, h: h, pix: make([]uint8, w*h*3)} }

func bgrFromMat(m gocv.Mat) (*bgr, error) {
	if m.Empty() || m.Type() != gocv.MatTypeCV8UC3 {
		return nil, fmt.Errorf("want a non-empty 8-bit BGR image, got type %v", m.Type())
	}
	c := m
	if !m.IsContinuous() {
		c = m.Clone()
		defer c.Close()
	}
	return &bgr{w: c.Cols(), h: c.Rows(), pix: append([]uint8(nil), c.ToBytes()...)}, nil
}

func (b *bgr) mat() (gocv.Mat, error) {
	return gocv.NewMatFromBytes(b.h, b.w, gocv.MatTypeCV8UC3, b.pix)
}

func (b *bgr) clone() *bgr { return &bgr{w: b.w, h: b.h, pix: append([]uint8(nil), b.pix...)} }

// alpha is a soft mask in [0, 1], same size as its picture.
type alpha struct {
	w, h int
	a    []float32
}

// sprite is a cut-out (a head and shoulders, or a hand) with its mask and
// the point that placements refer to (the face center, or the wrist).
type sprite struct {
	img    *bgr
	mask   *alpha
	anchor image.Point // in sprite pixels
	// size is the face box width (faces) or the hand height (hands), in
	// sprite pixels, that placements scale to.
	size float64
}

// paste blends s onto dst with its anchor at (x, y), clipped to dst.
func (dst *bgr) paste(s *sprite, x, y int) {
	ox, oy := x-s.anchor.X, y-s.anchor.Y
	for sy := 0; sy < s.img.h; sy++ {
		dy := oy + sy
		if dy < 0 || dy >= dst.h {
			continue
		}
		for sx := 0; sx < s.img.w; sx++ {
			dx := ox + sx
			if dx < 0 || dx >= dst.w {
				continue
			}
			a := s.mask.a[sy*s.mask.w+sx]
			if a <= 0.002 {
				continue
			}
			si, di := (sy*s.img.w+sx)*3, (dy*dst.w+dx)*3
			for c := 0; c < 3; c++ {
				v := float32(s.img.pix[si+c])*a + float32(dst.pix[di+c])*(1-a)
				dst.pix[di+c] = uint8(v + 0.5)
			}
		}
	}
}

// scaleBrightness multiplies every pixel (a covered or very dark lens).
func (dst *bgr) scaleBrightness(f float64) {
	for i, v := range dst.pix {
		dst.pix[i] = uint8(math.Min(255, float64(v)*f+0.5))
	}
}

// coverResize scales and center-crops src to exactly w×h.
func coverResize(src gocv.Mat, w, h int) (*bgr, error) {
	f := math.Max(float64(w)/float64(src.Cols()), float64(h)/float64(src.Rows()))
	scaled := gocv.NewMat()
	defer scaled.Close()
	gocv.Resize(src, &scaled, image.Pt(int(math.Ceil(float64(src.Cols())*f)), int(math.Ceil(float64(src.Rows())*f))), 0, 0, gocv.InterpolationArea)
	x0, y0 := (scaled.Cols()-w)/2, (scaled.Rows()-h)/2
	roi := scaled.Region(image.Rect(x0, y0, x0+w, y0+h))
	defer roi.Close()
	return bgrFromMat(roi)
}

// FaceCrop names a real face in a source photo: its face box (as MediaPipe
// draws it, in source pixels, measured once and checked by eye) and what a
// person sees when looking at it.
type FaceCrop struct {
	Source string
	Box    image.Rectangle
	// Turned is true when the head is clearly turned away (profile) or
	// bowed (looking down at the lap): a head_turn.
	Turned bool
	// Label is the human label, shown in EVAL.md.
	Label string
}

// makeFaceSprite cuts a head and shoulders out of a photo with a soft
// mask: an ellipse around the head and hair and a band below for the neck
// and shoulders, so the face keeps its real surroundings and no
// neighbour's face comes along.
func makeFaceSprite(photo gocv.Mat, fc FaceCrop, mirror bool) (*sprite, error) {
	b := float64(fc.Box.Dx())
	cx := float64(fc.Box.Min.X) + b/2
	cy := float64(fc.Box.Min.Y) + float64(fc.Box.Dy())/2
	half := 1.3 * b
	r := image.Rect(int(cx-half), int(cy-half), int(cx+half), int(cy+1.6*b))
	r = r.Intersect(image.Rect(0, 0, photo.Cols(), photo.Rows()))
	if r.Dx() < int(b) || r.Dy() < int(b) {
		return nil, fmt.Errorf("face crop %s %v: box outside the photo", fc.Source, fc.Box)
	}
	roi := photo.Region(r)
	defer roi.Close()
	img, err := bgrFromMat(roi)
	if err != nil {
		return nil, err
	}
	mask := gocv.NewMatWithSize(r.Dy(), r.Dx(), gocv.MatTypeCV8U)
	defer mask.Close()
	ax, ay := int(cx)-r.Min.X, int(cy)-r.Min.Y
	white := color.RGBA{255, 255, 255, 0}
	gocv.Ellipse(&mask, image.Pt(ax, ay-int(0.12*b)), image.Pt(int(0.82*b), int(1.0*b)), 0, 0, 360, white, -1)
	gocv.Rectangle(&mask, image.Rect(ax-int(0.55*b), ay+int(0.3*b), ax+int(0.55*b), r.Dy()), white, -1)
	soft := gocv.NewMat()
	defer soft.Close()
	k := int(0.16*b)*2 + 1
	gocv.GaussianBlur(mask, &soft, image.Pt(k, k), 0, 0, gocv.BorderConstant)
	s := &sprite{img: img, mask: alphaFromMat(soft), anchor: image.Pt(ax, ay), size: b}
	if mirror {
		s = s.mirrored()
	}
	return s, nil
}

func alphaFromMat(m gocv.Mat) *alpha {
	bytes := m.ToBytes()
	a := &alpha{w: m.Cols(), h: m.Rows(), a: make([]float32, len(bytes))}
	for i, v := range bytes {
		a.a[i] = float32(v) / 255
	}
	return a
}

func (s *sprite) mirrored() *sprite {
	img := newBGR(s.img.w, s.img.h)
	mask := &alpha{w: s.mask.w, h: s.mask.h, a: make([]float32, len(s.mask.a))}
	for y := 0; y < s.img.h; y++ {
		for x := 0; x < s.img.w; x++ {
			mx := s.img.w - 1 - x
			copy(img.pix[(y*img.w+mx)*3:(y*img.w+mx)*3+3], s.img.pix[(y*s.img.w+x)*3:(y*s.img.w+x)*3+3])
			mask.a[y*mask.w+mx] = s.mask.a[y*s.mask.w+x]
		}
	}
	return &sprite{img: img, mask: mask, anchor: image.Pt(s.img.w-1-s.anchor.X, s.anchor.Y), size: s.size}
}

// scaled returns the sprite resized so that its size becomes size pixels.
func (s *sprite) scaled(size float64) (*sprite, error) {
	f := size / s.size
	w, h := max(1, int(math.Round(float64(s.img.w)*f))), max(1, int(math.Round(float64(s.img.h)*f)))
	src, err := s.img.mat()
	if err != nil {
		return nil, err
	}
	defer src.Close()
	dst := gocv.NewMat()
	defer dst.Close()
	interp := gocv.InterpolationLinear
	if f < 1 {
		interp = gocv.InterpolationArea
	}
	gocv.Resize(src, &dst, image.Pt(w, h), 0, 0, interp)
	img, err := bgrFromMat(dst)
	if err != nil {
		return nil, err
	}
	m8 := make([]uint8, len(s.mask.a))
	for i, v := range s.mask.a {
		m8[i] = uint8(v*255 + 0.5)
	}
	msrc, err := gocv.NewMatFromBytes(s.mask.h, s.mask.w, gocv.MatTypeCV8U, m8)
	if err != nil {
		return nil, err
	}
	defer msrc.Close()
	mdst := gocv.NewMat()
	defer mdst.Close()
	gocv.Resize(msrc, &mdst, image.Pt(w, h), 0, 0, interp)
	return &sprite{img: img, mask: alphaFromMat(mdst),
		anchor: image.Pt(int(math.Round(float64(s.anchor.X)*f)), int(math.Round(float64(s.anchor.Y)*f))), size: size}, nil
}

// makeHandSprite cuts the open hand out of handSrc.jpg (a hand lying on a
// light grey desk, wrist at the photo's left edge): the skin is told from
// the unsaturated desk by its saturation. The photo is turned so the wrist
// is at the bottom, as a hand resting on the desk in front of a webcam
// enters the frame from below. The anchor is the wrist's center.
func makeHandSprite(photo gocv.Mat) (*sprite, error) {
	rot := gocv.NewMat()
	defer rot.Close()
	gocv.Rotate(photo, &rot, gocv.Rotate90CounterClockwise)
	hsv := gocv.NewMat()
	defer hsv.Close()
	gocv.CvtColor(rot, &hsv, gocv.ColorBGRToHSV)
	ch := gocv.Split(hsv)
	defer func() {
		for _, c := range ch {
			c.Close()
		}
	}()
	mask := gocv.NewMat()
	defer mask.Close()
	gocv.Threshold(ch[1], &mask, 38, 255, gocv.ThresholdBinary)
	kernel := gocv.GetStructuringElement(gocv.MorphEllipse, image.Pt(9, 9))
	defer kernel.Close()
	gocv.MorphologyEx(mask, &mask, gocv.MorphOpen, kernel)
	// The palm has paler patches the threshold misses: keep the largest
	// blob (the hand) and fill it.
	contours := gocv.FindContours(mask, gocv.RetrievalExternal, gocv.ChainApproxSimple)
	defer contours.Close()
	largest, area := -1, 0.0
	for i := 0; i < contours.Size(); i++ {
		if a := gocv.ContourArea(contours.At(i)); a > area {
			largest, area = i, a
		}
	}
	if largest < 0 {
		return nil, fmt.Errorf("handSrc.jpg: no hand found by saturation")
	}
	mask.SetTo(gocv.NewScalar(0, 0, 0, 0))
	gocv.DrawContours(&mask, contours, largest, color.RGBA{255, 255, 255, 0}, -1)
	soft := gocv.NewMat()
	defer soft.Close()
	gocv.GaussianBlur(mask, &soft, image.Pt(7, 7), 0, 0, gocv.BorderDefault)
	img, err := bgrFromMat(rot)
	if err != nil {
		return nil, err
	}
	m := alphaFromMat(soft)
	// The hand's extent decides its size and the wrist position.
	top, bottom, sumX, n := img.h, 0, 0, 0
	for y := 0; y < m.h; y++ {
		for x := 0; x < m.w; x++ {
			if m.a[y*m.w+x] > 0.5 {
				top = min(top, y)
				bottom = max(bottom, y)
				if y > m.h-20 {
					sumX += x
					n++
				}
			}
		}
	}
	if n == 0 || bottom <= top {
		return nil, fmt.Errorf("handSrc.jpg: no hand found by saturation")
	}
	return &sprite{img: img, mask: m, anchor: image.Pt(sumX/n, img.h-1), size: float64(bottom - top)}, nil
}

// rotated turns the sprite by deg degrees (counter-clockwise on screen, as
// OpenCV's) about its anchor, on a canvas just large enough for any turn.
func (s *sprite) rotated(deg float64) (*sprite, error) {
	if deg == 0 {
		return s, nil
	}
	r := 0.0
	for _, c := range []image.Point{{0, 0}, {s.img.w, 0}, {0, s.img.h}, {s.img.w, s.img.h}} {
		r = math.Max(r, math.Hypot(float64(c.X-s.anchor.X), float64(c.Y-s.anchor.Y)))
	}
	side := 2*int(math.Ceil(r)) + 1
	center := image.Pt(side/2, side/2)
	ox, oy := center.X-s.anchor.X, center.Y-s.anchor.Y
	img := newBGR(side, side)
	m8 := make([]uint8, side*side)
	for y := 0; y < s.img.h; y++ {
		for x := 0; x < s.img.w; x++ {
			copy(img.pix[((y+oy)*side+x+ox)*3:((y+oy)*side+x+ox)*3+3], s.img.pix[(y*s.img.w+x)*3:(y*s.img.w+x)*3+3])
			m8[(y+oy)*side+x+ox] = uint8(s.mask.a[y*s.mask.w+x]*255 + 0.5)
		}
	}
	src, err := img.mat()
	if err != nil {
		return nil, err
	}
	defer src.Close()
	msrc, err := gocv.NewMatFromBytes(side, side, gocv.MatTypeCV8U, m8)
	if err != nil {
		return nil, err
	}
	defer msrc.Close()
	rot := gocv.GetRotationMatrix2D(center, deg, 1)
	defer rot.Close()
	dst, mdst := gocv.NewMat(), gocv.NewMat()
	defer dst.Close()
	defer mdst.Close()
	gocv.WarpAffineWithParams(src, &dst, rot, image.Pt(side, side), gocv.InterpolationLinear, gocv.BorderConstant, color.RGBA{})
	gocv.WarpAffineWithParams(msrc, &mdst, rot, image.Pt(side, side), gocv.InterpolationLinear, gocv.BorderConstant, color.RGBA{})
	out, err := bgrFromMat(dst)
	if err != nil {
		return nil, err
	}
	return &sprite{img: out, mask: alphaFromMat(mdst), anchor: center, size: s.size}, nil
}

// fadeBottom fades the mask out over the bottom share of the sprite's size
// above its anchor: a lifted hand's wrist, cut square by the photo's edge,
// blends into the picture as a forearm in shadow would.
func (s *sprite) fadeBottom(share float64) {
	band := share * s.size
	if band < 1 {
		return
	}
	for y := 0; y < s.mask.h; y++ {
		d := float64(s.anchor.Y - y)
		if d >= band {
			continue
		}
		f := float32(math.Max(0, d/band))
		for x := 0; x < s.mask.w; x++ {
			s.mask.a[y*s.mask.w+x] *= f
		}
	}
}
