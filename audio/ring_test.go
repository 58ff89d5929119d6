package audio

import (
	"slices"
	"testing"
	"time"
)

func TestRing(t *testing.T) {
	r := NewRing(5)
	if got := r.Copy(10, 5); got != nil {
		t.Fatalf("empty ring gave %v", got)
	}
	r.WriteFloat([]float32{1.0 / 32768, 2.0 / 32768, 3.0 / 32768})
	if got := r.Copy(3, 10); !slices.Equal(got, []int16{1, 2, 3}) {
		t.Fatalf("got %v", got)
	}
	r.WriteSilence(2)
	r.WriteFloat([]float32{6.0 / 32768, 7.0 / 32768, 2}) // 2 clips
	if w := r.Written(); w != 8 {
		t.Fatalf("written %d", w)
	}
	if got := r.Copy(8, 10); !slices.Equal(got, []int16{0, 0, 6, 7, 32767}) {
		t.Fatalf("wrapped: %v", got)
	}
	if got := r.Copy(7, 2); !slices.Equal(got, []int16{6, 7}) {
		t.Fatalf("ending earlier: %v", got)
	}
	if got := r.Copy(100, 3); !slices.Equal(got, []int16{6, 7, 32767}) {
		t.Fatalf("end past what was written: %v", got)
	}
	r.WriteSilence(100)
	r.WriteFloat(make([]float32, 12))
	if w, got := r.Written(), r.Copy(1000, 10); w != 120 || len(got) != 5 {
		t.Fatalf("long writes: written %d, %v", w, got)
	}
}

func TestRingWriteDoesNotAllocate(t *testing.T) {
	r := NewRing(16000 * 10)
	chunk := make([]float32, 320)
	if n := testing.AllocsPerRun(100, func() { r.WriteFloat(chunk) }); n != 0 {
		t.Fatalf("%v allocations per write", n)
	}
}

func TestRingWaitWritten(t *testing.T) {
	r := NewRing(100)
	r.WriteSilence(10)
	if !r.WaitWritten(10, 0) {
		t.Fatal("written already")
	}
	done := make(chan bool)
	go func() { done <- r.WaitWritten(50, time.Minute) }()
	go func() { done <- r.WaitWritten(30, time.Minute) }()
	for r.Written() < 50 {
		r.WriteFloat(make([]float32, 5))
	}
	if first, second := <-done, <-done; !first || !second {
		t.Fatal("a waiter gave up although the stream got there")
	}
	if r.WaitWritten(1000, time.Millisecond) {
		t.Fatal("never written, yet reached")
	}
}
