// Package cluster is how media nodes make themselves known and how the
// control plane chooses one for an exam. A media node announces itself
// (its name, the URL browsers reach its SFU at, how many candidates it
// takes and has, whether it is draining) on NATS every heartbeat interval;
// the control plane keeps the latest word of every node, takes one it has
// not heard from for a few intervals for gone, and places each exam on a
// live node with room, least loaded first, sticky for as long as that node
// lives (store.PlaceExam, so every control node agrees). `invigil node
// drain` asks a node to take no new exams.
//
// Nothing here runs without a NATS URL: one process is its own only node.
package cluster

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// Subjects. Heartbeats go to one subject every control node listens on; a
// drain request goes to the node it names.
const (
	SubjectHeartbeat = "invigil.nodes.heartbeat"
	subjectDrain     = "invigil.nodes.drain."
)

// DefaultInterval is how often a node announces itself; a node silent for
// MissedHeartbeats intervals is taken for gone.
const (
	DefaultInterval  = time.Second
	MissedHeartbeats = 3
)

// ErrNoNode: no live node has room for another exam.
var ErrNoNode = errors.New("no media node has room: every node is full, draining or gone")

// Heartbeat is what a media node says of itself.
type Heartbeat struct {
	Node string `json:"node"`
	// URL is where browsers and simulate reach the node (its advertised
	// base URL; the SFU is at its signaling path).
	URL string `json:"url"`
	// Capacity is how many candidates the node takes, Load how many it
	// has now.
	Capacity int `json:"capacity"`
	Load     int `json:"load"`
	// Draining: the node takes no new exams; those it has stay.
	Draining bool `json:"draining"`
	// Leaving: the node is shutting down (its last heartbeat).
	Leaving bool `json:"leaving,omitempty"`
	// At is the sender's clock, for people reading `invigil node list`.
	At time.Time `json:"at"`
}

// maxHeartbeatBytes bounds what a heartbeat may be; anything larger is
// not one of ours.
const maxHeartbeatBytes = 4 << 10

// decodeHeartbeat checks a heartbeat from the wire.
func decodeHeartbeat(b []byte) (Heartbeat, error) {
	if len(b) > maxHeartbeatBytes {
		return Heartbeat{}, fmt.Errorf("heartbeat of %d bytes: more than %d", len(b), maxHeartbeatBytes)
	}
	var h Heartbeat
	if err := json.Unmarshal(b, &h); err != nil {
		return Heartbeat{}, fmt.Errorf("heartbeat: %w", err)
	}
	switch {
	case !ValidNode(h.Node):
		return Heartbeat{}, fmt.Errorf("heartbeat: node name %q is not valid", h.Node)
	case h.Capacity < 0 || h.Load < 0:
		return Heartbeat{}, fmt.Errorf("heartbeat of %s: capacity %d, load %d", h.Node, h.Capacity, h.Load)
	}
	return h, nil
}

// ValidNode: node names go into NATS subjects and metric labels, so they
// keep to letters, digits, '_' and '-' (and '.' inside, which NATS would
// read as a token separator, is refused here).
func ValidNode(name string) bool {
	if name == "" || len(name) > 63 {
		return false
	}
	for i, r := range name {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9':
		case i > 0 && (r == '_' || r == '-'):
		default:
			return false
		}
	}
	return true
}

// hasRoom: a live node that is not draining and has fewer candidates than
// it takes.
func (h Heartbeat) hasRoom() bool { return !h.Draining && !h.Leaving && h.Load < h.Capacity }
