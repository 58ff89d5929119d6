package main

import (
	"context"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"invigil/internal/testassets"
	"invigil/models"
	"invigil/store"
	"invigil/store/pgtest"
)

// startPostgres starts a PostgreSQL server for one test and returns the URL
// of a fresh schema on it, with the server (stopped when the test ends).
func startPostgres(t *testing.T) (*pgtest.Server, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	srv, err := pgtest.Start(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := srv.Stop(); err != nil {
			t.Error(err)
		}
	})
	dbURL, err := srv.CreateSchema(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return srv, dbURL
}

func readyz(t *testing.T, base string) (int, string) {
	t.Helper()
	resp, err := http.Get(base + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// Two serve processes on one PostgreSQL database are two nodes sharing
// their state: what one writes through the API the other serves, the first
// start's admin is the only one, and /readyz turns red on both when the
// database goes away.
func TestServeOnPostgres(t *testing.T) {
	if err := models.CheckPresent(testassets.ModelsDir(t)); err != nil {
		t.Fatalf("%v (make test provisions them)", err)
	}
	srv, dbURL := startPostgres(t)
	dataA, dataB := filepath.Join(t.TempDir(), "a"), filepath.Join(t.TempDir(), "b")
	_, baseA := serveProcess(t, dataA, "INVIGIL_DATABASE_URL="+dbURL)
	_, baseB := serveProcess(t, dataB, "INVIGIL_DATABASE_URL="+dbURL)
	for _, base := range []string{baseA, baseB} {
		if code, body := readyz(t, base); code != http.StatusOK {
			t.Fatalf("%s/readyz = %d %s", base, code, body)
		}
	}
	exam, cand, _ := examWithCandidate(t, adminClient(t, baseA))
	var got struct {
		ID     int64 `json:"id"`
		ExamID int64 `json:"exam_id"`
	}
	if s := adminClient(t, baseB).call("GET", "/api/v1/candidates/"+strconv.FormatInt(cand, 10), nil, &got); s != 200 || got.ID != cand || got.ExamID != exam {
		t.Errorf("node B reads node A's candidate: %d %+v", s, got)
	}
	st, err := store.Open(context.Background(), dbURL)
	if err != nil {
		t.Fatal(err)
	}
	users, err := st.ListUsers(context.Background())
	st.Close()
	if err != nil || len(users) != 1 || users[0].Username != "admin" {
		t.Errorf("users after two first starts: %+v, %v (want one admin)", users, err)
	}
	for _, data := range []string{dataA, dataB} {
		if _, err := os.Stat(filepath.Join(data, databaseFile)); !os.IsNotExist(err) {
			t.Errorf("an SQLite file appeared in %s: %v", data, err)
		}
	}

	if err := srv.Stop(); err != nil {
		t.Fatal(err)
	}
	for _, base := range []string{baseA, baseB} {
		for deadline := time.Now().Add(30 * time.Second); ; {
			code, body := readyz(t, base)
			if code == http.StatusServiceUnavailable {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s/readyz = %d %s after PostgreSQL stopped, want 503", base, code, body)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
}

// With a database URL the admin commands work on that PostgreSQL database,
// named by the environment or the flag, and leave no SQLite file behind.
func TestAdminOnPostgres(t *testing.T) {
	ctx := context.Background()
	_, dbURL := startPostgres(t)
	data := t.TempDir()
	vars := map[string]string{"INVIGIL_DATA": data, "INVIGIL_DATABASE_URL": dbURL}
	if code, _, errOut := invoke(t, vars, "admin", "users", "add", "zhang", "proctor"); code != 0 {
		t.Fatalf("add through INVIGIL_DATABASE_URL: %d %s", code, errOut)
	}
	code, out, errOut := invoke(t, map[string]string{"INVIGIL_DATA": data}, "admin", "--database-url", dbURL, "users", "list")
	if code != 0 || !strings.Contains(out, "zhang") {
		t.Fatalf("list through --database-url: %d %q %q", code, out, errOut)
	}
	st, err := store.Open(ctx, dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if u, err := st.UserByUsername(ctx, "ZHANG"); err != nil || u.Role != store.RoleProctor || st.Engine() != "PostgreSQL" {
		t.Errorf("the user in PostgreSQL: %+v, %v (%s)", u, err, st.Engine())
	}
	if _, err := os.Stat(filepath.Join(data, databaseFile)); !os.IsNotExist(err) {
		t.Errorf("an SQLite file appeared in the data directory: %v", err)
	}
	if code, _, errOut := invoke(t, vars, "admin", "--database-url", "mysql://x@db/y", "users", "list"); code == 0 || !strings.Contains(errOut, "database url") {
		t.Errorf("a non-PostgreSQL URL: %d %q", code, errOut)
	}
}
