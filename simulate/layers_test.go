package simulate

import (
	"testing"

	"invigil/internal/testassets"
	"invigil/vp8rtp"
)

// TestStreamPublishesL1T3: by default a simulated camera sends what
// Chrome sends for scalabilityMode L1T3: every packet's descriptor has a
// 15-bit picture ID counting frames, TID running 0,2,1,2 from each
// keyframe, TL0PICIDX counting base-layer frames, S on each frame's first
// packet only. L1T1 sends the picture ID alone.
func TestStreamPublishesL1T3(t *testing.T) {
	for _, mode := range []string{"", ModeL1T1} {
		cam, err := NewCamera([]Clip{{File: testassets.Photo(t, "messi5.jpg"), Seconds: 2}}, CameraOptions{FPS: 15, Noise: 2})
		if err != nil {
			t.Fatal(err)
		}
		s, err := EncodeStream(t.Context(), cam, 0, EncodeOptions{KeyframeEvery: 14, ScalabilityMode: mode})
		cam.Close()
		if err != nil {
			t.Fatal(err)
		}
		layered := mode == ""
		var lastPic uint16
		var lastTL0 uint8
		pos := 0
		for i, f := range s.Frames {
			if f.Keyframe {
				pos = 0
			}
			wantTID := uint8(0)
			if layered {
				wantTID = []uint8{0, 2, 1, 2}[pos%4]
			}
			if f.TID != wantTID {
				t.Fatalf("%q frame %d: TID %d, want %d", mode, i, f.TID, wantTID)
			}
			for k, p := range f.Payloads {
				d, _, err := vp8rtp.Parse(p)
				if err != nil {
					t.Fatalf("%q frame %d packet %d: %v", mode, i, k, err)
				}
				if d.FrameStart() != (k == 0) || !d.HasPictureID || !d.LongPictureID || d.HasTID != layered ||
					d.HasTL0PicIdx != layered || d.TID != wantTID {
					t.Fatalf("%q frame %d packet %d: descriptor %+v", mode, i, k, d)
				}
				if k > 0 {
					continue
				}
				if i > 0 && d.PictureID != (lastPic+1)&vp8rtp.MaxPictureID {
					t.Fatalf("%q frame %d: picture ID %d after %d", mode, i, d.PictureID, lastPic)
				}
				if layered && i > 0 {
					want := lastTL0
					if d.TID == 0 {
						want++
					}
					if d.TL0PicIdx != want {
						t.Fatalf("frame %d (TID %d): TL0PICIDX %d after %d", i, d.TID, d.TL0PicIdx, lastTL0)
					}
				}
				lastPic, lastTL0 = d.PictureID, d.TL0PicIdx
			}
			pos++
		}
	}
	if _, err := EncodeStream(t.Context(), nil, 1, EncodeOptions{ScalabilityMode: "L3T3"}); err == nil {
		t.Fatal("an unknown scalability mode was accepted")
	}
}
