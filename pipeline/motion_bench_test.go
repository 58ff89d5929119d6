package pipeline

import (
	"runtime"
	"testing"

	"invigil/models/runner"
	"invigil/motion"
)

// BenchmarkMotion measures the change detector's cost per decoded frame:
// the 32×24 luma thumbnail of a 640×480 I420 picture (a real photo) and
// its comparison with the last analyzed one, on one OpenCV thread (as the
// server runs by default) and in this thread's own CPU time. It reports
// the CPU per frame and per candidate-second at 3.75 decoded frames a
// second (the base layer of an L1T3 camera at 15 fps) and at 15.
func BenchmarkMotion(b *testing.B) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	runner.SetNumThreads(1)
	defer runner.SetNumThreads(0)
	i420 := i420OfBGR(b, picture(b, "messi5.jpg"))
	defer i420.Close()
	th := newThumbnailer()
	defer th.close()
	var ref, cur thumbnail
	if err := th.make(i420, &ref); err != nil {
		b.Fatal(err)
	}
	changed := 0
	start := threadCPU(b)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := th.make(i420, &cur); err != nil {
			b.Fatal(err)
		}
		if motion.PictureChanged(&ref, &cur) {
			changed++
		}
	}
	cpu := threadCPU(b) - start
	if changed != 0 {
		b.Fatalf("the same picture changed %d times", changed)
	}
	perFrame := cpu.Seconds() * 1e6 / float64(b.N)
	b.ReportMetric(perFrame, "µs-cpu/frame")
	b.ReportMetric(perFrame*3.75/1000, "ms-cpu/candidate-s@L1T3")
	b.ReportMetric(perFrame*15/1000, "ms-cpu/candidate-s@15fps")
}
