package store

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"invigil/store/pgtest"
)

// postgres is the test binary's PostgreSQL server, started by the first
// test that needs it and stopped after the last.
var postgres pgtest.Shared

func TestMain(m *testing.M) {
	code := m.Run()
	if err := postgres.Stop(); err != nil {
		fmt.Fprintln(os.Stderr, "stop the test PostgreSQL server:", err)
		if code == 0 {
			code = 1
		}
	}
	os.Exit(code)
}

// engine is one database engine the store runs on, as the tests see it.
type engine struct {
	name string
	// target returns a fresh, empty database for t: what Open takes.
	target func(t *testing.T) string
}

var engines = []engine{
	// One level deeper than the temporary directory, so Open has to
	// create the directory.
	{"sqlite", func(t *testing.T) string { return filepath.Join(t.TempDir(), "data", "invigil.db") }},
	{"postgres", func(t *testing.T) string { return postgres.URL(t) }},
}

// opener opens a fresh store, closed when t ends, and returns it with what
// Open was given (the SQLite file's path, or the PostgreSQL URL).
type opener func(t *testing.T) (*Store, string)

// onEachEngine runs test once per engine, as subtests named after them.
func onEachEngine(t *testing.T, test func(t *testing.T, openTest opener)) {
	for _, e := range engines {
		t.Run(e.name, func(t *testing.T) { test(t, e.open) })
	}
}

// onEachEngineTarget runs test once per engine with a fresh database that
// test opens (and reopens) itself.
func onEachEngineTarget(t *testing.T, test func(t *testing.T, target string)) {
	for _, e := range engines {
		t.Run(e.name, func(t *testing.T) { test(t, e.target(t)) })
	}
}

func (e engine) open(t *testing.T) (*Store, string) {
	t.Helper()
	target := e.target(t)
	return mustOpen(t, target), target
}

// mustOpen opens target and closes the store when t ends.
func mustOpen(t *testing.T, target string) *Store {
	t.Helper()
	s, err := Open(t.Context(), target)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return s
}

// openSQLite is for the tests of what only SQLite has: a file, its
// permissions, its lock, its damage.
func openSQLite(t *testing.T) (*Store, string) {
	t.Helper()
	return engines[0].open(t)
}
