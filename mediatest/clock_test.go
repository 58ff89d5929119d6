package mediatest_test

import (
	"context"
	"fmt"
	"image"
	"image/color"
	"path/filepath"
	"testing"
	"time"

	"gocv.io/x/gocv"

	"invigil/detectors/rules"
	"invigil/recording"
	"invigil/simulate"
)

// The numbered footage: a loop of pictures, each with its number drawn as
// a strip of black and white blocks (and their complement below, so that
// a misread is caught), a face for the first loopFace of them and an
// empty room for the rest, so that face_off_screen opens once a loop.
// The face stays 3 s so that each violation closes within the loop: the
// rest room clears face_off_screen after 1.5 s of face, and the face
// networks see the face come up to a look interval (face_every analyses,
// 0.5 s or more) after it appeared, and see it go at once (facesDue), so
// 2 s of face showed only 1.3 s of it on some loops.
const (
	loopFace   = 45 // 3 s
	loopFrames = 120
	codeBits   = 7
)

// numberedFootage writes the loop's pictures and returns them as clips of
// one frame each: the camera's frame j shows picture j mod loopFrames, and
// a sent frame's Clip is the number drawn in it.
func numberedFootage(t *testing.T, dir string) []simulate.Clip {
	t.Helper()
	face := gocv.IMRead(scene(t, dir, "a", []person{personA}), gocv.IMReadColor)
	defer face.Close()
	empty := gocv.IMRead(scene(t, dir, "empty", nil), gocv.IMReadColor)
	defer empty.Close()
	clips := make([]simulate.Clip, loopFrames)
	pic := gocv.NewMat()
	defer pic.Close()
	for i := range clips {
		if i < loopFace {
			face.CopyTo(&pic)
		} else {
			empty.CopyTo(&pic)
		}
		for b := range codeBits {
			on := i>>b&1 == 1
			for row, set := range []bool{on, !on} {
				c := color.RGBA{}
				if set {
					c = color.RGBA{255, 255, 255, 0}
				}
				gocv.Rectangle(&pic, codeBlock(b, row), c, -1)
			}
		}
		path := filepath.Join(dir, fmt.Sprintf("n%03d.png", i))
		if !gocv.IMWrite(path, pic) {
			t.Fatalf("cannot write %s", path)
		}
		clips[i] = simulate.Clip{File: path, Seconds: 1.0 / 15}
	}
	return clips
}

func codeBlock(bit, row int) image.Rectangle {
	x, y := 20+bit*88, 8+row*40
	return image.Rect(x, y, x+72, y+36)
}

// readNumber reads the number drawn in a BGR picture of frameW×frameH;
// ok is false when the two rows do not agree.
func readNumber(pic []byte) (n int, ok bool) {
	bright := func(r image.Rectangle) bool {
		r = r.Inset(10)
		sum, count := 0, 0
		for y := r.Min.Y; y < r.Max.Y; y++ {
			for x := r.Min.X; x < r.Max.X; x++ {
				i := (y*frameW + x) * 3
				sum += int(pic[i]) + int(pic[i+1]) + int(pic[i+2])
				count += 3
			}
		}
		return sum/count > 128
	}
	for b := range codeBits {
		on, off := bright(codeBlock(b, 0)), bright(codeBlock(b, 1))
		if on == off {
			return 0, false
		}
		if on {
			n |= 1 << b
		}
	}
	return n, true
}

// TestViolationsLandOnTheirFrameInTheRecording: the SFU dates every packet
// once (media.Clock) and both the pipeline and the recorder use that date,
// so a violation's place in the recording (recording.Locate, where its
// recording_offset_ms comes from) shows the very frame in which its
// condition began: within one frame (67 ms at 15 fps, inside ±100 ms), on
// the first connection, after the sender's RTP clock jumped an hour
// ahead, and after a reconnect.
func TestViolationsLandOnTheirFrameInTheRecording(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	st := newStack(t, stackOptions{workers: 2})
	dir := t.TempDir()
	rc := st.joinCandidate(ctx, "cand-c", numberedFootage(t, dir))

	var seen []sinkEvent
	next := func(what string, after time.Time) sinkEvent {
		e := st.sink.wait(ctx, t, what, func(e sinkEvent) bool {
			return e.kind == rules.Opened && e.v.Identity == "cand-c" && e.v.Type == rules.FaceOffScreen && e.v.StartedAt.After(after)
		})
		seen = append(seen, e)
		return e
	}
	next("face_off_screen on the first connection", time.Time{})
	jumped := time.Now()
	rc.JumpClock(time.Hour)
	next("face_off_screen after the RTP clock jumped an hour", jumped)
	rc.Drop()
	waitFor(ctx, t, "frames on the resumed connection", func() bool {
		fs := rc.frames.all()
		return fs[len(fs)-1].Connection == 2
	})
	resumed := time.Now()
	last := next("face_off_screen after the reconnect", resumed)
	st.sink.wait(ctx, t, "the last violation closed", func(e sinkEvent) bool { return e.kind == rules.Closed && e.v.Key == last.v.Key })
	rc.leave(t)
	st.stopMedia()

	sent := rc.frames.all()
	for i, e := range seen {
		v := e.v
		// The frame the condition began in: the one sent when the
		// violation says it began.
		onset := sent[0]
		for _, f := range sent {
			if (f.At.Sub(v.StartedAt)).Abs() < (onset.At.Sub(v.StartedAt)).Abs() {
				onset = f
			}
		}
		if d := onset.At.Sub(v.StartedAt); d.Abs() > 100*time.Millisecond {
			t.Errorf("violation %d: began at %v, but no frame was sent within 100 ms of it (nearest %v)", i+1, v.StartedAt, d)
			continue
		}
		path, offset, err := recording.Locate(st.dataDir, room, "cand-c", v.StartedAt)
		if err != nil {
			t.Fatalf("violation %d: %v", i+1, err)
		}
		got, ok := readNumber(frameAt(t, path, offset))
		if !ok {
			t.Errorf("violation %d: no number legible in %s at %v", i+1, filepath.Base(path), offset)
			continue
		}
		// Frames apart, either way round the loop.
		apart := (got - onset.Clip + loopFrames) % loopFrames
		apart = min(apart, loopFrames-apart)
		t.Logf("violation %d (connection %d): began in frame %d (sent %v from the violation's start); the recording at %v of %s shows frame %d: %d ms apart",
			i+1, onset.Connection, onset.Clip, onset.At.Sub(v.StartedAt).Round(time.Millisecond), offset, filepath.Base(path), got, apart*1000/15)
		if apart > 1 {
			t.Errorf("violation %d: the recording at its offset shows frame %d, %d frames (%d ms) from frame %d where it began",
				i+1, got, apart, apart*1000/15, onset.Clip)
		}
	}
	if n := st.metric("invigil_sfu_rtp_clock_fixes_total", "kind", "video", "what", "clock_jump"); n < 1 {
		t.Errorf("%v video clock jumps followed, want the one the sender made", n)
	}
}
