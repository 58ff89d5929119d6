package bus

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"invigil/bus/natstest"
	"invigil/outbox"
)

var server natstest.Shared

func TestMain(m *testing.M) {
	code := m.Run()
	if err := server.Stop(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		if code == 0 {
			code = 1
		}
	}
	os.Exit(code)
}

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// connect is one node's connection to the shared server, closed when the
// test ends.
func connect(t *testing.T, reg prometheus.Registerer) *Conn {
	t.Helper()
	return connectTo(t, server.URL(t), reg)
}

func connectTo(t *testing.T, natsURL string, reg prometheus.Registerer) *Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := Connect(ctx, natsURL, Options{Name: t.Name(), Logger: quiet, Registry: reg})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

// A nudge one node publishes wakes the other node's streams of that exam,
// not its own (they woke already), and garbage on the subjects is counted
// and dropped without stopping the nudges that follow.
func TestEventNudgesReachTheOtherNodes(t *testing.T) {
	regB := prometheus.NewRegistry()
	a, b := connect(t, nil), connect(t, regB)
	wokeA, wokeB := make(chan int64, 16), make(chan int64, 16)
	for _, n := range []struct {
		c    *Conn
		woke chan int64
	}{{a, wokeA}, {b, wokeB}} {
		unsub, err := n.c.SubscribeEvents(func(exam int64) { n.woke <- exam })
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = unsub() })
	}
	a.EventsCommitted(7, 42)
	if got := receive(t, wokeB); got != 7 {
		t.Errorf("node B woke exam %d, want 7", got)
	}

	// Garbage from anyone on the subject: a body that is no JSON, a
	// subject that names no exam, a body naming another exam, an empty
	// node.
	raw := connectRaw(t, server.URL(t))
	for subject, body := range map[string]string{
		"invigil.events.7":    "\x00\xffnot json",
		"invigil.events.x":    `{"node":"n","exam":7,"seq":1}`,
		"invigil.events.8":    `{"node":"n","exam":7,"seq":1}`,
		"invigil.events.9":    `{"exam":9,"seq":1}`,
		"invigil.events.-1":   `{"node":"n","exam":-1,"seq":1}`,
		"invigil.events.10":   `{"node":"n","exam":10,"seq":-5}`,
		"invigil.events.7777": ``,
	} {
		if err := raw.Publish(subject, []byte(body)); err != nil {
			t.Fatal(err)
		}
	}
	if err := raw.Flush(); err != nil {
		t.Fatal(err)
	}
	b.EventsCommitted(11, 3)
	if got := receive(t, wokeA); got != 11 {
		t.Errorf("node A woke exam %d, want 11", got)
	}
	a.EventsCommitted(12, 1)
	if got := receive(t, wokeB); got != 12 {
		t.Errorf("after the garbage node B woke exam %d, want 12", got)
	}
	if n := testutil.ToFloat64(b.m.badMessages.WithLabelValues("events")); n != 7 {
		t.Errorf("node B counted %v bad nudges, want 7", n)
	}
	select {
	case exam := <-wokeA:
		t.Errorf("node A woke exam %d: its own nudge, or garbage", exam)
	case exam := <-wokeB:
		t.Errorf("node B woke exam %d: its own nudge, or garbage", exam)
	case <-time.After(100 * time.Millisecond):
	}
}

func receive(t *testing.T, ch chan int64) int64 {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(5 * time.Second):
		t.Fatal("no nudge within 5 s")
		return 0
	}
}

// connectRaw is a plain client, for publishing what no node would.
func connectRaw(t *testing.T, natsURL string) *nats.Conn {
	t.Helper()
	nc, err := nats.Connect(natsURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	return nc
}

// Ping answers while the server runs and fails while it is away; the
// connection comes back by itself and says so.
func TestPingAndReconnect(t *testing.T) {
	srv := natstest.Own(t)
	c := connectTo(t, srv.URL(), nil)
	back := make(chan struct{}, 1)
	c.SetOnReconnect(func() { back <- struct{}{} })
	if err := c.Ping(t.Context()); err != nil {
		t.Fatalf("Ping: %v", err)
	}
	if err := srv.Restart(t.Context()); err != nil {
		t.Fatal(err)
	}
	select {
	case <-back:
	case <-time.After(15 * time.Second):
		t.Fatal("no reconnect within 15 s of the server's restart")
	}
	if err := c.Ping(t.Context()); err != nil {
		t.Fatalf("Ping after the reconnect: %v", err)
	}
}

// Connecting to nothing fails at once and says where, without the
// password.
func TestConnectFailsClearly(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := Connect(ctx, "nats://user:secret-pw@127.0.0.1:1", Options{Logger: quiet})
	if err == nil {
		t.Fatal("connected to a port nobody listens on")
	}
	if msg := err.Error(); !containsAll(msg, "connect to NATS", "127.0.0.1:1") || containsAll(msg, "secret-pw") {
		t.Errorf("error %q: want where, without the password", msg)
	}
}

func containsAll(s string, parts ...string) bool {
	for _, p := range parts {
		if !contains(s, p) {
			return false
		}
	}
	return true
}

func contains(s, sub string) bool {
	for i := 0; i+len(sub) <= len(s); i++ {
		if s[i:i+len(sub)] == sub {
			return true
		}
	}
	return false
}

// store is the control plane's side of the test: it keeps what it was
// handed in order, counting repeats, and can be told to fail.
type store struct {
	mu     sync.Mutex
	order  []string
	times  map[string]int
	failN  map[string]int // fail this many attempts of an entry first
	reject map[string]bool
	seen   chan struct{}
}

func newStore() *store {
	return &store{times: map[string]int{}, failN: map[string]int{}, reject: map[string]bool{}, seen: make(chan struct{}, 1000)}
}

func (s *store) Deliver(_ context.Context, e outbox.Entry) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	id := e.Kind + " " + e.Key
	if s.reject[id] {
		return fmt.Errorf("%w: no such candidate", outbox.ErrRejected)
	}
	if s.failN[id] > 0 {
		s.failN[id]--
		return errors.New("database is locked")
	}
	if s.times[id] == 0 {
		s.order = append(s.order, id)
	}
	s.times[id]++
	s.seen <- struct{}{}
	return nil
}

func (s *store) stored() ([]string, map[string]int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	times := make(map[string]int, len(s.times))
	for k, v := range s.times {
		times[k] = v
	}
	return append([]string(nil), s.order...), times
}

// waitStored waits until n distinct entries are stored.
func (s *store) waitStored(t *testing.T, n int) {
	t.Helper()
	deadline := time.After(20 * time.Second)
	for {
		if order, _ := s.stored(); len(order) >= n {
			return
		}
		select {
		case <-s.seen:
		case <-deadline:
			order, _ := s.stored()
			t.Fatalf("%d entries stored within 20 s, want %d", len(order), n)
		}
	}
}

// freshStream removes what an earlier test left on the violation stream
// and makes it anew.
func freshStream(t *testing.T, c *Conn) {
	t.Helper()
	if err := c.js.DeleteStream(t.Context(), ViolationStream); err != nil && !errors.Is(err, jetstream.ErrStreamNotFound) {
		t.Fatal(err)
	}
	if err := c.EnsureViolationStream(t.Context()); err != nil {
		t.Fatal(err)
	}
}

func streamMessages(t *testing.T, c *Conn) uint64 {
	t.Helper()
	s, err := c.js.Stream(t.Context(), ViolationStream)
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	return info.State.Msgs
}

// The media side's outbox drains into JetStream while no control node
// consumes: JetStream keeps every entry, across a restart of the NATS
// server too. A control node then stores them in order; stopped half-way
// (a restart), the next one stores the rest: every entry exactly once,
// opens before their closes, a failing store retried, a rejected entry and
// a garbage message taken off without stopping the rest.
func TestViolationsKeptUntilStoredOnce(t *testing.T) {
	srv := natstest.Own(t)
	media := connectTo(t, srv.URL(), nil)
	freshStream(t, media)

	box, err := outbox.Open(outbox.Config{Dir: t.TempDir(), Name: "test", Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := box.Start(ctx, media.ViolationPublisher()); err != nil {
		t.Fatal(err)
	}
	const n = 20
	evidence := make([]byte, 100<<10) // a JPEG's size
	var want []string
	for i := range n {
		key := fmt.Sprintf("v%02d", i)
		for _, kind := range []string{"violation_opened", "violation_closed"} {
			e := outbox.Entry{Kind: kind, Key: key, Data: []byte(`{"key":"` + key + `"}`)}
			if kind == "violation_opened" {
				e.Attachment = evidence
			}
			if err := box.Append(e); err != nil {
				t.Fatal(err)
			}
			want = append(want, kind+" "+key)
		}
	}
	if err := box.WaitEmpty(ctx); err != nil {
		t.Fatalf("the outbox did not drain into JetStream: %v", err)
	}
	if err := box.Close(ctx); err != nil {
		t.Fatal(err)
	}
	// Garbage on the subject, from someone who is not Invigil.
	raw := connectRaw(t, srv.URL())
	if err := raw.Publish(violationSubject, []byte("IVGOBX1\ngarbage")); err != nil {
		t.Fatal(err)
	}
	if err := raw.Flush(); err != nil {
		t.Fatal(err)
	}
	if got := streamMessages(t, media); got != 2*n+1 {
		t.Fatalf("JetStream holds %d messages with no consumer, want %d", got, 2*n+1)
	}
	if err := srv.Restart(ctx); err != nil {
		t.Fatal(err)
	}
	control1 := connectTo(t, srv.URL(), nil)
	if got := streamMessages(t, control1); got != 2*n+1 {
		t.Fatalf("after the NATS server restarted JetStream holds %d messages, want %d", got, 2*n+1)
	}

	st := newStore()
	st.failN["violation_opened v03"] = 2
	st.reject["violation_closed v05"] = true
	c1, err := control1.ConsumeViolations(ctx, st)
	if err != nil {
		t.Fatal(err)
	}
	st.waitStored(t, n)
	c1.Stop() // the control node restarts
	control2 := connectTo(t, srv.URL(), nil)
	c2, err := control2.ConsumeViolations(ctx, st)
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Stop()
	st.waitStored(t, 2*n-1) // all but the rejected close
	order, times := st.stored()
	wantStored := make([]string, 0, len(want))
	for _, id := range want {
		if id != "violation_closed v05" {
			wantStored = append(wantStored, id)
		}
	}
	if fmt.Sprint(order) != fmt.Sprint(wantStored) {
		t.Errorf("stored in the order\n%v\nwant\n%v", order, wantStored)
	}
	for id, k := range times {
		if k != 1 {
			t.Errorf("%s stored %d times", id, k)
		}
	}
	// Everything has a verdict: the stream is empty.
	deadline := time.Now().Add(10 * time.Second)
	for streamMessages(t, control2) != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("JetStream still holds %d messages after all were stored", streamMessages(t, control2))
		}
		time.Sleep(50 * time.Millisecond)
	}
	if got := testutil.ToFloat64(control1.m.badMessages.WithLabelValues("violations")) +
		testutil.ToFloat64(control2.m.badMessages.WithLabelValues("violations")); got != 1 {
		t.Errorf("bad violation messages counted: %v, want 1", got)
	}
}

// An entry too large for the server's max_payload is refused before it is
// sent, as ErrTooLarge, so the caller can shrink it.
func TestTooLargeEntry(t *testing.T) {
	c := connect(t, nil)
	freshStream(t, c)
	big := outbox.Entry{Kind: "violation_opened", Key: "big", Attachment: make([]byte, c.MaxPayload())}
	err := c.ViolationPublisher().Deliver(t.Context(), big)
	if !errors.Is(err, ErrTooLarge) {
		t.Fatalf("Deliver of %d bytes: %v, want ErrTooLarge", len(big.Attachment), err)
	}
	fits := outbox.Entry{Kind: "violation_opened", Key: "fits", Attachment: make([]byte, c.MaxPayload()-4096)}
	if err := c.ViolationPublisher().Deliver(t.Context(), fits); err != nil {
		t.Fatalf("Deliver of %d bytes: %v", len(fits.Attachment), err)
	}
}
