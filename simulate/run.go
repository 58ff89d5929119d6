package simulate

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"invigil/contract"
)

// Options runs a crowd of candidates (`invigil simulate`).
type Options struct {
	// Signaling is the SFU's WebSocket URL.
	Signaling string
	// Locate, if set, is every candidate's Config.Locate: where the media
	// go after a media node went away.
	Locate func(ctx context.Context) (string, error)
	// Token returns candidate i's token (i from 0).
	Token func(i int) (string, error)
	// Candidates is how many join (default 1).
	Candidates int
	// Clips is the scenario (one clip for a plain --video FILE).
	Clips  []Clip
	Camera CameraOptions
	Encode EncodeOptions
	// Replay encodes the scenario once and replays it even for one
	// candidate; more than one candidate always replay, so the load
	// generator costs little more than sending packets.
	Replay bool
	// Audio adds a synthetic microphone (a 440 Hz sine in Opus, made with
	// ffmpeg: `--audio sine`).
	Audio bool
	// AudioFile publishes this WAV or Ogg Opus file as the microphone,
	// looping (see FileAudio); it overrides Audio.
	AudioFile string
	// Microphone, if set, is published as every candidate's microphone
	// (already read, e.g. with FileAudio); it overrides AudioFile and Audio.
	Microphone *Audio
	// Duration ends the run after this long (0: when ctx ends); every
	// candidate then leaves.
	Duration     time.Duration
	LoopbackOnly bool
	// Joining bounds the joins in flight at once (default 4), so a crowd
	// does not arrive in one burst.
	Joining int
	Logger  *slog.Logger
	// OnFrame, if set, is told about every frame candidate i sends, on that
	// candidate's goroutine.
	OnFrame func(i int, f SentFrame)
	// OnJoined, if set, is told when candidate i has joined.
	OnJoined func(i int, c *Candidate)
}

// Summary is what a Run did.
type Summary struct {
	Joined, Failed int
	// Total sums every candidate's counters.
	Total Stats
	// Bitrate is the video bitrate of the replayed stream (0 when encoded
	// live).
	Bitrate float64
	Elapsed time.Duration
}

// Run joins the candidates, publishes until ctx ends or Duration passes,
// and has every candidate leave. It fails when no candidate could join.
func Run(ctx context.Context, o Options) (Summary, error) {
	start := time.Now()
	if o.Candidates == 0 {
		o.Candidates = 1
	}
	if o.Candidates < 1 || o.Candidates > 10000 {
		return Summary{}, fmt.Errorf("%d candidates: want 1 to 10000", o.Candidates)
	}
	if o.Token == nil {
		return Summary{}, errors.New("simulate: no token source")
	}
	if o.Joining <= 0 {
		o.Joining = 4
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	audio := o.Microphone
	if audio != nil {
	} else if o.AudioFile != "" {
		var err error
		if audio, err = FileAudio(o.AudioFile); err != nil {
			return Summary{}, err
		}
	} else if o.Audio {
		var err error
		if audio, err = SineAudio(ctx, 440, 5); err != nil {
			return Summary{}, err
		}
	}
	var stream *Stream
	var sum Summary
	if o.Candidates > 1 || o.Replay {
		cam, err := NewCamera(o.Clips, o.Camera)
		if err != nil {
			return Summary{}, err
		}
		stream, err = EncodeStream(ctx, cam, 0, o.Encode)
		cam.Close()
		if err != nil {
			return Summary{}, err
		}
		sum.Bitrate = stream.Bitrate()
		o.Logger.Info("simulate: scenario encoded once for replay", "frames", len(stream.Frames),
			"seconds", float64(len(stream.Frames))/stream.FPS, "kbps", int(sum.Bitrate/1000))
	}
	if err := ctx.Err(); err != nil {
		return sum, fmt.Errorf("interrupted before any candidate joined: %w", err)
	}
	// The run's time starts once everything is prepared.
	if o.Duration > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, o.Duration)
		defer cancel()
	}

	var (
		mu    sync.Mutex
		cands = make([]*Candidate, o.Candidates)
		wg    sync.WaitGroup
		slots = make(chan struct{}, o.Joining)
	)
	for i := 0; i < o.Candidates; i++ {
		select {
		case <-ctx.Done():
		case slots <- struct{}{}:
		}
		if ctx.Err() != nil {
			break
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := joinOne(ctx, o, i, stream, audio)
			<-slots
			if err != nil {
				if ctx.Err() == nil {
					o.Logger.Error("simulate: candidate could not join", "candidate", i+1, "err", err)
				}
				mu.Lock()
				sum.Failed++
				mu.Unlock()
				return
			}
			mu.Lock()
			cands[i] = c
			sum.Joined++
			mu.Unlock()
			if o.OnJoined != nil {
				o.OnJoined(i, c)
			}
			if err := c.Run(ctx); err != nil {
				o.Logger.Error("simulate: candidate stopped", "identity", c.Identity(), "err", err)
				mu.Lock()
				sum.Failed++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	// Everyone leaves at once, as at the end of an exam.
	var leaving sync.WaitGroup
	for _, c := range cands {
		if c == nil {
			continue
		}
		leaving.Add(1)
		go func() {
			defer leaving.Done()
			c.Leave()
		}()
	}
	leaving.Wait()
	for _, c := range cands {
		if c != nil {
			sum.Total.add(c.Stats())
		}
	}
	sum.Elapsed = time.Since(start)
	if sum.Joined == 0 {
		return sum, errors.New("no candidate could join (see the log above)")
	}
	return sum, nil
}

func joinOne(ctx context.Context, o Options, i int, stream *Stream, audio *Audio) (*Candidate, error) {
	token, err := o.Token(i)
	if err != nil {
		return nil, fmt.Errorf("token for candidate %d: %w", i+1, err)
	}
	cfg := Config{URL: o.Signaling, Locate: o.Locate, Token: token, Stream: stream, Audio: audio, LoopbackOnly: o.LoopbackOnly,
		Encode: o.Encode, Logger: o.Logger}
	if stream != nil {
		// Spread the candidates over the scenario, as real ones would be.
		cfg.StartFrame = i * len(stream.Frames) / o.Candidates
	} else {
		if cfg.Camera, err = NewCamera(o.Clips, o.Camera); err != nil {
			return nil, err
		}
	}
	if o.OnFrame != nil {
		cfg.OnFrame = func(f SentFrame) { o.OnFrame(i, f) }
	}
	return Join(ctx, cfg)
}

func (s *Stats) add(o Stats) {
	s.Frames += o.Frames
	s.Keyframes += o.Keyframes
	s.Bytes += o.Bytes
	s.AudioPackets += o.AudioPackets
	s.KeyframeRequests += o.KeyframeRequests
	s.Reconnects += o.Reconnects
	s.ICERestarts += o.ICERestarts
	s.FramesNotSent += o.FramesNotSent
	s.ConnectionsFailed += o.ConnectionsFailed
}

// LoadIdentityPrefix starts every identity a token signed with the
// server's sfu_token_key may carry: the server refuses such tokens for any
// other identity, so load tests can never pose as real candidates or staff.
const LoadIdentityPrefix = contract.LoadIdentityPrefix

// HMACTokens issues candidate tokens locally with the server's token key
// (sfu_token_key), for tests and load runs while no control plane issues
// them: candidate i is identity prefix+(i+1) in room, valid for ttl.
func HMACTokens(key []byte, room, prefix string, ttl time.Duration) func(i int) (string, error) {
	issuer := contract.GrantTokens{Key: key}
	return func(i int) (string, error) {
		return issuer.Issue(contract.Grants{
			Identity: fmt.Sprintf("%s%d", prefix, i+1), Name: fmt.Sprintf("Simulated candidate %d", i+1),
			Role: "candidate", Room: room, CanPublish: true, CanSubscribe: true,
			ExpiresAt: time.Now().Add(ttl),
		})
	}
}
