package eval

import (
	"context"
	"fmt"
	"image"
	"math"
	"os"
	"path/filepath"
	"strings"

	"gocv.io/x/gocv"
)

// Hands rest at the bottom corners, wrists at the frame's lower edge.
const (
	handHeight = 190
	leftHandX  = 120
	rightHandX = FrameWidth - 120
)

// renderer makes frames from the provisioned sources. It caches the
// backgrounds and the scaled sprites, so a video costs little more than
// its JPEG encoding.
type renderer struct {
	dir         string
	photos      map[string]gocv.Mat
	backgrounds map[string]*bgr
	faces       map[string]*sprite // by face name + mirror
	scaled      map[string]*sprite // by face + mirror + width
	hand        map[bool]*sprite   // by mirror, at handHeight
	lifted      map[string]*sprite // by pose + side + face width
	covered     *bgr
}

func newRenderer(dir string) *renderer {
	return &renderer{dir: dir, photos: map[string]gocv.Mat{}, backgrounds: map[string]*bgr{},
		faces: map[string]*sprite{}, scaled: map[string]*sprite{}, hand: map[bool]*sprite{}, lifted: map[string]*sprite{}}
}

func (r *renderer) Close() {
	for _, m := range r.photos {
		m.Close()
	}
}

func (r *renderer) photo(name string) (gocv.Mat, error) {
	if m, ok := r.photos[name]; ok {
		return m, nil
	}
	p := SourcePath(r.dir, name)
	if _, err := os.Stat(p); err != nil {
		return gocv.Mat{}, fmt.Errorf("source %s: %w", name, err)
	}
	m := gocv.IMRead(p, gocv.IMReadColor)
	if m.Empty() {
		return gocv.Mat{}, fmt.Errorf("source %s: not a readable image", name)
	}
	r.photos[name] = m
	return m, nil
}

func (r *renderer) background(name string) (*bgr, error) {
	if b, ok := r.backgrounds[name]; ok {
		return b, nil
	}
	m, err := r.photo(name)
	if err != nil {
		return nil, err
	}
	b, err := coverResize(m, FrameWidth, FrameHeight)
	if err != nil {
		return nil, err
	}
	r.backgrounds[name] = b
	return b, nil
}

func (r *renderer) face(p *Placement) (*sprite, error) {
	w := math.Round(p.W)
	key := fmt.Sprintf("%s/%v/%g", p.Face, p.Mirror, w)
	if s, ok := r.scaled[key]; ok {
		return s, nil
	}
	baseKey := fmt.Sprintf("%s/%v", p.Face, p.Mirror)
	base, ok := r.faces[baseKey]
	if !ok {
		fc := Faces[p.Face]
		m, err := r.photo(fc.Source)
		if err != nil {
			return nil, err
		}
		if base, err = makeFaceSprite(m, fc, p.Mirror); err != nil {
			return nil, err
		}
		r.faces[baseKey] = base
	}
	s, err := base.scaled(w)
	if err != nil {
		return nil, err
	}
	r.scaled[key] = s
	return s, nil
}

func (r *renderer) handSprite(mirror bool) (*sprite, error) {
	if s, ok := r.hand[mirror]; ok {
		return s, nil
	}
	m, err := r.photo("handSrc.jpg")
	if err != nil {
		return nil, err
	}
	s, err := makeHandSprite(m)
	if err != nil {
		return nil, err
	}
	if mirror {
		s = s.mirrored()
	}
	if s, err = s.scaled(handHeight); err != nil {
		return nil, err
	}
	r.hand[mirror] = s
	return s, nil
}

// liftHalfWidth is half a hand's width across the thumb, in hand heights.
const liftHalfWidth = 0.38

// liftGeometry is how a lifted hand is drawn, in face widths W of the
// candidate's face box (center X, Y): the hand's height (wrist to
// fingertips; a real hand is about 1.3 face widths long), where its wrist
// is (dx outwards from the face center, towards the hand's side; dy down),
// and its tilt (degrees, fingertips outwards).
type liftGeometry struct{ height, dx, dy, tilt float64 }

var liftGeometries = map[HandPose]liftGeometry{
	// Wrist below the jaw, palm over the ear, fingers up the side of the
	// head.
	HandAtEar: {height: 1.3, dx: 0.6, dy: 0.75, tilt: 8},
	// Wrist at the jaw, palm on the cheek beside the mouth.
	// (Lower than the ear's: a hand over the eye hides the face from the
	// detector, which is another matter.)
	HandAtCheek: {height: 1.15, dx: 0.5, dy: 0.95, tilt: -6},
	// Wrist under the chin, fingertips at the lips.
	HandOnChin: {height: 1.15, dx: 0, dy: 1.45, tilt: 0},
	// Raised beside the head, clear of it (its inner edge about a face
	// width out) and wholly inside the frame: at 1.45 face widths the
	// thumb of a hand beside a 170 px face left the frame, and the palm
	// detector found none of it.
	HandBeside: {height: 1.3, dx: 1.3, dy: 0.7, tilt: 5},
}

// liftedHand is the open hand scaled and turned for a pose beside a face
// of width w, on the image's right side when right (mirrored there).
func (r *renderer) liftedHand(pose HandPose, right bool, w float64) (*sprite, liftGeometry, error) {
	g := liftGeometries[pose]
	key := fmt.Sprintf("%d/%v/%g", pose, right, math.Round(w))
	if s, ok := r.lifted[key]; ok {
		return s, g, nil
	}
	m, err := r.photo("handSrc.jpg")
	if err != nil {
		return nil, g, err
	}
	s, err := makeHandSprite(m)
	if err != nil {
		return nil, g, err
	}
	if right {
		s = s.mirrored()
	}
	if s, err = s.scaled(g.height * math.Round(w)); err != nil {
		return nil, g, err
	}
	s.fadeBottom(0.15)
	tilt := g.tilt // outwards: to the left (counter-clockwise) on the left side
	if right {
		tilt = -tilt
	}
	if s, err = s.rotated(tilt); err != nil {
		return nil, g, err
	}
	r.lifted[key] = s
	return s, g, nil
}

// coveredLens is a finger on the lens: the hand photo, out of focus
// beyond recognition and shaded.
func (r *renderer) coveredLens() (*bgr, error) {
	if r.covered != nil {
		return r.covered, nil
	}
	m, err := r.photo("handSrc.jpg")
	if err != nil {
		return nil, err
	}
	b, err := coverResize(m, FrameWidth, FrameHeight)
	if err != nil {
		return nil, err
	}
	src, err := b.mat()
	if err != nil {
		return nil, err
	}
	defer src.Close()
	blurred := gocv.NewMat()
	defer blurred.Close()
	gocv.GaussianBlur(src, &blurred, image.Point{}, 60, 60, gocv.BorderReflect101)
	if r.covered, err = bgrFromMat(blurred); err != nil {
		return nil, err
	}
	r.covered.scaleBrightness(0.35)
	return r.covered, nil
}

// jitter is a slow sway of a seated person (a few pixels), so consecutive
// frames are not identical.
func jitter(tMS int64, phase float64) (float64, float64) {
	t := float64(tMS) / 1000
	return 3 * math.Sin(2*math.Pi*t/3.3+phase), 2 * math.Sin(2*math.Pi*t/2.1+1+phase)
}

// frame draws scene sc at time t onto base (a copy of the background or
// the webcam frame).
func (r *renderer) frame(s *Scenario, sc Scene, tMS int64, base *bgr) (*bgr, error) {
	out := base
	if sc.Candidate != nil {
		sp, err := r.face(sc.Candidate)
		if err != nil {
			return nil, err
		}
		jx, jy := jitter(tMS, 0)
		out.paste(sp, int(math.Round(sc.Candidate.X+jx)), int(math.Round(sc.Candidate.Y+jy)))
	}
	if sc.Lift != HandDown && sc.Candidate != nil {
		// The hand moves with the head it touches.
		sp, g, err := r.liftedHand(sc.Lift, sc.LiftRight, sc.Candidate.W)
		if err != nil {
			return nil, err
		}
		side := -1.0
		if sc.LiftRight {
			side = 1
		}
		jx, jy := jitter(tMS, 0)
		x := sc.Candidate.X + side*g.dx*sc.Candidate.W + jx
		y := sc.Candidate.Y + g.dy*sc.Candidate.W + jy
		out.paste(sp, int(math.Round(x)), int(math.Round(y)))
	}
	if sc.Extra != nil {
		sp, err := r.face(sc.Extra)
		if err != nil {
			return nil, err
		}
		jx, jy := jitter(tMS, 2)
		out.paste(sp, int(math.Round(sc.Extra.X+jx)), int(math.Round(sc.Extra.Y+jy)))
	}
	for _, h := range []struct {
		on     bool
		mirror bool
		x      int
	}{{sc.LeftHand, false, leftHandX}, {sc.RightHand, true, rightHandX}} {
		if !h.on {
			continue
		}
		sp, err := r.handSprite(h.mirror)
		if err != nil {
			return nil, err
		}
		jx, _ := jitter(tMS, 4)
		out.paste(sp, h.x+int(jx), FrameHeight-1)
	}
	if sc.Zoom > 1 {
		z, err := zoom(out, sc.Zoom, s.ZoomAt)
		if err != nil {
			return nil, err
		}
		out = z
	}
	switch sc.Light {
	case LightDark:
		out.scaleBrightness(0.05)
	case LightUniform:
		for i := range out.pix {
			out.pix[i] = 96
		}
	case LightBlack:
		for i := range out.pix {
			out.pix[i] = 0
		}
	case LightCovered:
		c, err := r.coveredLens()
		if err != nil {
			return nil, err
		}
		copy(out.pix, c.pix)
	}
	return out, nil
}

// zoom enlarges b by f about point c (c stays where it is).
func zoom(b *bgr, f float64, c image.Point) (*bgr, error) {
	w, h := float64(b.w)/f, float64(b.h)/f
	x0 := math.Max(0, math.Min(float64(b.w)-w, float64(c.X)-float64(c.X)/f))
	y0 := math.Max(0, math.Min(float64(b.h)-h, float64(c.Y)-float64(c.Y)/f))
	src, err := b.mat()
	if err != nil {
		return nil, err
	}
	defer src.Close()
	roi := src.Region(image.Rect(int(x0), int(y0), int(x0+w), int(y0+h)))
	defer roi.Close()
	dst := gocv.NewMat()
	defer dst.Close()
	gocv.Resize(roi, &dst, image.Pt(b.w, b.h), 0, 0, gocv.InterpolationLinear)
	return bgrFromMat(dst)
}

// videoSource yields the frames of a source video at given times.
type videoSource struct {
	cap   *gocv.VideoCapture
	frame gocv.Mat
	posMS float64
	fps   float64
	n     int
}

func openVideoSource(path string) (*videoSource, error) {
	c, err := gocv.VideoCaptureFile(path)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	if !c.IsOpened() {
		c.Close()
		return nil, fmt.Errorf("open %s: not a readable video", path)
	}
	fps := c.Get(gocv.VideoCaptureFPS)
	if fps <= 0 {
		c.Close()
		return nil, fmt.Errorf("%s: unknown frame rate", path)
	}
	return &videoSource{cap: c, frame: gocv.NewMat(), fps: fps, n: 0, posMS: -1}, nil
}

// at returns the frame showing at tMS (the last one whose time ≤ tMS).
func (v *videoSource) at(tMS int64) (*bgr, error) {
	for v.posMS < 0 || float64(v.n)*1000/v.fps <= float64(tMS) {
		if !v.cap.Read(&v.frame) || v.frame.Empty() {
			return nil, fmt.Errorf("source video ended before %d ms", tMS)
		}
		v.posMS = float64(v.n) * 1000 / v.fps
		v.n++
	}
	return coverResize(v.frame, FrameWidth, FrameHeight)
}

func (v *videoSource) Close() {
	v.frame.Close()
	v.cap.Close()
}

// writeScenario renders s into an MJPG AVI at path.
func (r *renderer) writeScenario(ctx context.Context, s *Scenario, path string) error {
	if err := s.Validate(); err != nil {
		return err
	}
	var video *videoSource
	if s.isVideo() {
		v, err := openVideoSource(SourcePath(r.dir, s.Background))
		if err != nil {
			return err
		}
		defer v.Close()
		video = v
	}
	tmp := strings.TrimSuffix(path, filepath.Ext(path)) + ".tmp.avi"
	w, err := gocv.VideoWriterFile(tmp, "MJPG", FPS, FrameWidth, FrameHeight, true)
	if err != nil {
		return fmt.Errorf("video writer %s: %w", tmp, err)
	}
	if !w.IsOpened() {
		w.Close()
		return fmt.Errorf("video writer %s: OpenCV cannot write MJPG AVI here", tmp)
	}
	end := s.DurationMS()
	for t := int64(0); t < end; t += frameMS {
		if err := ctx.Err(); err != nil {
			w.Close()
			return err
		}
		var base *bgr
		if video != nil {
			if base, err = video.at(s.VideoFromMS + t); err != nil {
				w.Close()
				return fmt.Errorf("scenario %s: %w", s.Name, err)
			}
		} else {
			bg, err := r.background(s.Background)
			if err != nil {
				w.Close()
				return err
			}
			base = bg.clone()
		}
		f, err := r.frame(s, s.sceneAt(t), t, base)
		if err != nil {
			w.Close()
			return fmt.Errorf("scenario %s at %d ms: %w", s.Name, t, err)
		}
		m, err := f.mat()
		if err != nil {
			w.Close()
			return err
		}
		err = w.Write(m)
		m.Close()
		if err != nil {
			w.Close()
			return fmt.Errorf("write %s: %w", tmp, err)
		}
	}
	if err := w.Close(); err != nil {
		return fmt.Errorf("close %s: %w", tmp, err)
	}
	return os.Rename(tmp, path)
}

// WriteStills saves one PNG from the middle of every segment of every
// scenario (NAME_SEGMENT.png) into outDir, to look at the set without
// playing the videos. Sources must be provisioned in sourcesDir.
func WriteStills(sourcesDir, outDir string) error {
	if err := os.MkdirAll(outDir, 0o755); err != nil {
		return err
	}
	r := newRenderer(sourcesDir)
	defer r.Close()
	for _, s := range Set() {
		var start int64
		for i, sg := range s.Segments {
			t := start + sg.MS/2
			start += sg.MS
			var base *bgr
			if s.isVideo() {
				v, err := openVideoSource(SourcePath(sourcesDir, s.Background))
				if err != nil {
					return err
				}
				base, err = v.at(s.VideoFromMS + t)
				v.Close()
				if err != nil {
					return err
				}
			} else {
				bg, err := r.background(s.Background)
				if err != nil {
					return err
				}
				base = bg.clone()
			}
			f, err := r.frame(&s, sg.Scene, t, base)
			if err != nil {
				return err
			}
			m, err := f.mat()
			if err != nil {
				return err
			}
			ok := gocv.IMWrite(filepath.Join(outDir, fmt.Sprintf("%s_%d.png", s.Name, i)), m)
			m.Close()
			if !ok {
				return fmt.Errorf("write still of %s", s.Name)
			}
		}
	}
	return nil
}
