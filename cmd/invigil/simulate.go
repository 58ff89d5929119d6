package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"invigil/config"
	"invigil/contract"
	"invigil/simulate"
)

func runSimulate(ctx context.Context, e env, args []string) error {
	fs := newFlagSet(e, "simulate", "--server URL (--code CODE | --token TOKEN | --token-key KEY) (--video FILE | --scenario FILE) [flags]")
	flags := config.Register(fs, "log-level", "log-format")
	server := fs.String("server", "", "the server's `URL` (http://host:8080), or its signaling WebSocket (ws://host:8080/sfu/ws)")
	code := fs.String("code", "", "join with this invitation `CODE` (needs the control plane's candidate login)")
	token := fs.String("token", "", "join with this SFU `TOKEN`")
	tokenKey := fs.String("token-key", "", "issue tokens locally with the server's sfu_token_key `KEY` (tests and load; env INVIGIL_SFU_TOKEN_KEY)")
	room := fs.String("room", "sim", "`ROOM` of the tokens issued with --token-key")
	identity := fs.String("identity", contract.LoadIdentityPrefix, "identity `PREFIX` of the tokens issued with --token-key (candidate i is PREFIXi; must start with "+contract.LoadIdentityPrefix+")")
	video := fs.String("video", "", "what the camera shows: an image or video `FILE`, looping")
	scenario := fs.String("scenario", "", "a scenario `FILE`: JSON list of {\"file\": …, \"seconds\": …} the camera shows in turn, looping")
	audio := fs.String("audio", "", "also publish a microphone: a WAV or Ogg Opus `FILE`, looping, or \"sine\" for a 440 Hz tone (made with ffmpeg)")
	candidates := fs.Int("candidates", 1, "how many candidates join (more than one replay one pre-encoded stream; needs --token-key)")
	fps := fs.Float64("fps", 15, "camera frame rate")
	size := fs.String("size", "640x480", "camera frame `WxH`")
	bitrate := fs.Int("bitrate", 800, "VP8 bitrate in `KBPS`")
	scalability := fs.String("scalability-mode", simulate.ModeL1T3, "VP8 temporal layers as the candidate page asks the browser for: `MODE` L1T3 or L1T1 (none)")
	noise := fs.Float64("noise", 0, "sensor noise added to every frame (standard deviation in 8-bit levels; 2 is a typical webcam)")
	replay := fs.Bool("replay", false, "encode once and replay even for one candidate")
	duration := fs.Duration("duration", 0, "leave after this long (default: run until interrupted)")
	loopback := fs.Bool("loopback", false, "gather only 127.0.0.1 ICE candidates (a server on this machine started with --ice-loopback)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageError{fmt.Sprintf("unexpected argument %q", fs.Arg(0))}
	}
	// The microphone file is read and encoded before any login or
	// connection, so a typo or a broken file costs no invitation code use.
	var mic *simulate.Audio
	if *audio != "" && *audio != "sine" {
		if _, err := os.Stat(*audio); err != nil {
			return usageError{fmt.Sprintf("--audio: %v", err)}
		}
		a, err := simulate.FileAudio(*audio)
		if err != nil {
			return fmt.Errorf("--audio: %w", err)
		}
		mic = a
	}
	cfg, err := flags.Resolve(e.getenv)
	if err != nil {
		return err
	}
	log := cfg.NewLogger(e.stderr)

	if *server == "" {
		return usageError{"--server is required"}
	}
	ends, err := simulate.ParseServer(*server)
	if err != nil {
		return usageError{err.Error()}
	}
	if (*video == "") == (*scenario == "") {
		return usageError{"give what the camera shows: --video FILE or --scenario FILE (one of them)"}
	}
	var clips []simulate.Clip
	if *video != "" {
		clips = []simulate.Clip{{File: *video}}
	} else if clips, err = simulate.ReadScenario(*scenario); err != nil {
		return err
	}
	w, h, err := parseSize(*size)
	if err != nil {
		return usageError{err.Error()}
	}
	if *candidates < 1 {
		return usageError{fmt.Sprintf("--candidates %d: want at least 1", *candidates)}
	}
	if *duration < 0 {
		return usageError{"--duration must not be negative"}
	}
	key := *tokenKey
	if key == "" && *token == "" && *code == "" {
		key = e.getenv("INVIGIL_SFU_TOKEN_KEY")
	}
	given := 0
	for _, s := range []string{*code, *token, key} {
		if s != "" {
			given++
		}
	}
	if given != 1 {
		return usageError{"join with exactly one of --code CODE, --token TOKEN or --token-key KEY"}
	}
	if *candidates > 1 && key == "" {
		return usageError{"--candidates needs --token-key: each candidate needs a token of its own"}
	}

	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	var tokens func(int) (string, error)
	var locate func(ctx context.Context) (string, error)
	switch {
	case key != "":
		if len(key) < 16 {
			return usageError{"--token-key: want the server's sfu_token_key (at least 16 characters)"}
		}
		if !strings.HasPrefix(*identity, contract.LoadIdentityPrefix) {
			return usageError{fmt.Sprintf("--identity %q: tokens signed with the key are for load tests only; their identities start with %q", *identity, contract.LoadIdentityPrefix)}
		}
		tokens = simulate.HMACTokens([]byte(key), *room, *identity, 24*time.Hour)
	case *token != "":
		t := *token
		tokens = func(int) (string, error) { return t, nil }
	default:
		login, err := simulate.LoginWithCode(ctx, ends.API, *code)
		if err != nil {
			return err
		}
		log.Info("simulate: logged in with the invitation code", "candidate", login.CandidateID, "stage", login.Stage)
		tokens = func(int) (string, error) { return login.Token, nil }
		// The control plane says where the media go (with several nodes,
		// the exam's media node), as it tells the candidate page.
		sig, err := simulate.MediaURL(ctx, ends.API, login.Token)
		if err != nil {
			return err
		}
		if sig != ends.Signaling {
			log.Info("simulate: the exam's media are on another node", "signaling", sig)
		}
		ends.Signaling = sig
		locate = func(ctx context.Context) (string, error) { return simulate.MediaURL(ctx, ends.API, login.Token) }
	}

	sum, err := simulate.Run(ctx, simulate.Options{
		Signaling:    ends.Signaling,
		Locate:       locate,
		Token:        tokens,
		Candidates:   *candidates,
		Clips:        clips,
		Camera:       simulate.CameraOptions{Width: w, Height: h, FPS: *fps, Noise: *noise},
		Encode:       simulate.EncodeOptions{BitrateKbps: *bitrate, ScalabilityMode: *scalability},
		Replay:       *replay,
		Audio:        *audio == "sine",
		Microphone:   mic,
		Duration:     *duration,
		LoopbackOnly: *loopback,
		Logger:       log,
	})
	if sum.Joined > 0 || err == nil {
		// One JSON line for scripts, whatever the outcome.
		out, _ := json.Marshal(map[string]any{
			"joined": sum.Joined, "failed": sum.Failed, "seconds": sum.Elapsed.Seconds(),
			"frames": sum.Total.Frames, "keyframes": sum.Total.Keyframes, "video_bytes": sum.Total.Bytes,
			"audio_packets": sum.Total.AudioPackets, "keyframe_requests": sum.Total.KeyframeRequests,
			"reconnects": sum.Total.Reconnects,
		})
		fmt.Fprintln(e.stdout, string(out))
	}
	if err != nil {
		return err
	}
	if sum.Failed > 0 {
		return fmt.Errorf("%d of %d candidates failed (see the log above)", sum.Failed, *candidates)
	}
	return nil
}

// parseSize reads WxH.
func parseSize(s string) (int, int, error) {
	ws, hs, ok := strings.Cut(strings.ToLower(s), "x")
	w, werr := strconv.Atoi(ws)
	h, herr := strconv.Atoi(hs)
	if !ok || werr != nil || herr != nil {
		return 0, 0, errors.New("--size: want WIDTHxHEIGHT, e.g. 640x480")
	}
	return w, h, nil
}
