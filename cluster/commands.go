package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go"
)

// MediaCommands is what the control plane asks of a media node (its SFU
// and its analysis): connect and disconnect participants for calls, end a
// participant's session, and set, calibrate, forget and read a candidate's
// analysis. A policy and a snapshot travel as JSON, so that this package
// needs neither the rules nor the API.
type MediaCommands interface {
	Subscribe(subscriber, publisher string) error
	Unsubscribe(subscriber, publisher string) error
	Kick(identity string) error
	SetPolicy(identity string, policy json.RawMessage) error
	Calibrate(identity string, until time.Time) error
	Forget(identity string)
	Latest(identity string) (snapshot json.RawMessage, ok bool)
}

const subjectCommands = "invigil.media.commands."

// command is one request on the wire.
type command struct {
	Op         string          `json:"op"`
	Subscriber string          `json:"subscriber,omitempty"`
	Publisher  string          `json:"publisher,omitempty"`
	Identity   string          `json:"identity,omitempty"`
	Policy     json.RawMessage `json:"policy,omitempty"`
	Until      time.Time       `json:"until,omitzero"`
}

// reply is a command's answer: Error is the node's error message, if any.
type reply struct {
	Error    string          `json:"error,omitempty"`
	Snapshot json.RawMessage `json:"snapshot,omitempty"`
	OK       bool            `json:"ok,omitempty"`
}

// maxCommandBytes bounds a command (a policy is the largest part).
const maxCommandBytes = 256 << 10

// CommandServer answers one media node's commands until Close.
type CommandServer struct {
	sub *nats.Subscription
}

// ServeCommands answers the commands sent to node, running each on
// target; with a key, only commands signed with it. A command that cannot
// be read (or is not signed) is answered with an error and logged;
// nothing a sender sends can stop the server.
func ServeCommands(nc *nats.Conn, node string, target MediaCommands, key Key, log *slog.Logger) (*CommandServer, error) {
	if !ValidNode(node) {
		return nil, fmt.Errorf("serve commands of %q: not a valid node name", node)
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	sub, err := nc.Subscribe(subjectCommands+node, func(m *nats.Msg) {
		var r reply
		if err := key.check(m); err != nil {
			log.Warn("refused a media command", "node", node, "err", err)
			r = reply{Error: "refused: " + err.Error()}
		} else {
			r = runCommand(m.Data, target)
		}
		if r.Error != "" {
			log.Debug("media command failed", "node", node, "err", r.Error)
		}
		b, err := json.Marshal(r)
		if err == nil {
			err = m.Respond(b)
		}
		if err != nil {
			log.Warn("cannot answer a media command", "node", node, "err", err)
		}
	})
	if err != nil {
		return nil, fmt.Errorf("serve commands of %s: %w", node, err)
	}
	return &CommandServer{sub: sub}, nil
}

// Close stops answering.
func (s *CommandServer) Close() error {
	if err := s.sub.Drain(); err != nil && !errors.Is(err, nats.ErrConnectionClosed) {
		return fmt.Errorf("stop serving media commands: %w", err)
	}
	return nil
}

func runCommand(data []byte, target MediaCommands) reply {
	if len(data) > maxCommandBytes {
		return reply{Error: fmt.Sprintf("command of %d bytes: more than %d", len(data), maxCommandBytes)}
	}
	var c command
	if err := json.Unmarshal(data, &c); err != nil {
		return reply{Error: "command: " + err.Error()}
	}
	var err error
	switch c.Op {
	case "subscribe":
		err = target.Subscribe(c.Subscriber, c.Publisher)
	case "unsubscribe":
		err = target.Unsubscribe(c.Subscriber, c.Publisher)
	case "kick":
		err = target.Kick(c.Identity)
	case "set_policy":
		err = target.SetPolicy(c.Identity, c.Policy)
	case "calibrate":
		err = target.Calibrate(c.Identity, c.Until)
	case "forget":
		target.Forget(c.Identity)
	case "latest":
		snap, ok := target.Latest(c.Identity)
		return reply{Snapshot: snap, OK: ok}
	default:
		return reply{Error: fmt.Sprintf("command %q: unknown", c.Op)}
	}
	if err != nil {
		return reply{Error: err.Error()}
	}
	return reply{OK: true}
}

// RemoteMedia sends MediaCommands to one node over NATS. It is a
// MediaCommands itself, so the control plane cannot tell it from the
// node's own SFU and analysis.
type RemoteMedia struct {
	nc      *nats.Conn
	node    string
	timeout time.Duration
	key     Key
}

// DefaultCommandTimeout bounds how long a command waits for its node.
const DefaultCommandTimeout = 5 * time.Second

// Remote returns node's MediaCommands (timeout 0: DefaultCommandTimeout),
// signed with key.
func Remote(nc *nats.Conn, node string, timeout time.Duration, key Key) *RemoteMedia {
	if timeout <= 0 {
		timeout = DefaultCommandTimeout
	}
	return &RemoteMedia{nc: nc, node: node, timeout: timeout, key: key}
}

// ErrNodeUnreachable: the node did not answer (gone, or NATS is away).
var ErrNodeUnreachable = errors.New("media node does not answer")

func (r *RemoteMedia) send(c command) (reply, error) {
	b, err := json.Marshal(c)
	if err != nil {
		return reply{}, fmt.Errorf("media command %s: %w", c.Op, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), r.timeout)
	defer cancel()
	m, err := r.nc.RequestMsgWithContext(ctx, r.key.message(subjectCommands+r.node, b))
	if errors.Is(err, nats.ErrNoResponders) || errors.Is(err, context.DeadlineExceeded) || errors.Is(err, nats.ErrTimeout) {
		return reply{}, fmt.Errorf("media command %s to %s: %w (%w)", c.Op, r.node, ErrNodeUnreachable, err)
	}
	if err != nil {
		return reply{}, fmt.Errorf("media command %s to %s: %w", c.Op, r.node, err)
	}
	var rep reply
	if err := json.Unmarshal(m.Data, &rep); err != nil {
		return reply{}, fmt.Errorf("media command %s to %s: the answer: %w", c.Op, r.node, err)
	}
	if rep.Error != "" {
		return rep, fmt.Errorf("%s (on media node %s)", rep.Error, r.node)
	}
	return rep, nil
}

func (r *RemoteMedia) Subscribe(subscriber, publisher string) error {
	_, err := r.send(command{Op: "subscribe", Subscriber: subscriber, Publisher: publisher})
	return err
}

func (r *RemoteMedia) Unsubscribe(subscriber, publisher string) error {
	_, err := r.send(command{Op: "unsubscribe", Subscriber: subscriber, Publisher: publisher})
	return err
}

func (r *RemoteMedia) Kick(identity string) error {
	_, err := r.send(command{Op: "kick", Identity: identity})
	return err
}

func (r *RemoteMedia) SetPolicy(identity string, policy json.RawMessage) error {
	_, err := r.send(command{Op: "set_policy", Identity: identity, Policy: policy})
	return err
}

func (r *RemoteMedia) Calibrate(identity string, until time.Time) error {
	_, err := r.send(command{Op: "calibrate", Identity: identity, Until: until})
	return err
}

// Forget has no answer to give; a node that cannot be reached forgets the
// candidate anyway when its tracks end.
func (r *RemoteMedia) Forget(identity string) {
	_, _ = r.send(command{Op: "forget", Identity: identity})
}

// Latest is false when the node has none or cannot be reached (the device
// check then shows no analysis yet).
func (r *RemoteMedia) Latest(identity string) (json.RawMessage, bool) {
	rep, err := r.send(command{Op: "latest", Identity: identity})
	if err != nil || !rep.OK {
		return nil, false
	}
	return rep.Snapshot, true
}
