package main

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"invigil/api"
	"invigil/internal/testassets"
	"invigil/models"
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
	}
	for _, c := range cases {
		code, _, stderr := invoke(t, c.vars, append([]string{"simulate"}, c.args...)...)
		if code != 2 || !strings.Contains(stderr, c.want) {
			t.Errorf("simulate %v: exit %d, stderr %q; want 2 and %q", c.args, code, stderr, c.want)
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

// The whole media plane as `invigil serve` wires it, with a candidate from
// `invigil simulate` showing an empty room: the violation is logged to
// violations.jsonl with its evidence and its place in the recording, the
// metrics of the SFU, pipeline and recorder are served, and shutdown is
// clean, closing what was open.
func TestServeWithSimulatedCandidate(t *testing.T) {
	modelsDir := testassets.ModelsDir(t)
	if err := models.CheckPresent(modelsDir); err != nil {
		t.Fatalf("%v (make test provisions them)", err)
	}
	data := filepath.Join(t.TempDir(), "data")
	const key = "serve-test-token-key-0123456789"
	stderr := &syncBuffer{}
	e := env{stdout: io.Discard, stderr: stderr, getenv: func(k string) string {
		return map[string]string{"INVIGIL_SFU_TOKEN_KEY": key}[k]
	}}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	exit := make(chan int, 1)
	go func() {
		exit <- run(ctx, e, []string{"serve", "--addr", "127.0.0.1:0", "--data", data, "--models", modelsDir, "--ice-loopback"})
	}()
	base := waitServing(t, stderr, exit)
	if strings.Contains(stderr.String(), "valid only for this process") {
		t.Error("warned about a random token key although one was configured")
	}
	if !strings.Contains(stderr.String(), "sfu=ws://127.0.0.1:") {
		t.Errorf("the signalling URL is not logged:\n%s", stderr)
	}

	code, out, errOut := invoke(t, nil, "simulate", "--server", base, "--token-key", key, "--room", "exam-7",
		"--identity", "cand-", "--video", testassets.Photo(t, "building.jpg"), "--duration", "6s", "--audio", "--loopback")
	if code != 0 {
		t.Fatalf("simulate: exit %d\n%s", code, errOut)
	}
	var summary struct {
		Joined, Frames, AudioPackets int `json:",omitempty"`
	}
	if err := json.Unmarshal([]byte(out), &summary); err != nil || summary.Joined != 1 || summary.Frames < 60 {
		t.Errorf("simulate printed %q (%v)", out, err)
	}

	metrics := get(t, base+"/metrics")
	for _, want := range []string{"invigil_sfu_participants", "invigil_pipeline_frames_decoded_total", "invigil_recording_bytes_written_total",
		`invigil_http_requests_total{code="101",route="GET /sfu/ws"}`} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}

	cancel()
	select {
	case code := <-exit:
		if code != 0 {
			t.Errorf("serve exit %d after shutdown:\n%s", code, stderr)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("serve did not stop after its context ended")
	}

	lines := readViolations(t, filepath.Join(data, ViolationsFile))
	var opened, closed *violationRecord
	for i, l := range lines {
		if l.Type != "face_off_screen" || l.Identity != "cand-1" || l.Room != "exam-7" {
			continue
		}
		switch l.Event {
		case "opened":
			opened = &lines[i]
		case "closed":
			closed = &lines[i]
		}
	}
	if opened == nil || closed == nil || closed.Key != opened.Key {
		t.Fatalf("violations.jsonl lacks an opened and closed face_off_screen of cand-1 in exam-7:\n%+v", lines)
	}
	if fi, err := os.Stat(filepath.Join(data, opened.Evidence)); opened.Evidence == "" || err != nil || fi.Size() == 0 {
		t.Errorf("evidence %q: %v", opened.Evidence, err)
	}
	if fi, err := os.Stat(filepath.Join(data, opened.Recording)); opened.Recording == "" || err != nil || fi.Size() == 0 {
		t.Errorf("recording %q: %v", opened.Recording, err)
	}
	if off := opened.RecordingOffsetMS; off == nil || *off < 0 || *off > 1000 {
		t.Errorf("the room was empty from the start, but the violation is at %v ms of the recording", off)
	}
}

// waitServing waits for serve to log its URL.
func waitServing(t *testing.T, stderr *syncBuffer, exit chan int) string {
	t.Helper()
	urlPattern := regexp.MustCompile(`url=(http://127\.0\.0\.1:\d+)`)
	deadline := time.Now().Add(60 * time.Second)
	for {
		if m := urlPattern.FindStringSubmatch(stderr.String()); m != nil {
			return m[1]
		}
		select {
		case code := <-exit:
			t.Fatalf("serve exited with %d before serving:\n%s", code, stderr)
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("serve did not log its URL:\n%s", stderr)
		}
	}
}

func get(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

func readViolations(t *testing.T, path string) []violationRecord {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []violationRecord
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var r violationRecord
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			t.Fatalf("%s: bad line %q: %v", path, sc.Text(), err)
		}
		out = append(out, r)
	}
	return out
}

func discardLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }
