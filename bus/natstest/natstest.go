// Package natstest starts a throwaway NATS server with JetStream for tests,
// the way pgtest does PostgreSQL: Debian's real nats-server (package
// nats-server, installed by `scripts/install.sh test`) on a free loopback
// port with its JetStream store in a temporary directory, removed at the
// end. Nothing is mocked.
//
// INVIGIL_TEST_NATS_URL points the tests that share one server at an
// existing server instead (one with JetStream enabled, and one for tests
// only: they delete and make again the stream INVIGIL_VIOLATIONS). Tests
// that stop or restart their server always start their own.
package natstest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
)

// EnvURL names the variable that points the tests at an existing server.
const EnvURL = "INVIGIL_TEST_NATS_URL"

// installHint is what to do when the server cannot be had.
const installHint = "run `scripts/install.sh test` (make test does) to install Debian's nats-server, " +
	"or set " + EnvURL + " to a NATS server with JetStream"

// binary is the server program, looked up on PATH (Debian installs it as
// /usr/sbin/nats-server, which an ordinary user's PATH may lack).
var binary = "nats-server"

var fallbackDirs = []string{"/usr/sbin", "/usr/local/sbin", "/usr/bin"}

// Server is a NATS server the tests may use.
type Server struct {
	url string
	// dir, cmd and logPath are set when this package started the server.
	dir     string
	port    int
	cmd     *exec.Cmd
	logPath string
	exited  chan struct{}
}

// URL is the server's client URL (nats://127.0.0.1:PORT).
func (s *Server) URL() string { return s.url }

// Start returns the server named by INVIGIL_TEST_NATS_URL, or starts one:
// nats-server -js on a free port of 127.0.0.1 only, its JetStream store in a
// new temporary directory. It returns once the server answers a ping.
func Start(ctx context.Context) (*Server, error) {
	if u := os.Getenv(EnvURL); u != "" {
		s := &Server{url: u}
		if err := s.ping(ctx); err != nil {
			return nil, fmt.Errorf("natstest: %s=%s: %w", EnvURL, u, err)
		}
		return s, nil
	}
	bin, err := findBinary()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "invigil-nats-")
	if err != nil {
		return nil, fmt.Errorf("natstest: %w", err)
	}
	s := &Server{dir: dir, logPath: filepath.Join(dir, "nats-server.log")}
	if s.port, err = freePort(); err != nil {
		_ = s.Stop()
		return nil, err
	}
	if err := s.start(ctx, bin); err != nil {
		_ = s.Stop()
		return nil, err
	}
	return s, nil
}

func findBinary() (string, error) {
	if p, err := exec.LookPath(binary); err == nil {
		return p, nil
	}
	if !filepath.IsAbs(binary) && filepath.Base(binary) == binary {
		for _, d := range fallbackDirs {
			p := filepath.Join(d, binary)
			if info, err := os.Stat(p); err == nil && info.Mode().IsRegular() && info.Mode().Perm()&0o111 != 0 {
				return p, nil
			}
		}
	}
	return "", fmt.Errorf("natstest: the NATS server program (%s) is not on PATH or in %v: %s", binary, fallbackDirs, installHint)
}

// start runs the server on s.port and s.dir and waits until it answers.
// Restart uses it again with the same port and store.
func (s *Server) start(ctx context.Context, bin string) error {
	logFile, err := os.OpenFile(s.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("natstest: %w", err)
	}
	defer logFile.Close()
	// Not CommandContext: the server outlives the context of its start.
	s.cmd = exec.Command(bin, "-js", "-a", "127.0.0.1", "-p", strconv.Itoa(s.port),
		"-sd", filepath.Join(s.dir, "jetstream"))
	s.cmd.Stdout, s.cmd.Stderr = logFile, logFile
	// If the test binary dies without stopping it, the server goes too
	// instead of lingering on the port.
	s.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	if err := s.cmd.Start(); err != nil {
		return fmt.Errorf("natstest: start %s: %w", bin, err)
	}
	exited := make(chan struct{})
	s.exited = exited
	cmd := s.cmd
	go func() {
		_ = cmd.Wait()
		close(exited)
	}()
	s.url = fmt.Sprintf("nats://127.0.0.1:%d", s.port)
	deadline := time.Now().Add(30 * time.Second)
	for {
		err := s.ping(ctx)
		if err == nil {
			return nil
		}
		select {
		case <-exited:
			return fmt.Errorf("natstest: nats-server exited at start: %s", s.logTail())
		case <-ctx.Done():
			return fmt.Errorf("natstest: wait for nats-server: %w", ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("natstest: nats-server did not answer within 30 s (%w): %s", err, s.logTail())
		}
	}
}

// ping connects, checks that JetStream is on (a server without -js would
// pass a plain ping and fail every test later, less clearly) and
// disconnects.
func (s *Server) ping(ctx context.Context) error {
	nc, err := nats.Connect(s.url, nats.Timeout(2*time.Second), nats.NoReconnect())
	if err != nil {
		return err
	}
	defer nc.Close()
	// The client insists on a deadline.
	rctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	if err := nc.FlushWithContext(rctx); err != nil {
		return err
	}
	// $JS.API.INFO answers only where JetStream runs.
	if _, err := nc.RequestWithContext(rctx, "$JS.API.INFO", nil); err != nil {
		return fmt.Errorf("JetStream does not answer (is the server started with -js?): %w", err)
	}
	return nil
}

// freePort asks the kernel for a free TCP port on loopback. Another process
// could take it before nats-server binds it; then the server exits and the
// log says so.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("natstest: find a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
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

// halt stops the running process (SIGTERM: JetStream syncs its store and
// exits), killing it after 15 s.
func (s *Server) halt() error {
	if s.cmd == nil || s.cmd.Process == nil {
		return nil
	}
	defer func() { s.cmd = nil }()
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.exited:
		return nil
	case <-time.After(15 * time.Second):
		_ = s.cmd.Process.Kill()
		<-s.exited
		return fmt.Errorf("natstest: nats-server did not stop within 15 s: %s", s.logTail())
	}
}

// Restart stops a server this package started and starts it again on the
// same port with the same JetStream store, as an operator's restart would:
// what JetStream had stored is still there, and clients reconnect.
func (s *Server) Restart(ctx context.Context) error {
	if s.dir == "" {
		return errors.New("natstest: cannot restart a server named by " + EnvURL)
	}
	if err := s.halt(); err != nil {
		return err
	}
	bin, err := findBinary()
	if err != nil {
		return err
	}
	return s.start(ctx, bin)
}

// Stop shuts a server this package started down and removes its
// directory; for a server named by INVIGIL_TEST_NATS_URL it does nothing.
func (s *Server) Stop() error {
	var errs []error
	errs = append(errs, s.halt())
	if s.dir != "" {
		errs = append(errs, os.RemoveAll(s.dir))
	}
	return errors.Join(errs...)
}

// Shared is one server for a whole test binary, started on first use (so
// running only tests that need none starts none) and stopped by TestMain
// after m.Run.
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

// URL returns the shared server's URL. Without a server t fails, saying how
// to get one: a NATS test never passes by being skipped.
func (sh *Shared) URL(t testing.TB) string {
	t.Helper()
	srv, err := sh.Server()
	if err != nil {
		t.Fatal(err)
	}
	return srv.URL()
}

// Stop stops the server if it was started.
func (sh *Shared) Stop() error {
	if sh.srv == nil {
		return nil
	}
	return sh.srv.Stop()
}

// Own starts a server for one test alone, stopped when the test ends:
// never the one INVIGIL_TEST_NATS_URL names, so a test may stop and
// restart it.
func Own(t testing.TB) *Server {
	t.Helper()
	t.Setenv(EnvURL, "")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	srv, err := Start(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := srv.Stop(); err != nil {
			t.Error(err)
		}
	})
	return srv
}
