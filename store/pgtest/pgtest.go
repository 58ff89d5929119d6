// Package pgtest starts a throwaway PostgreSQL server for tests, the way
// the store tests (and a cluster test) need one: initdb into a temporary
// directory, postgres on a free loopback port, one fresh schema per test,
// everything removed at the end. The server is the real one Debian ships
// (package postgresql, installed by `scripts/install.sh test`); nothing is
// mocked.
//
// INVIGIL_TEST_DATABASE_URL points the tests at an existing server instead:
// a URL of a database where that user may CREATE SCHEMA; each test's schema
// is dropped after it.
package pgtest

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // the "pgx" database/sql driver
)

// EnvURL names the variable that points the tests at an existing server.
const EnvURL = "INVIGIL_TEST_DATABASE_URL"

// installHint is what to do when the server cannot be had.
const installHint = "run `scripts/install.sh test` (make test does) to install Debian's postgresql, " +
	"or set " + EnvURL + " to a database where the tests may create schemas"

// Server is a PostgreSQL database the tests may create schemas in.
type Server struct {
	// adminURL is a database URL of a user that may CREATE SCHEMA.
	adminURL string
	admin    *sql.DB
	// dir, cmd and logPath are set when this package started the server.
	dir     string
	cmd     *exec.Cmd
	logPath string
	exited  chan struct{}
	n       atomic.Int64
	// what Restart needs to start the same server again
	bin  string
	cred *syscall.Credential
	port int
}

// Start returns the server named by INVIGIL_TEST_DATABASE_URL, or starts
// one: initdb into a temporary directory, then postgres listening on a free
// port of 127.0.0.1 only, with its socket in that directory too. Durability
// settings are off (fsync, synchronous_commit): a test database is thrown
// away, and the SQLite tests cover crash safety.
func Start(ctx context.Context) (*Server, error) {
	if u := os.Getenv(EnvURL); u != "" {
		s := &Server{adminURL: u}
		if err := s.connect(ctx); err != nil {
			return nil, fmt.Errorf("%s: %w", EnvURL, err)
		}
		return s, nil
	}
	bin, err := findBinaries()
	if err != nil {
		return nil, err
	}
	cred, err := credential()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp(tempBase(cred != nil), "invigil-pg-")
	if err != nil {
		return nil, fmt.Errorf("pgtest: %w", err)
	}
	s := &Server{dir: dir, logPath: filepath.Join(dir, "postgres.log")}
	if err := s.start(ctx, bin, cred); err != nil {
		_ = s.Stop()
		return nil, err
	}
	return s, nil
}

// binaryDirs is where Debian installs each major version's server
// programs, off PATH.
var binaryDirs = "/usr/lib/postgresql/*/bin"

// findBinaries returns the directory of initdb and postgres: the newest
// /usr/lib/postgresql/N/bin, else PATH.
func findBinaries() (string, error) {
	dirs, _ := filepath.Glob(binaryDirs)
	sort.Slice(dirs, func(i, j int) bool { return versionOf(dirs[i]) > versionOf(dirs[j]) })
	for _, d := range dirs {
		if executable(filepath.Join(d, "initdb")) && executable(filepath.Join(d, "postgres")) {
			return d, nil
		}
	}
	if initdb, err := exec.LookPath("initdb"); err == nil {
		if d := filepath.Dir(initdb); executable(filepath.Join(d, "postgres")) {
			return d, nil
		}
	}
	return "", fmt.Errorf("pgtest: the PostgreSQL server programs (initdb, postgres) are not in /usr/lib/postgresql/*/bin or on PATH: %s", installHint)
}

func versionOf(binDir string) int {
	v, _ := strconv.Atoi(filepath.Base(filepath.Dir(binDir)))
	return v
}

func executable(path string) bool {
	info, err := os.Stat(path)
	return err == nil && info.Mode().IsRegular() && info.Mode().Perm()&0o111 != 0
}

// credential is who runs initdb and postgres: both refuse to run as root
// (a server bug must not own the machine), so as root they run as the
// postgres user that Debian's package creates. nil: as ourselves.
func credential() (*syscall.Credential, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	u, err := user.Lookup("postgres")
	if err != nil {
		return nil, fmt.Errorf("pgtest: running as root, and initdb and postgres refuse to run as root; there is no postgres user to run them as (%w): %s", err, installHint)
	}
	uid, err := strconv.ParseUint(u.Uid, 10, 32)
	if err != nil {
		return nil, fmt.Errorf("pgtest: postgres user's uid %q: %w", u.Uid, err)
	}
	gid, err := strconv.ParseUint(u.Gid, 10, 32)
	if err != nil {
		return nil, fmt.Errorf("pgtest: postgres user's gid %q: %w", u.Gid, err)
	}
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}, nil
}

// tempBase is where the server's directory goes: the usual temporary
// directory, unless the postgres user could not reach into it (a TMPDIR
// under /root), then /tmp.
func tempBase(asOtherUser bool) string {
	base := os.TempDir()
	if !asOtherUser {
		return base
	}
	for d := base; ; d = filepath.Dir(d) {
		info, err := os.Stat(d)
		if err != nil || info.Mode().Perm()&0o001 == 0 {
			return "/tmp"
		}
		if d == filepath.Dir(d) {
			return base
		}
	}
}

func (s *Server) start(ctx context.Context, bin string, cred *syscall.Credential) error {
	data := filepath.Join(s.dir, "data")
	if err := os.Mkdir(data, 0o700); err != nil {
		return fmt.Errorf("pgtest: %w", err)
	}
	if cred != nil {
		// The postgres user owns the data and socket directory; the
		// directory above stays ours (root can still remove it).
		for _, d := range []string{s.dir, data} {
			if err := os.Chown(d, int(cred.Uid), int(cred.Gid)); err != nil {
				return fmt.Errorf("pgtest: give %s to the postgres user: %w", d, err)
			}
		}
	}
	initdb := exec.CommandContext(ctx, filepath.Join(bin, "initdb"),
		"-D", data, "-U", "postgres", "--auth=trust", "-E", "UTF8", "--locale=C", "--no-sync")
	initdb.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	if out, err := initdb.CombinedOutput(); err != nil {
		return fmt.Errorf("pgtest: initdb: %w\n%s", err, out)
	}
	port, err := freePort()
	if err != nil {
		return err
	}
	s.bin, s.cred, s.port = bin, cred, port
	return s.run(ctx)
}

// run starts postgres on the initialized data directory and waits until
// it accepts connections.
func (s *Server) run(ctx context.Context) error {
	log, err := os.OpenFile(s.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("pgtest: %w", err)
	}
	defer log.Close()
	// Not CommandContext: the server outlives the context of its start.
	s.cmd = exec.Command(filepath.Join(s.bin, "postgres"),
		"-D", filepath.Join(s.dir, "data"), "-p", strconv.Itoa(s.port), "-k", s.dir,
		"-c", "listen_addresses=127.0.0.1",
		"-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off",
		// Several stores of 16 connections each in the several-nodes test.
		"-c", "max_connections=200")
	s.cmd.Stdout, s.cmd.Stderr = log, log
	// Pdeathsig: if the test binary dies without stopping it, the server
	// shuts down at once instead of lingering on the port.
	s.cmd.SysProcAttr = &syscall.SysProcAttr{Credential: s.cred, Pdeathsig: syscall.SIGQUIT}
	if err := s.cmd.Start(); err != nil {
		return fmt.Errorf("pgtest: start postgres: %w", err)
	}
	exited := make(chan struct{})
	s.exited = exited
	cmd := s.cmd
	go func() {
		_ = cmd.Wait()
		close(exited)
	}()
	s.adminURL = fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", s.port)
	deadline := time.Now().Add(30 * time.Second)
	for {
		err := s.connect(ctx)
		if err == nil {
			return nil
		}
		select {
		case <-exited:
			return fmt.Errorf("pgtest: postgres exited at start: %s", s.logTail())
		case <-ctx.Done():
			return fmt.Errorf("pgtest: wait for postgres: %w", ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("pgtest: postgres did not accept connections within 30 s (%w): %s", err, s.logTail())
		}
	}
}

// Restart stops the server (fast shutdown: open sessions are cut, what was
// committed is kept; not a crash, which with this package's fsync=off could
// lose commits) and starts it again on the same port and data, for tests
// of what clients do while their database is away. down, if not nil, runs
// while it is stopped.
func (s *Server) Restart(ctx context.Context, down func()) error {
	if s.cmd == nil || s.cmd.Process == nil {
		return errors.New("pgtest: Restart: not a server this package started")
	}
	if s.admin != nil {
		_ = s.admin.Close()
		s.admin = nil
	}
	_ = s.cmd.Process.Signal(syscall.SIGINT)
	select {
	case <-s.exited:
	case <-time.After(15 * time.Second):
		_ = s.cmd.Process.Kill()
		<-s.exited
	}
	if down != nil {
		down()
	}
	return s.run(ctx)
}

// freePort asks the kernel for a free TCP port on loopback. Another process
// could take it before postgres binds it; then postgres exits and says so.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("pgtest: find a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func (s *Server) connect(ctx context.Context) error {
	db, err := sql.Open("pgx", s.adminURL)
	if err != nil {
		return err
	}
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return err
	}
	s.admin = db
	return nil
}

func (s *Server) logTail() string {
	b, err := os.ReadFile(s.logPath)
	if err != nil {
		return err.Error()
	}
	if len(b) > 2000 {
		b = b[len(b)-2000:]
	}
	return string(b)
}

// CreateSchema makes a new, empty schema and returns a URL whose
// connections use it (search_path), so a store opened on it sees only its
// own tables. A schema, not a database: CREATE DATABASE takes about half a
// second (it copies a template and checkpoints), a schema milliseconds, and
// nothing in the store depends on which schema it is in.
func (s *Server) CreateSchema(ctx context.Context) (string, error) {
	name := fmt.Sprintf("invigil_test_%d_%d", os.Getpid(), s.n.Add(1))
	// The name is made above from digits: nothing to quote.
	if _, err := s.admin.ExecContext(ctx, "CREATE SCHEMA "+name); err != nil {
		return "", fmt.Errorf("pgtest: create schema %s: %w", name, err)
	}
	u, err := url.Parse(s.adminURL)
	if err != nil {
		return "", fmt.Errorf("pgtest: %w", err)
	}
	q := u.Query()
	q.Set("search_path", name)
	u.RawQuery = q.Encode()
	return u.String(), nil
}

// DropSchema removes a schema CreateSchema made, with everything in it.
func (s *Server) DropSchema(ctx context.Context, schemaURL string) error {
	u, err := url.Parse(schemaURL)
	if err != nil {
		return fmt.Errorf("pgtest: %w", err)
	}
	name := u.Query().Get("search_path")
	if !strings.HasPrefix(name, "invigil_test_") || strings.ContainsAny(name, " ,;\"'") {
		return fmt.Errorf("pgtest: refusing to drop schema %q, which CreateSchema did not make", name)
	}
	if _, err := s.admin.ExecContext(ctx, "DROP SCHEMA IF EXISTS "+name+" CASCADE"); err != nil {
		return fmt.Errorf("pgtest: drop schema %s: %w", name, err)
	}
	return nil
}

// Stop shuts a server this package started down (fast shutdown: open
// sessions are ended) and removes its directory; for a server named by
// INVIGIL_TEST_DATABASE_URL it only closes the connection.
func (s *Server) Stop() error {
	var errs []error
	if s.admin != nil {
		errs = append(errs, s.admin.Close())
	}
	if s.cmd != nil && s.cmd.Process != nil {
		_ = s.cmd.Process.Signal(syscall.SIGINT)
		select {
		case <-s.exited:
		case <-time.After(15 * time.Second):
			_ = s.cmd.Process.Kill()
			<-s.exited
			errs = append(errs, fmt.Errorf("pgtest: postgres did not stop within 15 s: %s", s.logTail()))
		}
	}
	if s.dir != "" {
		errs = append(errs, os.RemoveAll(s.dir))
	}
	return errors.Join(errs...)
}

// Shared is one server for a whole test binary, started on first use (so
// that running only tests that need none starts none) and stopped by
// TestMain after m.Run.
type Shared struct {
	once sync.Once
	srv  *Server
	err  error
}

// Server returns the shared server, starting it on the first call.
func (sh *Shared) Server() (*Server, error) {
	sh.once.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		sh.srv, sh.err = Start(ctx)
	})
	return sh.srv, sh.err
}

// URL makes a fresh schema for t, dropped when t ends, and returns the URL
// that opens it. Without a server t fails, saying how to get one: the
// PostgreSQL half of a test never passes by being skipped.
func (sh *Shared) URL(t testing.TB) string {
	t.Helper()
	srv, err := sh.Server()
	if err != nil {
		t.Fatal(err)
	}
	u, err := srv.CreateSchema(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		// t.Context is done by the time cleanups run.
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := srv.DropSchema(ctx, u); err != nil {
			t.Error(err)
		}
	})
	return u
}

// Stop stops the server if it was started.
func (sh *Shared) Stop() error {
	if sh.srv == nil {
		return nil
	}
	return sh.srv.Stop()
}
