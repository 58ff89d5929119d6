// Package outbox is a durable, ordered queue on disk between a producer
// that must not lose a message and a consumer that may be unavailable for a
// while (a database whose write lock someone else holds, a full disk).
//
// Append returns once the entry is on disk (the file and its directory
// fsynced), which is the producer's acknowledgement: from then on the entry
// survives a crash and is replayed on the next Open. One drainer goroutine
// hands the entries to a Deliverer in the order they were appended,
// retrying with capped exponential backoff; an entry the Deliverer rejects
// for good (an error wrapping ErrRejected) moves to the dead-letter folder
// and the queue goes on. Delivery is at least once: a crash after the
// consumer stored an entry but before the outbox removed it delivers it
// again, so the consumer must be idempotent by the entry's key.
//
// Files under Dir:
//
//	<seq>.entry          queued entries, seq a zero-padded decimal
//	.tmp-*               an Append cut short by a crash; never acknowledged, removed on Open
//	dead/<name>.entry    entries rejected for good or unreadable, with <name>.reason
//
// Metrics (registered on Config.Registry, <name> from Config.Name):
//
//	invigil_<name>_outbox_pending                 entries waiting for delivery
//	invigil_<name>_outbox_delivered_total         entries delivered
//	invigil_<name>_outbox_retries_total           failed delivery attempts that will be retried
//	invigil_<name>_outbox_failed_total{reason}    entries given up on: rejected, corrupt
package outbox

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"invigil/internal/durable"
)

// ErrRejected marks a delivery error that retrying cannot fix (the entry
// names something that does not exist, or is invalid). Wrap it:
// fmt.Errorf("%w: %w", outbox.ErrRejected, err).
var ErrRejected = errors.New("rejected for good")

// ErrClosed is returned by Append after Close.
var ErrClosed = errors.New("outbox closed")

// Deliverer takes entries out of the outbox. A nil error means the entry is
// stored for good and may be forgotten. It is called from one goroutine, in
// order, and must honor ctx.
type Deliverer interface {
	Deliver(ctx context.Context, e Entry) error
}

// Config configures an Outbox; zero values take the defaults.
type Config struct {
	// Dir holds the queue (created if missing).
	Dir string
	// Name goes into the metric names: invigil_<Name>_outbox_… (required).
	Name string
	// Registry receives the metrics (default: none registered).
	Registry prometheus.Registerer
	Logger   *slog.Logger
	// MinBackoff and MaxBackoff bound the wait between failed attempts at
	// the head entry, doubling from one to the other (default 100 ms, 5 s).
	MinBackoff, MaxBackoff time.Duration
	// AttemptTimeout bounds one delivery (default 1 min).
	AttemptTimeout time.Duration
}

const (
	entrySuffix = ".entry"
	deadDir     = "dead"
	// A failure is logged as a warning until this many attempts in a row,
	// then as an error: a short lock is routine, a long one is an incident.
	quietAttempts = 5
)

type item struct {
	seq       uint64
	kind, key string
}

func (it item) name() string  { return fmt.Sprintf("%020d%s", it.seq, entrySuffix) }
func (it item) ident() string { return it.kind + "\x00" + it.key }

// Outbox is a durable queue. Its methods may be called from many
// goroutines.
type Outbox struct {
	cfg Config
	log *slog.Logger
	m   metrics

	// appendMu serializes Appends, so entries reach the queue in sequence
	// order, without holding mu (which the drainer needs) during fsyncs.
	appendMu sync.Mutex

	mu      sync.Mutex
	queue   []item
	queued  map[string]bool // item.ident() of every queued entry
	nextSeq uint64
	closed  bool
	changed chan struct{} // closed and replaced whenever queue changes
	wake    chan struct{} // tells the drainer there is work (buffer 1)

	started bool
	stop    context.CancelFunc
	done    chan struct{}
	// drainOut tells the drainer to end once the queue is empty.
	drainOut chan struct{}
}

type metrics struct {
	pending   prometheus.Gauge
	delivered prometheus.Counter
	retries   prometheus.Counter
	failed    *prometheus.CounterVec
}

// Failure reasons of invigil_<name>_outbox_failed_total.
const (
	ReasonRejected = "rejected"
	ReasonCorrupt  = "corrupt"
)

// Open opens (or creates) the queue in cfg.Dir: it removes appends a crash
// cut short, moves unreadable entries to the dead-letter folder, and queues
// the rest for replay in their order. The drainer starts with Start.
func Open(cfg Config) (*Outbox, error) {
	if cfg.Dir == "" || cfg.Name == "" {
		return nil, errors.New("open outbox: Dir and Name are required")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.MinBackoff <= 0 {
		cfg.MinBackoff = 100 * time.Millisecond
	}
	if cfg.MaxBackoff <= 0 {
		// A proctor waits for what is queued: after a long lock the first
		// retry past its end comes within a few seconds, and a retry
		// against SQLite costs next to nothing.
		cfg.MaxBackoff = 5 * time.Second
	}
	if cfg.MaxBackoff < cfg.MinBackoff {
		cfg.MaxBackoff = cfg.MinBackoff
	}
	if cfg.AttemptTimeout <= 0 {
		cfg.AttemptTimeout = time.Minute
	}
	o := &Outbox{cfg: cfg, log: cfg.Logger.With("outbox", cfg.Name), queued: map[string]bool{}, nextSeq: 1,
		changed: make(chan struct{}), wake: make(chan struct{}, 1)}
	prefix := "invigil_" + cfg.Name + "_outbox_"
	o.m = metrics{
		pending: prometheus.NewGauge(prometheus.GaugeOpts{Name: prefix + "pending",
			Help: "Entries on disk waiting for delivery."}),
		delivered: prometheus.NewCounter(prometheus.CounterOpts{Name: prefix + "delivered_total",
			Help: "Entries delivered and removed from the outbox."}),
		retries: prometheus.NewCounter(prometheus.CounterOpts{Name: prefix + "retries_total",
			Help: "Failed delivery attempts that will be retried (database locked, disk errors)."}),
		failed: prometheus.NewCounterVec(prometheus.CounterOpts{Name: prefix + "failed_total",
			Help: "Entries given up on and moved to the dead-letter folder, by reason (rejected, corrupt); stays 0 in a healthy system."},
			[]string{"reason"}),
	}
	o.m.failed.WithLabelValues(ReasonRejected)
	o.m.failed.WithLabelValues(ReasonCorrupt)
	if cfg.Registry != nil {
		for _, c := range []prometheus.Collector{o.m.pending, o.m.delivered, o.m.retries, o.m.failed} {
			if err := cfg.Registry.Register(c); err != nil {
				return nil, fmt.Errorf("open outbox %s: register metrics: %w", cfg.Dir, err)
			}
		}
	}
	if err := os.MkdirAll(filepath.Join(cfg.Dir, deadDir), 0o750); err != nil {
		return nil, fmt.Errorf("open outbox: %w", err)
	}
	if err := o.load(); err != nil {
		return nil, err
	}
	o.m.pending.Set(float64(len(o.queue)))
	if n := len(o.queue); n > 0 {
		o.log.Info("outbox replays entries left from the last run", "pending", n, "dir", cfg.Dir)
	}
	return o, nil
}

// load reads what a previous run left in the directory.
func (o *Outbox) load() error {
	des, err := os.ReadDir(o.cfg.Dir)
	if err != nil {
		return fmt.Errorf("open outbox: %w", err)
	}
	for _, de := range des {
		name := de.Name()
		path := filepath.Join(o.cfg.Dir, name)
		switch {
		case de.IsDir():
			continue
		case durable.IsTemp(name):
			// Append had not returned, so nobody was told this entry is
			// safe: dropping it loses nothing that was acknowledged.
			o.log.Warn("removing an outbox entry whose writing a crash cut short (it was never acknowledged)", "file", path)
			if err := os.Remove(path); err != nil {
				o.log.Error("cannot remove an unfinished outbox entry", "file", path, "err", err)
			}
			continue
		case !strings.HasSuffix(name, entrySuffix):
			continue
		}
		seq, err := strconv.ParseUint(strings.TrimSuffix(name, entrySuffix), 10, 64)
		if err != nil || seq == 0 {
			o.quarantine(name, ReasonCorrupt, fmt.Errorf("%w: file name %q is not a sequence number", errCorrupt, name))
			continue
		}
		e, err := readEntry(path)
		if err != nil {
			if errors.Is(err, errCorrupt) {
				o.quarantine(name, ReasonCorrupt, err)
				continue
			}
			return fmt.Errorf("open outbox: %w", err)
		}
		it := item{seq: seq, kind: e.Kind, key: e.Key}
		o.queue = append(o.queue, it)
		o.queued[it.ident()] = true
		if seq >= o.nextSeq {
			o.nextSeq = seq + 1
		}
	}
	sort.Slice(o.queue, func(i, j int) bool { return o.queue[i].seq < o.queue[j].seq })
	return nil
}

func readEntry(path string) (Entry, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return Entry{}, fmt.Errorf("read outbox entry %s: %w", path, err)
	}
	e, err := decodeEntry(b)
	if err != nil {
		return Entry{}, fmt.Errorf("outbox entry %s: %w", path, err)
	}
	return e, nil
}

// Append stores e durably and queues it for delivery. When it returns nil
// the entry is on disk and will be delivered even after a crash. An entry
// of the same kind and key that is still queued makes this a no-op.
func (o *Outbox) Append(e Entry) error {
	b, err := encodeEntry(e)
	if err != nil {
		return fmt.Errorf("outbox append: %w", err)
	}
	o.appendMu.Lock()
	defer o.appendMu.Unlock()
	o.mu.Lock()
	if o.closed {
		o.mu.Unlock()
		return ErrClosed
	}
	it := item{seq: o.nextSeq, kind: e.Kind, key: e.Key}
	if o.queued[it.ident()] {
		o.mu.Unlock()
		return nil
	}
	o.mu.Unlock()
	if err := durable.WriteFile(filepath.Join(o.cfg.Dir, it.name()), b); err != nil {
		return fmt.Errorf("outbox append %s %s: %w", e.Kind, e.Key, err)
	}
	o.mu.Lock()
	o.nextSeq++
	o.queue = append(o.queue, it)
	o.queued[it.ident()] = true
	o.m.pending.Set(float64(len(o.queue)))
	o.notifyLocked()
	o.mu.Unlock()
	select {
	case o.wake <- struct{}{}:
	default:
	}
	return nil
}

// Pending is the number of entries waiting for delivery.
func (o *Outbox) Pending() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return len(o.queue)
}

// PendingKeys returns the keys of the queued entries of that kind ("" for
// every kind), in order.
func (o *Outbox) PendingKeys(kind string) []string {
	o.mu.Lock()
	defer o.mu.Unlock()
	var keys []string
	for _, it := range o.queue {
		if kind == "" || it.kind == kind {
			keys = append(keys, it.key)
		}
	}
	return keys
}

// WaitEmpty returns once nothing is queued, or with ctx's error.
func (o *Outbox) WaitEmpty(ctx context.Context) error {
	for {
		o.mu.Lock()
		n, ch := len(o.queue), o.changed
		o.mu.Unlock()
		if n == 0 {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return fmt.Errorf("outbox %s: %d entries still queued: %w", o.cfg.Name, n, ctx.Err())
		}
	}
}

func (o *Outbox) notifyLocked() {
	close(o.changed)
	o.changed = make(chan struct{})
}

// Start runs the drainer, which delivers to d until ctx ends or Close stops
// it. It may be called once.
func (o *Outbox) Start(ctx context.Context, d Deliverer) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.closed {
		return ErrClosed
	}
	if o.started {
		return errors.New("outbox: Start called twice")
	}
	o.started = true
	ctx, o.stop = context.WithCancel(ctx)
	o.done = make(chan struct{})
	o.drainOut = make(chan struct{})
	go o.run(ctx, d)
	return nil
}

// Close stops taking entries, lets the drainer deliver what is queued until
// ctx ends, then stops it and waits for it. What is left stays on disk for
// the next Open.
func (o *Outbox) Close(ctx context.Context) error {
	o.appendMu.Lock() // no Append is half done
	o.mu.Lock()
	if o.closed {
		o.mu.Unlock()
		o.appendMu.Unlock()
		return nil
	}
	o.closed = true
	started := o.started
	o.mu.Unlock()
	o.appendMu.Unlock()
	if !started {
		return nil
	}
	close(o.drainOut)
	select {
	case <-o.done:
	case <-ctx.Done():
		o.log.Warn("outbox: delivery still behind at close; the rest stays queued on disk for the next start", "pending", o.Pending())
	}
	o.stop()
	<-o.done
	return nil
}

func (o *Outbox) head() (item, bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if len(o.queue) == 0 {
		return item{}, false
	}
	return o.queue[0], true
}

// pop forgets the head entry, which was delivered or dead-lettered.
func (o *Outbox) pop(it item) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if len(o.queue) > 0 && o.queue[0].seq == it.seq {
		o.queue = o.queue[1:]
		delete(o.queued, it.ident())
	}
	o.m.pending.Set(float64(len(o.queue)))
	o.notifyLocked()
}

func (o *Outbox) run(ctx context.Context, d Deliverer) {
	defer close(o.done)
	backoff, attempts := o.cfg.MinBackoff, 0
	for {
		it, ok := o.head()
		if !ok {
			select {
			case <-o.wake:
				continue
			case <-o.drainOut:
				// Close was called: the queue is empty and stays so.
				if _, ok := o.head(); !ok {
					return
				}
				continue
			case <-ctx.Done():
				return
			}
		}
		err := o.deliver(ctx, d, it)
		if err == nil || errors.Is(err, ErrRejected) || errors.Is(err, errCorrupt) {
			backoff, attempts = o.cfg.MinBackoff, 0
			continue
		}
		if ctx.Err() != nil {
			return
		}
		attempts++
		o.m.retries.Inc()
		level := slog.LevelWarn
		if attempts > quietAttempts {
			level = slog.LevelError
		}
		o.log.Log(ctx, level, "outbox delivery failed; the entry stays queued and is retried", "kind", it.kind, "key", it.key,
			"attempt", attempts, "retry_in", backoff, "pending", o.Pending(), "err", err)
		t := time.NewTimer(backoff)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return
		}
		backoff = min(2*backoff, o.cfg.MaxBackoff)
	}
}

// deliver makes one attempt at the head entry. A nil error, ErrRejected or
// errCorrupt means the entry is done with (and off the queue); any other
// error leaves it at the head to be retried.
func (o *Outbox) deliver(ctx context.Context, d Deliverer, it item) error {
	path := filepath.Join(o.cfg.Dir, it.name())
	e, err := readEntry(path)
	switch {
	case errors.Is(err, errCorrupt):
		o.quarantine(it.name(), ReasonCorrupt, err)
		o.pop(it)
		return err
	case errors.Is(err, os.ErrNotExist):
		// Someone removed the file behind our back: nothing is left to
		// deliver, and waiting for it would block the queue for ever.
		o.m.failed.WithLabelValues(ReasonCorrupt).Inc()
		o.log.Error("a queued outbox entry file disappeared; skipping it", "file", path, "kind", it.kind, "key", it.key)
		o.pop(it)
		return fmt.Errorf("%w: %w", errCorrupt, err)
	case err != nil:
		return err
	}
	actx, cancel := context.WithTimeout(ctx, o.cfg.AttemptTimeout)
	err = d.Deliver(actx, e)
	cancel()
	switch {
	case err == nil:
		// No directory fsync: should the removal be lost in a crash, the
		// entry is delivered again, which the consumer's idempotence
		// absorbs.
		if rerr := os.Remove(path); rerr != nil && !errors.Is(rerr, os.ErrNotExist) {
			o.log.Error("cannot remove a delivered outbox entry; it will be delivered again after a restart", "file", path, "err", rerr)
		}
		o.m.delivered.Inc()
		o.pop(it)
		return nil
	case errors.Is(err, ErrRejected):
		o.quarantine(it.name(), ReasonRejected, err)
		o.pop(it)
		return err
	}
	return err
}

// quarantine moves an entry file to the dead-letter folder with the reason
// next to it, and counts it. It never fails: an entry that cannot even be
// moved is removed, so it cannot block the queue.
func (o *Outbox) quarantine(name, reason string, cause error) {
	o.m.failed.WithLabelValues(reason).Inc()
	src := filepath.Join(o.cfg.Dir, name)
	base := strings.TrimSuffix(name, entrySuffix)
	dst := filepath.Join(o.cfg.Dir, deadDir, fmt.Sprintf("%s-%d%s", base, time.Now().UnixNano(), entrySuffix))
	o.log.Error("outbox entry given up on and moved to the dead-letter folder", "reason", reason, "file", src,
		"moved_to", dst, "err", cause)
	if err := os.Rename(src, dst); err != nil {
		o.log.Error("cannot move an outbox entry to the dead-letter folder; removing it", "file", src, "err", err)
		_ = os.Remove(src)
		return
	}
	if err := os.WriteFile(strings.TrimSuffix(dst, entrySuffix)+".reason", []byte(reason+": "+cause.Error()+"\n"), 0o640); err != nil {
		o.log.Warn("cannot write why an outbox entry was given up on", "file", dst, "err", err)
	}
}
