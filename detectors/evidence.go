package detectors

import (
	"fmt"
	"image"
	"image/color"
	"math"

	"gocv.io/x/gocv"

	"invigil/detectors/rules"
)

var (
	colorMain  = color.RGBA{40, 200, 80, 0}  // the candidate's face
	colorExtra = color.RGBA{230, 40, 40, 0}  // anyone else
	colorHand  = color.RGBA{60, 140, 255, 0} // hands
	colorText  = color.RGBA{255, 255, 255, 0}
	colorAlert = color.RGBA{255, 70, 40, 0}
)

// Annotate draws the observation (faces with keypoints, yaw and distance;
// hands with their landmarks) and the given violations onto img, which may be larger than the
// analyzed frame.
func Annotate(img *gocv.Mat, o *rules.Observation, violations []rules.Violation) {
	if img.Empty() || o.Width == 0 {
		return
	}
	k := float64(img.Cols()) / float64(o.Width)
	pt := func(x, y float64) image.Point { return image.Pt(int(math.Round(x*k)), int(math.Round(y*k))) }
	thick := max(1, img.Cols()/400)
	font := math.Max(0.4, float64(img.Cols())/1400)
	for i, f := range o.Faces {
		c := colorMain
		if i > 0 {
			c = colorExtra
		}
		r := image.Rectangle{Min: pt(f.Box.X, f.Box.Y), Max: pt(f.Box.X+f.Box.W, f.Box.Y+f.Box.H)}
		gocv.Rectangle(img, r, c, thick)
		for _, kp := range f.Keypoints {
			gocv.Circle(img, pt(kp.X, kp.Y), thick+1, c, -1)
		}
		label := fmt.Sprintf("%.2f", f.Score)
		if i == 0 {
			label = fmt.Sprintf("yaw %.0f pitch %.0f  %.0f cm", f.YawDeg, f.PitchDeg, f.DistanceCM)
		}
		textWithShadow(img, label, image.Pt(r.Min.X, max(r.Min.Y-6, 12)), font, c, thick)
	}
	for _, h := range o.Hands {
		r := image.Rectangle{Min: pt(h.Box.X, h.Box.Y), Max: pt(h.Box.X+h.Box.W, h.Box.Y+h.Box.H)}
		gocv.Rectangle(img, r, colorHand, thick)
		for _, l := range h.Landmarks { // where the hand is: at the ear, on the desk
			gocv.Circle(img, pt(l.X, l.Y), thick, colorHand, -1)
		}
	}
	y := int(24 * font / 0.5)
	textWithShadow(img, fmt.Sprintf("t=%.1fs faces=%d hands=%d light=%.0f", float64(o.TMS)/1000, len(o.Faces), len(o.Hands), o.Brightness),
		image.Pt(8, y), font, colorText, thick)
	for _, v := range violations {
		y += int(22 * font / 0.5)
		textWithShadow(img, fmt.Sprintf("%s: %s", v.Type, v.Reason), image.Pt(8, y), font, colorAlert, thick)
	}
}

func textWithShadow(img *gocv.Mat, s string, at image.Point, scale float64, c color.RGBA, thick int) {
	gocv.PutText(img, s, at.Add(image.Pt(1, 1)), gocv.FontHersheySimplex, scale, color.RGBA{0, 0, 0, 0}, thick+1)
	gocv.PutText(img, s, at, gocv.FontHersheySimplex, scale, c, thick)
}

// Evidence renders the frame at a violation's onset with what the detectors
// saw and why it opened, as a JPEG.
func Evidence(frame gocv.Mat, o *rules.Observation, v rules.Violation) ([]byte, error) {
	if frame.Empty() {
		return nil, fmt.Errorf("evidence for violation %d: empty frame", v.ID)
	}
	img := frame.Clone()
	defer img.Close()
	Annotate(&img, o, []rules.Violation{v})
	buf, err := gocv.IMEncodeWithParams(gocv.JPEGFileExt, img, []int{gocv.IMWriteJpegQuality, 85})
	if err != nil {
		return nil, fmt.Errorf("encode evidence for violation %d: %w", v.ID, err)
	}
	defer buf.Close()
	return append([]byte(nil), buf.GetBytes()...), nil
}
