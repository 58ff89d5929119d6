// Package api is Invigil's HTTP surface: health and readiness probes,
// Prometheus metrics and, with a store, the control plane's JSON API under
// /api/v1 (docs/API.md): staff and candidate logins, the candidate's stages,
// calls, scores, violations and their review, live events.
package api

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Options wires the server to what it reports on. Registry is required: the
// caller owns it, so tests read the metrics of their own server and several
// servers can live in one process.
type Options struct {
	Registry prometheus.Registerer
	// Gatherer is what /metrics serves (default: Registry, which must then
	// be a prometheus.Gatherer too, as *prometheus.Registry is). A caller
	// that labels every metric (the node's name) registers through a
	// wrapping Registerer and gathers from the registry beneath.
	Gatherer prometheus.Gatherer
	Logger   *slog.Logger
	// Version is reported in invigil_build_info.
	Version string
	// MaxBodyBytes caps every request body; 0 means 1 MiB.
	MaxBodyBytes int64
	// Ready reports whether the server can do its work (models loaded, store
	// open); nil means always ready. /readyz returns 503 with its error.
	Ready func(ctx context.Context) error

	// BodyTimeout is how long a request body may take to arrive once its
	// headers have (0: 10 s; negative: no limit). Requests without a body,
	// such as event streams and WebSockets, are not affected.
	BodyTimeout time.Duration
	// MaxConnsPerNetwork caps the connections one client network (an IPv4
	// address, an IPv6 /64) holds open at once; 0: no cap.
	MaxConnsPerNetwork int

	// MetricsToken, when set, is the bearer token /metrics requires
	// (Authorization: Bearer …); empty leaves /metrics open.
	MetricsToken string
	// MediaOnly is a media node's server: the API routes answer 404
	// (the control nodes serve them; a media node's Control is there only
	// for what the SFU and the pipeline need of it), while health,
	// readiness, metrics and what the caller mounts with Handle are served.
	MediaOnly bool

	// Control is the control plane; nil serves only health and metrics.
	Control *ControlOptions
}

// Server holds the handler tree and its metrics.
type Server struct {
	opts     Options
	log      *slog.Logger
	mux      *http.ServeMux
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
	// connsRefused counts connections refused by MaxConnsPerNetwork.
	connsRefused prometheus.Counter

	// The control plane; nil without Options.Control.
	ctl *handlers

	// closing is closed when shutdown begins, so long-lived event streams
	// end instead of holding http.Server.Shutdown until its deadline.
	closing     chan struct{}
	closingOnce sync.Once
}

// New builds the server and registers its metrics in opts.Registry.
func New(opts Options) (*Server, error) {
	if opts.Registry == nil {
		return nil, errors.New("api: Options.Registry is nil")
	}
	if opts.Gatherer == nil {
		g, ok := opts.Registry.(prometheus.Gatherer)
		if !ok {
			return nil, errors.New("api: Options.Gatherer is nil and Options.Registry cannot gather")
		}
		opts.Gatherer = g
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.MaxBodyBytes <= 0 {
		opts.MaxBodyBytes = 1 << 20
	}
	if opts.Version == "" {
		opts.Version = "dev"
	}
	if opts.BodyTimeout == 0 {
		opts.BodyTimeout = 10 * time.Second
	}
	s := &Server{
		opts:    opts,
		log:     opts.Logger,
		mux:     http.NewServeMux(),
		closing: make(chan struct{}),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "invigil_http_requests_total",
			Help: "HTTP requests served, by route pattern and status code.",
		}, []string{"route", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "invigil_http_request_duration_seconds",
			Help:    "Time to serve an HTTP request, by route pattern and status code (event streams: their whole life).",
			Buckets: prometheus.DefBuckets,
		}, []string{"route", "code"}),
	}
	s.connsRefused = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "invigil_http_connections_refused_total",
		Help: "Connections refused because their client network already held max_conns_per_network.",
	})
	buildInfo := prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "invigil_build_info",
		Help: "Always 1; the labels say which build is running.",
	}, []string{"version", "goversion"})
	buildInfo.WithLabelValues(opts.Version, runtime.Version()).Set(1)
	for _, c := range []prometheus.Collector{s.requests, s.duration, s.connsRefused, buildInfo} {
		if err := opts.Registry.Register(c); err != nil {
			return nil, fmt.Errorf("api: register metrics: %w", err)
		}
	}

	s.mux.HandleFunc("GET /healthz", s.healthz)
	s.mux.HandleFunc("GET /readyz", s.readyz)
	s.mux.Handle("GET /metrics", s.requireMetricsToken(promhttp.HandlerFor(opts.Gatherer, promhttp.HandlerOpts{
		ErrorLog: slog.NewLogLogger(opts.Logger.Handler(), slog.LevelError),
	})))
	if opts.Control != nil {
		ctl, err := newControl(s, *opts.Control)
		if err != nil {
			return nil, err
		}
		s.ctl = ctl
		s.mountRoutes()
	}
	return s, nil
}

// Handle mounts h at pattern (a net/http ServeMux pattern), behind the
// same metrics and body limit as the API's own routes: how cmd mounts what
// api must not import, such as the SFU's signaling WebSocket. Call it
// before Serve.
func (s *Server) Handle(pattern string, h http.Handler) {
	s.mux.Handle(pattern, h)
}

// Handler is the full handler chain: metrics outermost so that rejected
// bodies are counted too, then the body deadline and limit, then the
// routes.
func (s *Server) Handler() http.Handler {
	var routes http.Handler = s.mux
	if s.opts.MediaOnly {
		routes = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if strings.HasPrefix(r.URL.Path, "/api/") {
				s.writeError(w, r, errorf(http.StatusNotFound, "control_node_route",
					"this is a media node: the API is served by the control nodes"))
				return
			}
			s.mux.ServeHTTP(w, r)
		})
	}
	return s.instrument(noSniff(bodyDeadline(s.opts.BodyTimeout, limitBody(s.opts.MaxBodyBytes, routes))))
}

// noSniff sets X-Content-Type-Options on every answer, so that a browser
// never runs an upload, an error or a CSV as a script or a page because it
// guessed its type.
func noSniff(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Content-Type-Options", "nosniff")
		next.ServeHTTP(w, r)
	})
}

// requireMetricsToken guards /metrics with Options.MetricsToken. The
// digests are compared, in constant time, so neither the token's bytes nor
// its length leak through timing.
func (s *Server) requireMetricsToken(next http.Handler) http.Handler {
	if s.opts.MetricsToken == "" {
		return next
	}
	want := sha256.Sum256([]byte(s.opts.MetricsToken))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		sum := sha256.Sum256([]byte(strings.TrimSpace(got)))
		if !ok || subtle.ConstantTimeCompare(sum[:], want[:]) != 1 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="metrics"`)
			s.writeError(w, r, errorf(http.StatusUnauthorized, "unauthenticated", "/metrics needs Authorization: Bearer <metrics_token>"))
			return
		}
		next.ServeHTTP(w, r)
	})
}

// Serve serves on ln until ctx is done, then stops accepting connections and
// gives in-flight requests up to grace to finish. It returns nil after a
// clean shutdown and the listener's error if serving failed.
func (s *Server) Serve(ctx context.Context, ln net.Listener, grace time.Duration) error {
	srv := &http.Server{
		Handler: s.Handler(),
		// Slowloris protection: headers within 10 s, bodies within
		// BodyTimeout (bodyDeadline), idle keep-alive connections closed
		// after a minute; no global ReadTimeout or WriteTimeout, which
		// would cut long-lived event streams and WebSockets.
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       time.Minute,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
	}
	ln = limitConnsPerNetwork(ln, s.opts.MaxConnsPerNetwork, s.connsRefused)
	srv.RegisterOnShutdown(s.closeStreams)
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	select {
	case err := <-served:
		return fmt.Errorf("serve on %s: %w", ln.Addr(), err)
	case <-ctx.Done():
	}
	// ctx is done, so shutdown gets a fresh deadline of its own.
	shutdownCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), grace)
	defer cancel()
	shutdownErr := srv.Shutdown(shutdownCtx)
	if err := <-served; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("serve on %s: %w", ln.Addr(), err)
	}
	if shutdownErr != nil {
		// Requests still running past the grace period are cut off.
		_ = srv.Close()
		return fmt.Errorf("shutdown: %w", shutdownErr)
	}
	return nil
}

// closeStreams ends the event streams (shutdown is beginning).
func (s *Server) closeStreams() { s.closingOnce.Do(func() { close(s.closing) }) }

// healthz answers whether the process is alive; it checks nothing else so an
// orchestrator does not restart a server that is only waiting on a dependency.
func (s *Server) healthz(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

func (s *Server) readyz(w http.ResponseWriter, r *http.Request) {
	if s.opts.Ready != nil {
		if err := s.opts.Ready(r.Context()); err != nil {
			writeJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "not ready", "error": err.Error()})
			return
		}
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "ready"})
}

// instrument counts and times every request under its route pattern (never
// the raw path, which would give one time series per URL).
func (s *Server) instrument(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		rec := &statusRecorder{ResponseWriter: w, status: http.StatusOK}
		next.ServeHTTP(rec, r)
		// ServeMux records the matched pattern on the request it was given.
		route := r.Pattern
		if route == "" {
			route = "unmatched"
		}
		s.requests.WithLabelValues(route, strconv.Itoa(rec.status)).Inc()
		s.duration.WithLabelValues(route, strconv.Itoa(rec.status)).Observe(time.Since(start).Seconds())
	})
}

// limitBody rejects bodies over max bytes: at once when the declared length
// is too large, and through http.MaxBytesReader when the body is streamed.
func limitBody(max int64, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.ContentLength > max {
			writeJSON(w, http.StatusRequestEntityTooLarge, map[string]*apiError{"error": {
				Code: "body_too_large", Message: "request body larger than " + strconv.FormatInt(max, 10) + " bytes",
			}})
			return
		}
		if r.Body != nil {
			r.Body = http.MaxBytesReader(w, r.Body, max)
		}
		next.ServeHTTP(w, r)
	})
}

// statusRecorder remembers the status code a handler wrote.
type statusRecorder struct {
	http.ResponseWriter
	status      int
	wroteHeader bool
}

func (r *statusRecorder) WriteHeader(code int) {
	if !r.wroteHeader {
		r.status = code
		r.wroteHeader = true
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *statusRecorder) Write(b []byte) (int, error) {
	r.wroteHeader = true
	return r.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach Flush and Hijack (live events,
// WebSockets) through the recorder.
func (r *statusRecorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	// The client may have gone; there is nobody left to tell.
	_ = json.NewEncoder(w).Encode(v)
}
