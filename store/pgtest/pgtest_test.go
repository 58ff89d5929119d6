package pgtest

import (
	"database/sql"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Without the server programs the tests must fail saying what to install,
// never pass by skipping.
func TestMissingBinariesSayWhatToInstall(t *testing.T) {
	old := binaryDirs
	binaryDirs = filepath.Join(t.TempDir(), "*", "bin")
	t.Cleanup(func() { binaryDirs = old })
	t.Setenv("PATH", t.TempDir())
	t.Setenv(EnvURL, "")
	_, err := Start(t.Context())
	if err == nil {
		t.Fatal("Start found a server without any programs")
	}
	if !strings.Contains(err.Error(), "scripts/install.sh test") || !strings.Contains(err.Error(), EnvURL) {
		t.Errorf("the error does not say what to do: %v", err)
	}
}

// The newest major version wins when several are installed.
func TestFindBinariesPrefersTheNewestVersion(t *testing.T) {
	root := t.TempDir()
	for _, v := range []string{"9", "15", "13"} {
		bin := filepath.Join(root, v, "bin")
		if err := os.MkdirAll(bin, 0o755); err != nil {
			t.Fatal(err)
		}
		for _, prog := range []string{"initdb", "postgres"} {
			if err := os.WriteFile(filepath.Join(bin, prog), []byte("#!/bin/sh\n"), 0o755); err != nil {
				t.Fatal(err)
			}
		}
	}
	old := binaryDirs
	binaryDirs = filepath.Join(root, "*", "bin")
	t.Cleanup(func() { binaryDirs = old })
	got, err := findBinaries()
	if err != nil || got != filepath.Join(root, "15", "bin") {
		t.Errorf("findBinaries = %s, %v; want version 15's", got, err)
	}
}

// A server started here takes a schema per caller, each invisible to the
// others, and is gone after Stop.
func TestStartCreateSchemaStop(t *testing.T) {
	srv, err := Start(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	a, err := srv.CreateSchema(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	b, err := srv.CreateSchema(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if a == b {
		t.Errorf("two schemas with one URL %s", a)
	}
	if _, err := srv.admin.ExecContext(t.Context(), "CREATE TABLE "+schemaOf(t, a)+".only_in_a (x int)"); err != nil {
		t.Fatal(err)
	}
	var n int
	if err := srv.admin.QueryRowContext(t.Context(),
		"SELECT COUNT(*) FROM information_schema.tables WHERE table_name = 'only_in_a' AND table_schema = $1", schemaOf(t, b)).Scan(&n); err != nil || n != 0 {
		t.Errorf("schema b sees a's table: %d, %v", n, err)
	}
	for _, u := range []string{a, b} {
		if err := srv.DropSchema(t.Context(), u); err != nil {
			t.Error(err)
		}
	}
	if err := srv.DropSchema(t.Context(), "postgres://x@127.0.0.1/postgres?search_path=public"); err == nil {
		t.Error("DropSchema dropped a schema it did not make")
	}
	dir := srv.dir
	if err := srv.Stop(); err != nil {
		t.Fatal(err)
	}
	if dir != "" {
		if _, err := os.Stat(dir); !os.IsNotExist(err) {
			t.Errorf("the server's directory %s is still there: %v", dir, err)
		}
	}
}

func schemaOf(t *testing.T, u string) string {
	t.Helper()
	_, q, ok := strings.Cut(u, "search_path=")
	if !ok {
		t.Fatalf("no search_path in %s", u)
	}
	name, _, _ := strings.Cut(q, "&")
	return name
}

// Restart brings the same server back on the same port with its data.
func TestRestartKeepsData(t *testing.T) {
	t.Setenv(EnvURL, "")
	ctx := t.Context()
	srv, err := Start(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Stop()
	u, err := srv.CreateSchema(ctx)
	if err != nil {
		t.Fatal(err)
	}
	db, err := sql.Open("pgx", u)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.ExecContext(ctx, "CREATE TABLE kept (n INT); INSERT INTO kept VALUES (7)"); err != nil {
		t.Fatal(err)
	}
	wasDown := false
	if err := srv.Restart(ctx, func() {
		if err := db.PingContext(ctx); err == nil {
			t.Error("the database answered while stopped")
		}
		wasDown = true
	}); err != nil {
		t.Fatal(err)
	}
	var n int
	if err := db.QueryRowContext(ctx, "SELECT n FROM kept").Scan(&n); err != nil || n != 7 || !wasDown {
		t.Errorf("after the restart: %d, %v (down %v)", n, err, wasDown)
	}
}
