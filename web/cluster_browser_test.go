package web_test

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"invigil/bus/natstest"
	"invigil/internal/testassets"
	"invigil/store/pgtest"
)

// TestBrowserCluster runs a real Chromium against several nodes, each its
// own process (e2e/cluster.mjs): the candidate page from the control node
// sends to its exam's media node, and follows its exam to the other media
// node when that one is killed.
func TestBrowserCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a browser against three server processes")
	}
	root := testassets.RepoRoot(t)
	chromium := browserTools(t, root)
	tmp := t.TempDir()
	face, _ := makeClips(t, tmp)
	bin := buildServer(t, root, tmp)

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	t.Setenv(pgtest.EnvURL, "")
	t.Setenv(natstest.EnvURL, "")
	pg, err := pgtest.Start(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = pg.Stop() })
	dbURL, err := pg.CreateSchema(ctx)
	if err != nil {
		t.Fatal(err)
	}
	ns := natstest.Own(t)

	env := []string{"INVIGIL_DATABASE_URL=" + dbURL, "INVIGIL_NATS_URL=" + ns.URL(),
		"INVIGIL_CLUSTER_KEY=browser-cluster-test-key-0123456789"}
	controlAddr := freeAddr(t)
	control, _ := startNode(t, bin, filepath.Join(tmp, "control"), controlAddr,
		append(env, "INVIGIL_NODE_ID=control"), "--role", "control")
	var mediaList []string
	for _, name := range []string{"media-1", "media-2"} {
		addr := freeAddr(t)
		base, pid := startNode(t, bin, filepath.Join(tmp, name), addr, append(env, "INVIGIL_NODE_ID="+name),
			"--role", "media", "--advertise-url", "http://"+addr, "--sfu-origins", controlAddr)
		mediaList = append(mediaList, fmt.Sprintf("%s|%s|%d", name, base, pid))
	}
	runNode(t, root, "cluster.mjs",
		"INVIGIL_URL="+control,
		"INVIGIL_ADMIN_PASSWORD="+adminPassword,
		"INVIGIL_FACE_Y4M="+face,
		"INVIGIL_CHROMIUM="+chromium,
		"INVIGIL_MEDIA="+strings.Join(mediaList, ","),
	)
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// startNode starts `invigil serve` with args on addr and waits until it is
// healthy; it returns its base URL and process ID.
func startNode(t *testing.T, bin, dir, addr string, env []string, args ...string) (string, int) {
	t.Helper()
	logPath := dir + ".log"
	logFile, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, append([]string{"serve", "--addr", addr, "--data", dir}, args...)...)
	cmd.Env = append(os.Environ(), append([]string{"INVIGIL_ADMIN_PASSWORD=" + adminPassword, "INVIGIL_MODELS=" + testassets.ModelsDir(t)}, env...)...)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", bin, err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(15 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
		logFile.Close()
		if t.Failed() {
			b, _ := os.ReadFile(logPath)
			if len(b) > 10000 {
				b = b[len(b)-10000:]
			}
			t.Logf("%s log (tail):\n%s", filepath.Base(dir), b)
		}
	})
	base := "http://" + addr
	for deadline := time.Now().Add(90 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		select {
		case err := <-exited:
			b, _ := os.ReadFile(logPath)
			t.Fatalf("%s exited before it was ready: %v\n%s", filepath.Base(dir), err, b)
		default:
		}
		if res, err := http.Get(base + "/healthz"); err == nil {
			res.Body.Close()
			if res.StatusCode == http.StatusOK {
				return base, cmd.Process.Pid
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s at %s not healthy after 90 s", filepath.Base(dir), base)
		}
	}
}
