package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"invigil/bus/natstest"
	"invigil/store"
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

// testInterval keeps the tests short; nothing is timed, the waits are on
// conditions.
const testInterval = 50 * time.Millisecond

// testKey signs what the tests' nodes send, as a cluster key does.
var testKey = Key("cluster-test-key-0123456789")

func connect(t *testing.T) *nats.Conn {
	t.Helper()
	nc, err := nats.Connect(server.URL(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	return nc
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

type node struct {
	a    *Announcer
	nc   *nats.Conn
	load atomic.Int64
}

func startNode(t *testing.T, name string, capacity int, load int) *node {
	t.Helper()
	n := &node{nc: connect(t)}
	n.load.Store(int64(load))
	a, err := Announce(n.nc, AnnounceOptions{Node: name, URL: "https://" + name + ".example:8443", Capacity: capacity,
		Load: func() int { return int(n.load.Load()) }, Interval: testInterval, Key: testKey})
	if err != nil {
		t.Fatal(err)
	}
	n.a = a
	t.Cleanup(func() { _ = a.Close() })
	return n
}

func testStore(t *testing.T) (*store.Store, []int64) {
	t.Helper()
	st, err := store.Open(t.Context(), filepath.Join(t.TempDir(), "invigil.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	var exams []int64
	now := time.Now().UTC()
	for i := range 3 {
		e, err := st.CreateExam(t.Context(), store.Exam{Name: fmt.Sprintf("exam %d", i), StartsAt: now, EndsAt: now.Add(time.Hour)})
		if err != nil {
			t.Fatal(err)
		}
		exams = append(exams, e.ID)
	}
	return st, exams
}

func place(t *testing.T, r *Registry, st *store.Store, exam int64) (string, bool) {
	t.Helper()
	n, moved, err := r.Place(context.Background(), st, exam)
	if err != nil {
		t.Fatalf("place exam %d: %v", exam, err)
	}
	return n.Node, moved
}

// Two media nodes announce themselves; exams go to the least loaded one
// with room and stay there; a draining node takes no new exam but keeps
// its own; a node that says goodbye, and one that just goes silent, lose
// their exams to a live node.
func TestPlacement(t *testing.T) {
	st, exams := testStore(t)
	r, err := Watch(connect(t), WatchOptions{Interval: testInterval})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	startNode(t, "media-1", 10, 3)
	m2 := startNode(t, "media-2", 10, 1)
	waitFor(t, "both nodes heard", func() bool { return len(r.Nodes()) == 2 })

	a, b, c := exams[0], exams[1], exams[2]
	if got, _ := place(t, r, st, a); got != "media-2" {
		t.Fatalf("exam A placed on %s, want the less loaded media-2", got)
	}
	// Sticky: media-2 fills up past media-1, A stays.
	m2.load.Store(8)
	waitFor(t, "media-2's new load", func() bool { n, _ := r.Node("media-2"); return n.Load == 8 })
	if got, moved := place(t, r, st, a); got != "media-2" || moved {
		t.Fatalf("exam A now on %s (moved %v), want it to stay on media-2", got, moved)
	}
	if got, _ := place(t, r, st, b); got != "media-1" {
		t.Fatalf("exam B placed on %s, want media-1, now the less loaded", got)
	}

	// Drain media-1: C cannot go there, B stays.
	h, err := Drain(connect(t), "media-1", 5*time.Second, testKey)
	if err != nil || !h.Draining || h.Node != "media-1" {
		t.Fatalf("drain: %+v, %v", h, err)
	}
	waitFor(t, "media-1 draining", func() bool { n, _ := r.Node("media-1"); return n.Draining })
	if got, _ := place(t, r, st, c); got != "media-2" {
		t.Fatalf("exam C placed on %s, want media-2 (media-1 drains)", got)
	}
	if got, _ := place(t, r, st, b); got != "media-1" {
		t.Fatalf("exam B moved to %s while its node drains, want it kept", got)
	}
	if _, err := Drain(connect(t), "media-9", time.Second, testKey); err == nil {
		t.Error("draining a node that does not exist succeeded")
	}

	// media-2 says goodbye: its exams A and C cannot go to media-1, which
	// drains, so there is nowhere for them.
	if err := m2.a.Close(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "media-2 gone", func() bool { n, _ := r.Node("media-2"); return !n.Alive })
	if _, _, err := r.Place(context.Background(), st, a); !errors.Is(err, ErrNoNode) {
		t.Fatalf("placing A with only a draining node: %v, want ErrNoNode", err)
	}
	// A third node comes; A moves there.
	m3 := startNode(t, "media-3", 10, 0)
	waitFor(t, "media-3 heard", func() bool { n, ok := r.Node("media-3"); return ok && n.Alive })
	if got, moved := place(t, r, st, a); got != "media-3" || !moved {
		t.Fatalf("exam A on %s (moved %v), want moved to media-3", got, moved)
	}
	// media-3 dies without a word (its connection cut): it is taken for
	// gone after the missed heartbeats.
	m3.nc.Close()
	waitFor(t, "media-3 silent long enough", func() bool { n, _ := r.Node("media-3"); return !n.Alive })
	if _, _, err := r.Place(context.Background(), st, a); !errors.Is(err, ErrNoNode) {
		t.Fatalf("placing A after media-3 died: %v, want ErrNoNode", err)
	}
}

// A full node takes no new exam.
func TestFullNodeTakesNone(t *testing.T) {
	st, exams := testStore(t)
	r, err := Watch(connect(t), WatchOptions{Interval: testInterval})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	startNode(t, "full-1", 5, 5)
	waitFor(t, "the node heard", func() bool { return len(r.Nodes()) == 1 })
	if _, _, err := r.Place(context.Background(), st, exams[0]); !errors.Is(err, ErrNoNode) {
		t.Fatalf("placing on a full node: %v, want ErrNoNode", err)
	}
}

// Garbage on the heartbeat subject is counted and ignored.
func TestGarbageHeartbeats(t *testing.T) {
	r, err := Watch(connect(t), WatchOptions{Interval: testInterval})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	nc := connect(t)
	for _, b := range []string{"", "{", `{"node":"a.b","capacity":1}`, `{"node":"ok","capacity":-1}`, `{"node":"` + string(make([]byte, 5000)) + `"}`} {
		if err := nc.Publish(SubjectHeartbeat, []byte(b)); err != nil {
			t.Fatal(err)
		}
	}
	if err := nc.Publish(SubjectHeartbeat, []byte(`{"node":"good-1","url":"https://x","capacity":2,"load":1}`)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the good heartbeat", func() bool { return len(r.Nodes()) == 1 })
	waitFor(t, "the garbage counted", func() bool { return r.Rejected() == 5 })
	if n := r.Nodes()[0]; n.Node != "good-1" || !n.Alive || n.Capacity != 2 {
		t.Errorf("the good node: %+v", n)
	}
}

func TestAnnounceRefusesBadOptions(t *testing.T) {
	nc := connect(t)
	for _, o := range []AnnounceOptions{
		{Node: "a.b", URL: "https://x", Capacity: 1},
		{Node: "", URL: "https://x", Capacity: 1},
		{Node: "ok", Capacity: 1},
		{Node: "ok", URL: "https://x"},
	} {
		if a, err := Announce(nc, o); err == nil {
			_ = a.Close()
			t.Errorf("%+v: announced", o)
		}
	}
}

// With a cluster key, what is not signed with it is refused: a heartbeat
// of a "media node" someone on NATS made up, one signed with another key
// or replayed after its signature expired, a drain request and a media
// command without the key.
func TestUnsignedMessagesRefused(t *testing.T) {
	st, exams := testStore(t)
	r, err := Watch(connect(t), WatchOptions{Interval: testInterval, Key: testKey})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	nc := connect(t)
	rogue := []byte(`{"node":"rogue-1","url":"https://attacker.example","capacity":100,"load":0}`)
	if err := nc.Publish(SubjectHeartbeat, rogue); err != nil {
		t.Fatal(err)
	}
	if err := nc.PublishMsg(Key("another-key-0123456789").message(SubjectHeartbeat, rogue)); err != nil {
		t.Fatal(err)
	}
	old := testKey.message(SubjectHeartbeat, rogue)
	exp := time.Now().Add(-time.Second).Unix()
	old.Header.Set(signatureHeader, fmt.Sprintf("%d.%s", exp, testKey.mac(SubjectHeartbeat, exp, rogue)))
	if err := nc.PublishMsg(old); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "three refused heartbeats", func() bool { return r.Rejected() == 3 })
	if _, _, err := r.Place(context.Background(), st, exams[0]); !errors.Is(err, ErrNoNode) {
		t.Fatalf("an exam was placed on a node that never signed: %v", err)
	}

	n := startNode(t, "media-1", 10, 0)
	waitFor(t, "the signed node heard", func() bool { m, ok := r.Node("media-1"); return ok && m.Alive })
	if _, err := Drain(connect(t), "media-1", time.Second, nil); err == nil || n.a.Draining() {
		t.Errorf("an unsigned drain request drained the node (err %v)", err)
	}
	cs, err := ServeCommands(connect(t), "media-1", refusingTarget{t}, testKey, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer cs.Close()
	if err := Remote(connect(t), "media-1", time.Second, nil).Kick("candidate-1"); err == nil || !strings.Contains(err.Error(), "refused") {
		t.Errorf("an unsigned kick: %v, want it refused", err)
	}
	if err := Remote(connect(t), "media-1", time.Second, testKey).Kick("candidate-1"); err == nil || !strings.Contains(err.Error(), "ran") {
		t.Errorf("a signed kick: %v, want it run", err)
	}
}

// refusingTarget answers every command with an error saying it ran, so
// the test can tell a command that reached it from one refused before.
type refusingTarget struct{ t *testing.T }

func (refusingTarget) Subscribe(string, string) error          { return errors.New("ran") }
func (refusingTarget) Unsubscribe(string, string) error        { return errors.New("ran") }
func (refusingTarget) Kick(string) error                       { return errors.New("ran") }
func (refusingTarget) SetPolicy(string, json.RawMessage) error { return errors.New("ran") }
func (refusingTarget) Calibrate(string, time.Time) error       { return errors.New("ran") }
func (refusingTarget) Forget(string)                           {}
func (refusingTarget) Latest(string) (json.RawMessage, bool)   { return nil, false }
