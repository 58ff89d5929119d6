//go:build matprofile

package pipeline

import (
	"bytes"
	"context"
	"sync"
	"testing"
	"time"

	"gocv.io/x/gocv"

	"invigil/detectors/rules"
)

// TestClipEvidenceNoMatLeaks: the evidence pictures of audio rules, drawn
// on the sink's goroutine from a copy of the newest analyzed frame, close
// every Mat they make.
func TestClipEvidenceNoMatLeaks(t *testing.T) {
	face := picture(t, "messi5.jpg")
	voice := sentence48k(t)
	before := gocv.MatProfile.Count()
	func() {
		sink := newRecordingSink()
		p, _ := newTestPipeline(t, Config{Sink: sink})
		pub, mic := newPublisher(t, "leaky"), newMicPublisher(t, "leaky")
		vw := pub.start(p)
		aw := mic.start(p, pub.info.Started)
		ctx, cancel := context.WithCancel(context.Background())
		var wg sync.WaitGroup
		wg.Add(2)
		go func() { defer wg.Done(); pub.play(ctx, vw, []scene{{face, 15 * testFPS}}, playOptions{}) }()
		go func() { defer wg.Done(); mic.play(ctx, aw, loop(voice, 12)); aw.Close() }()
		v := sink.wait(t, 20*time.Second, rules.Opened, "leaky", rules.Talking)
		if !isJPEG(v.Evidence) {
			t.Errorf("talking without its picture")
		}
		cancel()
		wg.Wait()
		p.Close()
		pub.enc.Close()
	}()
	if after := gocv.MatProfile.Count(); after != before {
		var b bytes.Buffer
		gocv.MatProfile.WriteTo(&b, 1)
		t.Fatalf("%d Mats leaked:\n%s", after-before, b.String())
	}
}
