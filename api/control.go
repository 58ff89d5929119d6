package api

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"runtime"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"invigil/contract"
	"invigil/control"
	"invigil/stage"
	"invigil/store"
)

// ControlOptions configures the control plane.
type ControlOptions struct {
	Store *store.Store
	// DataDir is where evidence images and recordings live; stored paths
	// are relative to it.
	DataDir string
	// Media and Analysis may be nil (an API-only server, tests of the flow
	// without media): calls then connect nobody and policies go nowhere.
	Media    control.MediaControl
	Analysis control.Analysis
	// MediaKey signs the SFU join tokens the API hands out (≥ 16 bytes).
	MediaKey []byte
	// EarlyLogin is how long before an exam's start candidates may log in
	// when the exam does not say (default 45 minutes).
	EarlyLogin time.Duration
	// CodeAttempts wrong codes from one client network (an IPv4 address,
	// an IPv6 /64) before it must wait (default 5); CodeAlertAddresses
	// networks with wrong codes in 10 minutes raise the guessing alert
	// (default 20).
	CodeAttempts       int
	CodeAlertAddresses int
	// CodeFailuresPerMinute is the global ceiling of wrong codes a minute
	// from all networks together (default 30); beyond it every code login
	// waits and the guessing alert is raised.
	CodeFailuresPerMinute int
	// LoginAttempts wrong staff passwords for one username (default 5),
	// LoginNetworkAttempts from one client network (default 20), before
	// each further one owes a growing wait.
	LoginAttempts        int
	LoginNetworkAttempts int
	// RateLimitKeys caps the networks or usernames each limiter tracks
	// (default 65536); see failureLimiter for what happens at the cap.
	RateLimitKeys int
	// HashConcurrency is how many password hashes may run at once
	// (default GOMAXPROCS); HashWait how long a login waits for a turn
	// before it is answered 503 (default 5 s).
	HashConcurrency int
	HashWait        time.Duration
	// SecureCookies marks login cookies Secure even on plain HTTP, for a
	// server behind a proxy that terminates TLS.
	SecureCookies bool
	// StaffSession is how long a staff login lasts (default 12 h);
	// candidates' logins last until their exam ends plus a day.
	StaffSession time.Duration
	// RiskWeights are the points per violation type (default: see
	// config.DefaultRiskWeights); a type not listed weighs 10.
	RiskWeights map[string]float64
	// Now is the clock (default time.Now); tests move it.
	Now func() time.Time
	// Events, when set, hears of every commit that added events, so that
	// other control nodes sharing the store wake their event streams too
	// (they call Server.NudgeEvents); nil: one node, whose own streams are
	// all there is.
	Events control.EventNotifier
	// Placement, if set, says which media node an exam's rooms live on
	// (several nodes): the media token then answers that node's
	// WebSocket URL. Nil: this process's own SFU, at SignallingPath.
	Placement control.MediaPlacement
	// Node is this node's name among several: a violation's evidence
	// written here is stored as this node's, and a file stored as another
	// node's is fetched through Files. Empty: one process, every file is
	// in DataDir (as are those of rows that name no node).
	Node string
	// Files fetches files held by other nodes; nil: a file on another
	// node answers 503 file_node_unavailable.
	Files RemoteFiles
}

// RemoteFiles fetches a file from another node's data directory (cmd
// implements it over the nodes' internal endpoint), so that a control node
// serves recordings and evidence wherever they were written.
type RemoteFiles interface {
	// Open asks node for the file at rel (relative to its data directory)
	// with the caller's Range header ("" for all of it). The answer's
	// Status is what the node said (200, 206, 416); errors wrap
	// ErrNodeUnavailable (the node is gone or does not answer) or
	// ErrRemoteFileMissing (it has no such file), or say what else failed.
	Open(ctx context.Context, node, rel, rangeHeader string) (*RemoteFile, error)
}

// RemoteFile is another node's answer for a file: its status, the headers
// that describe the body (Content-Length, Content-Range, Accept-Ranges,
// Last-Modified) and the body, which the caller closes.
type RemoteFile struct {
	Status int
	Header http.Header
	Body   io.ReadCloser
}

// Errors of RemoteFiles.Open.
var (
	ErrNodeUnavailable   = errors.New("the node holding the file is not available")
	ErrRemoteFileMissing = errors.New("the node holding the file does not have it")
)

// handlers is the API's side of the control plane: the route handlers,
// logins and their limiters over the plane's rules.
type handlers struct {
	opts   ControlOptions
	plane  *control.Plane
	st     *store.Store
	log    *slog.Logger
	now    func() time.Time
	limit  *codeLimiter
	logins *loginLimiter
	hashes *hashGate
	m      controlMetrics
	// signals limits each candidate's browser reports.
	signals *signalLimiter
	// closing is the server's: closed when shutdown begins.
	closing <-chan struct{}
}

type controlMetrics struct {
	violations      *prometheus.CounterVec
	codeFailures    prometheus.Counter
	guessingAlert   prometheus.Gauge
	eventsDelivered *prometheus.CounterVec
	logins          *prometheus.CounterVec
	hashesRunning   prometheus.Gauge
}

func newControl(s *Server, o ControlOptions) (*handlers, error) {
	if o.Store == nil {
		return nil, errors.New("api: ControlOptions.Store is nil")
	}
	if o.DataDir == "" {
		return nil, errors.New("api: ControlOptions.DataDir is empty")
	}
	if len(o.MediaKey) == 0 {
		o.MediaKey = make([]byte, 32)
		if _, err := rand.Read(o.MediaKey); err != nil {
			return nil, fmt.Errorf("api: make a media key: %w", err)
		}
	}
	if len(o.MediaKey) < 16 {
		return nil, errors.New("api: MediaKey must be at least 16 bytes")
	}
	if o.EarlyLogin == 0 {
		o.EarlyLogin = 45 * time.Minute
	}
	if o.CodeAttempts <= 0 {
		o.CodeAttempts = 5
	}
	if o.CodeAlertAddresses <= 0 {
		o.CodeAlertAddresses = 20
	}
	if o.CodeFailuresPerMinute <= 0 {
		o.CodeFailuresPerMinute = 30
	}
	if o.LoginAttempts <= 0 {
		o.LoginAttempts = 5
	}
	if o.LoginNetworkAttempts <= 0 {
		o.LoginNetworkAttempts = 20
	}
	if o.RateLimitKeys <= 0 {
		o.RateLimitKeys = defaultLimiterKeys
	}
	if o.HashConcurrency <= 0 {
		o.HashConcurrency = runtime.GOMAXPROCS(0)
	}
	if o.HashWait <= 0 {
		o.HashWait = 5 * time.Second
	}
	if o.StaffSession <= 0 {
		o.StaffSession = 12 * time.Hour
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	violations := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "invigil_violations_total", Help: "Violations stored, by type.",
	}, []string{"type"})
	plane, err := control.New(control.Options{Store: o.Store, DataDir: o.DataDir, Node: o.Node,
		Media: o.Media, Analysis: o.Analysis, Placement: o.Placement, Events: o.Events,
		EarlyLogin: o.EarlyLogin, RiskWeights: o.RiskWeights, Now: o.Now, Logger: s.log,
		ViolationStored: func(typ string) { violations.WithLabelValues(typ).Inc() }})
	if err != nil {
		return nil, fmt.Errorf("api: %w", err)
	}
	c := &handlers{opts: o, plane: plane, st: o.Store, log: s.log, now: o.Now, closing: s.closing,
		signals: &signalLimiter{times: map[int64][]time.Time{}}}
	c.m = controlMetrics{
		violations: violations,
		codeFailures: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "invigil_code_attempts_failed_total", Help: "Invitation codes entered that matched no active code (or were refused while rate-limited).",
		}),
		guessingAlert: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "invigil_code_guessing_alert", Help: "1 while many client networks sent wrong invitation codes, or the ceiling of wrong codes a minute was reached, within the last 10 minutes (a distributed guess), else 0.",
		}),
		eventsDelivered: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "invigil_events_delivered_total", Help: "Live events written to event streams, by stream (staff, candidate).",
		}, []string{"stream"}),
		logins: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "invigil_logins_total", Help: "Login attempts by kind (staff, candidate) and result.",
		}, []string{"kind", "result"}),
		hashesRunning: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "invigil_password_hashes_running", Help: "Password hashes (argon2id, 19 MiB each) being computed now; at most hash_concurrency.",
		}),
	}
	c.limit = newCodeLimiter(o.CodeAttempts, o.CodeAlertAddresses, o.CodeFailuresPerMinute, o.RateLimitKeys, c.m.guessingAlert)
	c.logins = newLoginLimiter(o.LoginAttempts, o.LoginNetworkAttempts, o.RateLimitKeys)
	c.hashes = newHashGate(o.HashConcurrency, o.HashWait, c.m.hashesRunning)
	limiterKeys := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "invigil_rate_limit_keys",
		Help: "Keys a rate limiter tracks now (networks or usernames with recent failures), by limiter; each is capped at RateLimitKeys."},
		[]string{"limiter"})
	trackedKeys := &limiterCollector{gauge: limiterKeys, limiters: map[string]*failureLimiter{
		"code_network": c.limit.nets, "login_username": c.logins.users, "login_network": c.logins.nets}}
	sessions := &stageCollector{st: o.Store, desc: prometheus.NewDesc("invigil_sessions",
		"Candidates by stage (from the store, at scrape time).", []string{"stage"}, nil), log: s.log}
	for _, col := range []prometheus.Collector{c.m.violations, c.m.codeFailures, c.m.guessingAlert,
		c.m.eventsDelivered, c.m.logins, c.m.hashesRunning, trackedKeys, sessions} {
		if err := s.opts.Registry.Register(col); err != nil {
			return nil, fmt.Errorf("api: register metrics: %w", err)
		}
	}
	return c, nil
}

// limiterCollector reports the size of the limiters' tables at scrape time.
type limiterCollector struct {
	gauge    *prometheus.GaugeVec
	limiters map[string]*failureLimiter
}

func (c *limiterCollector) Describe(ch chan<- *prometheus.Desc) { c.gauge.Describe(ch) }

func (c *limiterCollector) Collect(ch chan<- prometheus.Metric) {
	for name, l := range c.limiters {
		c.gauge.WithLabelValues(name).Set(float64(l.tracked()))
	}
	c.gauge.Collect(ch)
}

// stageCollector reports candidates by stage at scrape time, so the gauge
// is right after a restart without replaying anything.
type stageCollector struct {
	st   *store.Store
	desc *prometheus.Desc
	log  *slog.Logger
}

func (c *stageCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

func (c *stageCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	counts, err := c.st.CountCandidatesByStage(ctx)
	if err != nil {
		c.log.Warn("count candidates by stage for /metrics", "err", err)
		return
	}
	for _, s := range stage.All {
		ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, float64(counts[s]), string(s))
	}
}

// SFU identities. The SFU sees only these strings; the control plane
// maps them back.
func candidateIdentity(id int64) string { return contract.CandidateIdentity(id) }

// ParseCandidateIdentity is candidateIdentity's inverse.
func ParseCandidateIdentity(identity string) (int64, bool) {
	return contract.ParseCandidateIdentity(identity)
}

// NudgeEvents wakes this node's event streams of an exam, which then read
// what is new from the store: another node committed events there (or
// changed who may watch).
func (s *Server) NudgeEvents(exam int64) {
	if s.ctl != nil {
		s.ctl.plane.WakeWatchers(exam)
	}
}

// NudgeAllEvents wakes every event stream of this node, for when nudges
// from other nodes may have been lost (the connection that carries them
// was down a while).
func (s *Server) NudgeAllEvents() {
	if s.ctl != nil {
		s.ctl.plane.WakeAllWatchers()
	}
}
