package main

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"invigil/internal/testassets"
	"invigil/models"
)

// syncBuffer is written by a command running in another goroutine while the
// test reads it.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// invoke runs one command line in-process with an environment holding only
// vars (so the developer's INVIGIL_* settings cannot leak into the test).
func invoke(t *testing.T, vars map[string]string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errOut bytes.Buffer
	e := env{stdout: &out, stderr: &errOut, getenv: func(k string) string { return vars[k] }}
	code = run(context.Background(), e, args)
	return code, out.String(), errOut.String()
}

func TestUsage(t *testing.T) {
	cases := []struct {
		args      []string
		code      int
		stdoutHas string
		stderrHas string
	}{
		{nil, 2, "", "Usage: invigil COMMAND"},
		{[]string{"-h"}, 0, "Usage: invigil COMMAND", ""},
		{[]string{"--help"}, 0, "Usage: invigil COMMAND", ""},
		{[]string{"help"}, 0, "Usage: invigil COMMAND", ""},
		{[]string{"help", "serve"}, 0, "--addr", ""},
		{[]string{"bogus"}, 2, "", `unknown command "bogus"`},
		{[]string{"serve", "-h"}, 0, "", "--models"},
		{[]string{"serve", "--no-such-flag"}, 2, "", "flag provided but not defined"},
		{[]string{"serve", "extra"}, 2, "", `unexpected argument "extra"`},
		{[]string{"models"}, 2, "", "fetch|verify|list"},
		{[]string{"models", "dance"}, 2, "", `unknown action "dance"`},
		{[]string{"version"}, 0, "invigil dev", ""},
		{[]string{"simulate"}, 2, "", "--server is required"},
		{[]string{"admin"}, 2, "", "want: invigil admin users"},
	}
	for _, c := range cases {
		t.Run(strings.Join(c.args, " "), func(t *testing.T) {
			code, stdout, stderr := invoke(t, nil, c.args...)
			if code != c.code {
				t.Errorf("exit %d, want %d\nstdout: %s\nstderr: %s", code, c.code, stdout, stderr)
			}
			if !strings.Contains(stdout, c.stdoutHas) {
				t.Errorf("stdout lacks %q:\n%s", c.stdoutHas, stdout)
			}
			if !strings.Contains(stderr, c.stderrHas) {
				t.Errorf("stderr lacks %q:\n%s", c.stderrHas, stderr)
			}
		})
	}
}

// Without its models the server must not start, and must say in one line
// what to run.
func TestServeRefusesWithoutModels(t *testing.T) {
	empty := t.TempDir()
	data := filepath.Join(t.TempDir(), "data")
	code, stdout, stderr := invoke(t, nil, "serve", "--addr", "127.0.0.1:0", "--data", data, "--models", empty)
	if code != 1 {
		t.Fatalf("exit %d, want 1; stderr: %s", code, stderr)
	}
	lines := strings.Split(strings.TrimSpace(stderr), "\n")
	if len(lines) != 1 {
		t.Errorf("want one line on stderr, got %d:\n%s", len(lines), stderr)
	}
	if !strings.HasPrefix(lines[0], "invigil: models missing in "+empty) ||
		!strings.HasSuffix(lines[0], "run: bin/invigil models fetch") {
		t.Errorf("stderr %q does not say which directory and what to run", lines[0])
	}
	if stdout != "" {
		t.Errorf("stdout not empty: %q", stdout)
	}
	if _, err := os.Stat(data); err == nil {
		t.Error("data directory created although the server refused to start")
	}
}

func TestServeBadConfig(t *testing.T) {
	file := filepath.Join(t.TempDir(), "c.json")
	if err := os.WriteFile(file, []byte(`{"listen": ":80"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	code, _, stderr := invoke(t, nil, "serve", "--config", file)
	if code != 1 || !strings.Contains(stderr, `unknown field "listen"`) {
		t.Fatalf("exit %d, stderr %q; want 1 and the unknown key named", code, stderr)
	}
}

// The real server with the real provisioned models: it starts, answers
// /healthz and /metrics, passes its own healthcheck command, and stops
// cleanly when its context ends (as on SIGTERM).
func TestServe(t *testing.T) {
	modelsDir := testassets.ModelsDir(t)
	if err := models.CheckPresent(modelsDir); err != nil {
		t.Fatalf("%v (make test provisions them)", err)
	}
	data := filepath.Join(t.TempDir(), "data")
	stderr, stdout := &syncBuffer{}, &syncBuffer{}
	e := env{stdout: stdout, stderr: stderr, getenv: func(string) string { return "" }}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	exit := make(chan int, 1)
	go func() {
		exit <- run(ctx, e, []string{"serve", "--addr", "127.0.0.1:0", "--data", data, "--models", modelsDir, "--node-id", "node-7"})
	}()

	urlPattern := regexp.MustCompile(`url=(http://127\.0\.0\.1:\d+)`)
	var base string
	deadline := time.Now().Add(30 * time.Second)
	for base == "" {
		if m := urlPattern.FindStringSubmatch(stderr.String()); m != nil {
			base = m[1]
			break
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

	if fi, err := os.Stat(data); err != nil || !fi.IsDir() {
		t.Errorf("data directory not created: %v", err)
	}
	for path, want := range map[string]string{
		"/healthz": `{"status":"ok"}`,
		"/readyz":  `"ready"`,
		"/metrics": `invigil_build_info{goversion=`,
	} {
		resp, err := http.Get(base + path)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), want) {
			t.Errorf("GET %s = %d, body lacks %q:\n%.2000s", path, resp.StatusCode, want, body)
		}
	}
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{`invigil_http_requests_total{code="200",node="node-7",route="GET /healthz"} 1`, "go_goroutines", "invigil_process_"} {
		if !strings.Contains(string(body), want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	// Every series says which node it comes from.
	for _, line := range strings.Split(string(body), "\n") {
		if line != "" && !strings.HasPrefix(line, "#") && !strings.Contains(line, `node="node-7"`) {
			t.Errorf("a series without the node label: %s", line)
			break
		}
	}

	if code, out, errOut := invoke(t, nil, "healthcheck", "--url", base+"/healthz"); code != 0 {
		t.Errorf("healthcheck against a live server: exit %d\n%s%s", code, out, errOut)
	}

	cancel()
	select {
	case code := <-exit:
		if code != 0 {
			t.Errorf("serve exit %d after shutdown:\n%s", code, stderr)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("serve did not stop after its context ended")
	}
	if !strings.Contains(stderr.String(), "invigil stopped") {
		t.Errorf("no clean-stop log line:\n%s", stderr)
	}
	// Without INVIGIL_ADMIN_PASSWORD the first start makes an admin with a
	// random password, printed once, and shows where each page is.
	pw := regexp.MustCompile(`Created user admin with password ([0-9a-f]{24})`).FindStringSubmatch(stdout.String())
	if pw == nil {
		t.Fatalf("no first admin password printed:\n%s", stdout)
	}
	for _, page := range []string{base + "/staff", base + "/proctor", base + "/admin", base + "/api/v1/openapi.json"} {
		if !strings.Contains(stdout.String(), page) {
			t.Errorf("stdout does not show %s:\n%s", page, stdout)
		}
	}
	// A second start on the same data keeps that admin and prints nothing of it.
	stdout2 := &syncBuffer{}
	e.stdout, e.stderr = stdout2, &syncBuffer{}
	ctx2, cancel2 := context.WithCancel(context.Background())
	go func() {
		exit <- run(ctx2, e, []string{"serve", "--addr", "127.0.0.1:0", "--data", data, "--models", modelsDir})
	}()
	for !strings.Contains(stdout2.String(), "admin console") {
		select {
		case code := <-exit:
			t.Fatalf("second start exited with %d", code)
		case <-time.After(20 * time.Millisecond):
		}
	}
	cancel2()
	if code := <-exit; code != 0 || strings.Contains(stdout2.String(), "Created user admin") {
		t.Errorf("second start: exit %d\n%s", code, stdout2)
	}
}

func TestHealthcheckFails(t *testing.T) {
	// Port 1 on loopback is closed: nothing answers.
	code, _, stderr := invoke(t, nil, "healthcheck", "--url", "http://127.0.0.1:1/healthz", "--timeout", "2s")
	if code != 1 || !strings.HasPrefix(stderr, "invigil: healthcheck http://127.0.0.1:1/healthz") {
		t.Errorf("unreachable: exit %d, stderr %q", code, stderr)
	}

	unhealthy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(http.StatusServiceUnavailable)
	}))
	defer unhealthy.Close()
	code, _, stderr = invoke(t, nil, "healthcheck", "--url", unhealthy.URL)
	if code != 1 || !strings.Contains(stderr, "503") {
		t.Errorf("503: exit %d, stderr %q", code, stderr)
	}
}
