package runner

import "testing"

func TestSetNumThreads(t *testing.T) {
	before := NumThreads()
	defer SetNumThreads(before)
	SetNumThreads(1)
	if got := NumThreads(); got != 1 {
		t.Fatalf("NumThreads() = %d after SetNumThreads(1)", got)
	}
	SetNumThreads(0)
	if got := NumThreads(); got < 1 {
		t.Fatalf("default restored to %d threads", got)
	}
}
