package simulate

import (
	"context"
	"errors"
	"fmt"
	"math"

	"github.com/pion/rtp/codecs"
	"gocv.io/x/gocv"

	"invigil/vpx"
)

// rtpMTU is the payload budget of one RTP packet: what browsers use, well
// under a 1500-byte Ethernet frame after SRTP, UDP and IP.
const rtpMTU = 1200

// EncodeOptions sets up the VP8 encoder of a simulated camera.
type EncodeOptions struct {
	// BitrateKbps is the target bitrate (default 800, what a browser sends
	// for 640×480 at 15 fps once it has ramped up).
	BitrateKbps int
	// KeyframeEvery puts a keyframe every so many frames. A live encoder
	// sends keyframes when asked (PLI), as browsers do, so its default is
	// 3000 frames (Chrome's); a replayed stream cannot make one on demand,
	// so it skips on to its next keyframe when asked, and its default is
	// one every two seconds.
	KeyframeEvery int
}

func (o *EncodeOptions) setDefaults() error {
	if o.BitrateKbps == 0 {
		o.BitrateKbps = 800
	}
	if o.BitrateKbps < 50 || o.BitrateKbps > 20000 {
		return fmt.Errorf("bitrate %d kbps: want 50 to 20000", o.BitrateKbps)
	}
	if o.KeyframeEvery < 0 {
		return fmt.Errorf("keyframe interval %d: must not be negative", o.KeyframeEvery)
	}
	return nil
}

// Frame is one encoded video frame of a Stream, split into RTP payloads.
type Frame struct {
	// Payloads are the frame's RTP payloads (VP8 payload descriptor
	// included), in order; the last one carries the marker bit.
	Payloads [][]byte
	Keyframe bool
	// Clip is the scenario clip the frame shows.
	Clip  int
	Bytes int
}

// Stream is a scenario encoded once, one frame per 1/FPS, to be replayed
// (looping) by any number of candidates. Its first frame is a keyframe.
// It is read-only once made, so candidates share it.
type Stream struct {
	Width, Height int
	FPS           float64
	Frames        []Frame
}

// maxStreamFrames bounds a pre-encoded stream: 10 minutes at 15 fps,
// about 60 MB at 800 kbit/s.
const maxStreamFrames = 9000

// EncodeStream encodes frames frames of the camera's scenario (0: one pass
// of it; a lone image makes KeyframeEvery frames, or two seconds). It stops
// early with ctx's error.
func EncodeStream(ctx context.Context, cam *Camera, frames int, opts EncodeOptions) (*Stream, error) {
	if err := opts.setDefaults(); err != nil {
		return nil, err
	}
	co := cam.Options()
	if opts.KeyframeEvery == 0 {
		opts.KeyframeEvery = int(math.Round(2 * co.FPS))
	}
	if frames == 0 {
		frames = cam.LoopFrames()
		if frames == 0 {
			frames = opts.KeyframeEvery
		}
	}
	if frames < 1 || frames > maxStreamFrames {
		return nil, fmt.Errorf("a scenario of %d frames is too long to encode once for replay (at most %d): shorten it, or give its clips seconds", frames, maxStreamFrames)
	}
	enc, err := newEncoder(co, opts)
	if err != nil {
		return nil, err
	}
	defer enc.close()
	pic := gocv.NewMat()
	defer pic.Close()
	s := &Stream{Width: co.Width, Height: co.Height, FPS: co.FPS}
	for i := 0; i < frames; i++ {
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("encode the scenario: %w", err)
		}
		clip, err := cam.Next(&pic)
		if err != nil {
			return nil, err
		}
		f, err := enc.encode(pic, i%opts.KeyframeEvery == 0)
		if err != nil {
			return nil, fmt.Errorf("encode frame %d: %w", i, err)
		}
		f.Clip = clip
		s.Frames = append(s.Frames, f)
	}
	if !s.Frames[0].Keyframe {
		return nil, errors.New("the encoder did not start with a keyframe")
	}
	return s, nil
}

// Bitrate is the stream's average bitrate in bits per second.
func (s *Stream) Bitrate() float64 {
	var n int
	for _, f := range s.Frames {
		n += f.Bytes
	}
	return float64(n) * 8 * s.FPS / float64(len(s.Frames))
}

// nextKeyframe is the index of the first keyframe at or after i, looping.
func (s *Stream) nextKeyframe(i int) int {
	for k := 0; k < len(s.Frames); k++ {
		j := (i + k) % len(s.Frames)
		if s.Frames[j].Keyframe {
			return j
		}
	}
	return 0
}

// encoder is a libvpx encoder with its own RTP payloader.
type encoder struct {
	enc *vpx.Encoder
	pay *codecs.VP8Payloader
}

func newEncoder(co CameraOptions, eo EncodeOptions) (*encoder, error) {
	enc, err := vpx.NewEncoder(vpx.EncoderOptions{
		Width: co.Width, Height: co.Height, FPS: co.FPS, BitrateKbps: eo.BitrateKbps,
		KeyframeInterval: eo.KeyframeEvery,
	})
	if err != nil {
		return nil, fmt.Errorf("VP8 encoder: %w", err)
	}
	return &encoder{enc: enc, pay: &codecs.VP8Payloader{EnablePictureID: true}}, nil
}

// encode encodes one picture; a frame the encoder held back has no
// payloads.
func (e *encoder) encode(pic gocv.Mat, keyframe bool) (Frame, error) {
	out, err := e.enc.Encode(pic, keyframe)
	if err != nil {
		return Frame{}, err
	}
	var f Frame
	for i, data := range out {
		if i == 0 {
			f.Keyframe = vpx.IsKeyframe(data)
		}
		f.Bytes += len(data)
		f.Payloads = append(f.Payloads, e.pay.Payload(rtpMTU, data)...)
	}
	return f, nil
}

func (e *encoder) close() { e.enc.Close() }
