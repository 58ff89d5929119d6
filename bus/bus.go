// Package bus is what several Invigil nodes tell each other over NATS: that
// an exam's event log grew (a nudge on invigil.events.<exam>, so every
// control node's event streams read the new events from the shared store),
// and the violations the media plane hands the control plane, through a
// JetStream stream with acknowledgement so that a control node's restart
// loses none.
//
// The api package knows nothing of NATS: it owns the small interfaces this
// package fills (control.EventNotifier) and cmd/invigil wires the two together.
// Without a NATS URL none of this runs and a node keeps both inside its
// process.
package bus

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nuid"
	"github.com/prometheus/client_golang/prometheus"
)

// Options configures a connection; zero values take the defaults.
type Options struct {
	// Name tells this node apart in the server's connection list.
	Name   string
	Logger *slog.Logger
	// Registry receives the metrics (default: none registered).
	Registry prometheus.Registerer
	// OnReconnect runs after the connection came back from an outage, on
	// the client's callback goroutine: what was published meanwhile to
	// plain subjects (the event nudges) may never have arrived.
	OnReconnect func()
}

// Conn is one node's connection to NATS. It reconnects by itself, for
// ever, and buffers what is published while it is away.
type Conn struct {
	nc   *nats.Conn
	js   jetstream.JetStream
	log  *slog.Logger
	node string // tells this node's own nudges apart from the others'
	m    metrics

	mu      sync.Mutex
	onRecon func()
}

type metrics struct {
	nudgesSent     prometheus.Counter
	nudgesReceived prometheus.Counter
	badMessages    *prometheus.CounterVec
	stored         prometheus.Counter
	retries        prometheus.Counter
	rejected       prometheus.Counter
	shrunk         prometheus.Counter
}

// Connect connects to the NATS server(s) at natsURL (comma-separated, as
// the NATS client takes them). It fails when no server answers now: a node
// configured for NATS that cannot reach it at start is misconfigured, and
// one clear error beats serving alone.
func Connect(ctx context.Context, natsURL string, o Options) (*Conn, error) {
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	c := &Conn{log: o.Logger.With("component", "nats"), node: nuid.Next(), onRecon: o.OnReconnect}
	c.m = metrics{
		nudgesSent: prometheus.NewCounter(prometheus.CounterOpts{Name: "invigil_nats_event_nudges_sent_total",
			Help: "Nudges published to the other nodes after a commit that added live events."}),
		nudgesReceived: prometheus.NewCounter(prometheus.CounterOpts{Name: "invigil_nats_event_nudges_received_total",
			Help: "Nudges received from other nodes, each waking this node's event streams of one exam."}),
		badMessages: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "invigil_nats_bad_messages_total",
			Help: "Messages received over NATS that could not be read and were dropped, by stream (events, violations)."}, []string{"stream"}),
		stored: prometheus.NewCounter(prometheus.CounterOpts{Name: "invigil_nats_violations_stored_total",
			Help: "Violation messages taken from JetStream, stored and acknowledged."}),
		retries: prometheus.NewCounter(prometheus.CounterOpts{Name: "invigil_nats_violations_retries_total",
			Help: "Violation messages whose storing failed and that JetStream delivers again."}),
		rejected: prometheus.NewCounter(prometheus.CounterOpts{Name: "invigil_nats_violations_rejected_total",
			Help: "Violation messages the control plane rejected for good (logged, then taken off the stream)."}),
		shrunk: prometheus.NewCounter(prometheus.CounterOpts{Name: "invigil_nats_violations_shrunk_total",
			Help: "Violations published without their audio clip or evidence image, which did not fit the server's max_payload."}),
	}
	if o.Registry != nil {
		for _, col := range []prometheus.Collector{c.m.nudgesSent, c.m.nudgesReceived, c.m.badMessages,
			c.m.stored, c.m.retries, c.m.rejected, c.m.shrunk} {
			if err := o.Registry.Register(col); err != nil {
				return nil, fmt.Errorf("nats: register metrics: %w", err)
			}
		}
	}
	name := "invigil"
	if o.Name != "" {
		name += " " + o.Name
	}
	nc, err := nats.Connect(natsURL,
		nats.Name(name),
		nats.Timeout(5*time.Second),
		// A node outlives any outage of NATS: it keeps serving its own
		// clients and catches up when the server is back.
		nats.MaxReconnects(-1),
		nats.ReconnectWait(time.Second),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			c.log.Warn("disconnected from NATS; reconnecting", "err", err)
		}),
		nats.ReconnectHandler(func(nc *nats.Conn) {
			c.log.Info("reconnected to NATS", "server", redact(nc.ConnectedUrl()))
			c.mu.Lock()
			f := c.onRecon
			c.mu.Unlock()
			if f != nil {
				f()
			}
		}),
		nats.ErrorHandler(func(_ *nats.Conn, sub *nats.Subscription, err error) {
			subject := ""
			if sub != nil {
				subject = sub.Subject
			}
			c.log.Warn("NATS reports an error", "subject", subject, "err", err)
		}),
	)
	if err != nil {
		return nil, fmt.Errorf("connect to NATS at %s: %w", redact(natsURL), err)
	}
	c.nc = nc
	if c.js, err = jetstream.New(nc); err != nil {
		nc.Close()
		return nil, fmt.Errorf("nats: JetStream: %w", err)
	}
	if err := c.Ping(ctx); err != nil {
		nc.Close()
		return nil, fmt.Errorf("connect to NATS at %s: %w", redact(natsURL), err)
	}
	c.log.Info("connected to NATS", "server", redact(nc.ConnectedUrl()), "max_payload", nc.MaxPayload())
	return c, nil
}

// SetOnReconnect replaces Options.OnReconnect (for what exists only after
// the connection, such as the API server).
func (c *Conn) SetOnReconnect(f func()) {
	c.mu.Lock()
	c.onRecon = f
	c.mu.Unlock()
}

// Ping checks the connection with a round trip to the server, for
// /readyz.
func (c *Conn) Ping(ctx context.Context) error {
	if s := c.nc.Status(); s != nats.CONNECTED {
		return fmt.Errorf("nats: %s", strings.ToLower(s.String()))
	}
	if _, ok := ctx.Deadline(); !ok {
		// The client insists on a deadline.
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
	}
	if err := c.nc.FlushWithContext(ctx); err != nil {
		return fmt.Errorf("nats: %w", err)
	}
	return nil
}

// MaxPayload is the largest message the server takes (its max_payload).
func (c *Conn) MaxPayload() int { return int(c.nc.MaxPayload()) }

// Close sends what is still buffered (for up to 5 s) and disconnects.
// Stop the consumers first.
func (c *Conn) Close() {
	if err := c.nc.FlushTimeout(5 * time.Second); err != nil && !errors.Is(err, nats.ErrConnectionClosed) {
		c.log.Warn("NATS: not everything buffered was sent before closing", "err", err)
	}
	c.nc.Close()
}

// redact shows a NATS URL (or a comma-separated list) without passwords
// or tokens.
func redact(urls string) string {
	parts := strings.Split(urls, ",")
	for i, p := range parts {
		u, err := url.Parse(strings.TrimSpace(p))
		if err != nil {
			parts[i] = "(unreadable URL)"
			continue
		}
		if u.User != nil {
			// The user part may be a token (nats://TOKEN@host), so it all
			// goes, not only a password.
			u.User = url.User("xxxxx")
		}
		parts[i] = u.Redacted()
	}
	return strings.Join(parts, ",")
}

// slogWarnThenError is the level of the n-th failure in a row: a short
// outage is routine, a long one an incident.
func slogWarnThenError(n int) slog.Level {
	if n > 5 {
		return slog.LevelError
	}
	return slog.LevelWarn
}
