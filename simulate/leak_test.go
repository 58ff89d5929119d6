//go:build matprofile

package simulate

import (
	"bytes"
	"path/filepath"
	"testing"

	"gocv.io/x/gocv"

	"invigil/internal/testassets"
)

// TestNoMatLeaks: a camera over images and a video, a pre-encoded stream
// and a live encoder close every Mat they make, also on the error paths
// (gocv counts them with -tags matprofile, as make test builds).
func TestNoMatLeaks(t *testing.T) {
	dir := t.TempDir()
	white := solid(64, 48, 250)
	video := filepath.Join(dir, "clip.avi")
	writeVideo(t, video, 10, 5, white)
	white.Close()
	before := gocv.MatProfile.Count()
	func() {
		cam, err := NewCamera([]Clip{{File: testassets.Photo(t, "messi5.jpg"), Seconds: 0.5}, {File: video, Seconds: 1}},
			CameraOptions{Width: 160, Height: 120, FPS: 10, Noise: 2})
		if err != nil {
			t.Fatal(err)
		}
		s, err := EncodeStream(t.Context(), cam, 25, EncodeOptions{})
		if err != nil || len(s.Frames) != 25 {
			t.Fatalf("stream: %v", err)
		}
		live := &liveVideo{cam: cam, pic: gocv.NewMat()}
		if live.enc, err = newEncoder(cam.Options(), EncodeOptions{BitrateKbps: 300}); err != nil {
			t.Fatal(err)
		}
		for i := 0; i < 5; i++ {
			if _, err := live.next(i == 0); err != nil {
				t.Fatal(err)
			}
		}
		live.close() // closes the camera too
		if _, err := NewCamera([]Clip{{File: testassets.Photo(t, "messi5.jpg")}, {File: video}}, CameraOptions{}); err == nil {
			t.Fatal("an image without seconds among several clips accepted")
		}
		// Join takes the camera over, also when it fails.
		cam2, err := NewCamera([]Clip{{File: video}}, CameraOptions{Width: 64, Height: 48})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := Join(t.Context(), Config{Camera: cam2}); err == nil {
			t.Fatal("joined without a URL")
		}
	}()
	if after := gocv.MatProfile.Count(); after != before {
		var b bytes.Buffer
		gocv.MatProfile.WriteTo(&b, 1)
		t.Fatalf("%d Mats leaked:\n%s", after-before, b.String())
	}
}
