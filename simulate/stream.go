package simulate

import (
	"context"
	"errors"
	"fmt"
	"math"

	"math/rand/v2"

	"gocv.io/x/gocv"

	"invigil/vp8rtp"
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
	// ScalabilityMode is what the candidate page asks Chrome for
	// (RTCRtpEncodingParameters.scalabilityMode): "L1T3" (the default,
	// as the page publishes) for three temporal layers, the base a quarter
	// of the frame rate, or "L1T1" for none.
	ScalabilityMode string
}

// Scalability modes EncodeOptions knows.
const (
	ModeL1T1 = "L1T1"
	ModeL1T3 = "L1T3"
)

func (o *EncodeOptions) setDefaults() error {
	if o.BitrateKbps == 0 {
		o.BitrateKbps = 800
	}
	if o.ScalabilityMode == "" {
		o.ScalabilityMode = ModeL1T3
	}
	if o.ScalabilityMode != ModeL1T1 && o.ScalabilityMode != ModeL1T3 {
		return fmt.Errorf("scalability mode %q: want %s or %s", o.ScalabilityMode, ModeL1T3, ModeL1T1)
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
	// TID is the frame's temporal layer (0 without layers).
	TID uint8
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

// encoder is a libvpx encoder with its own RTP packetizer, which writes
// the payload descriptor as Chrome does: a 15-bit picture ID and, with
// temporal layers, TL0PICIDX, TID and the layer sync bit.
type encoder struct {
	enc *vpx.Encoder
	pay *vp8rtp.Packetizer
}

func newEncoder(co CameraOptions, eo EncodeOptions) (*encoder, error) {
	if err := eo.setDefaults(); err != nil {
		return nil, err
	}
	layers := 1
	if eo.ScalabilityMode == ModeL1T3 {
		layers = 3
	}
	enc, err := vpx.NewEncoder(vpx.EncoderOptions{
		Width: co.Width, Height: co.Height, FPS: co.FPS, BitrateKbps: eo.BitrateKbps,
		KeyframeInterval: eo.KeyframeEvery, TemporalLayers: layers,
	})
	if err != nil {
		return nil, fmt.Errorf("VP8 encoder: %w", err)
	}
	// Random starting numbers, as a browser's: a receiver must not rely on
	// them starting at 0.
	pay := vp8rtp.NewPacketizer(rtpMTU, layers > 1, uint16(rand.Uint32()), uint8(rand.Uint32()))
	return &encoder{enc: enc, pay: pay}, nil
}

// encode encodes one picture; a frame the encoder held back has no
// payloads.
func (e *encoder) encode(pic gocv.Mat, keyframe bool) (Frame, error) {
	out, err := e.enc.EncodeFrames(pic, keyframe)
	if err != nil {
		return Frame{}, err
	}
	var f Frame
	for i, vf := range out {
		if i == 0 {
			f.Keyframe = vf.Keyframe
			f.TID = vf.TID
		}
		f.Bytes += len(vf.Data)
		payloads, err := e.pay.Packetize(vf.Data, vp8rtp.Layer{TID: vf.TID, Sync: vf.Sync, Droppable: vf.Droppable})
		if err != nil {
			return Frame{}, fmt.Errorf("packetize: %w", err)
		}
		f.Payloads = append(f.Payloads, payloads...)
	}
	return f, nil
}

func (e *encoder) close() { e.enc.Close() }
