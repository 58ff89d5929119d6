package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"

	"invigil/cluster"
	"invigil/contract"
	"invigil/control"
	"invigil/detectors/rules"
	"invigil/store"
)

// mediaCommands is a media node's side of the control plane's commands:
// what arrives over NATS (cluster.ServeCommands) runs on this node's SFU
// and pipeline through the same adapters the single process uses.
type mediaCommands struct {
	media    control.MediaControl
	analysis control.Analysis
}

var _ cluster.MediaCommands = mediaCommands{}

func (m mediaCommands) Subscribe(subscriber, publisher string) error {
	return m.media.Subscribe(subscriber, publisher)
}

func (m mediaCommands) Unsubscribe(subscriber, publisher string) error {
	return m.media.Unsubscribe(subscriber, publisher)
}

func (m mediaCommands) Kick(identity string) error { return m.media.Kick(identity) }

func (m mediaCommands) SetPolicy(identity string, policy json.RawMessage) error {
	var pol rules.Policy
	if err := json.Unmarshal(policy, &pol); err != nil {
		return fmt.Errorf("set policy of %s: %w", identity, err)
	}
	if err := pol.Validate(); err != nil {
		return fmt.Errorf("set policy of %s: %w", identity, err)
	}
	return m.analysis.SetPolicy(identity, pol)
}

func (m mediaCommands) Calibrate(identity string, until time.Time) error {
	return m.analysis.Calibrate(identity, until)
}

func (m mediaCommands) Forget(identity string) { m.analysis.Forget(identity) }

func (m mediaCommands) Latest(identity string) (json.RawMessage, bool) {
	snap, ok := m.analysis.Latest(identity)
	if !ok {
		return nil, false
	}
	b, err := json.Marshal(snap)
	if err != nil {
		return nil, false
	}
	return b, true
}

// remoteControl is the control plane's MediaControl and Analysis when the
// media run on other nodes: each command goes over NATS to the node its
// candidate's exam is placed on (every participant of an exam's room is on
// that node: staff join the room of the exam they watch).
type remoteControl struct {
	nc      *nats.Conn
	st      *store.Store
	timeout time.Duration
	key     cluster.Key // signs the commands
}

var (
	_ control.MediaControl = (*remoteControl)(nil)
	_ control.Analysis     = (*remoteControl)(nil)
)

// errNoCandidate: a command that names no candidate has no exam to find
// a node by.
var errNoCandidate = errors.New("names no candidate, so no exam to find the media node by")

// node finds the media node for the first candidate among identities.
func (r *remoteControl) node(identities ...string) (*cluster.RemoteMedia, error) {
	var id string
	var cid int64
	for _, x := range identities {
		if n, ok := contract.ParseCandidateIdentity(x); ok {
			id, cid = x, n
			break
		}
	}
	if id == "" {
		return nil, fmt.Errorf("media command for %v: %w", identities, errNoCandidate)
	}
	ctx, cancel := context.WithTimeout(context.Background(), r.timeout)
	defer cancel()
	cand, err := r.st.Candidate(ctx, cid)
	if err != nil {
		return nil, fmt.Errorf("find the media node of %s: %w", id, err)
	}
	p, err := r.st.ExamPlacement(ctx, cand.ExamID)
	if err != nil {
		return nil, fmt.Errorf("find the media node of %s (exam %d): %w", id, cand.ExamID, err)
	}
	return cluster.Remote(r.nc, p.Node, r.timeout, r.key), nil
}

func (r *remoteControl) Subscribe(subscriber, publisher string) error {
	n, err := r.node(publisher, subscriber)
	if err != nil {
		return err
	}
	return n.Subscribe(subscriber, publisher)
}

func (r *remoteControl) Unsubscribe(subscriber, publisher string) error {
	n, err := r.node(publisher, subscriber)
	if err != nil {
		return err
	}
	return n.Unsubscribe(subscriber, publisher)
}

func (r *remoteControl) Kick(identity string) error {
	n, err := r.node(identity)
	if err != nil {
		return err
	}
	return n.Kick(identity)
}

func (r *remoteControl) SetPolicy(identity string, pol rules.Policy) error {
	n, err := r.node(identity)
	if err != nil {
		return err
	}
	b, err := json.Marshal(pol)
	if err != nil {
		return fmt.Errorf("set policy of %s: %w", identity, err)
	}
	return n.SetPolicy(identity, b)
}

func (r *remoteControl) Calibrate(identity string, until time.Time) error {
	n, err := r.node(identity)
	if err != nil {
		return err
	}
	return n.Calibrate(identity, until)
}

func (r *remoteControl) Forget(identity string) {
	if n, err := r.node(identity); err == nil {
		n.Forget(identity)
	}
}

func (r *remoteControl) Latest(identity string) (control.AnalysisSnapshot, bool) {
	n, err := r.node(identity)
	if err != nil {
		return control.AnalysisSnapshot{}, false
	}
	b, ok := n.Latest(identity)
	if !ok {
		return control.AnalysisSnapshot{}, false
	}
	var snap control.AnalysisSnapshot
	if err := json.Unmarshal(b, &snap); err != nil {
		return control.AnalysisSnapshot{}, false
	}
	return snap, true
}
