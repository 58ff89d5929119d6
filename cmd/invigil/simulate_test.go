package main

import (
	"context"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"invigil/api"
	"invigil/internal/testassets"
)

func TestSimulateUsage(t *testing.T) {
	img := testassets.Photo(t, "building.jpg")
	cases := []struct {
		args []string
		vars map[string]string
		want string
	}{
		{[]string{"--video", img}, nil, "--server is required"},
		{[]string{"--server", "http://127.0.0.1:1", "--token", "x"}, nil, "--video FILE or --scenario FILE"},
		{[]string{"--server", "http://127.0.0.1:1", "--token", "x", "--video", img, "--scenario", img}, nil, "one of them"},
		{[]string{"--server", "http://127.0.0.1:1", "--video", img}, nil, "exactly one of --code"},
		{[]string{"--server", "http://127.0.0.1:1", "--video", img, "--token", "x", "--code", "123456"}, nil, "exactly one of --code"},
		{[]string{"--server", "http://127.0.0.1:1", "--video", img, "--token", "x", "--candidates", "3"}, nil, "--candidates needs --token-key"},
		{[]string{"--server", "ftp://127.0.0.1:1", "--video", img, "--token", "x"}, nil, "scheme"},
		{[]string{"--server", "http://127.0.0.1:1", "--video", img, "--token", "x", "--size", "big"}, nil, "WIDTHxHEIGHT"},
		{[]string{"--server", "http://127.0.0.1:1", "--video", img, "--token-key", "short"}, nil, "at least 16"},
		{[]string{"--server", "http://127.0.0.1:1", "--video", img, "--token", "x", "--audio", "/nonexistent/speech.wav"}, nil, "--audio: stat /nonexistent/speech.wav"},
		{[]string{"--server", "http://127.0.0.1:1", "--video", img, "--token-key", "0123456789abcdef0123", "--identity", "candidate-"}, nil, `start with "load-"`},
	}
	for _, c := range cases {
		code, _, stderr := invoke(t, c.vars, append([]string{"simulate"}, c.args...)...)
		if code != 2 || !strings.Contains(stderr, c.want) {
			t.Errorf("simulate %v: exit %d, stderr %q; want 2 and %q", c.args, code, stderr, c.want)
		}
	}
}

// A microphone file that is not audio is refused with one line naming
// the problem, before any connection (the server here would refuse one).
func TestSimulateBadAudioFile(t *testing.T) {
	img := testassets.Photo(t, "building.jpg")
	dir := t.TempDir()
	for name, c := range map[string]struct{ body, want string }{
		"notes.wav": {"these are my notes", "not a WAV (RIFF) or Ogg Opus"},
		"empty.wav": {"", "too short"},
		"cut.wav":   {"RIFF\x24\x00\x00\x00WAVEfmt ", "fmt chunk"},
		"bad.ogg":   {"OggS\x00\x02" + strings.Repeat("\x00", 40), "CRC mismatch"},
	} {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, []byte(c.body), 0o644); err != nil {
			t.Fatal(err)
		}
		code, stdout, stderr := invoke(t, nil, "simulate", "--server", "http://127.0.0.1:1", "--token", "x", "--video", img, "--audio", path)
		if code != 1 || !strings.Contains(stderr, "--audio: ") || !strings.Contains(stderr, c.want) {
			t.Errorf("%s: exit %d, stderr %q; want 1 and %q", name, code, stderr, c.want)
		}
		if strings.Contains(stderr, "refused") || strings.Contains(stderr, "dial") || stdout != "" {
			t.Errorf("%s: tried to connect: stdout %q, stderr %q", name, stdout, stderr)
		}
	}
}

// Without the control plane, --code gets one clear line saying so.
func TestSimulateCodeWithoutControlPlane(t *testing.T) {
	srv, err := api.New(api.Options{Registry: prometheus.NewRegistry(), Logger: discardLogger()})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ctx, ln, time.Second) }()
	defer func() {
		cancel()
		<-served
	}()
	code, stdout, stderr := invoke(t, nil, "simulate", "--server", "http://"+ln.Addr().String(), "--code", "123456",
		"--video", testassets.Photo(t, "building.jpg"))
	if code != 1 || !strings.Contains(stderr, "no candidate login") || !strings.Contains(stderr, "--token") {
		t.Errorf("exit %d, stderr %q; want 1 and the missing candidate login explained", code, stderr)
	}
	if lines := strings.Split(strings.TrimSpace(stderr), "\n"); len(lines) != 1 {
		t.Errorf("want one line on stderr, got:\n%s", stderr)
	}
	if stdout != "" {
		t.Errorf("stdout %q", stdout)
	}
}

func discardLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }
