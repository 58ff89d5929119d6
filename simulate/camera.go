package simulate

import (
	"errors"
	"fmt"
	"image"
	"math"
	"os"
	"path/filepath"
	"strings"

	"gocv.io/x/gocv"
)

// CameraOptions sets the picture a Camera makes.
type CameraOptions struct {
	// Width and Height of every frame (default 640×480); pictures are
	// scaled to cover it and center-cropped, as a webcam's field of view.
	Width, Height int
	// FPS is the camera's frame rate (default 15).
	FPS float64
	// Noise adds sensor noise of this standard deviation (in 8-bit levels)
	// to every frame, so a still picture costs an encoder and a decoder
	// what a real webcam's does. 0 sends the picture as it is.
	Noise float64
}

func (o *CameraOptions) setDefaults() error {
	if o.Width == 0 && o.Height == 0 {
		o.Width, o.Height = 640, 480
	}
	if o.Width < 16 || o.Height < 16 || o.Width > 4096 || o.Height > 4096 || o.Width%2 != 0 || o.Height%2 != 0 {
		return fmt.Errorf("frame size %dx%d: want even sides from 16 to 4096", o.Width, o.Height)
	}
	if o.FPS == 0 {
		o.FPS = 15
	}
	if math.IsNaN(o.FPS) || o.FPS < 1 || o.FPS > 60 {
		return fmt.Errorf("frame rate %v: want 1 to 60", o.FPS)
	}
	if math.IsNaN(o.Noise) || o.Noise < 0 || o.Noise > 64 {
		return fmt.Errorf("noise %v: want 0 to 64", o.Noise)
	}
	return nil
}

// Camera renders a scenario frame by frame: each call to Next is the next
// 1/FPS of the scenario, which loops at its end. It is not safe for
// concurrent use; Close frees its pictures.
type Camera struct {
	opts   CameraOptions
	clips  []cameraClip
	loop   int // frames in one pass; 0 when a lone image shows forever
	clip   int // current clip
	frame  int // frame within the current clip
	frames int // frames rendered so far

	video   *videoClip // the open video of the current clip, if any
	scratch gocv.Mat
	noise   []gocv.Mat
}

type cameraClip struct {
	Clip
	frames  int      // frames it lasts; 0: forever
	picture gocv.Mat // images only: the picture at frame size
	isVideo bool
}

// imageExts are the files shown as still pictures; anything else is opened
// as a video.
var imageExts = map[string]bool{".jpg": true, ".jpeg": true, ".png": true, ".bmp": true, ".webp": true,
	".tif": true, ".tiff": true, ".ppm": true, ".pgm": true}

// IsImage reports whether path is shown as a still picture (by extension).
func IsImage(path string) bool { return imageExts[strings.ToLower(filepath.Ext(path))] }

// NewCamera loads the scenario's pictures and checks its videos.
func NewCamera(clips []Clip, opts CameraOptions) (*Camera, error) {
	if err := opts.setDefaults(); err != nil {
		return nil, err
	}
	if err := validateClips(clips); err != nil {
		return nil, err
	}
	c := &Camera{opts: opts, scratch: gocv.NewMat()}
	for i, cl := range clips {
		cc, err := c.loadClip(cl, len(clips))
		if err != nil {
			c.Close()
			return nil, fmt.Errorf("clip %d: %w", i+1, err)
		}
		c.clips = append(c.clips, cc)
		c.loop += cc.frames
	}
	if len(c.clips) == 1 && c.clips[0].frames == 0 {
		c.loop = 0
	}
	if opts.Noise > 0 {
		// A few noise fields in turn: fresh noise every frame would cost
		// more than the encoding, and the encoder cannot tell the difference.
		for k := 0; k < 8; k++ {
			n := gocv.NewMatWithSize(opts.Height, opts.Width, gocv.MatTypeCV8UC3)
			gocv.RandN(&n, gocv.NewScalar(128, 128, 128, 0), gocv.NewScalar(opts.Noise, opts.Noise, opts.Noise, 0))
			c.noise = append(c.noise, n)
		}
	}
	return c, nil
}

func (c *Camera) loadClip(cl Clip, n int) (cameraClip, error) {
	if _, err := os.Stat(cl.File); err != nil {
		return cameraClip{}, fmt.Errorf("camera source: %w", err)
	}
	cc := cameraClip{Clip: cl, frames: int(math.Round(cl.Seconds * c.opts.FPS))}
	if cl.Seconds > 0 && cc.frames == 0 {
		cc.frames = 1
	}
	if IsImage(cl.File) {
		img := gocv.IMRead(cl.File, gocv.IMReadColor)
		defer img.Close()
		if img.Empty() {
			return cameraClip{}, fmt.Errorf("%s: not a readable image", cl.File)
		}
		pic := gocv.NewMat()
		if err := coverResize(img, &pic, c.opts.Width, c.opts.Height, &c.scratch); err != nil {
			pic.Close()
			return cameraClip{}, fmt.Errorf("%s: %w", cl.File, err)
		}
		cc.picture = pic
		if cc.frames == 0 && n > 1 {
			cc.picture.Close()
			return cameraClip{}, fmt.Errorf("%s: an image among several clips needs seconds", cl.File)
		}
		return cc, nil
	}
	cc.isVideo = true
	v, err := openVideo(cl.File)
	if err != nil {
		return cameraClip{}, err
	}
	defer v.close()
	if cc.frames == 0 {
		if v.count <= 0 {
			return cameraClip{}, fmt.Errorf("%s: the video does not say how long it is; give the clip's seconds", cl.File)
		}
		cc.frames = max(1, int(math.Round(float64(v.count)/v.fps*c.opts.FPS)))
	}
	return cc, nil
}

// Options returns the camera's options with defaults filled in.
func (c *Camera) Options() CameraOptions { return c.opts }

// LoopFrames is the number of frames in one pass of the scenario, or 0
// when it is one image shown forever.
func (c *Camera) LoopFrames() int { return c.loop }

// Clips is the number of clips in the scenario.
func (c *Camera) Clips() int { return len(c.clips) }

// Next renders the next frame into dst (8-bit BGR of the camera's size)
// and returns the index of the clip it shows.
func (c *Camera) Next(dst *gocv.Mat) (clip int, err error) {
	cl := &c.clips[c.clip]
	if cl.isVideo {
		if c.video == nil {
			if c.video, err = openVideo(cl.File); err != nil {
				return 0, err
			}
		}
		// The video plays at its own rate: this frame shows the source
		// frame current at the clip's time.
		want := int(math.Floor(float64(c.frame)/c.opts.FPS*c.video.fps + 1e-9))
		if err := c.video.seek(want); err != nil {
			return 0, err
		}
		if err := coverResize(c.video.frame, dst, c.opts.Width, c.opts.Height, &c.scratch); err != nil {
			return 0, fmt.Errorf("%s: %w", cl.File, err)
		}
	} else {
		cl.picture.CopyTo(dst)
	}
	if len(c.noise) > 0 {
		gocv.AddWeighted(*dst, 1, c.noise[c.frames%len(c.noise)], 1, -128, dst)
	}
	clip = c.clip
	c.frames++
	c.frame++
	if cl.frames > 0 && c.frame >= cl.frames {
		c.frame = 0
		c.clip = (c.clip + 1) % len(c.clips)
		if c.video != nil {
			c.video.close()
			c.video = nil
		}
	}
	return clip, nil
}

// Close frees the pictures and closes an open video.
func (c *Camera) Close() error {
	for _, cl := range c.clips {
		if !cl.isVideo {
			cl.picture.Close()
		}
	}
	c.clips = nil
	for _, n := range c.noise {
		n.Close()
	}
	c.noise = nil
	if c.video != nil {
		c.video.close()
		c.video = nil
	}
	c.scratch.Close()
	return nil
}

// videoClip reads one video file frame by frame, looping.
type videoClip struct {
	path  string
	cap   *gocv.VideoCapture
	fps   float64
	count int
	frame gocv.Mat
	pos   int // index of the source frame in frame; -1 before the first
	loops int // times the file was reopened
	base  int // source frames played in earlier loops
}

func openVideo(path string) (*videoClip, error) {
	// FFmpeg alone, as `invigil analyze` does: the other backends only add
	// surprises for a plain file.
	vc, err := gocv.VideoCaptureFileWithAPI(path, gocv.VideoCaptureFFmpeg)
	if err != nil {
		return nil, fmt.Errorf("%s cannot be opened as a video or image: %w", path, err)
	}
	if !vc.IsOpened() {
		vc.Close()
		return nil, fmt.Errorf("%s cannot be opened as a video or image", path)
	}
	fps := vc.Get(gocv.VideoCaptureFPS)
	if !(fps > 0 && fps <= 240) {
		fps = 25 // containers without a rate: assume a webcam's
	}
	count := int(vc.Get(gocv.VideoCaptureFrameCount))
	if count < 0 || count > 1<<30 {
		count = 0
	}
	return &videoClip{path: path, cap: vc, fps: fps, count: count, frame: gocv.NewMat(), pos: -1}, nil
}

// seek reads forward to source frame want (counted across loops of the
// file), reopening the file at its end.
func (v *videoClip) seek(want int) error {
	for v.base+v.pos < want {
		if v.cap.Read(&v.frame) && !v.frame.Empty() {
			if v.frame.Type() != gocv.MatTypeCV8UC3 {
				return fmt.Errorf("%s: frames of type %v, want 8-bit color", v.path, v.frame.Type())
			}
			v.pos++
			continue
		}
		if v.pos < 0 {
			return fmt.Errorf("%s: no frame could be read", v.path)
		}
		// The end of the file: play it again from the start.
		v.cap.Close()
		vc, err := gocv.VideoCaptureFileWithAPI(v.path, gocv.VideoCaptureFFmpeg)
		if err != nil || !vc.IsOpened() {
			if vc != nil {
				vc.Close()
			}
			v.cap = nil
			return fmt.Errorf("reopen %s: %w", v.path, err)
		}
		v.cap = vc
		v.base += v.pos + 1
		v.pos = -1
		v.loops++
		if !v.cap.Read(&v.frame) || v.frame.Empty() {
			return fmt.Errorf("%s: no frame after reopening", v.path)
		}
		v.pos = 0
	}
	return nil
}

func (v *videoClip) close() {
	if v.cap != nil {
		v.cap.Close()
		v.cap = nil
	}
	v.frame.Close()
}

// coverResize scales src to cover w×h and crops the center into dst.
func coverResize(src gocv.Mat, dst *gocv.Mat, w, h int, scratch *gocv.Mat) error {
	if src.Empty() || src.Type() != gocv.MatTypeCV8UC3 {
		return errors.New("want a non-empty 8-bit color picture")
	}
	if src.Cols() == w && src.Rows() == h {
		src.CopyTo(dst)
		return nil
	}
	f := math.Max(float64(w)/float64(src.Cols()), float64(h)/float64(src.Rows()))
	sw, sh := max(w, int(math.Ceil(float64(src.Cols())*f))), max(h, int(math.Ceil(float64(src.Rows())*f)))
	interp := gocv.InterpolationArea
	if f > 1 {
		interp = gocv.InterpolationLinear
	}
	gocv.Resize(src, scratch, image.Pt(sw, sh), 0, 0, interp)
	x0, y0 := (sw-w)/2, (sh-h)/2
	roi := scratch.Region(image.Rect(x0, y0, x0+w, y0+h))
	defer roi.Close()
	roi.CopyTo(dst)
	return nil
}
