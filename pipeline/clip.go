package pipeline

import (
	"bytes"
	"time"

	"gocv.io/x/gocv"

	"invigil/audio"
	"invigil/detectors"
	"invigil/detectors/rules"
	"invigil/vad"
	"invigil/vpx"
)

// Evidence of what a candidate's microphone heard: each live microphone
// track keeps its last clipSeconds of 16 kHz audio in a ring, and a
// violation opened while the candidate has a live microphone (talking,
// microphone_off by silence, or a video rule) carries the clip that ends
// at its opening: the onset lies the rule's minimum before that. The audio
// rules open on the audio goroutine, which has no picture: their evidence
// image is the candidate's newest analyzed frame, which the workers keep a
// copy of while a microphone is live. The ring and picture are copied
// under their locks on the sink's goroutine, where the JPEG and WAV are
// encoded, off the analysis lock and the audio goroutine. The ring holds
// a little more than a clip, so a clip copied late (the sink was behind)
// still reaches back its full length; one copied early (a video rule
// opened before the audio goroutine caught up) waits briefly for it.

const (
	clipSeconds = 10
	clipRate    = vad.SampleRate // the ring holds what the speech detector hears
	clipSamples = clipSeconds * clipRate
	ringSamples = (clipSeconds + 2) * clipRate
	// clipWait bounds how long the sink waits for the audio to reach a
	// violation's opening.
	clipWait = time.Second
	// audioStallAfter: a microphone track whose packets stop this long
	// (RTP just stops; the track never ends) counts as no microphone
	// from its last packet on, until packets come again.
	audioStallAfter = 3 * time.Second
)

// micRing is a live microphone's clip ring and its stream time 0.
type micRing struct {
	ring    *audio.Ring
	started time.Time
}

// position is the ring's stream position at wall time at.
func (m *micRing) position(at time.Time) int64 {
	return int64(at.Sub(m.started) * clipRate / time.Second)
}

// keptFrame is a copy of an analyzed I420 frame and what the detectors saw
// in it (the candidate's, guarded by analysisMu).
type keptFrame struct {
	rows, cols int
	i420       []byte
	obs        rules.Observation
}

// keep copies the analyzed frame into p, reusing its buffer.
func (p *keptFrame) keep(i420 gocv.Mat, obs *rules.Observation) bool {
	if i420.Empty() || !i420.IsContinuous() || i420.Type() != gocv.MatTypeCV8UC1 {
		return false
	}
	data, err := i420.DataPtrUint8()
	if err != nil {
		return false
	}
	p.rows, p.cols = i420.Rows(), i420.Cols()
	p.i420 = append(p.i420[:0], data...)
	p.obs = *obs
	return true
}

// clone is the picture for an evidence image to be drawn later.
func (p *keptFrame) clone() *keptFrame {
	if len(p.i420) == 0 {
		return nil
	}
	out := *p
	out.i420 = append([]byte(nil), p.i420...)
	return &out
}

// pendingEvidence is evidence to encode on the sink's goroutine.
type pendingEvidence struct {
	pic     *keptFrame // nil: the image is made already, or there is none
	mic     *micRing   // nil: no clip
	clipEnd int64      // the clip's end in mic's stream position
}

func (e *pendingEvidence) empty() bool { return e == nil || (e.pic == nil && e.mic == nil) }

// render fills in v's evidence image (unless it has one) and clip.
func (e *pendingEvidence) render(v *Violation) error {
	var firstErr error
	if e.pic != nil && len(v.Evidence) == 0 {
		img, err := e.pic.jpeg(v.Violation)
		if err != nil {
			firstErr = err
		}
		v.Evidence = img
	}
	var clip []int16
	if e.mic != nil {
		e.mic.ring.WaitWritten(e.clipEnd, clipWait)
		clip = e.mic.ring.Copy(e.clipEnd, clipSamples)
	}
	if len(clip) > 0 {
		var b bytes.Buffer
		b.Grow(44 + 2*len(clip))
		if err := audio.WriteWAV(&b, &audio.WAV{SampleRate: clipRate, Channels: 1, Samples: clip}); err != nil && firstErr == nil {
			firstErr = err
		} else {
			v.Clip = b.Bytes()
		}
	}
	return firstErr
}

func (p *keptFrame) jpeg(v rules.Violation) ([]byte, error) {
	i420, err := gocv.NewMatFromBytes(p.rows, p.cols, gocv.MatTypeCV8UC1, p.i420)
	if err != nil {
		return nil, err
	}
	defer i420.Close()
	bgr := gocv.NewMat()
	defer bgr.Close()
	if err := vpx.I420ToBGR(i420, &bgr); err != nil {
		return nil, err
	}
	return detectors.Evidence(bgr, &p.obs, v)
}
