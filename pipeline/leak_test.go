//go:build matprofile

package pipeline

import (
	"bytes"
	"context"
	"testing"
	"time"

	"gocv.io/x/gocv"

	"invigil/detectors/rules"
)

// TestNoMatLeaks: frames handed between track goroutines, the slots and
// the workers — analyzed, superseded, dropped at the track's end or at
// Close — are all closed (gocv counts Mats with -tags matprofile, as make
// test builds).
func TestNoMatLeaks(t *testing.T) {
	face, empty := picture(t, "messi5.jpg"), picture(t, "building.jpg")
	before := gocv.MatProfile.Count()
	func() {
		sink := newRecordingSink()
		p, _ := newTestPipeline(t, Config{Sink: sink})
		// One track ends by itself, one is cut by Close.
		a, b := newPublisher(t, "cand-a"), newPublisher(t, "cand-b")
		wa, wb := a.start(p), b.start(p)
		done := make(chan struct{})
		go func() {
			defer close(done)
			b.play(context.Background(), wb, []scene{{face, 3 * testFPS}}, playOptions{noClose: true})
		}()
		// The room stays empty well past face_off_screen's 2 s, so that it
		// opens before the track ends even on a busy machine.
		a.play(context.Background(), wa, []scene{{face, testFPS}, {empty, 5 * testFPS}}, playOptions{})
		sink.wait(t, 10*time.Second, rules.Opened, "cand-a", rules.FaceOffScreen)
		<-done
		p.Close()
		a.enc.Close()
		b.enc.Close()
	}()
	if after := gocv.MatProfile.Count(); after != before {
		var b bytes.Buffer
		gocv.MatProfile.WriteTo(&b, 1)
		t.Fatalf("%d Mats leaked:\n%s", after-before, b.String())
	}
}
