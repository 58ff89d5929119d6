package pipeline

import (
	"runtime"
	"syscall"
)

// analysisNice is how much lower than the rest of the process the
// analysis workers run. Forwarding and recording must never wait for the
// analysis: under overload the kernel then gives the cores to the SFU's
// goroutines first, and the analysis degrades through the fair scheduler
// (dropping frames, counted) instead of stalling media.
const analysisNice = 10

// lowerWorkerPriority pins the calling goroutine to its OS thread and
// lowers that thread's priority, and returns the thread's id. The thread
// is never unlocked, so Go ends it with the goroutine and the lower
// priority reaches no other goroutine.
func lowerWorkerPriority() (tid int, err error) {
	runtime.LockOSThread()
	tid = syscall.Gettid()
	prio, err := syscall.Getpriority(syscall.PRIO_PROCESS, tid)
	if err != nil {
		return tid, err
	}
	// The raw syscall answers 20 - nice.
	return tid, syscall.Setpriority(syscall.PRIO_PROCESS, tid, 20-prio+analysisNice)
}
