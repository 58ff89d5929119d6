package pipeline

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
)

// niceOf reads the nice value from a /proc task stat line ("" if short).
func niceOf(stat string) string {
	// Fields after the command name (which may hold spaces): nice is the
	// 19th field of the line, the 17th after ") ".
	f := strings.Fields(stat[strings.LastIndex(stat, ")")+2:])
	if len(f) <= 16 {
		return ""
	}
	return f[16]
}

// threadNice is the nice value of one of this process's threads.
func threadNice(t *testing.T, tid int64) string {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/self/task/%d/stat", tid))
	if err != nil {
		t.Fatalf("thread %d: %v", tid, err)
	}
	return niceOf(string(b))
}

// The analysis workers run below the rest of the process, so that under
// overload the kernel serves forwarding and recording first. Each
// worker's own thread is checked: a count of niced threads in the process
// would also see earlier tests' workers whose threads were still ending.
func TestWorkersRunAtLowerPriority(t *testing.T) {
	p, _ := newTestPipeline(t, Config{Workers: 2})
	if len(p.workers) != 2 {
		t.Fatalf("%d workers, want 2", len(p.workers))
	}
	waitFor(t, "both workers on their own threads", func() bool {
		return p.workers[0].thread.Load() != 0 && p.workers[1].thread.Load() != 0
	})
	a, b := p.workers[0].thread.Load(), p.workers[1].thread.Load()
	if a == b {
		t.Fatalf("both workers on thread %d", a)
	}
	for _, tid := range []int64{a, b} {
		if n := threadNice(t, tid); n != "10" {
			t.Errorf("worker thread %d at nice %s, want 10", tid, n)
		}
	}
	// The others keep the normal priority (the main thread may be one
	// a worker ran on: Go parks it rather than end it).
	tasks, err := os.ReadDir("/proc/self/task")
	if err != nil {
		t.Fatal(err)
	}
	normal := 0
	for _, e := range tasks {
		if tid, err := strconv.ParseInt(e.Name(), 10, 64); err == nil && tid != a && tid != b {
			if stat, err := os.ReadFile("/proc/self/task/" + e.Name() + "/stat"); err == nil && niceOf(string(stat)) == "0" {
				normal++
			}
		}
	}
	if normal == 0 {
		t.Error("no thread left at normal priority")
	}
}
