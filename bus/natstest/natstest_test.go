package natstest

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
)

// Without the server program the tests must fail saying what to install,
// never pass by skipping.
func TestMissingBinarySaysWhatToInstall(t *testing.T) {
	oldBin, oldDirs := binary, fallbackDirs
	binary, fallbackDirs = "nats-server-not-installed", []string{t.TempDir()}
	t.Cleanup(func() { binary, fallbackDirs = oldBin, oldDirs })
	t.Setenv(EnvURL, "")
	_, err := Start(t.Context())
	if err == nil {
		t.Fatal("Start found a server without the program")
	}
	if !strings.Contains(err.Error(), "scripts/install.sh test") || !strings.Contains(err.Error(), EnvURL) {
		t.Errorf("the error does not say what to do: %v", err)
	}
}

// The server started answers with JetStream on, keeps its store across a
// restart on the same port, and leaves nothing behind after Stop.
func TestStartRestartStop(t *testing.T) {
	t.Setenv(EnvURL, "")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	srv, err := Start(ctx)
	if err != nil {
		t.Fatal(err)
	}
	dir := srv.dir
	if !strings.HasPrefix(srv.URL(), "nats://127.0.0.1:") {
		t.Errorf("URL %q is not on loopback", srv.URL())
	}
	if err := srv.Restart(ctx); err != nil {
		t.Fatal(err)
	}
	nc, err := nats.Connect(srv.URL())
	if err != nil {
		t.Fatalf("connect after a restart: %v", err)
	}
	nc.Close()
	if _, err := os.Stat(filepath.Join(dir, "jetstream")); err != nil {
		t.Errorf("no JetStream store directory: %v", err)
	}
	if err := srv.Stop(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("the server's directory %s is still there: %v", dir, err)
	}
}
