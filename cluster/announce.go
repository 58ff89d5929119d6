package cluster

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
)

// AnnounceOptions describes the node that announces itself.
type AnnounceOptions struct {
	Node     string
	URL      string
	Capacity int
	// Load says how many candidates the node has now; it is called from
	// the announcer's goroutine once per heartbeat.
	Load func() int
	// Interval between heartbeats (default DefaultInterval).
	Interval time.Duration
	Logger   *slog.Logger
	// Key signs the heartbeats and is what drain requests must be signed
	// with (none: unsigned, unchecked).
	Key Key
}

// Announcer is a media node's voice: it sends a heartbeat every interval
// and answers drain requests, until Close.
type Announcer struct {
	nc       *nats.Conn
	o        AnnounceOptions
	draining atomic.Bool
	sub      *nats.Subscription
	stop     chan struct{}
	done     chan struct{}
	once     sync.Once
}

// Announce starts announcing the node on nc.
func Announce(nc *nats.Conn, o AnnounceOptions) (*Announcer, error) {
	if !ValidNode(o.Node) {
		return nil, fmt.Errorf("announce node %q: not a valid node name (letters, digits, '_' and '-')", o.Node)
	}
	if o.URL == "" {
		return nil, fmt.Errorf("announce node %s: no URL for browsers to reach it at", o.Node)
	}
	if o.Capacity <= 0 {
		return nil, fmt.Errorf("announce node %s: capacity %d, want at least 1", o.Node, o.Capacity)
	}
	if o.Load == nil {
		o.Load = func() int { return 0 }
	}
	if o.Interval <= 0 {
		o.Interval = DefaultInterval
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	a := &Announcer{nc: nc, o: o, stop: make(chan struct{}), done: make(chan struct{})}
	sub, err := nc.Subscribe(subjectDrain+o.Node, a.onDrain)
	if err != nil {
		return nil, fmt.Errorf("announce node %s: listen for drain requests: %w", o.Node, err)
	}
	a.sub = sub
	// The first heartbeat goes out before Announce returns, so a control
	// node hears of this one at once.
	if err := a.beat(false); err != nil {
		_ = sub.Unsubscribe()
		return nil, err
	}
	go a.run()
	return a, nil
}

// Draining reports whether the node was asked to take no new exams.
func (a *Announcer) Draining() bool { return a.draining.Load() }

func (a *Announcer) heartbeat(leaving bool) Heartbeat {
	return Heartbeat{Node: a.o.Node, URL: a.o.URL, Capacity: a.o.Capacity, Load: max(a.o.Load(), 0),
		Draining: a.draining.Load(), Leaving: leaving, At: time.Now().UTC()}
}

func (a *Announcer) beat(leaving bool) error {
	b, err := json.Marshal(a.heartbeat(leaving))
	if err != nil {
		return fmt.Errorf("heartbeat of %s: %w", a.o.Node, err)
	}
	if err := a.nc.PublishMsg(a.o.Key.message(SubjectHeartbeat, b)); err != nil {
		return fmt.Errorf("heartbeat of %s: %w", a.o.Node, err)
	}
	return nil
}

func (a *Announcer) run() {
	defer close(a.done)
	tick := time.NewTicker(a.o.Interval)
	defer tick.Stop()
	for {
		select {
		case <-a.stop:
			return
		case <-tick.C:
			// While NATS is away the client buffers; a failure here is a
			// closed connection, said once a beat until Close.
			if err := a.beat(false); err != nil {
				a.o.Logger.Warn("cannot announce this node", "node", a.o.Node, "err", err)
			}
		}
	}
}

// onDrain answers a drain request with the heartbeat that says so.
func (a *Announcer) onDrain(m *nats.Msg) {
	if err := a.o.Key.check(m); err != nil {
		// No answer: the sender learns nothing, as from a node that is not
		// there.
		a.o.Logger.Warn("refused a drain request", "node", a.o.Node, "err", err)
		return
	}
	if !a.draining.Swap(true) {
		a.o.Logger.Info("node draining: no new exams are placed here", "node", a.o.Node)
	}
	b, err := json.Marshal(a.heartbeat(false))
	if err == nil {
		_ = a.beat(false)
		err = m.Respond(b)
	}
	if err != nil {
		a.o.Logger.Warn("cannot answer a drain request", "node", a.o.Node, "err", err)
	}
}

// Close stops the heartbeats and says goodbye, so that control nodes
// place this node's exams elsewhere at once rather than after the missed
// heartbeats.
func (a *Announcer) Close() error {
	var err error
	a.once.Do(func() {
		close(a.stop)
		<-a.done
		err = errors.Join(a.sub.Unsubscribe(), a.beat(true), a.nc.Flush())
	})
	if err != nil {
		return fmt.Errorf("stop announcing node %s: %w", a.o.Node, err)
	}
	return nil
}

// Drain asks node to take no new exams and returns its answer; key signs
// the request.
func Drain(nc *nats.Conn, node string, timeout time.Duration, key Key) (Heartbeat, error) {
	if !ValidNode(node) {
		return Heartbeat{}, fmt.Errorf("drain %q: not a valid node name", node)
	}
	m, err := nc.RequestMsg(key.message(subjectDrain+node, nil), timeout)
	if errors.Is(err, nats.ErrNoResponders) || errors.Is(err, nats.ErrTimeout) {
		return Heartbeat{}, fmt.Errorf("drain %s: no such node answers (is it running, with the same NATS and cluster key?): %w", node, err)
	}
	if err != nil {
		return Heartbeat{}, fmt.Errorf("drain %s: %w", node, err)
	}
	h, err := decodeHeartbeat(m.Data)
	if err != nil {
		return Heartbeat{}, fmt.Errorf("drain %s: the answer: %w", node, err)
	}
	return h, nil
}
