package bus

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"invigil/outbox"
)

// The violations' way from the media plane to the control plane: each
// outbox entry becomes one message on ViolationStream, which keeps it on
// disk (file storage) until a control node has stored it and acknowledged
// it (work-queue retention: an acknowledged message is gone, an
// unacknowledged one stays for ever).
const (
	ViolationStream  = "INVIGIL_VIOLATIONS"
	violationSubject = "invigil.violations"
	// violationConsumer is the one durable consumer all control nodes
	// share: each message goes to one of them.
	violationConsumer = "invigil-control"

	// The message's headers repeat the entry's kind and key for people
	// reading the stream (nats stream view); the body is the whole entry.
	headerKind = "Invigil-Kind"
	headerKey  = "Invigil-Key"

	// ackWait is how long JetStream waits for a control node's verdict on
	// a message before it hands it to another; storeTimeout, shorter,
	// bounds one attempt at storing it.
	ackWait      = 30 * time.Second
	storeTimeout = 20 * time.Second
	// Retries of a message that failed to store back off from min to max.
	minRetry, maxRetry = 200 * time.Millisecond, 10 * time.Second
	// headerRoom is what a message's subject and headers take of
	// max_payload besides the entry.
	headerRoom = 2048
)

// ErrTooLarge is returned by ViolationPublisher.Deliver for an entry that
// does not fit the server's max_payload; the caller may shrink it and try
// again.
var ErrTooLarge = errors.New("larger than the NATS server's max_payload")

// EnsureViolationStream creates the violation stream, or updates it to
// this configuration. Both sides call it, so that entries published before
// any control node runs are kept.
func (c *Conn) EnsureViolationStream(ctx context.Context) error {
	_, err := c.js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name:        ViolationStream,
		Description: "Invigil: violations from the media plane, kept until a control node stored them",
		Subjects:    []string{violationSubject},
		Retention:   jetstream.WorkQueuePolicy,
		Storage:     jetstream.FileStorage,
		// A full stream refuses new messages instead of dropping old
		// ones: the publisher's outbox keeps them on disk and retries.
		Discard: jetstream.DiscardNew,
		// The message ID (kind and key) makes a publish repeated within
		// this window (an ack lost on the way back) one message; the
		// control plane's idempotence covers anything later.
		Duplicates: 2 * time.Minute,
		Replicas:   1,
	})
	if err != nil {
		return fmt.Errorf("nats: create stream %s: %w", ViolationStream, err)
	}
	return nil
}

// ViolationPublisher is the outbox's Deliverer on a node whose violations
// go over NATS: an entry counts as delivered once JetStream has
// acknowledged storing it.
type ViolationPublisher struct{ c *Conn }

var _ outbox.Deliverer = ViolationPublisher{}

// ViolationPublisher returns the publisher; call EnsureViolationStream
// first.
func (c *Conn) ViolationPublisher() ViolationPublisher { return ViolationPublisher{c: c} }

// Deliver publishes e and waits for JetStream's acknowledgement. An entry
// that cannot be encoded is rejected for good (outbox.ErrRejected); one too
// large for the server is ErrTooLarge; anything else (no server, no
// stream yet, a timeout) may pass, and the outbox retries.
func (p ViolationPublisher) Deliver(ctx context.Context, e outbox.Entry) error {
	b, err := e.MarshalBinary()
	if err != nil {
		return fmt.Errorf("%w: publish violation entry: %w", outbox.ErrRejected, err)
	}
	if limit := p.c.MaxPayload(); len(b)+headerRoom > limit {
		return fmt.Errorf("publish %s %s: %d bytes: %w (%d)", e.Kind, e.Key, len(b), ErrTooLarge, limit)
	}
	msg := nats.NewMsg(violationSubject)
	msg.Data = b
	msg.Header.Set(headerKind, e.Kind)
	msg.Header.Set(headerKey, e.Key)
	if _, err := p.c.js.PublishMsg(ctx, msg, jetstream.WithMsgID(e.Kind+":"+e.Key), jetstream.WithExpectStream(ViolationStream)); err != nil {
		return fmt.Errorf("publish %s %s to %s: %w", e.Kind, e.Key, ViolationStream, err)
	}
	return nil
}

// CountShrunk counts a violation published without its clip or evidence
// (invigil_nats_violations_shrunk_total).
func (c *Conn) CountShrunk() { c.m.shrunk.Inc() }

// ViolationConsumer takes violation messages off the stream and stores
// them through a Deliverer (the same one the outbox uses without NATS),
// acknowledging each only after the Deliverer returned nil, that is after
// the store committed it.
type ViolationConsumer struct {
	c      *Conn
	cons   jetstream.Consumer
	store  outbox.Deliverer
	cancel context.CancelFunc
	done   chan struct{}
}

// ConsumeViolations joins the shared durable consumer and starts storing
// messages, one at a time, until Stop. One at a time, across all control
// nodes (MaxAckPending 1): a violation's close must be stored after its
// open, and JetStream hands a message back for redelivery before any
// newer one. Violations are rare (a few a minute per candidate at most),
// so one store commit at a time is plenty.
func (c *Conn) ConsumeViolations(ctx context.Context, store outbox.Deliverer) (*ViolationConsumer, error) {
	cons, err := c.js.CreateOrUpdateConsumer(ctx, ViolationStream, jetstream.ConsumerConfig{
		Durable:       violationConsumer,
		Description:   "Invigil control nodes: store each violation, then acknowledge",
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       ackWait,
		MaxAckPending: 1,
		MaxDeliver:    -1,
		DeliverPolicy: jetstream.DeliverAllPolicy,
		FilterSubject: violationSubject,
	})
	if err != nil {
		return nil, fmt.Errorf("nats: consumer %s on %s: %w", violationConsumer, ViolationStream, err)
	}
	// Not ctx: Stop ends the loop; the caller's ctx may be a start-up
	// deadline.
	lctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	vc := &ViolationConsumer{c: c, cons: cons, store: store, cancel: cancel, done: make(chan struct{})}
	go vc.run(lctx)
	return vc, nil
}

// Stop ends the loop after the message in hand (stored and acknowledged,
// or left for redelivery), within storeTimeout. Safe to call twice.
func (vc *ViolationConsumer) Stop() {
	vc.cancel()
	<-vc.done
}

func (vc *ViolationConsumer) run(ctx context.Context) {
	defer close(vc.done)
	failures := 0
	for ctx.Err() == nil {
		fctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		msg, err := vc.cons.Next(jetstream.FetchContext(fctx))
		cancel()
		switch {
		case err == nil:
			failures = 0
			vc.handle(ctx, msg)
			continue
		case ctx.Err() != nil:
			return
		case errors.Is(err, nats.ErrTimeout), errors.Is(err, context.DeadlineExceeded), errors.Is(err, jetstream.ErrNoMessages):
			// Nothing to do for a while.
			failures = 0
			continue
		}
		// No server (reconnecting), the consumer gone: wait and ask again.
		failures++
		level := slogWarnThenError(failures)
		vc.c.log.Log(ctx, level, "cannot fetch violations from JetStream; retrying", "attempt", failures, "err", err)
		t := time.NewTimer(backoff(failures))
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return
		}
	}
}

// handle stores one message and gives JetStream the verdict. (Term, not
// TermWithReason: nats-server 2.9 does not read a reason and leaves such a
// message pending until the ack wait; the log says why.) Storing runs
// on its own deadline, not ctx: a Stop in the middle lets the commit and
// its acknowledgement finish rather than cutting them apart.
func (vc *ViolationConsumer) handle(ctx context.Context, msg jetstream.Msg) {
	var e outbox.Entry
	if err := e.UnmarshalBinary(msg.Data()); err != nil {
		vc.c.m.badMessages.WithLabelValues("violations").Inc()
		vc.c.log.Error("dropped an unreadable message on the violation stream", "subject", msg.Subject(),
			"bytes", len(msg.Data()), "kind", msg.Headers().Get(headerKind), "key", msg.Headers().Get(headerKey), "err", err)
		if err := msg.Term(); err != nil {
			vc.c.log.Warn("cannot take an unreadable message off the violation stream", "err", err)
		}
		return
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), storeTimeout)
	defer cancel()
	err := vc.store.Deliver(sctx, e)
	switch {
	case err == nil:
		// DoubleAck waits for the server to confirm: should that fail,
		// the message comes again and the store's idempotence by key
		// stores nothing twice.
		if err := msg.DoubleAck(sctx); err != nil {
			vc.c.log.Warn("a stored violation's acknowledgement failed; it will be delivered again (and stored once)", "kind", e.Kind, "key", e.Key, "err", err)
			return
		}
		vc.c.m.stored.Inc()
	case errors.Is(err, outbox.ErrRejected):
		// What the outbox would move to its dead-letter folder: the log
		// is its record.
		vc.c.m.rejected.Inc()
		vc.c.log.Error("the control plane rejected a violation for good; taken off the stream", "kind", e.Kind, "key", e.Key,
			"entry_bytes", len(msg.Data()), "err", err)
		if err := msg.Term(); err != nil {
			vc.c.log.Warn("cannot take a rejected violation off the stream", "key", e.Key, "err", err)
		}
	default:
		vc.c.m.retries.Inc()
		n := 1
		if md, merr := msg.Metadata(); merr == nil {
			n = int(md.NumDelivered)
		}
		vc.c.log.Log(ctx, slogWarnThenError(n), "cannot store a violation; JetStream delivers it again", "kind", e.Kind, "key", e.Key,
			"delivery", n, "err", err)
		if err := msg.NakWithDelay(backoff(n)); err != nil {
			vc.c.log.Warn("cannot hand a violation back for redelivery; it comes back after the ack wait", "key", e.Key, "err", err)
		}
	}
}

// backoff doubles from minRetry to maxRetry with each attempt.
func backoff(attempt int) time.Duration {
	d := minRetry
	for i := 1; i < attempt && d < maxRetry; i++ {
		d *= 2
	}
	return min(d, maxRetry)
}
