package cluster

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/nats-io/nats.go"

	"invigil/store"
)

// NodeState is what the control plane knows of a node.
type NodeState struct {
	Heartbeat
	// LastSeen is when its last heartbeat arrived (this process's clock);
	// Alive is whether that was within MissedHeartbeats intervals and it
	// has not said goodbye.
	LastSeen time.Time
	Alive    bool
}

// WatchOptions configure a Registry.
type WatchOptions struct {
	// Interval is the nodes' heartbeat interval (default DefaultInterval).
	Interval time.Duration
	Logger   *slog.Logger
	// Now is the clock (default time.Now).
	Now func() time.Time
	// Key, if set, is what heartbeats must be signed with; others are
	// rejected (Rejected counts them).
	Key Key
}

// Registry is the control plane's view of the media nodes, kept from
// their heartbeats.
type Registry struct {
	o   WatchOptions
	sub *nats.Subscription

	mu    sync.Mutex
	nodes map[string]NodeState
	bad   int
}

// Watch starts listening for heartbeats on nc.
func Watch(nc *nats.Conn, o WatchOptions) (*Registry, error) {
	if o.Interval <= 0 {
		o.Interval = DefaultInterval
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	r := &Registry{o: o, nodes: map[string]NodeState{}}
	sub, err := nc.Subscribe(SubjectHeartbeat, r.onHeartbeat)
	if err != nil {
		return nil, fmt.Errorf("watch media nodes: %w", err)
	}
	r.sub = sub
	return r, nil
}

// Close stops listening.
func (r *Registry) Close() error {
	if err := r.sub.Unsubscribe(); err != nil && !errors.Is(err, nats.ErrConnectionClosed) {
		return fmt.Errorf("stop watching media nodes: %w", err)
	}
	return nil
}

func (r *Registry) onHeartbeat(m *nats.Msg) {
	err := r.o.Key.check(m)
	var h Heartbeat
	if err == nil {
		h, err = decodeHeartbeat(m.Data)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if err != nil {
		// Someone else's message on our subject, or a broken node: said,
		// counted, never fatal.
		r.bad++
		r.o.Logger.Warn("ignored a heartbeat", "err", err)
		return
	}
	if prev, ok := r.nodes[h.Node]; !ok || !prev.Alive {
		if !h.Leaving {
			r.o.Logger.Info("media node up", "node", h.Node, "url", h.URL, "capacity", h.Capacity)
		}
	}
	r.nodes[h.Node] = NodeState{Heartbeat: h, LastSeen: r.o.Now(), Alive: !h.Leaving}
	if h.Leaving {
		r.o.Logger.Info("media node leaving", "node", h.Node)
	}
}

// Rejected counts messages on the heartbeat subject that were no
// heartbeat.
func (r *Registry) Rejected() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.bad
}

// state is node's state now; r.mu held.
func (r *Registry) stateLocked(n NodeState, now time.Time) NodeState {
	if n.Alive && now.Sub(n.LastSeen) > time.Duration(MissedHeartbeats)*r.o.Interval {
		n.Alive = false
	}
	return n
}

// Nodes lists every node heard of, by name.
func (r *Registry) Nodes() []NodeState {
	r.mu.Lock()
	defer r.mu.Unlock()
	now := r.o.Now()
	out := make([]NodeState, 0, len(r.nodes))
	for _, n := range r.nodes {
		out = append(out, r.stateLocked(n, now))
	}
	slices.SortFunc(out, func(a, b NodeState) int { return cmp.Compare(a.Node, b.Node) })
	return out
}

// Node returns what is known of one node.
func (r *Registry) Node(name string) (NodeState, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	n, ok := r.nodes[name]
	if !ok {
		return NodeState{}, false
	}
	return r.stateLocked(n, r.o.Now()), true
}

// Place returns the node the exam's rooms live on: the node it was placed
// on, as long as that one lives (draining or not: its rooms are there),
// or else a live node with room, the least loaded first (by candidates,
// then by exams placed there, then by name), which is then recorded. The
// read and the write are one store transaction, so control nodes placing
// the same exam at once agree. moved reports a new placement replacing
// one whose node is gone.
func (r *Registry) Place(ctx context.Context, st *store.Store, examID int64) (node NodeState, moved bool, err error) {
	_, err = st.Update(ctx, func(ctx context.Context, tx *store.Tx) error {
		node, moved = NodeState{}, false
		p, err := tx.ExamPlacement(ctx, examID)
		switch {
		case err == nil:
			if n, ok := r.Node(p.Node); ok && n.Alive {
				node = n
				return nil
			}
			moved = true
		case !errors.Is(err, store.ErrNotFound):
			return err
		}
		exams, err := tx.PlacementsOn(ctx)
		if err != nil {
			return err
		}
		var best *NodeState
		for _, n := range r.Nodes() {
			if !n.Alive || !n.hasRoom() {
				continue
			}
			if best == nil || n.Load < best.Load || n.Load == best.Load && exams[n.Node] < exams[best.Node] {
				best = &n
			}
		}
		if best == nil {
			return fmt.Errorf("place exam %d: %w", examID, ErrNoNode)
		}
		node = *best
		return tx.PlaceExam(ctx, examID, node.Node, time.Now())
	})
	if err != nil {
		return NodeState{}, false, err
	}
	if moved {
		r.o.Logger.Info("exam placed again: its media node is gone", "exam", examID, "node", node.Node)
	}
	return node, moved, nil
}
