package api

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// startServer runs a real server on a loopback port and stops it when the
// test ends, failing the test if the shutdown was not clean.
func startServer(t *testing.T, opts Options) string {
	t.Helper()
	if opts.Registry == nil {
		opts.Registry = prometheus.NewRegistry()
	}
	opts.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	s, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	return serveOnLoopback(t, s)
}

// serveOnLoopback serves s on a loopback port until the test ends and
// returns its base URL.
func serveOnLoopback(t *testing.T, s *Server) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx, ln, 5*time.Second) }()
	t.Cleanup(func() {
		// Concurrent requests make the client dial spare connections that
		// never carry a request; the server's shutdown waits 5 s (the grace
		// here) before it counts such a new connection as idle, so close
		// them from the client's side first.
		http.DefaultClient.CloseIdleConnections()
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
	})
	return "http://" + ln.Addr().String()
}

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b)
}

func TestHealthz(t *testing.T) {
	base := startServer(t, Options{})
	code, body := get(t, base+"/healthz")
	if code != http.StatusOK || strings.TrimSpace(body) != `{"status":"ok"}` {
		t.Fatalf("GET /healthz = %d %q", code, body)
	}
}

func TestReadyz(t *testing.T) {
	var notReady error = errors.New("models not loaded")
	base := startServer(t, Options{Ready: func(context.Context) error { return notReady }})
	code, body := get(t, base+"/readyz")
	if code != http.StatusServiceUnavailable || !strings.Contains(body, "models not loaded") {
		t.Fatalf("GET /readyz while not ready = %d %q", code, body)
	}
	notReady = nil
	if code, body := get(t, base+"/readyz"); code != http.StatusOK {
		t.Fatalf("GET /readyz when ready = %d %q", code, body)
	}
}

func TestMetrics(t *testing.T) {
	base := startServer(t, Options{Version: "v9.9.9"})
	get(t, base+"/healthz")
	get(t, base+"/healthz")
	get(t, base+"/no/such/page")
	code, body := get(t, base+"/metrics")
	if code != http.StatusOK {
		t.Fatalf("GET /metrics = %d", code)
	}
	for _, want := range []string{
		`invigil_http_requests_total{code="200",route="GET /healthz"} 2`,
		`invigil_http_requests_total{code="404",route="unmatched"} 1`,
		`invigil_http_request_duration_seconds_count{code="200",route="GET /healthz"} 2`,
		`invigil_build_info{goversion="go`,
		`version="v9.9.9"} 1`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %q; got:\n%s", want, body)
		}
	}
}

func TestBodyLimit(t *testing.T) {
	base := startServer(t, Options{MaxBodyBytes: 16})
	resp, err := http.Post(base+"/healthz", "application/json", strings.NewReader(strings.Repeat("x", 17)))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestEntityTooLarge {
		t.Fatalf("17-byte body with a 16-byte limit: status %d", resp.StatusCode)
	}
}

// A streamed body with no declared length must be cut at the limit too.
func TestBodyLimitStreamed(t *testing.T) {
	var readErr error
	h := limitBody(16, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, readErr = io.ReadAll(r.Body)
	}))
	base := "http://" + serveHandler(t, h)
	req, err := http.NewRequest(http.MethodPost, base, io.NopCloser(strings.NewReader(strings.Repeat("x", 100))))
	if err != nil {
		t.Fatal(err)
	}
	req.ContentLength = -1
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	var tooLarge *http.MaxBytesError
	if !errors.As(readErr, &tooLarge) {
		t.Fatalf("reading a 100-byte chunked body under a 16-byte limit: %v", readErr)
	}
}

func serveHandler(t *testing.T, h http.Handler) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second}
	done := make(chan struct{})
	go func() { defer close(done); _ = srv.Serve(ln) }()
	t.Cleanup(func() { srv.Close(); <-done })
	return ln.Addr().String()
}

func TestNewNeedsRegistry(t *testing.T) {
	if _, err := New(Options{}); err == nil {
		t.Fatal("New without a registry succeeded")
	}
}

// Two servers in one process need two registries, never a global one.
func TestSeparateRegistries(t *testing.T) {
	for range 2 {
		if _, err := New(Options{Registry: prometheus.NewRegistry()}); err != nil {
			t.Fatal(err)
		}
	}
}
