package pipeline

// The listening path. Every candidate's Opus microphone track gets its own
// goroutine, fed through a bounded queue as the video tracks are:
// RTP → one Opus packet per payload → libopus decode at 48 kHz (lost
// packets concealed) → 16 kHz → Silero VAD (energy-gated; several
// candidates' chunks share a model run, vad/batch.go) → the candidate's
// rules engine (Engine.ObserveAudio), on the candidate's
// stream clock. The audio goroutine takes the candidate's analysis lock
// only to step the rules (microseconds), and only when no worker holds it
// (TryLock), so a busy worker never makes the audio queue wait behind an
// inference, and audio never delays a frame.
//
// A candidate without a live microphone track is judged by the video
// workers instead (Engine.AudioMissing), so "no audio track at all" opens
// microphone_off as surely as a muted one. A track whose packets stop for
// audioStallAfter without ending counts as no microphone from its last
// packet on, until packets come again.
//
// Each track keeps its last 10 s of 16 kHz audio for evidence clips
// (clip.go).
//
// Metrics:
//
//	invigil_pipeline_audio_packets_total
//	invigil_pipeline_audio_packets_dropped_total{reason}  queue_full, oversized, late, closed
//	invigil_pipeline_audio_decode_errors_total           payloads that are not Opus
//	invigil_pipeline_audio_concealed_seconds_total       lost audio filled by concealment
//	invigil_pipeline_audio_clock_resets_total            gaps or jumps too long to conceal
//	invigil_pipeline_audio_decoded_seconds_total
//	invigil_pipeline_audio_chunks_total{verdict}         speech, no_speech, gated
//	invigil_pipeline_audio_chunks_unjudged_total         chunks before the candidate's rules started
//	invigil_pipeline_audio_model_runs_total              speech model runs, process-wide (chunks share them)
//	invigil_pipeline_audio_busy_seconds_total            CPU-side time of the audio goroutines
//	invigil_pipeline_audio_tracks_active
//	invigil_pipeline_audio_stalls_total                  tracks whose packets stopped for 3 s without ending

import (
	"errors"
	"fmt"
	"math"
	"sync"
	"time"

	"github.com/pion/rtp"
	"github.com/prometheus/client_golang/prometheus"

	"invigil/audio"
	"invigil/detectors/rules"
	"invigil/media"
	"invigil/models"
	"invigil/opus"
	"invigil/vad"
)

const (
	// audioClock is Opus's RTP clock (RFC 7587: always 48 kHz).
	audioClock = opus.SampleRate
	// audioClockPerSample is how many RTP clock ticks one decoded sample
	// spans: the decoder outputs straight at the speech detector's rate,
	// which costs less than decoding at 48 kHz and filtering down.
	audioClockPerSample = audioClock / vad.SampleRate
	// audioPacketQueue holds about 10 s of 20 ms packets.
	audioPacketQueue = 512
	// maxAudioJump is the largest RTP timestamp step believed; beyond it
	// (a broken or hostile sender) the clock advances by one packet only.
	maxAudioJump = 5 * audioClock
	// audioFlushChunks: pending verdicts wait for a free analysis lock at
	// most this long (32 × 32 ms ≈ 1 s) before the audio goroutine waits
	// for it.
	audioFlushChunks = 32
)

const (
	dropAudioLate = "late"
)

type audioMetrics struct {
	packets     prometheus.Counter
	dropped     *prometheus.CounterVec
	decodeErrs  prometheus.Counter
	concealed   prometheus.Counter
	clockResets prometheus.Counter
	decoded     prometheus.Counter
	chunks      *prometheus.CounterVec
	unjudged    prometheus.Counter
	busy        prometheus.Counter
	active      prometheus.Gauge
	stalls      prometheus.Counter
}

func newAudioMetrics(reg prometheus.Registerer) (*audioMetrics, error) {
	m := &audioMetrics{
		packets: prometheus.NewCounter(prometheus.CounterOpts{Name: "invigil_pipeline_audio_packets_total",
			Help: "RTP packets of candidates' microphone tracks tapped."}),
		dropped: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "invigil_pipeline_audio_packets_dropped_total",
			Help: "Microphone RTP packets not decoded, by reason."}, []string{"reason"}),
		decodeErrs: prometheus.NewCounter(prometheus.CounterOpts{Name: "invigil_pipeline_audio_decode_errors_total",
			Help: "Microphone RTP payloads that are not valid Opus."}),
		concealed: prometheus.NewCounter(prometheus.CounterOpts{Name: "invigil_pipeline_audio_concealed_seconds_total",
			Help: "Lost microphone audio filled in by Opus packet-loss concealment."}),
		clockResets: prometheus.NewCounter(prometheus.CounterOpts{Name: "invigil_pipeline_audio_clock_resets_total",
			Help: "Microphone gaps or timestamp jumps too long to conceal: the decoder restarted."}),
		decoded: prometheus.NewCounter(prometheus.CounterOpts{Name: "invigil_pipeline_audio_decoded_seconds_total",
			Help: "Microphone audio decoded."}),
		chunks: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "invigil_pipeline_audio_chunks_total",
			Help: "32 ms chunks judged by the speech detector, by verdict."}, []string{"verdict"}),
		unjudged: prometheus.NewCounter(prometheus.CounterOpts{Name: "invigil_pipeline_audio_chunks_unjudged_total",
			Help: "Chunks heard before the candidate's rules started (no analyzed frame yet)."}),
		busy: prometheus.NewCounter(prometheus.CounterOpts{Name: "invigil_pipeline_audio_busy_seconds_total",
			Help: "Time the audio goroutines spent decoding, resampling and detecting speech (not waiting for a shared model run)."}),
		active: prometheus.NewGauge(prometheus.GaugeOpts{Name: "invigil_pipeline_audio_tracks_active",
			Help: "Candidate microphone tracks being listened to."}),
		stalls: prometheus.NewCounter(prometheus.CounterOpts{Name: "invigil_pipeline_audio_stalls_total",
			Help: "Microphone tracks whose packets stopped for 3 s without the track ending (judged as no microphone)."}),
	}
	for _, c := range []prometheus.Collector{m.packets, m.dropped, m.decodeErrs, m.concealed, m.clockResets,
		m.decoded, m.chunks, m.unjudged, m.busy, m.active, m.stalls} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("pipeline: register audio metrics: %w", err)
		}
	}
	return m, nil
}

// loadListening loads ONNX Runtime and checks that the speech model loads,
// at start, so a missing model fails the start rather than the first
// candidate's microphone.
func loadListening(modelsDir string) (vad.Config, error) {
	if modelsDir == "" {
		dir, err := models.DefaultDir()
		if err != nil {
			return vad.Config{}, fmt.Errorf("pipeline: models directory: %w", err)
		}
		modelsDir = dir
	}
	cfg := vad.DefaultConfig(modelsDir)
	probe, err := vad.New(cfg)
	if err != nil {
		return vad.Config{}, fmt.Errorf("pipeline: speech detector (run `invigil models fetch`): %w", err)
	}
	if err := probe.Close(); err != nil {
		return vad.Config{}, fmt.Errorf("pipeline: speech detector: %w", err)
	}
	return cfg, nil
}

// audioTrack is one candidate microphone track: the PacketWriter the SFU
// writes to and the goroutine that decodes and judges it.
type audioTrack struct {
	p    *Pipeline
	info media.Track
	c    *candidate

	packets   chan queuedPacket
	done      chan struct{}
	closeOnce sync.Once

	// Owned by run.
	dec     *opus.Decoder // at vad.SampleRate
	det     *vad.Detector
	haveSeq bool
	ssrc    uint32
	lastSeq uint16
	nextTS  uint32 // RTP timestamp the next packet should carry
	pos     int64  // stream time since the track started, on the 48 kHz RTP clock
	vadBase int64  // pos at which the detector's chunk clock starts
	pcm     []float32
	pending []rules.AudioChunk // verdicts awaiting the rules, stream ms since the track started
	mic     *micRing           // the clip ring
	stalled bool               // no packet for audioStallAfter: counted as no microphone
}

func (p *Pipeline) startAudioTrack(t media.Track) media.PacketWriter {
	if t.Identity == "" {
		p.log.Warn("candidate audio track without identity; not listened to", "session", t.SessionID, "track", t.TrackID)
		return nil
	}
	if p.closed.Load() {
		return nil
	}
	if t.Started.IsZero() {
		t.Started = time.Now()
	}
	a := &audioTrack{p: p, info: t, packets: make(chan queuedPacket, audioPacketQueue), done: make(chan struct{})}
	s := p.sched
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	a.c = s.candidateLocked(t.Identity, p.cfg.DefaultPolicy)
	a.c.audioTracks.Add(1)
	a.c.audioLive.Add(1)
	a.mic = &micRing{ring: audio.NewRing(ringSamples), started: t.Started}
	a.c.mic.Store(a.mic)
	p.wg.Add(1) // under s.mu: Close cannot be waiting yet
	s.mu.Unlock()
	p.am.active.Inc()
	p.log.Info("listening to candidate track", "identity", t.Identity, "session", t.SessionID, "track", t.TrackID)
	go a.run()
	return a
}

// WritePacket implements media.PacketWriter: queue (the pipeline's own
// copy) without waiting.
func (a *audioTrack) WritePacket(pk media.Packet) {
	p := pk.RTP
	if p == nil {
		return
	}
	m := a.p.am
	m.packets.Inc()
	if a.p.closed.Load() {
		m.dropped.WithLabelValues(dropClosed).Inc()
		return
	}
	if len(p.Payload) > opus.MaxPacketBytes {
		m.dropped.WithLabelValues(dropOversized).Inc()
		return
	}
	select {
	case a.packets <- queuedPacket{p, pk.Arrival, pk.Wall}:
	default:
		m.dropped.WithLabelValues(dropQueueFull).Inc()
	}
}

// Close implements media.PacketWriter: the track ended.
func (a *audioTrack) Close() { a.closeOnce.Do(func() { close(a.done) }) }

func (a *audioTrack) run() {
	defer a.p.wg.Done()
	defer a.ended()
	var err error
	if a.dec, err = opus.NewDecoderAt(vad.SampleRate); err != nil {
		a.p.log.Error("cannot listen to candidate track", "identity", a.info.Identity, "err", err)
		a.drain()
		return
	}
	defer a.dec.Close()
	if a.det, err = vad.New(a.p.vadCfg); err != nil {
		a.p.log.Error("cannot listen to candidate track", "identity", a.info.Identity, "err", err)
		a.drain()
		return
	}
	defer a.det.Close()
	stall := time.NewTimer(audioStallAfter)
	defer stall.Stop()
	for {
		select {
		case <-a.p.ctx.Done():
			return
		case q := <-a.packets:
			if a.stalled {
				a.resume(q.arrival)
			}
			a.handle(q)
			stall.Reset(audioStallAfter)
		case <-stall.C:
			a.p.log.Info("candidate microphone stalled: no audio packets", "identity", a.info.Identity,
				"track", a.info.TrackID, "after", audioStallAfter)
			a.p.am.stalls.Inc()
			a.stall()
		case <-a.done:
			for {
				select {
				case q := <-a.packets:
					a.handle(q)
					continue
				default:
				}
				break
			}
			a.flush(true)
			return
		}
	}
}

// drain discards packets until the track ends, so WritePacket keeps counting
// drops rather than blocking (it never blocks anyway) for a track that
// could not start.
func (a *audioTrack) drain() {
	for {
		select {
		case <-a.p.ctx.Done():
			return
		case <-a.done:
			return
		case <-a.packets:
			a.p.am.dropped.WithLabelValues(dropClosed).Inc()
		}
	}
}

func (a *audioTrack) handle(q queuedPacket) {
	start, waited := time.Now(), a.det.Stats().Waited
	a.depacketize(q.p)
	a.flush(false)
	// The wait for other candidates' chunks to share a model run is not
	// work (vad/batch.go).
	a.p.am.busy.Add((time.Since(start) - (a.det.Stats().Waited - waited)).Seconds())
}

// depacketize decodes one RTP packet in order, concealing what was lost
// before it.
func (a *audioTrack) depacketize(pk *rtp.Packet) {
	m := a.p.am
	if a.haveSeq && pk.SSRC != a.ssrc {
		a.restart(0) // a new stream from the same track (the sender restarted)
		a.haveSeq = false
	}
	if a.haveSeq {
		if d := int16(pk.SequenceNumber - a.lastSeq); d <= 0 {
			m.dropped.WithLabelValues(dropAudioLate).Inc() // reordered or duplicated: its time has been filled
			return
		}
		gap := int64(int32(pk.Timestamp - a.nextTS))
		switch {
		case gap < 0 && gap > -maxAudioJump:
			m.dropped.WithLabelValues(dropAudioLate).Inc() // newer sequence, older time: overlaps what was played
			a.lastSeq = pk.SequenceNumber
			return
		case gap < 0 || gap > maxAudioJump:
			// A wild timestamp: believe the packet but not its clock.
			m.clockResets.Inc()
			a.restart(0)
		case gap > int64(opus.MaxConcealment/time.Second)*audioClock:
			// Too long to conceal (the sender paused): silence, kept in time.
			m.clockResets.Inc()
			a.restart(gap)
		case gap >= 120: // 2.5 ms, the smallest concealment libopus does
			lost := gap / 120 * 120
			pcm, err := a.dec.AppendDecodeLost(a.pcm[:0], time.Duration(lost)*time.Second/audioClock)
			if err != nil {
				a.p.log.Debug("cannot conceal lost audio", "identity", a.info.Identity, "err", err)
				a.restart(gap)
			} else {
				m.concealed.Add(float64(lost) / audioClock)
				a.judge(pcm)
			}
		}
	}
	a.haveSeq, a.ssrc, a.lastSeq = true, pk.SSRC, pk.SequenceNumber
	pcm, err := a.dec.AppendDecode(a.pcm[:0], pk.Payload)
	if err != nil {
		m.decodeErrs.Inc()
		if !errors.Is(err, opus.ErrInvalidPacket) {
			a.p.log.Debug("cannot decode audio", "identity", a.info.Identity, "err", err)
		}
		// The next good packet's timestamp gap conceals this one's time.
		a.nextTS = pk.Timestamp
		return
	}
	a.pcm = pcm
	a.nextTS = pk.Timestamp + uint32(len(pcm)*audioClockPerSample)
	m.decoded.Add(float64(len(pcm)) / vad.SampleRate)
	a.judge(pcm)
}

// restart forgets the decoder's and detector's history after a gap of
// skip RTP clock ticks that is not concealed.
func (a *audioTrack) restart(skip int64) {
	_ = a.dec.Reset()
	a.det.Reset()
	a.mic.ring.WriteSilence(skip / audioClockPerSample) // the clip stays in time
	a.pos += skip
	a.vadBase = a.pos
}

// judge runs decoded samples (at vad.SampleRate) through the detector and
// keeps the chunks' verdicts for the rules.
func (a *audioTrack) judge(pcm []float32) {
	m := a.p.am
	a.pos += int64(len(pcm) * audioClockPerSample)
	a.mic.ring.WriteFloat(pcm)
	chunks, err := a.det.Process(pcm)
	if err != nil {
		a.p.log.Warn("speech detector failed", "identity", a.info.Identity, "err", err)
		return
	}
	baseMS := a.vadBase * 1000 / audioClock
	for _, c := range chunks {
		switch {
		case c.Gated:
			m.chunks.WithLabelValues("gated").Inc()
		case c.Speech():
			m.chunks.WithLabelValues("speech").Inc()
		default:
			m.chunks.WithLabelValues("no_speech").Inc()
		}
		rms := float64(c.RMS)
		if math.IsNaN(rms) {
			rms = 0
		}
		a.pending = append(a.pending, rules.AudioChunk{
			TMS: baseMS + c.Start.Milliseconds(), DurationMS: vad.ChunkDuration.Milliseconds(),
			Speech: c.Speech(), RMS: rms,
		})
	}
}

// flush hands the pending verdicts to the candidate's rules when its
// analysis lock is free, or waits for it once about a second has piled up
// (or the track ends).
func (a *audioTrack) flush(force bool) {
	if len(a.pending) == 0 {
		return
	}
	c, p := a.c, a.p
	if !c.analysisMu.TryLock() {
		if !force && len(a.pending) < audioFlushChunks {
			return
		}
		c.analysisMu.Lock()
	}
	defer c.analysisMu.Unlock()
	if c.engine == nil {
		// The rules start with the candidate's first analyzed frame; what
		// was heard before has no clock to be judged on.
		p.am.unjudged.Add(float64(len(a.pending)))
		a.pending = a.pending[:0]
		return
	}
	offset := a.info.Started.Sub(c.engineEpoch).Milliseconds()
	for i := range a.pending {
		a.pending[i].TMS += offset
	}
	for _, ev := range c.engine.ObserveAudio(a.pending) {
		p.emitWith(p.ctx, c, ev, nil, p.micEvidenceLocked(c, ev, true))
	}
	a.pending = a.pending[:0]
}

// ended retires the track: from now on the workers judge the candidate
// as having no microphone, since the end of its last audio.
func (a *audioTrack) ended() {
	p, c := a.p, a.c
	p.am.active.Dec()
	if !a.stalled {
		a.stall()
	}
	s := p.sched
	s.mu.Lock()
	c.audioTracks.Add(-1)
	if c.tracks == 0 && c.audioTracks.Load() == 0 && !c.explicit && s.candidates[c.identity] == c {
		delete(s.candidates, c.identity)
	}
	s.mu.Unlock()
	p.log.Info("candidate audio track ended", "identity", a.info.Identity, "track", a.info.TrackID)
}

// stall: no packet for audioStallAfter (or the track ended). From the
// end of its last audio the candidate has no microphone, unless another
// track is live.
func (a *audioTrack) stall() {
	c := a.c
	a.stalled = true
	end := a.info.Started.Add(time.Duration(a.pos) * time.Second / audioClock)
	// audioGone before audioLive: a worker that sees no live track finds
	// the time it went.
	c.audioGone.Store(end.UnixNano())
	c.audioLive.Add(-1)
	c.mic.CompareAndSwap(a.mic, nil)
}

// resume: packets come again after a stall. The wall clock, not the RTP
// timestamps (a sender may pause them with the packets, or jump), says how
// long the silence was: the stream clock moves on by it, so the audio
// that comes is judged at the time it is heard.
func (a *audioTrack) resume(arrival time.Time) {
	if skip := int64(arrival.Sub(a.info.Started))*audioClock/int64(time.Second) - a.pos; skip > 0 && a.dec != nil {
		a.p.am.clockResets.Inc()
		a.restart(skip)
		a.haveSeq = false
	}
	a.stalled = false
	a.c.mic.Store(a.mic)
	a.c.audioLive.Add(1)
	a.p.log.Info("candidate microphone sends again", "identity", a.info.Identity, "track", a.info.TrackID)
}

// audioMissingLocked judges a candidate without a live microphone at a
// frame's stream time (analysisMu held).
func (p *Pipeline) audioMissingLocked(c *candidate, tMS int64) []rules.Event {
	if c.audioLive.Load() > 0 {
		return nil
	}
	since := int64(0)
	if g := c.audioGone.Load(); g != 0 {
		since = time.Unix(0, g).Sub(c.engineEpoch).Milliseconds()
	}
	return c.engine.AudioMissing(tMS, since)
}
