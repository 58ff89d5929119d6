package pipeline

import (
	"context"
	"log/slog"
	"time"

	"invigil/detectors/rules"
)

type sinkEvent struct {
	kind    rules.EventKind
	v       Violation
	pending *pendingEvidence // encoded here, before the sink sees v
}

// sinkQueue delivers violation events to the sink from one goroutine, in
// order, through a bounded queue.
type sinkQueue struct {
	sink    ViolationSink
	ch      chan sinkEvent
	timeout time.Duration
	log     *slog.Logger
	m       *metrics

	ctx    context.Context // canceled when Close gives up waiting
	cancel context.CancelFunc
	done   chan struct{}
}

func newSinkQueue(sink ViolationSink, size int, timeout time.Duration, log *slog.Logger) *sinkQueue {
	q := &sinkQueue{sink: sink, ch: make(chan sinkEvent, size), timeout: timeout, log: log, done: make(chan struct{})}
	q.ctx, q.cancel = context.WithCancel(context.Background())
	return q
}

func (q *sinkQueue) start() { go q.run() }

// enqueue waits for room in the queue (the sink is behind), or gives up
// when ctx ends.
func (q *sinkQueue) enqueue(ctx context.Context, ev sinkEvent) {
	if q.sink == nil {
		return
	}
	select { // room in the queue wins over a canceled ctx
	case q.ch <- ev:
		return
	default:
	}
	select {
	case q.ch <- ev:
	case <-ctx.Done():
		q.log.Error("violation event lost: the sink did not keep up", "identity", ev.v.Identity,
			"type", ev.v.Type, "event", ev.kind, "key", ev.v.Key)
		q.m.sinkErrors.Inc()
	}
}

func (q *sinkQueue) run() {
	defer close(q.done)
	for ev := range q.ch {
		if ev.pending != nil {
			start := time.Now()
			if err := ev.pending.render(&ev.v); err != nil {
				q.log.Warn("incomplete evidence", "identity", ev.v.Identity, "type", ev.v.Type, "key", ev.v.Key, "err", err)
			}
			q.m.stage(stageEvidence, time.Since(start))
		}
		ctx, cancel := context.WithTimeout(q.ctx, q.timeout)
		var err error
		if ev.kind == rules.Opened {
			err = q.sink.ViolationOpened(ctx, ev.v)
		} else {
			err = q.sink.ViolationClosed(ctx, ev.v)
		}
		cancel()
		if err != nil {
			q.m.sinkErrors.Inc()
			q.log.Error("violation sink failed", "identity", ev.v.Identity, "type", ev.v.Type,
				"event", ev.kind, "key", ev.v.Key, "err", err)
		}
	}
}

// stop delivers what is queued, waiting until ctx ends, then cancels the
// calls in flight and waits for the goroutine.
func (q *sinkQueue) stop(ctx context.Context) {
	close(q.ch)
	select {
	case <-q.done:
	case <-ctx.Done():
		q.log.Error("violation sink still busy at close; canceling", "queued", len(q.ch))
	}
	q.cancel()
	<-q.done
}
