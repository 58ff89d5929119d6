package web_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"invigil/internal/testassets"
	"invigil/media"
	"invigil/sfu"
	"invigil/vp8rtp"
	"invigil/web"
)

// TestBrowser runs the pages in Debian's Chromium against a real `invigil
// serve` (SQLite, SFU, recording, live analysis) with fake cameras playing
// clips made from real photos: the node scripts in e2e/ drive the browsers.
// Missing node, Chromium, ffmpeg or e2e packages fail it, never skip it:
// `make test` installs them.
func TestBrowser(t *testing.T) {
	if testing.Short() {
		t.Skip("runs five browsers through a whole interview day (about two minutes)")
	}
	root := testassets.RepoRoot(t)
	chromium := browserTools(t, root)
	tmp := t.TempDir()
	face, empty := makeClips(t, tmp)
	speech := makeSpeech(t, tmp)
	bin := buildServer(t, root, tmp)
	base := startServer(t, bin, tmp)

	for _, script := range []string{"flow.mjs", "errors.mjs", "listen.mjs"} {
		t.Run(strings.TrimSuffix(script, ".mjs"), func(t *testing.T) {
			runNode(t, root, script,
				"INVIGIL_URL="+base,
				"INVIGIL_ADMIN_PASSWORD="+adminPassword,
				"INVIGIL_FACE_Y4M="+face,
				"INVIGIL_EMPTY_Y4M="+empty,
				"INVIGIL_SPEECH_WAV="+speech,
				"INVIGIL_CHROMIUM="+chromium,
			)
		})
	}
}

// TestBrowserSFU checks sfu.js, the browser side of the SFU's protocol,
// against the real SFU alone: publish, subscribe, an ICE restart and a
// resume after the socket dropped, with video flowing to a watcher after
// each (e2e/sfu.mjs).
func TestBrowserSFU(t *testing.T) {
	root := testassets.RepoRoot(t)
	chromium := browserTools(t, root)
	face, _ := makeClips(t, t.TempDir())

	key := []byte("browser-test-sfu-token-key-0123456789")
	layers := &layerCount{}
	srv, err := sfu.New(sfu.Config{Tokens: sfu.HMACTokens{Key: key}, ICE: sfu.ICEConfig{IncludeLoopback: true},
		Taps: []media.Tap{layers}})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("GET /sfu/ws", srv)
	mux.Handle("/", web.Handler())
	hs := httptest.NewServer(mux)
	// The SFU first: its sockets are hijacked connections that the HTTP
	// server's Close would wait for.
	defer hs.Close()
	defer srv.Close()
	token := func(g sfu.Grants) string {
		g.Room = "exam-1"
		g.ExpiresAt = time.Now().Add(time.Hour)
		s, err := sfu.HMACTokens{Key: key}.Issue(g)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	runNode(t, root, "sfu.mjs",
		"INVIGIL_URL="+hs.URL,
		"INVIGIL_FACE_Y4M="+face,
		"INVIGIL_CHROMIUM="+chromium,
		"INVIGIL_PUB_TOKEN="+token(sfu.Grants{Identity: "candidate-1", Role: "candidate", CanPublish: true}),
		"INVIGIL_SUB_TOKEN="+token(sfu.Grants{Identity: "staff-1", Role: "proctor", CanSubscribe: true, Hidden: true, Subscribe: []string{"*"}}),
	)
	// Chromium publishes what sfu.js asks for, VP8 L1T3: frames on
	// temporal layers 0, 1 and 2, a quarter on the base, each base frame
	// numbered (TL0PICIDX), as the pipeline's base-layer decoding expects.
	n, byTID, numbered := layers.counts()
	t.Logf("Chromium's video: %d frames, by temporal layer %v, %d base frames with TL0PICIDX", n, byTID, numbered)
	if n < 30 || byTID[0] == 0 || byTID[1] == 0 || byTID[2] == 0 || numbered != byTID[0] {
		t.Errorf("Chromium sent %d frames, by temporal layer %v (%d base frames with TL0PICIDX): want L1T3", n, byTID, numbered)
	} else if share := float64(byTID[0]) / float64(n); share < 0.2 || share > 0.35 {
		t.Errorf("%.0f %% of Chromium's frames on the base layer, want a quarter", 100*share)
	}
}

// layerCount is a tap that reads the VP8 payload descriptor of every
// frame published: how many frames each temporal layer has.
type layerCount struct {
	mu       sync.Mutex
	frames   int
	byTID    map[int]int // -1: no layers marked
	numbered int         // base-layer frames with TL0PICIDX
}

func (l *layerCount) TrackStarted(t media.Track) media.PacketWriter {
	if t.Kind != media.Video {
		return nil
	}
	return l
}

func (l *layerCount) WritePacket(pk media.Packet) {
	d, _, err := vp8rtp.Parse(pk.RTP.Payload)
	if err != nil || !d.FrameStart() {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.byTID == nil {
		l.byTID = map[int]int{}
	}
	l.frames++
	tid := -1
	if d.HasTID {
		tid = int(d.TID)
	}
	l.byTID[tid]++
	if tid == 0 && d.HasTL0PicIdx {
		l.numbered++
	}
}

func (l *layerCount) Close() {}

func (l *layerCount) counts() (int, map[int]int, int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	byTID := map[int]int{}
	for k, v := range l.byTID {
		byTID[k] = v
	}
	return l.frames, byTID, l.numbered
}

// browserTools checks what the browser tests need and returns Chromium's
// path. Nothing missing is skipped over: `make test` installs it all.
func browserTools(t *testing.T, root string) string {
	t.Helper()
	tool(t, "node", "nodejs")
	tool(t, "ffmpeg", "ffmpeg")
	chromium := os.Getenv("INVIGIL_CHROMIUM")
	if chromium == "" {
		chromium = "/usr/bin/chromium"
	}
	if _, err := os.Stat(chromium); err != nil {
		t.Fatalf("Chromium not found at %s (%v): run scripts/install.sh test, or set INVIGIL_CHROMIUM", chromium, err)
	}
	if _, err := os.Stat(filepath.Join(root, "web", "e2e", "node_modules", "playwright-core", "package.json")); err != nil {
		t.Fatalf("playwright-core is not installed in web/e2e: run `make web-deps` (npm ci there)")
	}
	return chromium
}

// runNode runs one e2e script with env added and fails the test unless it
// exits 0. Screenshots go to .cache/screenshots.
func runNode(t *testing.T, root, script string, env ...string) {
	t.Helper()
	shots := filepath.Join(root, ".cache", "screenshots")
	ctx, cancel := context.WithTimeout(context.Background(), 6*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "node", script)
	cmd.Dir = filepath.Join(root, "web", "e2e")
	cmd.Env = append(append(os.Environ(), "INVIGIL_SCREENSHOTS="+shots), env...)
	// The scripts own their browsers; a kill takes the whole group.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	out := &lineLog{t: t}
	cmd.Stdout, cmd.Stderr = out, out
	err := cmd.Run()
	out.flush()
	if err != nil {
		t.Fatalf("node %s: %v (screenshots in %s)", script, err, shots)
	}
}

const adminPassword = "e2e-admin-password"

func tool(t *testing.T, name, pkg string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		t.Fatalf("%s not found on PATH: install Debian's %s (scripts/install.sh test does)", name, pkg)
	}
	return p
}

// makeClips writes the fake cameras' Y4M clips (looping): a face pasted on
// a street scene at about the guide's 50 cm, and the same scene with nobody
// in it. They are made from the test photos each run, never committed.
func makeClips(t *testing.T, dir string) (face, empty string) {
	t.Helper()
	scene := testassets.Photo(t, "building.jpg")
	person := testassets.Photo(t, "sample3.jpg") // the blonde woman in the middle faces the camera
	face = filepath.Join(dir, "face.y4m")
	empty = filepath.Join(dir, "empty.y4m")
	ffmpeg(t, "-loop", "1", "-i", scene, "-loop", "1", "-i", person, "-filter_complex",
		"[0]scale=640:480,setsar=1[bg];[1]crop=420:500:955:140,scale=290:-1[p];[bg][p]overlay=175:130,format=yuv420p",
		"-r", "15", "-t", "3", face)
	ffmpeg(t, "-loop", "1", "-i", scene, "-vf", "scale=640:480,setsar=1,format=yuv420p", "-r", "15", "-t", "3", empty)
	return face, empty
}

// makeSpeech writes the fake microphone's WAV (Chromium loops it): Chinese
// and English sentences from espeak-ng, 48 kHz mono 16-bit as a browser
// captures, with the short pauses of someone reading aloud.
func makeSpeech(t *testing.T, dir string) string {
	t.Helper()
	tool(t, "espeak-ng", "espeak-ng")
	tool(t, "sox", "sox")
	var parts []string
	for i, s := range []struct{ voice, text string }{
		{"zh", "第三题的答案是选项二，你记下来了吗"},
		{"en", "The answer to question three is option two, write it down"},
		{"zh", "下一位考生马上就要进去了，快点告诉他"},
	} {
		p := filepath.Join(dir, fmt.Sprintf("say%d.wav", i))
		if out, err := exec.Command("espeak-ng", "-v", s.voice, "-s", "150", "-w", p, s.text).CombinedOutput(); err != nil {
			t.Fatalf("espeak-ng: %v\n%s", err, out)
		}
		parts = append(parts, p)
	}
	out := filepath.Join(dir, "speech.wav")
	args := append(append([]string{}, parts...), "-r", "48000", "-c", "1", "-b", "16", out, "gain", "-n", "-3")
	if b, err := exec.Command("sox", args...).CombinedOutput(); err != nil {
		t.Fatalf("sox %s: %v\n%s", strings.Join(args, " "), err, b)
	}
	return out
}

func ffmpeg(t *testing.T, args ...string) {
	t.Helper()
	cmd := exec.Command("ffmpeg", append([]string{"-v", "error", "-y"}, args...)...)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("ffmpeg %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// buildServer compiles the binary under test from this tree, so the pages
// and the server tested together are the ones in the working copy.
func buildServer(t *testing.T, root, dir string) string {
	t.Helper()
	bin := filepath.Join(dir, "invigil")
	cmd := exec.Command("go", "build", "-o", bin, "./cmd/invigil")
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build ./cmd/invigil: %v\n%s", err, out)
	}
	return bin
}

// startServer starts one `invigil serve` (everything in one process) with
// its data under dir and returns its base URL once it is healthy.
func startServer(t *testing.T, bin, dir string) string {
	t.Helper()
	base, _ := startNode(t, bin, filepath.Join(dir, "data"), freeAddr(t), nil)
	return base
}

// lineLog passes the scripts' output to t.Log line by line, dropping the
// Chromium wrapper's known noise.
type lineLog struct {
	t   *testing.T
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *lineLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.buf.Write(p)
	for {
		line, err := l.buf.ReadString('\n')
		if errors.Is(err, io.EOF) {
			l.buf.WriteString(line)
			break
		}
		l.emit(strings.TrimRight(line, "\n"))
	}
	return len(p), nil
}

func (l *lineLog) emit(line string) {
	if strings.Contains(line, "unexpected operator") {
		return
	}
	l.t.Log(line)
}

func (l *lineLog) flush() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if rest := l.buf.String(); rest != "" {
		l.emit(rest)
	}
	l.buf.Reset()
}
