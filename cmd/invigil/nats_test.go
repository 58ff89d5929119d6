package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"invigil/api"
	"invigil/bus"
	"invigil/bus/natstest"
	"invigil/internal/testassets"
	"invigil/models"
	"invigil/outbox"
	"invigil/store"
)

// sseEvent is what a stream delivered: its id line and its data.
type sseEvent struct {
	Seq  int64
	Type string
}

// openStream opens an exam's staff event stream from now on and delivers
// its events on the channel until the test ends. It returns once the
// server sent its headers, which it sends after fixing where the stream
// starts: whatever commits after is on the stream.
func openStream(t *testing.T, c apiClient, exam int64) <-chan sseEvent {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, "GET", fmt.Sprintf("%s/api/v1/exams/%d/events?since=now", c.base, exam), nil)
	req.Header.Set("Authorization", "Bearer "+c.token)
	resp, err := http.DefaultClient.Do(req) //nolint:bodyclose // the cleanup below closes it when the test ends
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	if resp.StatusCode != 200 {
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		cancel()
		t.Fatalf("open the event stream on %s: %d %s", c.base, resp.StatusCode, b)
	}
	out := make(chan sseEvent, 1000)
	done := make(chan struct{})
	go func() {
		defer close(done)
		sc := bufio.NewScanner(resp.Body)
		var e sseEvent
		for sc.Scan() {
			line := sc.Text()
			if data, ok := strings.CutPrefix(line, "data: "); ok {
				if err := json.Unmarshal([]byte(data), &e); err == nil {
					out <- e
				}
				e = sseEvent{}
			}
		}
	}()
	t.Cleanup(func() {
		cancel()
		resp.Body.Close()
		<-done
	})
	return out
}

// collect reads n events, each within the time given: less than the
// stream's 15 s keep-alive read, so an event that arrives came by a nudge.
func collect(t *testing.T, node string, ch <-chan sseEvent, n int, within time.Duration) []sseEvent {
	t.Helper()
	var got []sseEvent
	for len(got) < n {
		select {
		case e := <-ch:
			got = append(got, e)
		case <-time.After(within):
			t.Fatalf("node %s's stream: %d of %d events, then none for %v: %v", node, len(got), n, within, got)
		}
	}
	return got
}

// Two serve processes share one PostgreSQL database and one NATS server:
// an event stream on either node sees every event written through either
// node's API, once and in order (the same gapless sequence on both), each
// within seconds, so by a nudge over NATS and not by the stream's
// keep-alive read. /readyz reports NATS: red while it is away, green
// again once the nodes have reconnected.
func TestTwoControlNodesShareLiveEvents(t *testing.T) {
	if err := models.CheckPresent(testassets.ModelsDir(t)); err != nil {
		t.Fatalf("%v (make test provisions them)", err)
	}
	_, dbURL := startPostgres(t)
	ns := natstest.Own(t)
	env := []string{"INVIGIL_DATABASE_URL=" + dbURL, "INVIGIL_NATS_URL=" + ns.URL()}
	_, baseA := serveProcess(t, filepath.Join(t.TempDir(), "a"), append(env, "INVIGIL_NODE_ID=a")...)
	_, baseB := serveProcess(t, filepath.Join(t.TempDir(), "b"), append(env, "INVIGIL_NODE_ID=b")...)
	for _, base := range []string{baseA, baseB} {
		if code, body := readyz(t, base); code != http.StatusOK {
			t.Fatalf("%s/readyz = %d %s", base, code, body)
		}
	}
	a, b := adminClient(t, baseA), adminClient(t, baseB)
	exam, _, _ := examWithCandidate(t, a)
	streamA, streamB := openStream(t, a, exam), openStream(t, b, exam)

	// One node writes, the other's stream sees it: nothing on the other
	// node's own wakes its streams but the nudge.
	for _, step := range []struct {
		writer   apiClient
		reader   string
		readerCh <-chan sseEvent
		otherCh  <-chan sseEvent
	}{{a, "B", streamB, streamA}, {b, "A", streamA, streamB}} {
		if s := step.writer.call("POST", fmt.Sprintf("/api/v1/exams/%d/candidates", exam), map[string]string{"name": "one node"}, nil); s != 201 {
			t.Fatalf("add a candidate through %s: %d", step.writer.base, s)
		}
		got := collect(t, step.reader, step.readerCh, 1, 10*time.Second)
		if own := collect(t, "the writer", step.otherCh, 1, 10*time.Second); own[0] != got[0] {
			t.Errorf("the writer's stream saw %+v, node %s's %+v", own[0], step.reader, got[0])
		}
	}

	// Both nodes write at once: each commit is one candidate_added event.
	const perNode = 10
	var wg sync.WaitGroup
	for _, c := range []apiClient{a, b} {
		wg.Go(func() {
			for i := range perNode {
				if s := c.call("POST", fmt.Sprintf("/api/v1/exams/%d/candidates", exam), map[string]string{"name": fmt.Sprintf("考生 %s %d", c.base, i)}, nil); s != 201 {
					t.Errorf("add a candidate through %s: %d", c.base, s)
				}
			}
		})
	}
	wg.Wait()
	gotA := collect(t, "A", streamA, 2*perNode, 10*time.Second)
	gotB := collect(t, "B", streamB, 2*perNode, 10*time.Second)
	for name, got := range map[string][]sseEvent{"A": gotA, "B": gotB} {
		for i, e := range got {
			if e.Type != "candidate_added" || (i > 0 && e.Seq != got[i-1].Seq+1) {
				t.Errorf("node %s's stream, event %d: %+v after %+v (want candidate_added, the next sequence number)", name, i, e, got[max(i-1, 0)])
			}
		}
	}
	if fmt.Sprint(gotA) != fmt.Sprint(gotB) {
		t.Errorf("the streams differ:\nA %v\nB %v", gotA, gotB)
	}
	select {
	case e := <-streamA:
		t.Errorf("node A's stream delivered one more: %+v", e)
	case e := <-streamB:
		t.Errorf("node B's stream delivered one more: %+v", e)
	case <-time.After(300 * time.Millisecond):
	}

	// NATS goes away: /readyz says so on both nodes; back, both are ready
	// again and nudges flow.
	if err := ns.Restart(t.Context()); err != nil {
		t.Fatal(err)
	}
	for _, base := range []string{baseA, baseB} {
		for deadline := time.Now().Add(30 * time.Second); ; {
			code, body := readyz(t, base)
			if code == http.StatusOK {
				break
			}
			if !strings.Contains(strings.ToLower(body), "nats") {
				t.Errorf("%s/readyz = %d %q while NATS restarts: want it to name NATS", base, code, body)
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s/readyz = %d %s 30 s after NATS came back", base, code, body)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	if s := b.call("POST", fmt.Sprintf("/api/v1/exams/%d/candidates", exam), map[string]string{"name": "after the restart"}, nil); s != 201 {
		t.Fatalf("add a candidate through B after NATS restarted: %d", s)
	}
	if got := collect(t, "A", streamA, 1, 10*time.Second); got[0].Seq != gotA[len(gotA)-1].Seq+1 {
		t.Errorf("node A after NATS restarted: %+v, want seq %d", got[0], gotA[len(gotA)-1].Seq+1)
	}
}

// With NATS stopped, /readyz is red and names NATS.
func TestReadyzReportsNATS(t *testing.T) {
	if err := models.CheckPresent(testassets.ModelsDir(t)); err != nil {
		t.Fatalf("%v (make test provisions them)", err)
	}
	ns := natstest.Own(t)
	_, base := serveProcess(t, t.TempDir(), "INVIGIL_NATS_URL="+ns.URL())
	if code, body := readyz(t, base); code != http.StatusOK {
		t.Fatalf("/readyz = %d %s", code, body)
	}
	if err := ns.Stop(); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "/readyz to report NATS down", 30*time.Second, func() bool {
		code, body := readyz(t, base)
		return code == http.StatusServiceUnavailable && strings.Contains(strings.ToLower(body), "nats")
	})
}

// natsControlPlane is serve's control plane on a store, wired to NATS by
// openViolationOutbox as serve wires it, serving the API on loopback.
type natsControlPlane struct {
	st   *store.Store
	vo   *violationOutbox
	base string
	stop func()
}

func startNATSControlPlane(t *testing.T, data, natsURL string) *natsControlPlane {
	t.Helper()
	ctx := context.Background()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	if err := os.MkdirAll(data, 0o750); err != nil {
		t.Fatal(err)
	}
	st, err := store.Open(ctx, filepath.Join(data, databaseFile))
	if err != nil {
		t.Fatal(err)
	}
	if err := bootstrapAdmin(ctx, st, testAdminPassword, io.Discard, log); err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	nb, err := bus.Connect(ctx, natsURL, bus.Options{Logger: log, Registry: reg})
	if err != nil {
		t.Fatal(err)
	}
	srv, err := api.New(api.Options{Registry: reg, Logger: log, Control: &api.ControlOptions{Store: st, DataDir: data, Events: nb}})
	if err != nil {
		t.Fatal(err)
	}
	vo, err := openViolationOutbox(ctx, data, srv, nb, true, reg, log)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	sctx, cancel := context.WithCancel(ctx)
	served := make(chan struct{})
	go func() {
		defer close(served)
		_ = srv.Serve(sctx, ln, 5*time.Second)
	}()
	cp := &natsControlPlane{st: st, vo: vo, base: baseURL(ln.Addr())}
	var once sync.Once
	cp.stop = func() {
		once.Do(func() {
			cancel()
			<-served
			vo.Shutdown(5 * time.Second)
			nb.Close()
			st.Close()
		})
	}
	t.Cleanup(cp.stop)
	return cp
}

// Violations queued while no control node consumes stay in JetStream;
// when the control plane starts, each is stored exactly once with its
// close (bus's own test stops a consumer half-way and restarts NATS). A
// violation too large for the server's max_payload arrives without its
// clip, or without its evidence when that alone is too large, saying so.
func TestViolationsThroughJetStream(t *testing.T) {
	ns := natstest.Own(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	dataDir := filepath.Join(t.TempDir(), "control")
	// The control plane makes the exam and candidate, then stops: what
	// follows is queued with no consumer.
	cp := startNATSControlPlane(t, dataDir, ns.URL())
	exam, cand, _ := examWithCandidate(t, adminClient(t, cp.base))
	cp.stop()

	// The media side: an outbox draining into JetStream, as serve's with
	// NATS, fed through the pipeline's sink.
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	media, err := bus.Connect(ctx, ns.URL(), bus.Options{Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	defer media.Close()
	box, err := outbox.Open(outbox.Config{Dir: filepath.Join(t.TempDir(), "media-outbox"), Name: "violation", Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	if err := box.Start(ctx, natsDelivery{nb: media, log: log}); err != nil {
		t.Fatal(err)
	}
	sink := &storeSink{outbox: box, dataDir: t.TempDir(), log: log}
	const n = 12
	for i := range n {
		v := stormViolation(i, cand)
		switch i {
		case 0:
			v.Clip = make([]byte, 1<<20) // base64 in the JSON: larger than max_payload
		case 1:
			v.Evidence = append(v.Evidence, make([]byte, 1<<20)...) // no clip; the evidence alone is too large
		}
		if err := sink.ViolationOpened(ctx, v); err != nil {
			t.Fatal(err)
		}
		v.EndedAt = v.OpenedAt.Add(time.Second)
		if err := sink.ViolationClosed(ctx, v); err != nil {
			t.Fatal(err)
		}
	}
	if err := box.WaitEmpty(ctx); err != nil {
		t.Fatalf("the media outbox did not drain into JetStream: %v", err)
	}
	if got := jetStreamHolds(t, ns.URL()); got != 2*n {
		t.Fatalf("JetStream holds %d messages with no control node, want %d", got, 2*n)
	}

	cp = startNATSControlPlane(t, dataDir, ns.URL())
	waitUntil(t, "every violation stored and closed", 30*time.Second, func() bool {
		vs, err := cp.st.ListViolations(ctx, store.ViolationFilter{ExamID: exam})
		if err != nil {
			t.Fatal(err)
		}
		closed := 0
		for _, v := range vs {
			if !v.EndedAt.IsZero() {
				closed++
			}
		}
		return len(vs) == n && closed == n
	})
	vs, err := cp.st.ListViolations(ctx, store.ViolationFilter{ExamID: exam})
	if err != nil {
		t.Fatal(err)
	}
	keys := map[string]int{}
	for _, v := range vs {
		keys[v.Key]++
		switch v.Key {
		case "storm-0":
			if v.ClipPath != "" || !strings.Contains(string(v.Details), `"dropped":["clip"]`) || v.EvidencePath == "" {
				t.Errorf("the violation with a large clip: clip %q, evidence %q, details %s (want no clip, the evidence, dropped: clip)", v.ClipPath, v.EvidencePath, v.Details)
			}
		case "storm-1":
			if v.EvidencePath != "" || !strings.Contains(string(v.Details), `"dropped":["evidence"]`) {
				t.Errorf("the violation with large evidence: evidence %q, details %s (want none, dropped: evidence)", v.EvidencePath, v.Details)
			}
		default:
			if v.EvidencePath == "" || strings.Contains(string(v.Details), "dropped") {
				t.Errorf("%s: evidence %q, details %s (want the evidence, nothing dropped)", v.Key, v.EvidencePath, v.Details)
			}
		}
	}
	for i := range n {
		if k := keys[fmt.Sprintf("storm-%d", i)]; k != 1 {
			t.Errorf("storm-%d stored %d times", i, k)
		}
	}
	if got := jetStreamHolds(t, ns.URL()); got != 0 {
		t.Errorf("JetStream still holds %d messages after all were stored", got)
	}
	if err := box.Close(ctx); err != nil {
		t.Fatal(err)
	}
}

// jetStreamHolds is how many messages the violation stream holds.
func jetStreamHolds(t *testing.T, natsURL string) uint64 {
	t.Helper()
	nc, err := nats.Connect(natsURL)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	s, err := js.Stream(t.Context(), bus.ViolationStream)
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	return info.State.Msgs
}
