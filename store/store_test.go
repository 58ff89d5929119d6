package store

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"invigil/stage"
)

// codeSeq returns a code generator that hands out codes in order and fails
// when they run out, so a test decides exactly which codes collide.
func codeSeq(codes ...string) func() (string, error) {
	var mu sync.Mutex
	i := 0
	return func() (string, error) {
		mu.Lock()
		defer mu.Unlock()
		if i >= len(codes) {
			return "", errors.New("code sequence exhausted")
		}
		i++
		return codes[i-1], nil
	}
}

// uniqueCodes returns a generator of codes that never repeat.
func uniqueCodes() func() (string, error) {
	var mu sync.Mutex
	n := 100000
	return func() (string, error) {
		mu.Lock()
		defer mu.Unlock()
		n++
		return strconv.Itoa(n), nil
	}
}

var (
	examStart = time.Date(2026, 11, 26, 9, 0, 0, 0, time.UTC)
	examEnd   = examStart.Add(8 * time.Hour)
)

func mustExam(t *testing.T, q interface {
	CreateExam(context.Context, Exam) (Exam, error)
}, name string) Exam {
	t.Helper()
	e, err := q.CreateExam(t.Context(), Exam{Name: name, StartsAt: examStart, EndsAt: examEnd, EarlyLoginMinutes: 45})
	if err != nil {
		t.Fatalf("CreateExam: %v", err)
	}
	return e
}

func mustCandidate(t *testing.T, s *Store, examID int64, name string) CandidateCodes {
	t.Helper()
	c, err := s.CreateCandidate(t.Context(), examID, NewCandidate{Name: name}, uniqueCodes())
	if err != nil {
		t.Fatalf("CreateCandidate: %v", err)
	}
	return c
}

// mustCandidateCodes creates a candidate with codes from a private range so
// that several candidates of one test never collide.
func mustCandidateCodes(t *testing.T, s *Store, examID int64, name string, next func() (string, error)) CandidateCodes {
	t.Helper()
	c, err := s.CreateCandidate(t.Context(), examID, NewCandidate{Name: name}, next)
	if err != nil {
		t.Fatalf("CreateCandidate: %v", err)
	}
	return c
}

func mustUser(t *testing.T, s *Store, name, role string) User {
	t.Helper()
	u, err := s.CreateUser(t.Context(), name, "hash-of-"+name, role)
	if err != nil {
		t.Fatalf("CreateUser: %v", err)
	}
	return u
}

func countRows(t *testing.T, s *Store, table string) int {
	t.Helper()
	var n int
	if err := s.db.QueryRowContext(t.Context(), "SELECT COUNT(*) FROM "+table).Scan(&n); err != nil {
		t.Fatalf("count %s: %v", table, err)
	}
	return n
}

func TestOpenCreatesPrivateFileWithDurableSettings(t *testing.T) {
	s, path := openSQLite(t)
	info, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if perm := info.Mode().Perm(); perm != 0o600 {
		t.Errorf("database mode %o, want 600", perm)
	}
	// SQLite gives the WAL and shared-memory files the database's mode.
	mustUser(t, s, "alice", RoleAdmin)
	for _, suffix := range []string{"-wal", "-shm"} {
		if info, err := os.Stat(path + suffix); err != nil {
			t.Errorf("%s: %v", suffix, err)
		} else if perm := info.Mode().Perm(); perm != 0o600 {
			t.Errorf("%s mode %o, want 600", suffix, perm)
		}
	}
	if err := s.Ping(t.Context()); err != nil {
		t.Errorf("Ping: %v", err)
	}
	// Every pooled connection must have these, so ask on several at once.
	for i := range 3 {
		conn, err := s.db.Conn(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		for pragma, want := range map[string]string{
			"journal_mode": "wal",
			"synchronous":  "2", // FULL
			"foreign_keys": "1",
			"busy_timeout": "5000",
		} {
			var got string
			if err := conn.QueryRowContext(t.Context(), "PRAGMA "+pragma).Scan(&got); err != nil {
				t.Fatalf("PRAGMA %s: %v", pragma, err)
			}
			if got != want {
				t.Errorf("connection %d: %s = %s, want %s", i, pragma, got, want)
			}
		}
	}
}

func TestReopenKeepsDataAndMigratesOnce(t *testing.T) {
	onEachEngineTarget(t, testReopenKeepsDataAndMigratesOnce)
}

func testReopenKeepsDataAndMigratesOnce(t *testing.T, path string) {
	s, err := Open(t.Context(), path)
	if err != nil {
		t.Fatal(err)
	}
	u := mustUser(t, s, "alice", RoleAdmin)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s, err = Open(t.Context(), path)
	if err != nil {
		t.Fatalf("reopen: %v", err)
	}
	defer s.Close()
	got, err := s.UserByID(t.Context(), u.ID)
	if err != nil || got.Username != "alice" {
		t.Fatalf("after reopen: %+v, %v", got, err)
	}
	ms, err := loadMigrations(s.d)
	if err != nil {
		t.Fatal(err)
	}
	if n := countRows(t, s, "schema_migrations"); n != len(ms) {
		t.Errorf("%d migrations recorded, want %d", n, len(ms))
	}
}

func TestMigrateAppliesOnlyNewStepsAndRollsBackAFailedOne(t *testing.T) {
	onEachEngine(t, testMigrateAppliesOnlyNewStepsAndRollsBackAFailedOne)
}

func testMigrateAppliesOnlyNewStepsAndRollsBackAFailedOne(t *testing.T, openTest opener) {
	s, _ := openTest(t)
	ctx := t.Context()
	ms, err := loadMigrations(s.d)
	if err != nil {
		t.Fatal(err)
	}
	next := ms[len(ms)-1].version + 1
	withExtra := append(ms[:len(ms):len(ms)], migration{version: next, name: "extra", sql: "CREATE TABLE extra (x INTEGER)"})
	if err := s.migrate(ctx, withExtra); err != nil {
		t.Fatalf("migrate with a new step: %v", err)
	}
	// Applying the new step a second time would fail: the table exists.
	if err := s.migrate(ctx, withExtra); err != nil {
		t.Fatalf("migrate again: %v", err)
	}
	broken := append(withExtra[:len(withExtra):len(withExtra)], migration{
		version: next + 1, name: "broken",
		sql: "CREATE TABLE half (x INTEGER); INSERT INTO no_such_table VALUES (1)",
	})
	if err := s.migrate(ctx, broken); err == nil || !strings.Contains(err.Error(), "broken") {
		t.Fatalf("a failing step gave %v, want an error naming it", err)
	}
	// Both engines refuse to read a table that does not exist.
	if _, err := s.db.ExecContext(ctx, "SELECT COUNT(*) FROM half"); err == nil {
		t.Error("the failed step left its table behind")
	}
	if v, err := schemaVersion(ctx, s.db); err != nil || v != next {
		t.Errorf("schema version %d (%v), want %d", v, err, next)
	}
}

func TestOpenRefusesNewerSchema(t *testing.T) { onEachEngineTarget(t, testOpenRefusesNewerSchema) }

func testOpenRefusesNewerSchema(t *testing.T, path string) {
	s, err := Open(t.Context(), path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.db.ExecContext(t.Context(), "INSERT INTO schema_migrations (version, applied_at) VALUES (9999, 'x')"); err != nil {
		t.Fatal(err)
	}
	s.Close()
	s, err = Open(t.Context(), path)
	if err == nil {
		s.Close()
		t.Fatal("Open accepted a database from a newer build")
	}
	if !strings.Contains(err.Error(), "schema version 9999") || !strings.Contains(err.Error(), "newer") {
		t.Errorf("unclear error: %v", err)
	}
}

func TestOpenRefusesAFileThatIsNotADatabase(t *testing.T) {
	for name, content := range map[string][]byte{
		"garbage": bytes.Repeat([]byte("not a database \x00\xff"), 300),
		// The right magic with nonsense after it gets past the header
		// check, so this is SQLite's own refusal.
		"damaged header": append([]byte("SQLite format 3\x00"), bytes.Repeat([]byte{0xff}, 4080)...),
	} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "invigil.db")
			if err := os.WriteFile(path, content, 0o600); err != nil {
				t.Fatal(err)
			}
			s, err := Open(t.Context(), path)
			if err == nil {
				s.Close()
				t.Fatal("Open accepted garbage")
			}
			t.Logf("Open: %v", err)
			if !strings.Contains(err.Error(), path) ||
				!(strings.Contains(err.Error(), "not an SQLite database") || strings.Contains(err.Error(), "damaged")) {
				t.Errorf("unclear error: %v", err)
			}
			after, readErr := os.ReadFile(path)
			if readErr != nil {
				t.Fatal(readErr)
			}
			if !bytes.Equal(after, content) {
				t.Error("Open changed the file it refused")
			}
		})
	}
}

func TestUpdateRollsBackOnError(t *testing.T) { onEachEngine(t, testUpdateRollsBackOnError) }

func testUpdateRollsBackOnError(t *testing.T, openTest opener) {
	s, _ := openTest(t)
	ctx := t.Context()
	exam := mustExam(t, s, "kept")
	boom := errors.New("boom")
	events, err := s.Update(ctx, func(ctx context.Context, tx *Tx) error {
		e := mustExam(t, tx, "rolled back")
		if _, err := tx.AppendEvent(ctx, e.ID, "exam_created", 0, nil); err != nil {
			return err
		}
		if _, err := tx.AppendEvent(ctx, exam.ID, "something", 0, map[string]int{"n": 1}); err != nil {
			return err
		}
		if _, err := tx.CreateUser(ctx, "ghost", "h", RoleProctor); err != nil {
			return err
		}
		return fmt.Errorf("step two: %w", boom)
	})
	if !errors.Is(err, boom) {
		t.Fatalf("Update returned %v, want fn's error", err)
	}
	if events != nil {
		t.Errorf("a rolled-back Update returned events %v", events)
	}
	if n := countRows(t, s, "exams"); n != 1 {
		t.Errorf("%d exams, want only the one made outside", n)
	}
	if n := countRows(t, s, "events"); n != 0 {
		t.Errorf("%d events after a rollback", n)
	}
	if n, _ := s.CountUsers(ctx); n != 0 {
		t.Errorf("%d users after a rollback", n)
	}
	// The numbers the rollback used are free again: no gap.
	events, err = s.Update(ctx, func(ctx context.Context, tx *Tx) error {
		_, err := tx.AppendEvent(ctx, exam.ID, "after", 0, nil)
		return err
	})
	if err != nil || len(events) != 1 || events[0].Seq != 1 {
		t.Fatalf("after the rollback: %+v, %v", events, err)
	}
}

func TestUpdateReturnsCommittedEventsInOrder(t *testing.T) {
	onEachEngine(t, testUpdateReturnsCommittedEventsInOrder)
}

func testUpdateReturnsCommittedEventsInOrder(t *testing.T, openTest opener) {
	s, _ := openTest(t)
	ctx := t.Context()
	exam := mustExam(t, s, "e")
	var cand CandidateCodes
	events, err := s.Update(ctx, func(ctx context.Context, tx *Tx) error {
		var err error
		cand, err = tx.CreateCandidate(ctx, exam.ID, NewCandidate{Name: "Li Lei"}, uniqueCodes())
		if err != nil {
			return err
		}
		if _, err := tx.AppendEvent(ctx, exam.ID, "candidate_added", cand.ID, map[string]string{"name": cand.Name}); err != nil {
			return err
		}
		if _, err := tx.MoveStage(ctx, cand.ID, stage.Mock, 0, "", time.Time{}); err != nil {
			return err
		}
		_, err = tx.AppendEvent(ctx, exam.ID, "stage_changed", cand.ID, nil)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(events) != 2 || events[0].Seq != 1 || events[1].Seq != 2 ||
		events[0].Type != "candidate_added" || events[1].Type != "stage_changed" {
		t.Fatalf("events %+v", events)
	}
	if string(events[0].Data) != `{"name":"Li Lei"}` || string(events[1].Data) != `{}` {
		t.Errorf("event data %s, %s", events[0].Data, events[1].Data)
	}
	stored, err := s.EventsSince(ctx, exam.ID, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(stored) != 2 || stored[0].Seq != 1 || stored[1].CandidateID != cand.ID ||
		!stored[0].At.Equal(events[0].At) || stored[0].At.Location() != time.UTC {
		t.Errorf("stored events %+v, returned %+v", stored, events)
	}
}

func TestUpdateReleasesTheWriteLockWhenFnPanics(t *testing.T) {
	onEachEngine(t, testUpdateReleasesTheWriteLockWhenFnPanics)
}

func testUpdateReleasesTheWriteLockWhenFnPanics(t *testing.T, openTest opener) {
	s, _ := openTest(t)
	func() {
		defer func() { _ = recover() }()
		_, _ = s.Update(t.Context(), func(ctx context.Context, tx *Tx) error {
			mustExam(t, tx, "doomed")
			panic("caller bug")
		})
	}()
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Second)
	defer cancel()
	if _, err := s.Update(ctx, func(ctx context.Context, tx *Tx) error { mustExam(t, tx, "next"); return nil }); err != nil {
		t.Fatalf("Update after a panic: %v", err)
	}
	if n := countRows(t, s, "exams"); n != 1 {
		t.Errorf("%d exams, want 1", n)
	}
}

// A method that makes several rows must not leave half of them inside a
// caller's transaction that goes on and commits after ignoring the error.
func TestFailedMethodInsideUpdateLeavesNothing(t *testing.T) {
	onEachEngine(t, testFailedMethodInsideUpdateLeavesNothing)
}

func testFailedMethodInsideUpdateLeavesNothing(t *testing.T, openTest opener) {
	s, _ := openTest(t)
	ctx := t.Context()
	exam := mustExam(t, s, "e")
	_, err := s.Update(ctx, func(ctx context.Context, tx *Tx) error {
		// Two codes, then the generator fails on the third kind.
		_, err := tx.CreateCandidate(ctx, exam.ID, NewCandidate{Name: "half"}, codeSeq("100001", "100002"))
		if err == nil {
			return errors.New("CreateCandidate succeeded without a third code")
		}
		return nil // commit regardless
	})
	if err != nil {
		t.Fatal(err)
	}
	if n := countRows(t, s, "candidates"); n != 0 {
		t.Errorf("%d candidates left by a failed CreateCandidate", n)
	}
	if n := countRows(t, s, "codes"); n != 0 {
		t.Errorf("%d codes left by a failed CreateCandidate", n)
	}
}

func TestConcurrentUpdatesNumberEventsWithoutGaps(t *testing.T) {
	onEachEngine(t, testConcurrentUpdatesNumberEventsWithoutGaps)
}

func testConcurrentUpdatesNumberEventsWithoutGaps(t *testing.T, openTest opener) {
	s, _ := openTest(t)
	ctx := t.Context()
	exams := []Exam{mustExam(t, s, "a"), mustExam(t, s, "b")}
	const workers, perWorker = 6, 15
	var (
		mu       sync.Mutex
		returned = map[int64][]int64{}
		wg       sync.WaitGroup
		errs     = make(chan error, workers*perWorker)
	)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range perWorker {
				exam := exams[(w+i)%len(exams)]
				fail := i%5 == 4 // some transactions roll back
				events, err := s.Update(ctx, func(ctx context.Context, tx *Tx) error {
					for range 2 {
						if _, err := tx.AppendEvent(ctx, exam.ID, "tick", 0, map[string]int{"worker": w, "i": i}); err != nil {
							return err
						}
					}
					if fail {
						return errors.New("planned rollback")
					}
					return nil
				})
				if fail {
					if err == nil {
						errs <- errors.New("a failing fn committed")
					}
					continue
				}
				if err != nil {
					errs <- err
					continue
				}
				mu.Lock()
				for _, e := range events {
					returned[e.ExamID] = append(returned[e.ExamID], e.Seq)
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	total := 0
	for _, exam := range exams {
		stored, err := s.EventsSince(ctx, exam.ID, 0, 0)
		if err != nil {
			t.Fatal(err)
		}
		for i, e := range stored {
			if e.Seq != int64(i+1) {
				t.Fatalf("exam %d: event %d has seq %d: a gap or a duplicate", exam.ID, i, e.Seq)
			}
		}
		if len(stored) != len(returned[exam.ID]) {
			t.Errorf("exam %d: %d events stored, %d returned by Update", exam.ID, len(stored), len(returned[exam.ID]))
		}
		if last, _ := s.LastSeq(ctx, exam.ID); last != int64(len(stored)) {
			t.Errorf("exam %d: LastSeq %d, want %d", exam.ID, last, len(stored))
		}
		total += len(stored)
	}
	if want := workers * (perWorker - perWorker/5) * 2; total != want {
		t.Errorf("%d events in all, want %d", total, want)
	}
}

// The child half of TestAcknowledgedViolationSurvivesSIGKILL: it writes a
// violation, says so, and waits to be killed.
const crashChildEnv = "INVIGIL_STORE_CRASH_CHILD"

func TestCrashChild(t *testing.T) {
	path := os.Getenv(crashChildEnv)
	if path == "" {
		t.Skip("runs only as the child of TestAcknowledgedViolationSurvivesSIGKILL")
	}
	ctx := context.Background()
	s, err := Open(ctx, path)
	if err != nil {
		fmt.Println("error", err)
		os.Exit(2)
	}
	cand, err := strconv.ParseInt(os.Getenv(crashChildEnv+"_CANDIDATE"), 10, 64)
	if err != nil {
		fmt.Println("error", err)
		os.Exit(2)
	}
	var id int64
	_, err = s.Update(ctx, func(ctx context.Context, tx *Tx) error {
		v, _, err := tx.InsertViolation(ctx, Violation{
			Key: "crash-1", CandidateID: cand, Type: "face_off_screen", Confidence: 0.9,
			StartedAt: time.Now(), Details: []byte(`{"faces":0}`),
		})
		if err != nil {
			return err
		}
		id = v.ID
		_, err = tx.AppendEvent(ctx, v.ExamID, "violation_opened", cand, map[string]int64{"id": v.ID})
		return err
	})
	if err != nil {
		fmt.Println("error", err)
		os.Exit(2)
	}
	fmt.Printf("acked %d\n", id)
	// Wait for the SIGKILL; if the parent dies first, stdin ends and the
	// child goes too instead of lingering.
	_, _ = io.Copy(io.Discard, os.Stdin)
	os.Exit(3)
}

func TestAcknowledgedViolationSurvivesSIGKILL(t *testing.T) {
	path := filepath.Join(t.TempDir(), "invigil.db")
	s, err := Open(t.Context(), path)
	if err != nil {
		t.Fatal(err)
	}
	exam := mustExam(t, s, "e")
	cand := mustCandidate(t, s, exam.ID, "c")
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestCrashChild$", "-test.count=1")
	cmd.Env = append(os.Environ(), crashChildEnv+"="+path, crashChildEnv+"_CANDIDATE="+strconv.FormatInt(cand.ID, 10))
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	defer stdin.Close()
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var acked int64 = -1
	lines := bufio.NewScanner(stdout)
	for lines.Scan() {
		if rest, ok := strings.CutPrefix(lines.Text(), "acked "); ok {
			// Kill at once: nothing after the acknowledgement may be
			// needed for the write to last.
			if err := cmd.Process.Kill(); err != nil {
				t.Fatal(err)
			}
			acked, err = strconv.ParseInt(rest, 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			break
		}
		t.Logf("child: %s", lines.Text())
	}
	_ = cmd.Wait()
	if acked < 0 {
		t.Fatalf("the child never acknowledged; stderr:\n%s", stderr.String())
	}
	// The commit lives only in the WAL (nobody checkpointed it), so the
	// reopen below exercises recovery.
	if info, err := os.Stat(path + "-wal"); err != nil || info.Size() == 0 {
		t.Errorf("expected an un-checkpointed WAL after the kill: %v", err)
	}

	s, err = Open(t.Context(), path)
	if err != nil {
		t.Fatalf("reopen after the kill: %v", err)
	}
	defer s.Close()
	v, err := s.Violation(t.Context(), acked)
	if err != nil {
		t.Fatalf("acknowledged violation %d lost: %v", acked, err)
	}
	if v.Key != "crash-1" || v.Status != StatusPending || string(v.Details) != `{"faces":0}` {
		t.Errorf("violation after the crash: %+v", v)
	}
	events, err := s.EventsSince(t.Context(), exam.ID, 0, 0)
	if err != nil || len(events) != 1 || events[0].Type != "violation_opened" {
		t.Errorf("events after the crash: %+v, %v", events, err)
	}
}

func TestOpenPathWithURICharacters(t *testing.T) {
	// The path travels inside an SQLite URI; these would otherwise end it
	// or be decoded.
	path := filepath.Join(t.TempDir(), "a b?c#d%20e", "invigil.db")
	s, err := Open(t.Context(), path)
	if err != nil {
		t.Fatal(err)
	}
	mustUser(t, s, "alice", RoleAdmin)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if info, err := os.Stat(path); err != nil || info.Size() == 0 {
		t.Fatalf("the database is not at %s: %v", path, err)
	}
	s, err = Open(t.Context(), path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if n, err := s.CountUsers(t.Context()); err != nil || n != 1 {
		t.Errorf("after reopen: %d users, %v", n, err)
	}
}
