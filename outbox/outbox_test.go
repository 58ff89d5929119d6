package outbox

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// consumer records what the drainer hands it. failFor makes a key fail
// that many attempts with a transient error; reject refuses a key for good.
type consumer struct {
	mu        sync.Mutex
	got       []Entry
	attempts  map[string]int
	failFor   map[string]int
	reject    map[string]bool
	delivered chan struct{}
}

func newConsumer() *consumer {
	return &consumer{attempts: map[string]int{}, failFor: map[string]int{}, reject: map[string]bool{}, delivered: make(chan struct{}, 1000)}
}

var errLocked = errors.New("database is locked")

func (c *consumer) Deliver(ctx context.Context, e Entry) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.attempts[e.Key]++
	if c.reject[e.Key] {
		return fmt.Errorf("%w: candidate does not exist", ErrRejected)
	}
	if c.attempts[e.Key] <= c.failFor[e.Key] {
		return errLocked
	}
	c.got = append(c.got, e)
	return nil
}

func (c *consumer) keys() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []string
	for _, e := range c.got {
		out = append(out, e.Kind+":"+e.Key)
	}
	return out
}

type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func open(t *testing.T, dir string, reg *prometheus.Registry, logs io.Writer) *Outbox {
	t.Helper()
	if logs == nil {
		logs = io.Discard
	}
	cfg := Config{Dir: dir, Name: "test", Logger: slog.New(slog.NewTextHandler(logs, nil)),
		MinBackoff: time.Millisecond, MaxBackoff: 20 * time.Millisecond}
	if reg != nil { // a nil *Registry is no nil Registerer
		cfg.Registry = reg
	}
	o, err := Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { o.Close(context.Background()) })
	return o
}

func waitEmpty(t *testing.T, o *Outbox) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := o.WaitEmpty(ctx); err != nil {
		t.Fatal(err)
	}
}

func entry(kind string, i int) Entry {
	return Entry{Kind: kind, Key: fmt.Sprintf("v-%03d", i), Data: []byte(fmt.Sprintf(`{"n":%d}`, i)),
		Attachment: bytes.Repeat([]byte{byte(i)}, 1000+i)}
}

// Entries are delivered whole, in the order they were appended, and leave
// nothing behind on disk.
func TestDeliversInOrder(t *testing.T) {
	dir := t.TempDir()
	reg := prometheus.NewRegistry()
	o := open(t, dir, reg, nil)
	c := newConsumer()
	var want []string
	for i := range 50 {
		for _, kind := range []string{"opened", "closed"} {
			if err := o.Append(entry(kind, i)); err != nil {
				t.Fatal(err)
			}
			want = append(want, kind+":"+entry(kind, i).Key)
		}
	}
	if got := testutil.ToFloat64(o.m.pending); got != 100 {
		t.Errorf("pending %v before the drainer ran, want 100", got)
	}
	if err := o.Start(context.Background(), c); err != nil {
		t.Fatal(err)
	}
	waitEmpty(t, o)
	if got := c.keys(); strings.Join(got, " ") != strings.Join(want, " ") {
		t.Fatalf("delivered out of order:\n%v\nwant\n%v", got, want)
	}
	for i, e := range c.got {
		w := entry(e.Kind, i/2)
		if !bytes.Equal(e.Data, w.Data) || !bytes.Equal(e.Attachment, w.Attachment) {
			t.Fatalf("entry %d came out changed", i)
		}
	}
	if n := testutil.ToFloat64(o.m.delivered); n != 100 {
		t.Errorf("delivered_total %v", n)
	}
	if n := testutil.ToFloat64(o.m.pending); n != 0 {
		t.Errorf("pending %v after draining", n)
	}
	if left := listDir(t, dir); len(left) != 0 {
		t.Errorf("files left after delivery: %v", left)
	}
}

func listDir(t *testing.T, dir string) []string {
	t.Helper()
	des, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, de := range des {
		if !de.IsDir() {
			out = append(out, de.Name())
		}
	}
	return out
}

// What was appended but not delivered is delivered after a reopen, before
// anything appended later, and appending the same kind and key again while
// it waits queues it once.
func TestReplaysAfterReopen(t *testing.T) {
	dir := t.TempDir()
	o := open(t, dir, nil, nil)
	for i := range 5 {
		if err := o.Append(entry("opened", i)); err != nil {
			t.Fatal(err)
		}
	}
	if err := o.Append(entry("opened", 2)); err != nil {
		t.Fatal(err)
	}
	if n := o.Pending(); n != 5 {
		t.Fatalf("pending %d after a repeated append, want 5", n)
	}
	if err := o.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := o.Append(entry("opened", 9)); !errors.Is(err, ErrClosed) {
		t.Errorf("append after close: %v", err)
	}

	reg := prometheus.NewRegistry()
	o = open(t, dir, reg, nil)
	if n := testutil.ToFloat64(o.m.pending); n != 5 {
		t.Fatalf("pending after reopen %v, want 5", n)
	}
	if err := o.Append(entry("opened", 5)); err != nil {
		t.Fatal(err)
	}
	c := newConsumer()
	if err := o.Start(context.Background(), c); err != nil {
		t.Fatal(err)
	}
	waitEmpty(t, o)
	want := "opened:v-000 opened:v-001 opened:v-002 opened:v-003 opened:v-004 opened:v-005"
	if got := strings.Join(c.keys(), " "); got != want {
		t.Fatalf("after reopen delivered %s, want %s", got, want)
	}
}

// A transient failure (the database is locked) keeps the entry at the
// head, in order, and retries it until it goes through; nothing is lost or
// dead-lettered.
func TestRetriesTransientFailures(t *testing.T) {
	dir := t.TempDir()
	logs := &logBuffer{}
	o := open(t, dir, prometheus.NewRegistry(), logs)
	c := newConsumer()
	c.failFor["v-001"] = 4
	for i := range 3 {
		if err := o.Append(entry("opened", i)); err != nil {
			t.Fatal(err)
		}
	}
	if err := o.Start(context.Background(), c); err != nil {
		t.Fatal(err)
	}
	waitEmpty(t, o)
	if got := strings.Join(c.keys(), " "); got != "opened:v-000 opened:v-001 opened:v-002" {
		t.Fatalf("delivered %s", got)
	}
	if n := testutil.ToFloat64(o.m.retries); n != 4 {
		t.Errorf("retries %v, want 4", n)
	}
	if n := testutil.ToFloat64(o.m.failed.WithLabelValues(ReasonRejected)); n != 0 {
		t.Errorf("failed %v after transient errors", n)
	}
	if !strings.Contains(logs.String(), "database is locked") || !strings.Contains(logs.String(), "stays queued") {
		t.Errorf("the retries are not logged clearly:\n%s", logs)
	}
}

// An entry rejected for good goes to the dead-letter folder with its
// reason, is counted, and does not hold up the entries behind it.
func TestRejectedGoesToDeadLetter(t *testing.T) {
	dir := t.TempDir()
	o := open(t, dir, prometheus.NewRegistry(), nil)
	c := newConsumer()
	c.reject["v-001"] = true
	for i := range 3 {
		if err := o.Append(entry("opened", i)); err != nil {
			t.Fatal(err)
		}
	}
	if err := o.Start(context.Background(), c); err != nil {
		t.Fatal(err)
	}
	waitEmpty(t, o)
	if got := strings.Join(c.keys(), " "); got != "opened:v-000 opened:v-002" {
		t.Fatalf("delivered %s", got)
	}
	if n := testutil.ToFloat64(o.m.failed.WithLabelValues(ReasonRejected)); n != 1 {
		t.Errorf("failed{rejected} %v, want 1", n)
	}
	dead := listDir(t, filepath.Join(dir, deadDir))
	if len(dead) != 2 {
		t.Fatalf("dead-letter folder holds %v, want the entry and its reason", dead)
	}
	for _, name := range dead {
		b, _ := os.ReadFile(filepath.Join(dir, deadDir, name))
		switch {
		case strings.HasSuffix(name, ".reason"):
			if !strings.Contains(string(b), "candidate does not exist") {
				t.Errorf("reason %q", b)
			}
		default:
			if e, err := decodeEntry(b); err != nil || e.Key != "v-001" {
				t.Errorf("dead entry %s: %v %+v", name, err, e.Key)
			}
		}
	}
}

// What a crash or a stranger leaves in the directory (an unfinished
// temporary file, a truncated entry, garbage, a file with a bad name)
// is logged and set aside at Open; the good entries are delivered and
// nothing blocks the queue.
func TestDamagedFilesDoNotBlock(t *testing.T) {
	dir := t.TempDir()
	good1, _ := encodeEntry(entry("opened", 1))
	good3, _ := encodeEntry(entry("opened", 3))
	truncated, _ := encodeEntry(entry("opened", 2))
	files := map[string][]byte{
		"00000000000000000001.entry": good1,
		"00000000000000000002.entry": truncated[:len(truncated)/2],
		"00000000000000000003.entry": good3,
		"00000000000000000004.entry": []byte("garbage that is no entry at all"),
		"bogus.entry":                good1,
		".tmp-123456":                good1[:10],
	}
	for name, b := range files {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o640); err != nil {
			t.Fatal(err)
		}
	}
	logs := &logBuffer{}
	o := open(t, dir, prometheus.NewRegistry(), logs)
	if n := o.Pending(); n != 2 {
		t.Fatalf("pending %d, want the 2 intact entries", n)
	}
	if n := testutil.ToFloat64(o.m.failed.WithLabelValues(ReasonCorrupt)); n != 3 {
		t.Errorf("failed{corrupt} %v, want 3", n)
	}
	c := newConsumer()
	if err := o.Append(entry("opened", 5)); err != nil {
		t.Fatal(err)
	}
	// A file damaged after Open read it is caught at delivery.
	if err := os.WriteFile(filepath.Join(dir, "00000000000000000003.entry"), []byte("IVGOBX1\nbroken"), 0o640); err != nil {
		t.Fatal(err)
	}
	if err := o.Start(context.Background(), c); err != nil {
		t.Fatal(err)
	}
	waitEmpty(t, o)
	if got := strings.Join(c.keys(), " "); got != "opened:v-001 opened:v-005" {
		t.Fatalf("delivered %s", got)
	}
	if n := testutil.ToFloat64(o.m.failed.WithLabelValues(ReasonCorrupt)); n != 4 {
		t.Errorf("failed{corrupt} %v, want 4", n)
	}
	if _, err := os.Stat(filepath.Join(dir, ".tmp-123456")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the unfinished temporary file is still there: %v", err)
	}
	for _, want := range []string{"crash cut short", "checksum mismatch", "bad header", "dead-letter"} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("log does not mention %q:\n%s", want, logs)
		}
	}
}

// Close lets the drainer finish what is queued; when it cannot (the
// consumer fails), Close still returns once its context ends and the
// entry stays on disk.
func TestCloseLeavesUndeliveredOnDisk(t *testing.T) {
	dir := t.TempDir()
	o := open(t, dir, nil, nil)
	c := newConsumer()
	c.failFor["v-000"] = 1 << 30
	if err := o.Append(entry("opened", 0)); err != nil {
		t.Fatal(err)
	}
	if err := o.Start(context.Background(), c); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if err := o.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if left := listDir(t, dir); len(left) != 1 {
		t.Fatalf("files after close: %v", left)
	}
	o = open(t, dir, nil, nil)
	if n := o.Pending(); n != 1 {
		t.Fatalf("pending after reopen %d", n)
	}
}

const crashChildEnv = "INVIGIL_OUTBOX_CRASH_CHILD"

// The child half of TestAcknowledgedSurvivesSIGKILL: it appends entries as
// fast as it can, printing each key once Append returned.
func TestCrashChild(t *testing.T) {
	dir := os.Getenv(crashChildEnv)
	if dir == "" {
		t.Skip("runs only as the child of TestAcknowledgedSurvivesSIGKILL")
	}
	o, err := Open(Config{Dir: dir, Name: "child"})
	if err != nil {
		fmt.Println("error", err)
		os.Exit(2)
	}
	for i := 0; ; i++ {
		if err := o.Append(entry("opened", i)); err != nil {
			fmt.Println("error", err)
			os.Exit(2)
		}
		fmt.Printf("acked %s\n", entry("opened", i).Key)
	}
}

// Every entry whose Append returned is there after a SIGKILL at a random
// moment, intact, and Open copes with whatever the kill cut short.
func TestAcknowledgedSurvivesSIGKILL(t *testing.T) {
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestCrashChild$", "-test.count=1")
	cmd.Env = append(os.Environ(), crashChildEnv+"="+dir)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	killAt := 20 + int(time.Now().UnixNano()%80)
	var acked []string
	sc := bufio.NewScanner(stdout)
	for sc.Scan() {
		if key, ok := strings.CutPrefix(sc.Text(), "acked "); ok {
			acked = append(acked, key)
			if len(acked) == killAt {
				_ = cmd.Process.Kill()
			}
		}
	}
	_ = cmd.Wait()
	if len(acked) < killAt {
		t.Fatalf("the child acknowledged only %d entries", len(acked))
	}
	o := open(t, dir, prometheus.NewRegistry(), nil)
	c := newConsumer()
	if err := o.Start(context.Background(), c); err != nil {
		t.Fatal(err)
	}
	waitEmpty(t, o)
	got := map[string]int{}
	for _, e := range c.got {
		got[e.Key]++
		var i int
		fmt.Sscanf(e.Key, "v-%d", &i)
		if !bytes.Equal(e.Attachment, entry("opened", i).Attachment) {
			t.Errorf("%s came back damaged", e.Key)
		}
	}
	for _, k := range acked {
		if got[k] != 1 {
			t.Errorf("acknowledged %s delivered %d times after the kill", k, got[k])
		}
	}
	if n := testutil.ToFloat64(o.m.failed.WithLabelValues(ReasonCorrupt)); n != 0 {
		t.Errorf("%v entries corrupt after a kill (renames must make them whole or absent)", n)
	}
}
