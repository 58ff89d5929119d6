package bus

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"

	"github.com/nats-io/nats.go"
)

// eventSubject is where a node says an exam's event log grew:
// invigil.events.<exam id>.
const eventSubject = "invigil.events."

// nudge is the whole message: which exam, up to which sequence number (for
// logs and debugging; the streams read from the store whatever is new),
// and which node sent it, so that it ignores its own.
type nudge struct {
	Node string `json:"node"`
	Exam int64  `json:"exam"`
	Seq  int64  `json:"seq"`
}

// EventsCommitted tells the other nodes that exam's event log grew to seq
// (control.EventNotifier). It never blocks: the client buffers, also while
// reconnecting, and a nudge that is lost delays the other nodes' streams
// only until their next keep-alive read.
func (c *Conn) EventsCommitted(exam, seq int64) {
	b, err := json.Marshal(nudge{Node: c.node, Exam: exam, Seq: seq})
	if err != nil {
		return // three plain fields: cannot happen
	}
	if err := c.nc.Publish(eventSubject+strconv.FormatInt(exam, 10), b); err != nil {
		c.log.Warn("cannot nudge the other nodes of new events", "exam", exam, "seq", seq, "err", err)
		return
	}
	c.m.nudgesSent.Inc()
}

// SubscribeEvents calls wake(exam) for every nudge another node sends. It
// runs on the client's delivery goroutine of this subscription, one
// message at a time, so wake must be quick (api.Server.NudgeEvents is). A
// message that cannot be read is logged and dropped. The returned function
// unsubscribes.
func (c *Conn) SubscribeEvents(wake func(exam int64)) (unsubscribe func() error, err error) {
	sub, err := c.nc.Subscribe(eventSubject+"*", func(m *nats.Msg) {
		exam, err := readNudge(m, c.node)
		switch {
		case err != nil:
			c.m.badMessages.WithLabelValues("events").Inc()
			c.log.Warn("dropped an unreadable event nudge", "subject", m.Subject, "bytes", len(m.Data), "err", err)
		case exam > 0:
			c.m.nudgesReceived.Inc()
			wake(exam)
		}
	})
	if err != nil {
		return nil, fmt.Errorf("nats: subscribe to %s*: %w", eventSubject, err)
	}
	// Subscribed once the server knows it; nudges before that are
	// covered by the streams' own first read.
	if err := c.nc.Flush(); err != nil {
		_ = sub.Unsubscribe()
		return nil, fmt.Errorf("nats: subscribe to %s*: %w", eventSubject, err)
	}
	return sub.Unsubscribe, nil
}

// readNudge checks a nudge: the subject's exam and the body's must agree.
// It returns 0 and no error for this node's own nudges.
func readNudge(m *nats.Msg, self string) (int64, error) {
	idText, ok := strings.CutPrefix(m.Subject, eventSubject)
	if !ok {
		return 0, fmt.Errorf("subject %q is not %s<exam>", m.Subject, eventSubject)
	}
	id, err := strconv.ParseInt(idText, 10, 64)
	if err != nil || id <= 0 {
		return 0, fmt.Errorf("subject %q: exam %q is not an exam id", m.Subject, idText)
	}
	var n nudge
	if err := json.Unmarshal(m.Data, &n); err != nil {
		return 0, fmt.Errorf("body: %w", err)
	}
	if n.Exam != id || n.Seq < 0 || n.Node == "" {
		return 0, fmt.Errorf("body %+v does not match the subject's exam %d", n, id)
	}
	if n.Node == self {
		return 0, nil
	}
	return id, nil
}
