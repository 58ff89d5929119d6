package store

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// The two engines' histories must not drift: a step added for one and
// forgotten for the other would leave a database of that engine a version
// behind while claiming to be current.
func TestMigrationsMatchAcrossEngines(t *testing.T) {
	lite, err := loadMigrations(sqliteDialect)
	if err != nil {
		t.Fatal(err)
	}
	pg, err := loadMigrations(postgresDialect)
	if err != nil {
		t.Fatal(err)
	}
	names := func(ms []migration) []string {
		var out []string
		for _, m := range ms {
			out = append(out, fmt.Sprintf("%04d %s", m.version, m.name))
		}
		return out
	}
	if !slices.Equal(names(lite), names(pg)) {
		t.Errorf("migrations differ between the engines:\nSQLite:     %v\nPostgreSQL: %v", names(lite), names(pg))
	}
}

// Same versions are not enough: each step must make the same tables and
// columns on both engines, or a query would work on one only.
func TestSchemasMatchAcrossEngines(t *testing.T) {
	lite, _ := engines[0].open(t)
	pg, _ := engines[1].open(t)
	ctx := t.Context()
	columns := func(s *Store, query string) map[string][]string {
		rows, err := s.db.QueryContext(ctx, query)
		if err != nil {
			t.Fatalf("%s: %v", s.Engine(), err)
		}
		defer rows.Close()
		out := map[string][]string{}
		for rows.Next() {
			var table, column string
			if err := rows.Scan(&table, &column); err != nil {
				t.Fatal(err)
			}
			out[table] = append(out[table], column)
		}
		if err := rows.Err(); err != nil {
			t.Fatal(err)
		}
		return out
	}
	// In column order, which SELECT v.* relies on.
	liteCols := columns(lite, `SELECT m.name, p.name FROM sqlite_schema m, pragma_table_info(m.name) p
		WHERE m.type = 'table' AND m.name NOT LIKE 'sqlite_%' ORDER BY m.name, p.cid`)
	pgCols := columns(pg, `SELECT table_name::text, column_name::text FROM information_schema.columns
		WHERE table_schema = current_schema() ORDER BY table_name, ordinal_position`)
	if !maps.EqualFunc(liteCols, pgCols, slices.Equal) {
		for _, table := range slices.Sorted(maps.Keys(liteCols)) {
			if !slices.Equal(liteCols[table], pgCols[table]) {
				t.Errorf("table %s: SQLite %v, PostgreSQL %v", table, liteCols[table], pgCols[table])
			}
		}
		for table := range pgCols {
			if _, ok := liteCols[table]; !ok {
				t.Errorf("table %s only on PostgreSQL", table)
			}
		}
	}
}

func TestRebind(t *testing.T) {
	for query, want := range map[string]string{
		"SELECT 1":                                 "SELECT 1",
		"a = ? AND b = ?":                          "a = $1 AND b = $2",
		"VALUES (?1, (SELECT ?1), ?2, ?3)":         "VALUES ($1, (SELECT $1), $2, $3)",
		"x = ?2 AND y = ?":                         "x = $2 AND y = $3",
		"x = '?' AND y = ?":                        "x = '?' AND y = $1",
		"x = 'it''s ?' AND y = ?":                  "x = 'it''s ?' AND y = $1",
		`"odd?name" = ?`:                           `"odd?name" = $1`,
		"a = ? -- why? because\nAND b = ?":         "a = $1 -- why? because\nAND b = $2",
		"a - ? = 1":                                "a - $1 = 1",
		"CASE WHEN ?1 = 'x' THEN ?2 ELSE y END ?3": "CASE WHEN $1 = 'x' THEN $2 ELSE y END $3",
	} {
		if got := postgresDialect.rebind(query); got != want {
			t.Errorf("rebind(%q) = %q, want %q", query, got, want)
		}
		if got := sqliteDialect.rebind(query); got != query {
			t.Errorf("SQLite's rebind changed %q to %q", query, got)
		}
	}
}

func TestPing(t *testing.T) {
	onEachEngine(t, func(t *testing.T, openTest opener) {
		s, _ := openTest(t)
		if err := s.Ping(t.Context()); err != nil {
			t.Errorf("Ping: %v", err)
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		// /readyz must turn red when the store is gone.
		if err := s.Ping(t.Context()); err == nil {
			t.Error("Ping of a closed store succeeded")
		}
	})
}

// A URL carries the password; no message may.
func TestOpenPostgresKeepsThePasswordOutOfErrors(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	// Port 1 on loopback: nothing listens, so the connection is refused.
	_, err := Open(ctx, "postgres://invigil:s3cret-pw@127.0.0.1:1/invigil?sslmode=disable&connect_timeout=5")
	if err == nil {
		t.Fatal("Open of a server that is not there succeeded")
	}
	if strings.Contains(err.Error(), "s3cret-pw") {
		t.Errorf("the password is in the error: %v", err)
	}
	if !strings.Contains(err.Error(), "127.0.0.1") {
		t.Errorf("the error does not say which server: %v", err)
	}
	if got := RedactURL("postgresql://u:pw@h/db"); strings.Contains(got, "pw") {
		t.Errorf("RedactURL kept the password: %s", got)
	}
}

// Several nodes share one database: each has its own *Store (its own pool
// of connections), and all append to the same exams' event logs at once,
// some transactions rolling back. Readers on other nodes follow each log
// the way the live event streams do (EventsSince the last seq seen) while
// it grows. If two writers could take one number, the primary key would
// refuse one of them (an error below); if a rollback left its number
// taken, or seq N+1 could commit while N's writer was still open, a
// follower would see a number skipped. Afterwards every log is 1..N.
func TestSeveralNodesAppendEventsWithoutGaps(t *testing.T) {
	onEachEngineTarget(t, testSeveralNodesAppendEventsWithoutGaps)
}

func testSeveralNodesAppendEventsWithoutGaps(t *testing.T, target string) {
	const nodes, writersPerNode, updatesPerWriter = 4, 4, 20
	ctx := t.Context()
	var stores []*Store
	for range nodes {
		stores = append(stores, mustOpen(t, target))
	}
	exams := []Exam{mustExam(t, stores[0], "a"), mustExam(t, stores[1], "b"), mustExam(t, stores[2], "c")}

	var (
		mu        sync.Mutex
		committed = map[int64]int{}
		writers   sync.WaitGroup
		errs      = make(chan error, nodes*writersPerNode*updatesPerWriter+len(exams)*nodes)
	)
	for n, s := range stores {
		for w := range writersPerNode {
			writers.Add(1)
			go func() {
				defer writers.Done()
				for i := range updatesPerWriter {
					exam := exams[(n+w+i)%len(exams)]
					fail := (n+w+i)%4 == 3
					events, err := s.Update(ctx, func(ctx context.Context, tx *Tx) error {
						// A change and its event, as the API writes them.
						if err := tx.Audit(ctx, 0, "tick", fmt.Sprint(exam.ID), nil); err != nil {
							return err
						}
						for range 2 {
							if _, err := tx.AppendEvent(ctx, exam.ID, "tick", 0, map[string]int{"node": n, "writer": w, "i": i}); err != nil {
								return err
							}
						}
						if fail {
							return errPlannedRollback
						}
						return nil
					})
					switch {
					case fail && !errors.Is(err, errPlannedRollback):
						errs <- fmt.Errorf("node %d: a failing transaction gave %w", n, err)
					case !fail && err != nil:
						errs <- fmt.Errorf("node %d: %w", n, err)
					case !fail:
						mu.Lock()
						committed[exam.ID] += len(events)
						mu.Unlock()
					}
				}
			}()
		}
	}

	// Followers: one per exam on every node, reading until the writers are
	// done and then once more.
	done := make(chan struct{})
	var followers sync.WaitGroup
	seen := make([][]int64, nodes*len(exams))
	for n, s := range stores {
		for x, exam := range exams {
			followers.Add(1)
			go func() {
				defer followers.Done()
				var last int64
				for finished := false; ; {
					select {
					case <-done:
						finished = true
					default:
					}
					batch, err := s.EventsSince(ctx, exam.ID, last, 50)
					if err != nil {
						errs <- fmt.Errorf("node %d follows exam %d: %w", n, exam.ID, err)
						return
					}
					for _, e := range batch {
						if e.Seq != last+1 {
							errs <- fmt.Errorf("node %d follows exam %d: seq %d after %d", n, exam.ID, e.Seq, last)
							return
						}
						last = e.Seq
						seen[n*len(exams)+x] = append(seen[n*len(exams)+x], e.Seq)
					}
					if finished && len(batch) == 0 {
						return
					}
					if len(batch) == 0 {
						time.Sleep(time.Millisecond)
					}
				}
			}()
		}
	}
	writers.Wait()
	close(done)
	followers.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}

	total := 0
	for x, exam := range exams {
		stored, err := stores[x%nodes].EventsSince(ctx, exam.ID, 0, 100000)
		if err != nil {
			t.Fatal(err)
		}
		for i, e := range stored {
			if e.Seq != int64(i+1) {
				t.Fatalf("exam %d: event %d has seq %d: a gap or a duplicate", exam.ID, i, e.Seq)
			}
		}
		if len(stored) != committed[exam.ID] {
			t.Errorf("exam %d: %d events stored, %d committed", exam.ID, len(stored), committed[exam.ID])
		}
		for n := range nodes {
			if got := len(seen[n*len(exams)+x]); got != len(stored) {
				t.Errorf("exam %d: the follower on node %d saw %d of %d events", exam.ID, n, got, len(stored))
			}
		}
		total += len(stored)
	}
	rolledBack := 0
	for n := range nodes {
		for w := range writersPerNode {
			for i := range updatesPerWriter {
				if (n+w+i)%4 == 3 {
					rolledBack++
				}
			}
		}
	}
	if want := (nodes*writersPerNode*updatesPerWriter - rolledBack) * 2; total != want {
		t.Errorf("%d events in all, want %d", total, want)
	}
	if n := countRows(t, stores[0], "audit_log"); n != total/2 {
		t.Errorf("%d audit entries for %d committed transactions", n, total/2)
	}
	t.Logf("%s: %d nodes × %d writers: %d events committed, %d transactions rolled back", stores[0].Engine(),
		nodes, writersPerNode, total, rolledBack)
}

var errPlannedRollback = errors.New("planned rollback")

// A caller that ignores a failed statement inside Update and returns nil:
// SQLite undoes only that statement and commits the rest; PostgreSQL has
// aborted the whole transaction, so Update fails and commits nothing. Either
// way no half of the failed statement is kept, and on PostgreSQL no event
// is returned that was not committed.
func TestIgnoredErrorInsideUpdate(t *testing.T) {
	onEachEngine(t, func(t *testing.T, openTest opener) {
		s, _ := openTest(t)
		ctx := t.Context()
		exam := mustExam(t, s, "e")
		mustUser(t, s, "alice", RoleAdmin)
		events, err := s.Update(ctx, func(ctx context.Context, tx *Tx) error {
			if _, err := tx.AppendEvent(ctx, exam.ID, "before", 0, nil); err != nil {
				return err
			}
			if _, err := tx.CreateUser(ctx, "ALICE", "h", RoleProctor); !errors.Is(err, ErrConflict) {
				return fmt.Errorf("a second alice: %w, want ErrConflict", err)
			}
			return nil // the caller ignores the conflict
		})
		stored, readErr := s.EventsSince(ctx, exam.ID, 0, 0)
		if readErr != nil {
			t.Fatal(readErr)
		}
		switch s.Engine() {
		case "SQLite":
			if err != nil || len(events) != 1 || len(stored) != 1 {
				t.Errorf("SQLite: Update %v, %d events returned, %d stored; want the rest committed", err, len(events), len(stored))
			}
		default:
			if err == nil || events != nil || len(stored) != 0 {
				t.Errorf("PostgreSQL: Update %v, %d events returned, %d stored; want an error and nothing committed", err, len(events), len(stored))
			}
			t.Logf("PostgreSQL: %v", err)
		}
		if n, _ := s.CountUsers(ctx); n != 1 {
			t.Errorf("%d users, want only alice", n)
		}
	})
}
