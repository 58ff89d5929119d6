package mediatest_test

import (
	"context"
	"testing"

	"invigil/recording"
	"invigil/simulate"
)

// TestLayeredCameraDecodedOnBaseLayer: a candidate publishing VP8 L1T3,
// as the candidate page asks Chrome to, through the real SFU: the
// pipeline decodes only the base-layer frames (a quarter) and skips the
// rest, while the proctor receives and decodes every frame and the
// recording holds every frame. A camera without layers (L1T1) is decoded
// frame by frame.
func TestLayeredCameraDecodedOnBaseLayer(t *testing.T) {
	for _, mode := range []string{simulate.ModeL1T3, simulate.ModeL1T1} {
		t.Run(mode, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
			defer cancel()
			st := newStack(t, stackOptions{workers: 1})
			dir := t.TempDir()
			proctor := st.joinStaff(ctx, "proctor-1", true)
			const id = "cand-layers"
			cam, err := simulate.NewCamera([]simulate.Clip{{File: scene(t, dir, "a", []person{personA}), Seconds: 2},
				{File: scene(t, dir, "empty", nil), Seconds: 2}}, simulate.CameraOptions{Width: frameW, Height: frameH, FPS: 15, Noise: 2})
			if err != nil {
				t.Fatal(err)
			}
			log := &frameLog{}
			c, err := simulate.Join(ctx, simulate.Config{URL: st.url, Token: st.candidateToken(id), Camera: cam,
				Encode: simulate.EncodeOptions{BitrateKbps: 1200, ScalabilityMode: mode}, LoopbackOnly: true,
				Logger: testLogger(), OnFrame: log.add})
			if err != nil {
				t.Fatalf("join: %v", err)
			}
			if err := proctor.cl.Subscribe(id); err != nil {
				t.Fatal(err)
			}
			runCtx, stop := context.WithCancel(ctx)
			done := make(chan error, 1)
			go func() { done <- c.Run(runCtx) }()
			// Six seconds of camera, counted in frames the proctor decoded.
			waitFor(ctx, t, "the proctor decoding 90 frames", func() bool { _, n := proctor.picture(id); return n >= 90 })
			stop()
			if err := <-done; err != nil {
				t.Fatal(err)
			}
			c.Leave()
			sent := log.all()
			base := 0
			for _, f := range sent {
				if f.TID == 0 {
					base++
				}
			}
			// What the SFU forwarded has reached the proctor and the taps
			// once the proctor's packet count stops at what was sent.
			waitFor(ctx, t, "the pipeline to see every frame", func() bool {
				return st.metric("invigil_pipeline_frames_decoded_total")+st.metric("invigil_pipeline_frames_skipped_total")+
					st.metric("invigil_pipeline_frames_dropped_total", "reason", "incomplete") >= float64(len(sent))-2
			})
			proctor.close()
			st.stopMedia()

			decoded := st.metric("invigil_pipeline_frames_decoded_total")
			skipped := st.metric("invigil_pipeline_frames_skipped_total")
			_, seen := proctor.picture(id)
			sessions, err := recording.Sessions(st.dataDir, room, id)
			if err != nil || len(sessions) != 1 || len(sessions[0].Segments) != 1 {
				t.Fatalf("recordings %+v, %v: want one session of one segment", sessions, err)
			}
			recorded := ffprobe(t, sessions[0].Segments[0].Path).Frames
			t.Logf("%s: sent %d frames (%d on the base layer); pipeline decoded %v, skipped %v; proctor decoded %d; recording holds %d",
				mode, len(sent), base, decoded, skipped, seen, recorded)
			if mode == simulate.ModeL1T1 {
				if base != len(sent) || skipped != 0 || decoded < float64(len(sent))-2 {
					t.Errorf("without layers the pipeline decoded %v and skipped %v of %d frames: want every frame decoded", decoded, skipped, len(sent))
				}
			} else {
				if base > len(sent)/4+1 || base < len(sent)/4-1 {
					t.Errorf("%d of %d frames on the base layer, want a quarter", base, len(sent))
				}
				if decoded > float64(base) || decoded < float64(base)-1 || skipped < float64(len(sent)-base)-2 {
					t.Errorf("the pipeline decoded %v and skipped %v: want the %d base-layer frames decoded and the other %d skipped",
						decoded, skipped, base, len(sent)-base)
				}
			}
			// The proctor's subscription may come up a few frames after the
			// camera starts.
			if float64(seen) < 0.9*float64(len(sent)) {
				t.Errorf("the proctor decoded %d of %d frames: forwarding must carry every layer", seen, len(sent))
			}
			if recorded < len(sent)-2 {
				t.Errorf("the recording holds %d of %d frames: it must keep every layer", recorded, len(sent))
			}
			if errs := decodeErrors(t, sessions[0].Segments[0].Path); errs != "" {
				t.Errorf("ffmpeg decoding errors in the recording:\n%s", errs)
			}
		})
	}
}
