package main

import (
	"fmt"
	"os"

	"gocv.io/x/gocv"

	"invigil/detectors"
)

func probeVideo(path string, every int) {
	a, err := detectors.NewAnalyzer(detectors.AnalyzerOptions{ModelsDir: os.ExpandEnv("$HOME/.cache/invigil/models")})
	if err != nil { panic(err) }
	c, err := gocv.VideoCaptureFile(path)
	if err != nil { panic(err) }
	f := gocv.NewMat()
	s := detectors.NewStream(mustPolicy(), detectors.Camera{})
	for n := 0; c.Read(&f) && !f.Empty(); n++ {
		if n%every != 0 { continue }
		o, _ := a.Observe(f, int64(n), s)
		fmt.Printf("%d", n)
		for _, fc := range o.Faces {
			fmt.Printf("  [%.0f,%.0f %.0f] s%.2f y%.0f p%.0f d%.0f", fc.Box.X, fc.Box.Y, fc.Box.W, fc.Score, fc.YawDeg, fc.PitchDeg, fc.DistanceCM)
		}
		fmt.Printf(" hands %d\n", len(o.Hands))
	}
}
