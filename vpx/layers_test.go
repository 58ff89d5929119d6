package vpx

import (
	"bytes"
	"image"
	"testing"

	"gocv.io/x/gocv"
)

// panning is a camera that moves: a 640×480 window sliding across a
// larger photo, so every frame needs its references to decode right.
type panning struct {
	src gocv.Mat
}

func newPanning(t testing.TB) *panning {
	return &panning{src: photo(t, "messi5.jpg", 960, 720)}
}

// frame i of the pan (the caller closes it).
func (p *panning) frame(i int) gocv.Mat {
	x, y := (i*6)%320, (i*3)%240
	roi := p.src.Region(image.Rect(x, y, x+640, y+480))
	defer roi.Close()
	return roi.Clone()
}

// TestTemporalLayersL1T3: the encoder labels frames 0,2,1,2 like Chrome's
// L1T3, a keyframe (forced mid-pattern too) is on the base layer and opens
// the pattern again, and the base layer alone, or the base and layer 1,
// decodes without error to the very pictures a decoder of every frame
// makes, close to the source.
func TestTemporalLayersL1T3(t *testing.T) {
	const n, forced = 48, 21
	cam := newPanning(t)
	e := newEncoder(t, EncoderOptions{Width: 640, Height: 480, FPS: 15, BitrateKbps: 1200, TemporalLayers: 3})
	var frames []Frame
	var sources []gocv.Mat
	defer func() {
		for _, m := range sources {
			m.Close()
		}
	}()
	for i := 0; i < n; i++ {
		pic := cam.frame(i)
		sources = append(sources, pic)
		out, err := e.EncodeFrames(pic, i == 0 || i == forced)
		if err != nil {
			t.Fatal(err)
		}
		if len(out) != 1 {
			t.Fatalf("frame %d: %d compressed frames", i, len(out))
		}
		frames = append(frames, out[0])
	}
	pattern := []uint8{0, 2, 1, 2}
	for i, f := range frames {
		pos := i
		if i >= forced {
			pos = i - forced
		}
		if want := pattern[pos%4]; f.TID != want {
			t.Fatalf("frame %d: TID %d, want %d (TIDs must run 0,2,1,2 from each keyframe)", i, f.TID, want)
		}
		if want := i == 0 || i == forced; f.Keyframe != want || IsKeyframe(f.Data) != want {
			t.Fatalf("frame %d: keyframe %v, want %v", i, f.Keyframe, want)
		}
		// The first layer-2 and layer-1 frames of each 8-frame pattern
		// reference only the base (sync); layer 2 frames update no
		// reference.
		if want := f.Keyframe || pos%8 == 1 || pos%8 == 2; f.Sync != want {
			t.Errorf("frame %d (TID %d, pattern %d): sync %v, want %v", i, f.TID, pos%8, f.Sync, want)
		}
		if want := f.TID == 2; f.Droppable != want {
			t.Errorf("frame %d (TID %d): droppable %v, want %v", i, f.TID, f.Droppable, want)
		}
	}

	// The reference: every frame decoded.
	full := newDecoder(t)
	want := make([][]byte, n)
	i420, bgr := gocv.NewMat(), gocv.NewMat()
	defer i420.Close()
	defer bgr.Close()
	for i, f := range frames {
		shown, err := full.DecodeBGR(f.Data, &i420, &bgr)
		if err != nil || !shown {
			t.Fatalf("full decode of frame %d: shown %v, %v", i, shown, err)
		}
		want[i] = bgr.ToBytes()
	}
	for _, maxTID := range []uint8{0, 1} {
		d := newDecoder(t)
		decoded := 0
		for i, f := range frames {
			if f.TID > maxTID {
				continue
			}
			shown, err := d.DecodeBGR(f.Data, &i420, &bgr)
			if err != nil || !shown {
				t.Fatalf("TID ≤ %d: frame %d (TID %d): shown %v, %v", maxTID, i, f.TID, shown, err)
			}
			decoded++
			if !bytes.Equal(bgr.ToBytes(), want[i]) {
				t.Fatalf("TID ≤ %d: frame %d decodes to another picture than with every frame decoded", maxTID, i)
			}
			// Roughly the source: a keyframe at 1.2 Mbit/s is ~30 dB.
			if p := psnr(t, sources[i], bgr); p < 28 {
				t.Errorf("TID ≤ %d: frame %d PSNR %.1f dB against the source, want ≥ 28", maxTID, i, p)
			}
		}
		// Frames 0-20 hold 6 base-layer frames (0, 4, … 20) and 5 of layer
		// 1; 21-47, opened by the forced keyframe, 7 and 7.
		if wantN := map[uint8]int{0: 13, 1: 25}[maxTID]; decoded != wantN {
			t.Errorf("TID ≤ %d: %d frames decoded, want %d", maxTID, decoded, wantN)
		}
	}
	var base, all int
	for _, f := range frames {
		all += len(f.Data)
		if f.TID == 0 {
			base += len(f.Data)
		}
	}
	t.Logf("base layer: %d of %d frames, %.0f %% of the bytes", 13, n, 100*float64(base)/float64(all))
}

// TestNoTemporalLayers: without layers every frame is TID 0 and none is a
// sync or droppable frame.
func TestNoTemporalLayers(t *testing.T) {
	cam := newPanning(t)
	e := newEncoder(t, EncoderOptions{Width: 640, Height: 480, FPS: 15})
	for i := 0; i < 6; i++ {
		pic := cam.frame(i)
		out, err := e.EncodeFrames(pic, i == 0)
		pic.Close()
		if err != nil {
			t.Fatal(err)
		}
		if f := out[0]; f.TID != 0 || f.Sync || f.Droppable || f.Keyframe != (i == 0) {
			t.Fatalf("frame %d: %+v", i, Frame{Keyframe: f.Keyframe, TID: f.TID, Sync: f.Sync, Droppable: f.Droppable})
		}
	}
	if _, err := NewEncoder(EncoderOptions{Width: 640, Height: 480, TemporalLayers: 2}); err == nil {
		t.Fatal("2 temporal layers accepted")
	}
}
