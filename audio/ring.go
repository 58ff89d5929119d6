package audio

import (
	"sync"
	"time"
)

// Ring keeps the most recent samples of a mono 16-bit stream, for evidence
// clips: the listening path writes every down-sampled chunk into it, and
// whoever opens a violation copies the last seconds out. Writing never
// allocates; the lock is held only for a copy, so a reader costs a writer
// microseconds.
type Ring struct {
	mu      sync.Mutex
	buf     []int16
	written int64 // samples written since the stream started (silence included)
	// wake is closed once written reaches wakeAt (WaitWritten); nil
	// without a waiter, so writes allocate nothing.
	wake   chan struct{}
	wakeAt int64
}

// NewRing keeps the last capacity samples.
func NewRing(capacity int) *Ring {
	return &Ring{buf: make([]int16, max(capacity, 1))}
}

// Written is the stream position after the last sample written.
func (r *Ring) Written() int64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.written
}

// WriteFloat appends samples in [-1, 1], converted as FromFloat does.
func (r *Ring) WriteFloat(samples []float32) {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := int64(len(r.buf))
	if int64(len(samples)) > n {
		r.written += int64(len(samples)) - n
		samples = samples[int64(len(samples))-n:]
	}
	for _, s := range samples {
		r.buf[r.written%n] = floatToPCM(s)
		r.written++
	}
	r.wakeLocked()
}

func (r *Ring) wakeLocked() {
	if r.wake != nil && r.written >= r.wakeAt {
		close(r.wake)
		r.wake = nil
	}
}

// WaitWritten waits until the stream reaches position n or timeout
// passes, and reports whether it did.
func (r *Ring) WaitWritten(n int64, timeout time.Duration) bool {
	t := time.NewTimer(timeout)
	defer t.Stop()
	for {
		r.mu.Lock()
		if r.written >= n {
			r.mu.Unlock()
			return true
		}
		// One channel serves the nearest position waited for; a waiter for
		// a nearer one closes it so the farther waiter looks again.
		if r.wake == nil || n < r.wakeAt {
			if r.wake != nil {
				close(r.wake)
			}
			r.wake, r.wakeAt = make(chan struct{}), n
		}
		wake := r.wake
		r.mu.Unlock()
		select {
		case <-wake:
		case <-t.C:
			return r.Written() >= n
		}
	}
}

// WriteSilence appends n samples of silence: a gap the stream kept in time
// but did not decode.
func (r *Ring) WriteSilence(n int64) {
	if n <= 0 {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	size := int64(len(r.buf))
	if n > size {
		r.written += n - size
		n = size
	}
	for ; n > 0; n-- {
		r.buf[r.written%size] = 0
		r.written++
	}
	r.wakeLocked()
}

// Copy returns up to maxSamples samples ending at stream position end
// (clamped to what was written), as far back as the ring still holds.
func (r *Ring) Copy(end int64, maxSamples int) []int16 {
	r.mu.Lock()
	defer r.mu.Unlock()
	size := int64(len(r.buf))
	end = min(end, r.written)
	start := max(end-int64(maxSamples), r.written-size, 0)
	if end <= start {
		return nil
	}
	out := make([]int16, end-start)
	for i := range out {
		out[i] = r.buf[(start+int64(i))%size]
	}
	return out
}
