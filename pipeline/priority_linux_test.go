package pipeline

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// threadsWithNice counts this process's threads whose nice value is n.
func threadsWithNice(t *testing.T, n string) int {
	t.Helper()
	stats, err := filepath.Glob("/proc/self/task/*/stat")
	if err != nil {
		t.Fatal(err)
	}
	count := 0
	for _, path := range stats {
		b, err := os.ReadFile(path)
		if err != nil {
			continue // the thread ended meanwhile
		}
		s := string(b)
		// Fields after the command name (which may hold spaces): nice is
		// the 19th field of the line, the 17th after ") ".
		f := strings.Fields(s[strings.LastIndex(s, ")")+2:])
		if len(f) > 16 && f[16] == n {
			count++
		}
	}
	return count
}

// The analysis workers run below the rest of the process, so that under
// overload the kernel serves forwarding and recording first.
func TestWorkersRunAtLowerPriority(t *testing.T) {
	before := threadsWithNice(t, "10")
	newTestPipeline(t, Config{Workers: 2})
	waitFor(t, "two niced worker threads", func() bool { return threadsWithNice(t, "10")-before >= 2 })
	if threadsWithNice(t, "0") == 0 {
		t.Error("no thread left at normal priority")
	}
}
