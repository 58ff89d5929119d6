package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"invigil/api"
	"invigil/detectors/rules"
	"invigil/pipeline"
	"invigil/store"
)

// controlPlane is serve's control plane without the media plane: the real
// store, the real API and the violation outbox wired by the same function
// serve uses (openViolationOutbox), its sink being what the pipeline gets.
type controlPlane struct {
	st   *store.Store
	srv  *api.Server
	vo   *violationOutbox
	reg  *prometheus.Registry
	base string
	stop func()
}

func startControlPlane(ctx context.Context, data string, log *slog.Logger) (*controlPlane, error) {
	if err := os.MkdirAll(data, 0o750); err != nil {
		return nil, err
	}
	st, err := store.Open(ctx, filepath.Join(data, databaseFile))
	if err != nil {
		return nil, err
	}
	if err := bootstrapAdmin(ctx, st, testAdminPassword, io.Discard, log); err != nil {
		st.Close()
		return nil, err
	}
	reg := prometheus.NewRegistry()
	srv, err := api.New(api.Options{Registry: reg, Logger: log, Control: &api.ControlOptions{Store: st, DataDir: data}})
	if err != nil {
		st.Close()
		return nil, err
	}
	vo, err := openViolationOutbox(ctx, data, srv, nil, true, reg, log)
	if err != nil {
		st.Close()
		return nil, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		vo.Shutdown(0)
		st.Close()
		return nil, err
	}
	sctx, cancel := context.WithCancel(ctx)
	served := make(chan struct{})
	go func() {
		defer close(served)
		if err := srv.Serve(sctx, ln, 5*time.Second); err != nil {
			log.Error("serve", "err", err)
		}
	}()
	cp := &controlPlane{st: st, srv: srv, vo: vo, reg: reg, base: baseURL(ln.Addr())}
	cp.stop = func() {
		cancel()
		<-served
		vo.Shutdown(5 * time.Second)
		st.Close()
	}
	return cp, nil
}

// inProcess starts a control plane for a test and stops it at cleanup.
func inProcess(t *testing.T, data string) (*controlPlane, *syncBuffer) {
	t.Helper()
	logs := &syncBuffer{}
	cp, err := startControlPlane(context.Background(), data, slog.New(slog.NewTextHandler(logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cp.stop()
		if t.Failed() {
			t.Logf("server log:\n%s", logs)
		}
	})
	return cp, logs
}

func metricValue(t *testing.T, reg *prometheus.Registry, name string, labels map[string]string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	total := 0.0
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			if !hasLabels(m, labels) {
				continue
			}
			switch {
			case m.Gauge != nil:
				total += m.GetGauge().GetValue()
			case m.Counter != nil:
				total += m.GetCounter().GetValue()
			}
		}
	}
	return total
}

func hasLabels(m *dto.Metric, want map[string]string) bool {
	for k, v := range want {
		found := false
		for _, l := range m.GetLabel() {
			if l.GetName() == k && l.GetValue() == v {
				found = true
			}
		}
		if !found {
			return false
		}
	}
	return true
}

// waitUntil polls cond until it holds or the (generous) deadline passes.
func waitUntil(t *testing.T, what string, deadline time.Duration, cond func() bool) {
	t.Helper()
	for end := time.Now().Add(deadline); !cond(); {
		if time.Now().After(end) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// stormViolation is violation n of a storm, for candidate cand, with an
// evidence image that names its key.
func stormViolation(n int, cand int64) pipeline.Violation {
	at := time.Now().UTC()
	key := fmt.Sprintf("storm-%d", n)
	return pipeline.Violation{Key: key, Identity: fmt.Sprintf("candidate-%d", cand), Room: "rest_room", Policy: "rest_room",
		Violation: rules.Violation{Type: rules.Type("face_off_screen"), Confidence: 0.9, Reason: "no face in view",
			Details: map[string]float64{"faces": 0}},
		StartedAt: at.Add(-2 * time.Second), OpenedAt: at, Evidence: stormEvidence(key)}
}

func stormEvidence(key string) []byte {
	return append([]byte{0xff, 0xd8, 0xff, 0xe0}, bytes.Repeat([]byte(key+";"), 2000)...)
}

func examAndCandidates(t *testing.T, st *store.Store, n int) (store.Exam, []int64) {
	t.Helper()
	ctx := context.Background()
	now := time.Now()
	exam, err := st.CreateExam(ctx, store.Exam{Name: "faults", StartsAt: now.Add(-time.Hour), EndsAt: now.Add(2 * time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	var ids []int64
	for i := range n {
		cc, err := st.CreateCandidate(ctx, exam.ID, store.NewCandidate{Name: fmt.Sprintf("考生 %d", i)}, func() (string, error) {
			return fmt.Sprintf("%06d", rand.IntN(1_000_000)), nil
		})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, cc.ID)
	}
	return exam, ids
}

// checkStoredOnce opens the database and checks that every key in opened
// is stored exactly once, announced exactly once, with its evidence, and
// that every key in closed has its end; it returns how many rows there are.
func checkStoredOnce(t *testing.T, data string, examID int64, opened, closed []string) {
	t.Helper()
	ctx := context.Background()
	st, err := store.Open(ctx, filepath.Join(data, databaseFile))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	list, err := st.ListViolations(ctx, store.ViolationFilter{ExamID: examID})
	if err != nil {
		t.Fatal(err)
	}
	byKey := map[string][]store.Violation{}
	byID := map[int64]string{}
	for _, v := range list {
		byKey[v.Key] = append(byKey[v.Key], v)
		byID[v.ID] = v.Key
	}
	events, err := st.EventsSince(ctx, examID, 0, 1_000_000)
	if err != nil {
		t.Fatal(err)
	}
	announced := map[string]int{}
	for _, e := range events {
		if e.Type != "violation_opened" {
			continue
		}
		var d struct{ ID int64 }
		if err := json.Unmarshal(e.Data, &d); err != nil {
			t.Fatal(err)
		}
		announced[byID[d.ID]]++
	}
	for _, k := range opened {
		rows := byKey[k]
		if len(rows) != 1 {
			t.Errorf("acknowledged violation %s stored %d times", k, len(rows))
			continue
		}
		if announced[k] != 1 {
			t.Errorf("acknowledged violation %s announced %d times", k, announced[k])
		}
		b, err := os.ReadFile(filepath.Join(data, rows[0].EvidencePath))
		if err != nil || !bytes.Equal(b, stormEvidence(k)) {
			t.Errorf("evidence of %s (%q): %d bytes, %v", k, rows[0].EvidencePath, len(b), err)
		}
	}
	for _, k := range closed {
		if rows := byKey[k]; len(rows) != 1 || rows[0].EndedAt.IsZero() {
			t.Errorf("acknowledged close of %s is not stored: %+v", k, rows)
		}
	}
	// Nothing half-written or orphaned is left under evidence/.
	des, _ := os.ReadDir(filepath.Join(data, "evidence"))
	for _, de := range des {
		rel := filepath.Join("evidence", de.Name())
		found := false
		for _, v := range list {
			found = found || v.EvidencePath == rel
		}
		if !found {
			t.Errorf("evidence file %s belongs to no violation", rel)
		}
	}
}

const stormChildEnv = "INVIGIL_FAULT_STORM_CHILD"

// The child half of TestAcknowledgedViolationsSurviveSIGKILL: a control
// plane on data, which prints its URL; with "storm ID,ID,…" on stdin it
// reports violations of those candidates through the pipeline's sink as
// fast as it can (an open, then the close of the one before), printing
// each once the sink returned, i.e. once it is acknowledged.
func TestFaultStormChild(t *testing.T) {
	data := os.Getenv(stormChildEnv)
	if data == "" {
		t.Skip("runs only as the child of TestAcknowledgedViolationsSurviveSIGKILL")
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer stop()
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	cp, err := startControlPlane(ctx, data, log)
	if err != nil {
		fmt.Println("error", err)
		os.Exit(2)
	}
	fmt.Printf("url=%s\n", cp.base)
	go func() {
		sc := bufio.NewScanner(os.Stdin)
		for sc.Scan() {
			ids, ok := strings.CutPrefix(sc.Text(), "storm ")
			if !ok {
				continue
			}
			var cands []int64
			for _, s := range strings.Split(ids, ",") {
				id, _ := strconv.ParseInt(s, 10, 64)
				cands = append(cands, id)
			}
			sink := cp.vo.sink
			for n := 0; ctx.Err() == nil; n++ {
				v := stormViolation(n, cands[n%len(cands)])
				if err := sink.ViolationOpened(ctx, v); err != nil {
					fmt.Println("error", err)
					os.Exit(2)
				}
				fmt.Printf("acked opened %s\n", v.Key)
				if n > 0 {
					prev := stormViolation(n-1, cands[(n-1)%len(cands)])
					prev.EndedAt = time.Now().UTC()
					if err := sink.ViolationClosed(ctx, prev); err != nil {
						fmt.Println("error", err)
						os.Exit(2)
					}
					fmt.Printf("acked closed %s\n", prev.Key)
				}
			}
		}
	}()
	<-ctx.Done()
	cp.stop()
	os.Exit(0)
}

type stormChild struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	base  string
	lines chan string
	log   *syncBuffer
}

func startStormChild(t *testing.T, data string) *stormChild {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestFaultStormChild$", "-test.count=1", "-test.timeout=10m")
	cmd.Env = append(os.Environ(), stormChildEnv+"="+data)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	c := &stormChild{cmd: cmd, stdin: stdin, lines: make(chan string, 1<<16), log: &syncBuffer{}}
	cmd.Stderr = c.log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		defer close(c.lines)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			c.lines <- sc.Text()
		}
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("child log:\n%s", c.log)
		}
	})
	select {
	case l, ok := <-c.lines:
		if u, found := strings.CutPrefix(l, "url="); ok && found {
			c.base = u
			return c
		}
		t.Fatalf("child said %q", l)
	case <-time.After(60 * time.Second):
		t.Fatal("the control plane child did not start")
	}
	return nil
}

// metric reads one value from a running server's /metrics.
func scrapeMetric(t *testing.T, base, line string) (float64, bool) {
	t.Helper()
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		return 0, false
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	m := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(line) + ` (\S+)$`).FindSubmatch(b)
	if m == nil {
		return 0, false
	}
	v, err := strconv.ParseFloat(string(m[1]), 64)
	return v, err == nil
}

// Promise: a violation the pipeline's sink acknowledged is never lost, nor
// stored twice. A control plane wired as serve wires it takes a storm of
// violations for real candidates (made through the HTTP API) while bulk
// CSV imports run through the HTTP API; it is SIGKILLed at a random moment;
// after a restart and the outbox draining, every acknowledged open is
// stored and announced exactly once with its evidence, every acknowledged
// close is stored, and no evidence file is orphaned.
func TestAcknowledgedViolationsSurviveSIGKILL(t *testing.T) {
	data := filepath.Join(t.TempDir(), "data")
	child := startStormChild(t, data)
	admin := adminClient(t, child.base)
	var exam struct{ ID int64 }
	now := time.Now().UTC()
	if s := admin.call("POST", "/api/v1/exams", map[string]any{"name": "storm", "starts_at": now.Add(-time.Hour), "ends_at": now.Add(2 * time.Hour)}, &exam); s != 201 {
		t.Fatalf("create exam: %d", s)
	}
	var cands []string
	for i := range 4 {
		var c struct{ ID int64 }
		if s := admin.call("POST", fmt.Sprintf("/api/v1/exams/%d/candidates", exam.ID), map[string]string{"name": fmt.Sprintf("考生 %d", i)}, &c); s != 201 {
			t.Fatalf("add candidate: %d", s)
		}
		cands = append(cands, strconv.FormatInt(c.ID, 10))
	}

	// Bulk imports through the HTTP API until the kill cuts them off.
	importing := make(chan struct{})
	var importsDone sync.WaitGroup
	importsDone.Add(1)
	go func() {
		defer importsDone.Done()
		for round := 0; ; round++ {
			var csv bytes.Buffer
			csv.WriteString("name,external_id\n")
			for i := range 2000 {
				fmt.Fprintf(&csv, "bulk %d-%d,b%d-%d\n", round, i, round, i)
			}
			req, _ := http.NewRequest("POST", fmt.Sprintf("%s/api/v1/exams/%d/candidates/import", child.base, exam.ID), &csv)
			req.Header.Set("Authorization", "Bearer "+admin.token)
			if round == 0 {
				close(importing)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				return // killed
			}
			resp.Body.Close()
		}
	}()
	<-importing
	// The storm starts once the first import is half way in.
	waitUntil(t, "the import to store candidates", 2*time.Minute, func() bool {
		var list []json.RawMessage
		return admin.call("GET", fmt.Sprintf("/api/v1/exams/%d/candidates", exam.ID), nil, &list) == 200 && len(list) > len(cands)
	})
	if _, err := fmt.Fprintf(child.stdin, "storm %s\n", strings.Join(cands, ",")); err != nil {
		t.Fatal(err)
	}
	killAfter := 40 + rand.IntN(400)
	var opened, closed []string
	for line := range child.lines {
		switch {
		case strings.HasPrefix(line, "acked opened "):
			opened = append(opened, strings.TrimPrefix(line, "acked opened "))
		case strings.HasPrefix(line, "acked closed "):
			closed = append(closed, strings.TrimPrefix(line, "acked closed "))
		case strings.HasPrefix(line, "error"):
			t.Fatalf("child: %s", line)
		}
		if len(opened)+len(closed) == killAfter {
			if err := child.cmd.Process.Kill(); err != nil {
				t.Fatal(err)
			}
		}
	}
	_ = child.cmd.Wait()
	importsDone.Wait()
	t.Logf("SIGKILL after %d acknowledged opens and %d closes", len(opened), len(closed))
	if len(opened)+len(closed) < killAfter {
		t.Fatalf("the child ended after %d acknowledgements", len(opened)+len(closed))
	}

	// Restart on the same data; the outbox replays what it holds.
	child = startStormChild(t, data)
	if m := regexp.MustCompile(`replays entries left from the last run.* pending=(\d+)`).FindStringSubmatch(child.log.String()); m != nil {
		t.Logf("the restarted outbox replays %s entries", m[1])
	}
	waitUntil(t, "the outbox to drain after the restart", 3*time.Minute, func() bool {
		v, ok := scrapeMetric(t, child.base, "invigil_violation_outbox_pending")
		return ok && v == 0
	})
	if v, ok := scrapeMetric(t, child.base, `invigil_violation_outbox_failed_total{reason="rejected"}`); !ok || v != 0 {
		t.Errorf("failed_total{rejected} %v (%v), want 0", v, ok)
	}
	if v, ok := scrapeMetric(t, child.base, `invigil_violation_outbox_failed_total{reason="corrupt"}`); !ok || v != 0 {
		t.Errorf("failed_total{corrupt} %v (%v), want 0", v, ok)
	}
	if err := child.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := child.cmd.Wait(); err != nil {
		t.Fatalf("child after SIGTERM: %v", err)
	}
	checkStoredOnce(t, data, exam.ID, opened, closed)
}

// Promise: while an outside process holds the database's write lock for
// 10 s, the pipeline's violations are still acknowledged at once, and they
// are stored after it lets go; none fails for good.
func TestViolationsWaitOutAnOutsideWriteLock(t *testing.T) {
	if _, err := exec.LookPath("sqlite3"); err != nil {
		t.Fatalf("the sqlite3 command is missing (scripts/install.sh test installs it): %v", err)
	}
	data := filepath.Join(t.TempDir(), "data")
	cp, logs := inProcess(t, data)
	exam, cands := examAndCandidates(t, cp.st, 2)

	lock := exec.Command("sqlite3", filepath.Join(data, databaseFile))
	stdin, err := lock.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := lock.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var lockErr bytes.Buffer
	lock.Stderr = &lockErr
	if err := lock.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = lock.Process.Kill(); _ = lock.Wait() })
	fmt.Fprintln(stdin, ".timeout 10000")
	fmt.Fprintln(stdin, "BEGIN IMMEDIATE;")
	fmt.Fprintln(stdin, "INSERT INTO audit_log (at, action, target) VALUES ('2026-01-01T00:00:00Z', 'outside.lock', 'test');")
	fmt.Fprintln(stdin, "SELECT 'locked';")
	out := bufio.NewScanner(stdout)
	if !out.Scan() || out.Text() != "locked" {
		t.Fatalf("sqlite3 did not take the write lock: %q %s", out.Text(), lockErr.String())
	}
	locked := time.Now()

	var opened, closed []string
	for n := range 10 {
		v := stormViolation(n, cands[n%2])
		if err := cp.vo.sink.ViolationOpened(context.Background(), v); err != nil {
			t.Fatalf("open %s while the database is locked: %v", v.Key, err)
		}
		opened = append(opened, v.Key)
		if n%2 == 1 {
			v.EndedAt = time.Now().UTC()
			if err := cp.vo.sink.ViolationClosed(context.Background(), v); err != nil {
				t.Fatalf("close %s while the database is locked: %v", v.Key, err)
			}
			closed = append(closed, v.Key)
		}
	}
	// Each attempt waits out the 5 s busy timeout, so a retry means a
	// delivery really failed on the lock.
	waitUntil(t, "a delivery to fail on the lock", 2*time.Minute, func() bool {
		return metricValue(t, cp.reg, "invigil_violation_outbox_retries_total", nil) >= 1
	})
	if !strings.Contains(logs.String(), "database is locked") {
		t.Errorf("the retry does not say the database is locked:\n%s", logs)
	}
	if list, err := cp.st.ListViolations(context.Background(), store.ViolationFilter{ExamID: exam.ID}); err != nil || len(list) != 0 {
		t.Fatalf("violations stored through someone else's write lock? %d %v", len(list), err)
	}
	if n := metricValue(t, cp.reg, "invigil_violation_outbox_pending", nil); n != 15 {
		t.Errorf("pending %v while locked, want 15", n)
	}
	// Hold the lock for 10 s in all, then let go.
	time.Sleep(time.Until(locked.Add(10 * time.Second)))
	fmt.Fprintln(stdin, "COMMIT;")
	stdin.Close()
	if err := lock.Wait(); err != nil {
		t.Fatalf("sqlite3: %v %s", err, lockErr.String())
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	if err := cp.vo.box.WaitEmpty(ctx); err != nil {
		t.Fatal(err)
	}
	if n := metricValue(t, cp.reg, "invigil_violation_outbox_failed_total", nil); n != 0 {
		t.Errorf("failed_total %v, want 0", n)
	}
	cp.stop()
	cp.stop = func() {}
	checkStoredOnce(t, data, exam.ID, opened, closed)
}

// Promise: when the disk fills while evidence is written, the error is
// logged clearly, nothing half-written is left, the violation stays queued
// and is stored once space returns, and the server goes on serving.
func TestEvidenceDiskFull(t *testing.T) {
	data := filepath.Join(t.TempDir(), "data")
	evidence := filepath.Join(data, "evidence")
	if err := os.MkdirAll(evidence, 0o750); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", evidence).CombinedOutput(); err != nil {
		if os.Geteuid() == 0 {
			// make test and CI run as root: there a refused mount is a
			// failure, never a silently missing fault test.
			t.Fatalf("cannot mount a 64 KiB tmpfs over the evidence folder as root: %v: %s", err, bytes.TrimSpace(out))
		}
		t.Skipf("cannot mount a 64 KiB tmpfs over the evidence folder (needs root): %v: %s", err, bytes.TrimSpace(out))
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", evidence).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v: %s", evidence, err, out)
		}
	})
	// Fill it up, with a file the start-up sweep of orphaned evidence
	// (which removes only images and temporary files) leaves alone.
	filler := filepath.Join(evidence, "filler.bin")
	f, err := os.Create(filler)
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := f.Write(make([]byte, 1024)); err != nil {
			if !errors.Is(err, syscall.ENOSPC) {
				t.Fatal(err)
			}
			break
		}
	}
	f.Close()

	cp, logs := inProcess(t, data)
	exam, cands := examAndCandidates(t, cp.st, 1)
	admin := adminClient(t, cp.base)

	first, second := stormViolation(1, cands[0]), stormViolation(2, cands[0])
	for _, v := range []pipeline.Violation{first, second} {
		if err := cp.vo.sink.ViolationOpened(context.Background(), v); err != nil {
			t.Fatalf("open %s: %v", v.Key, err)
		}
	}
	waitUntil(t, "the evidence write to fail", time.Minute, func() bool {
		return metricValue(t, cp.reg, "invigil_violation_outbox_retries_total", nil) >= 2
	})
	log := logs.String()
	if !strings.Contains(log, "no space left on device") || !strings.Contains(log, "free disk space") ||
		!strings.Contains(log, "stays queued") || !strings.Contains(log, first.Key) {
		t.Errorf("the log does not say clearly what happened:\n%s", log)
	}
	des, _ := os.ReadDir(evidence)
	for _, de := range des {
		if de.Name() != "filler.bin" {
			t.Errorf("left in the full evidence folder: %s", de.Name())
		}
	}
	if n := metricValue(t, cp.reg, "invigil_violation_outbox_pending", nil); n != 2 {
		t.Errorf("pending %v, want both violations queued", n)
	}
	// The server goes on.
	if resp, err := http.Get(cp.base + "/healthz"); err != nil || resp.StatusCode != 200 {
		t.Errorf("healthz while the disk is full: %v %v", resp, err)
	} else {
		resp.Body.Close()
	}
	var list []violationJSON
	if s := admin.call("GET", fmt.Sprintf("/api/v1/exams/%d/violations", exam.ID), nil, &list); s != 200 || len(list) != 0 {
		t.Errorf("violations while the disk is full: %d %+v", s, list)
	}

	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	if err := cp.vo.box.WaitEmpty(ctx); err != nil {
		t.Fatal(err)
	}
	if n := metricValue(t, cp.reg, "invigil_violation_outbox_failed_total", nil); n != 0 {
		t.Errorf("failed_total %v, want 0", n)
	}
	cp.stop()
	cp.stop = func() {}
	checkStoredOnce(t, data, exam.ID, []string{first.Key, second.Key}, nil)
}
