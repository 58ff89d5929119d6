package main

import (
	"fmt"
	"image"
	"image/color"
	"os"
	"path/filepath"

	"gocv.io/x/gocv"

	"invigil/detectors"
)

func main() {
	if os.Args[1] == "probevideo" { probeVideo(os.Args[2], 5); return }
	if os.Args[1] == "video" {
		w, err := gocv.VideoWriterFile("/tmp/t.avi", "MJPG", 10, 640, 480, true)
		if err != nil { panic(err) }
		m := gocv.NewMatWithSizeFromScalar(gocv.NewScalar(0, 0, 0, 0), 480, 640, gocv.MatTypeCV8UC3)
		for i := 0; i < 30; i++ {
			m.SetTo(gocv.NewScalar(float64(i*8), 100, 50, 0))
			w.Write(m)
		}
		w.Close()
		c, err := gocv.VideoCaptureFile("/tmp/t.avi")
		if err != nil { panic(err) }
		n := 0
		f := gocv.NewMat()
		for c.Read(&f) && !f.Empty() {
			if n%10 == 0 { fmt.Println(n, c.Get(gocv.VideoCapturePosMsec), f.Cols(), f.Rows(), f.Mean()) }
			n++
		}
		fmt.Println("frames", n, "fps", c.Get(gocv.VideoCaptureFPS))
		return
	}
	a, err := detectors.NewAnalyzer(detectors.AnalyzerOptions{ModelsDir: os.ExpandEnv("$HOME/.cache/invigil/models")})
	if err != nil { panic(err) }
	for _, p := range os.Args[1:] {
		img := gocv.IMRead(p, gocv.IMReadColor)
		if img.Cols() > 1920 { gocv.Resize(img, &img, image.Point{}, 0.5, 0.5, gocv.InterpolationArea) }
		s := detectors.NewStream(mustPolicy(), detectors.Camera{})
		o, err := a.Observe(img, 0, s)
		if err != nil { panic(err) }
		fmt.Printf("%s %dx%d bright %.0f contrast %.0f\n", filepath.Base(p), img.Cols(), img.Rows(), o.Brightness, o.Contrast)
		for _, f := range o.Faces {
			fmt.Printf("  face box %.0f,%.0f %.0fx%.0f score %.2f yaw %.0f pitch %.0f dist %.0f\n", f.Box.X, f.Box.Y, f.Box.W, f.Box.H, f.Score, f.YawDeg, f.PitchDeg, f.DistanceCM)
			cx, cy, s := f.Box.X+f.Box.W/2, f.Box.Y+f.Box.H/2, f.Box.W*1.8
			r := image.Rect(int(cx-s/2), int(cy-s/2), int(cx+s/2), int(cy+s/2)).Intersect(image.Rect(0, 0, img.Cols(), img.Rows()))
			crop := img.Region(r)
			out := gocv.NewMat()
			gocv.Resize(crop, &out, image.Pt(240, 240), 0, 0, gocv.InterpolationArea)
			gocv.PutText(&out, fmt.Sprintf("y%.0f p%.0f", f.YawDeg, f.PitchDeg), image.Pt(5, 20), gocv.FontHersheySimplex, 0.6, color.RGBA{0, 255, 0, 0}, 2)
			gocv.IMWrite(fmt.Sprintf("/tmp/view/faces/%s_%d_%d.png", filepath.Base(p), int(f.Box.X), int(f.Box.Y)), out)
			out.Close(); crop.Close()
		}
		for _, h := range o.Hands {
			fmt.Printf("  hand box %.0f,%.0f %.0fx%.0f score %.2f\n", h.Box.X, h.Box.Y, h.Box.W, h.Box.H, h.Score)
		}
		img.Close()
	}
}
