package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"invigil/api"
	"invigil/bus"
	"invigil/outbox"
	"invigil/pipeline"
	"invigil/recording"
)

// Outbox entry kinds: a violation's open and close, delivered in order.
const (
	entryOpened = "violation_opened"
	entryClosed = "violation_closed"
)

// outboxDir is the violation outbox under the data directory.
const outboxDir = "outbox"

// storeSink hands the pipeline's violations to the violation outbox: a
// violation counts as acknowledged once it is on disk there, and the
// outbox's drainer stores it through the control plane (outboxDelivery),
// however long the database stays locked. It adds where the recording
// shows the onset, which only the media side can find, at the time of the
// event.
type storeSink struct {
	outbox  *outbox.Outbox
	dataDir string
	// node is this node's name when there are several (with NATS), so
	// that the control plane knows whose data directory holds the
	// recording; "" in one process.
	node string
	log  *slog.Logger
}

var _ pipeline.ViolationSink = (*storeSink)(nil)

func (s *storeSink) report(v pipeline.Violation) api.ViolationReport {
	r := api.ViolationReport{Key: v.Key, Identity: v.Identity, Type: string(v.Type), Policy: v.Policy, Reason: v.Reason,
		Confidence: v.Confidence, StartedAt: v.StartedAt, OpenedAt: v.OpenedAt, EndedAt: v.EndedAt, Evidence: v.Evidence,
		Clip: v.Clip}
	if len(v.Details) > 0 {
		r.Details = make(map[string]any, len(v.Details))
		for k, x := range v.Details {
			r.Details[k] = x
		}
	}
	return r
}

func (s *storeSink) ViolationOpened(ctx context.Context, v pipeline.Violation) error {
	if !s.isCandidate(v) {
		return nil
	}
	r := s.report(v)
	seg, off, err := recording.Locate(s.dataDir, v.Room, v.Identity, v.StartedAt)
	if err == nil {
		if rel, err := filepath.Rel(s.dataDir, seg); err == nil {
			ms := off.Milliseconds()
			r.RecordingPath, r.RecordingOffsetMS, r.RecordingNode = rel, &ms, s.node
		}
	} else if !errors.Is(err, recording.ErrNotRecorded) {
		s.log.Warn("cannot locate the recording of a violation", "key", v.Key, "err", err)
	}
	if err := s.append(entryOpened, r); err != nil {
		return err
	}
	s.log.Info("violation opened", "identity", v.Identity, "type", v.Type, "reason", v.Reason, "key", v.Key)
	return nil
}

func (s *storeSink) ViolationClosed(ctx context.Context, v pipeline.Violation) error {
	if !s.isCandidate(v) {
		return nil
	}
	r := s.report(v)
	r.Evidence, r.Clip = nil, nil
	return s.append(entryClosed, r)
}

// append queues the report; the evidence image travels as the entry's
// attachment and the audio clip inside the report (an optional field, so
// entries queued by older builds still decode), so the entry alone
// suffices to store the violation.
func (s *storeSink) append(kind string, r api.ViolationReport) error {
	evidence := r.Evidence
	r.Evidence = nil
	data, err := json.Marshal(r)
	if err != nil {
		return fmt.Errorf("queue violation %s: %w", r.Key, err)
	}
	if err := s.outbox.Append(outbox.Entry{Kind: kind, Key: r.Key, Data: data, Attachment: evidence}); err != nil {
		return fmt.Errorf("queue violation %s: %w", r.Key, err)
	}
	return nil
}

// isCandidate tells candidates apart from load-test identities (simulate
// --token-key), which are no candidates of any exam: their violations are
// only logged, never queued.
func (s *storeSink) isCandidate(v pipeline.Violation) bool {
	if _, ok := api.ParseCandidateIdentity(v.Identity); ok {
		return true
	}
	s.log.Info("violation of a participant who is no candidate (a load test?) is not stored",
		"identity", v.Identity, "room", v.Room, "type", v.Type, "key", v.Key)
	return false
}

// outboxDelivery stores the outbox's entries through the control plane,
// which is idempotent by violation key, so a replay after a crash stores
// nothing twice.
type outboxDelivery struct{ api *api.Server }

func (d outboxDelivery) Deliver(ctx context.Context, e outbox.Entry) error {
	var r api.ViolationReport
	if err := json.Unmarshal(e.Data, &r); err != nil {
		return fmt.Errorf("%w: violation %s: decode: %w", outbox.ErrRejected, e.Key, err)
	}
	r.Evidence = e.Attachment
	var err error
	switch e.Kind {
	case entryOpened:
		err = d.api.ViolationOpened(ctx, r)
	case entryClosed:
		err = d.api.ViolationClosed(ctx, r)
	default:
		return fmt.Errorf("%w: unknown entry kind %q", outbox.ErrRejected, e.Kind)
	}
	if errors.Is(err, api.ErrViolationRejected) {
		return fmt.Errorf("%w: %w", outbox.ErrRejected, err)
	}
	return err
}

// natsDelivery is the outbox's Deliverer with NATS: it publishes each
// entry to JetStream (an entry is delivered once JetStream acknowledged
// it; a control node's consumer stores it later through outboxDelivery).
// An entry too large for the server's max_payload (1 MB by default; a
// 10 s audio clip is about 430 kB of it in the report's JSON, a JPEG
// evidence image 50–300 kB) is published without its clip, then without
// its evidence image too, with an error in the log and the report's
// details saying what was dropped, rather than blocking the queue behind
// it for ever.
type natsDelivery struct {
	nb  *bus.Conn
	log *slog.Logger
}

func (d natsDelivery) Deliver(ctx context.Context, e outbox.Entry) error {
	pub := d.nb.ViolationPublisher()
	err := pub.Deliver(ctx, e)
	for _, drop := range []string{"clip", "evidence"} {
		if !errors.Is(err, bus.ErrTooLarge) {
			return err
		}
		smaller, changed, serr := withoutPart(e, drop)
		if serr != nil {
			return fmt.Errorf("%w: %w (and cannot shrink it: %w)", outbox.ErrRejected, err, serr)
		}
		if !changed {
			continue // it had no clip: try without the evidence
		}
		e = smaller
		d.log.Error("a violation is too large for the NATS server's max_payload; publishing it without its "+drop+
			" (raise max_payload in the server's configuration to keep it)", "kind", e.Kind, "key", e.Key, "max_payload", d.nb.MaxPayload(), "err", err)
		d.nb.CountShrunk()
		err = pub.Deliver(ctx, e)
	}
	if errors.Is(err, bus.ErrTooLarge) {
		return fmt.Errorf("%w: %w", outbox.ErrRejected, err)
	}
	return err
}

// withoutPart drops the audio clip or the evidence image from a queued
// violation and says so in its details (details.dropped); changed is false
// when it had none.
func withoutPart(e outbox.Entry, part string) (_ outbox.Entry, changed bool, _ error) {
	var r api.ViolationReport
	if err := json.Unmarshal(e.Data, &r); err != nil {
		return e, false, fmt.Errorf("decode violation %s: %w", e.Key, err)
	}
	switch part {
	case "clip":
		changed, r.Clip = len(r.Clip) > 0, nil
	case "evidence":
		changed, e.Attachment = len(e.Attachment) > 0, nil
	}
	if !changed {
		return e, false, nil
	}
	if r.Details == nil {
		r.Details = map[string]any{}
	}
	dropped, _ := r.Details["dropped"].([]any)
	r.Details["dropped"] = append(dropped, part)
	data, err := json.Marshal(r)
	if err != nil {
		return e, false, fmt.Errorf("encode violation %s: %w", e.Key, err)
	}
	e.Data = data
	return e, true, nil
}

// violationOutbox is the durable path from the pipeline to the store:
// the outbox on disk, then the store (through the control plane), or with
// NATS JetStream and then a control node's consumer.
type violationOutbox struct {
	box      *outbox.Outbox
	sink     *storeSink
	consumer *bus.ViolationConsumer // nil without NATS
}

// openViolationOutbox opens the outbox under the data directory, removes
// evidence files that no violation row and no queued entry refers to
// (before anything can write one), and starts draining: into the control
// plane, or with nb into JetStream, from where this node's consumer (and
// any other control node's) stores them. Close it after the pipeline,
// before the store.
func openViolationOutbox(ctx context.Context, dataDir string, ctl *api.Server, nb *bus.Conn, consume bool, reg prometheus.Registerer, log *slog.Logger) (*violationOutbox, error) {
	box, err := outbox.Open(outbox.Config{Dir: filepath.Join(dataDir, outboxDir), Name: "violation", Registry: reg, Logger: log})
	if err != nil {
		return nil, err
	}
	if _, err := ctl.RemoveOrphanEvidence(ctx, box.PendingKeys(entryOpened)); err != nil {
		// Orphans waste space but harm nobody: serve anyway.
		log.Warn("cannot sweep orphaned evidence files", "err", err)
	}
	v := &violationOutbox{box: box, sink: &storeSink{outbox: box, dataDir: dataDir, log: log}}
	var d outbox.Deliverer = outboxDelivery{api: ctl}
	if nb != nil {
		if err := nb.EnsureViolationStream(ctx); err != nil {
			return nil, err
		}
		if consume {
			if v.consumer, err = nb.ConsumeViolations(ctx, outboxDelivery{api: ctl}); err != nil {
				return nil, err
			}
		}
		d = natsDelivery{nb: nb, log: log}
	}
	// Not ctx: at shutdown the drainer gets to store what the pipeline
	// closes last; Close bounds that.
	if err := box.Start(context.WithoutCancel(ctx), d); err != nil {
		if v.consumer != nil {
			v.consumer.Stop()
		}
		return nil, err
	}
	return v, nil
}

// Shutdown delivers what is queued for up to timeout and stops the drainer
// (the rest stays on disk for the next start), then the consumer, after
// the message in its hands (what JetStream still holds waits there for the
// next control node).
func (v *violationOutbox) Shutdown(timeout time.Duration) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	_ = v.box.Close(ctx) // it only logs what it leaves queued
	if v.consumer != nil {
		v.consumer.Stop()
	}
}
