package api

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"runtime"
	"runtime/metrics"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"invigil/store"
)

// BenchmarkWrongLoginBurst sends bursts of 64 simultaneous wrong staff
// logins (the attack: 48–64 of them grew memory by 0.8–1.2 GB) to a
// real server on loopback and reports the peak heap during a burst, sampled
// every 200 µs. "slots=GOMAXPROCS" is the server as shipped; "slots=64" is
// what the same burst takes when nothing bounds the hashes.
func BenchmarkWrongLoginBurst(b *testing.B) {
	for _, slots := range []int{runtime.GOMAXPROCS(0), 64} {
		name := "slots=GOMAXPROCS"
		if slots == 64 {
			name = "slots=64"
		}
		b.Run(name, func(b *testing.B) { benchLoginBurst(b, slots, 64) })
	}
}

func benchLoginBurst(b *testing.B, slots, n int) {
	st, err := store.Open(context.Background(), filepath.Join(b.TempDir(), "invigil.db"))
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	hash, err := HashPassword("a-right-password")
	if err != nil {
		b.Fatal(err)
	}
	if _, err := st.CreateUser(context.Background(), "target", hash, store.RoleAdmin); err != nil {
		b.Fatal(err)
	}
	s, err := New(Options{Registry: prometheus.NewRegistry(), Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		Control: &ControlOptions{Store: st, DataDir: b.TempDir(), LoginAttempts: 1 << 30, LoginNetworkAttempts: 1 << 30,
			HashConcurrency: slots, HashWait: 10 * time.Minute}})
	if err != nil {
		b.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- s.Serve(ctx, ln, 5*time.Second) }()
	defer func() {
		cancel()
		if err := <-served; err != nil {
			b.Error(err)
		}
	}()
	base := "http://" + ln.Addr().String()
	body, _ := json.Marshal(loginBody("target", "a-wrong-password"))
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: n}}
	defer client.CloseIdleConnections()

	var peak uint64
	b.ResetTimer()
	for range b.N {
		runtime.GC()
		base0 := heapBytes()
		stop := make(chan struct{})
		var sampled atomic.Uint64
		var sampler sync.WaitGroup
		sampler.Add(1)
		go func() {
			defer sampler.Done()
			t := time.NewTicker(200 * time.Microsecond)
			defer t.Stop()
			for {
				if h := heapBytes(); h > base0 && h-base0 > sampled.Load() {
					sampled.Store(h - base0)
				}
				select {
				case <-stop:
					return
				case <-t.C:
				}
			}
		}()
		var wg sync.WaitGroup
		for range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				resp, err := client.Post(base+"/api/v1/auth/login", "application/json", bytes.NewReader(body))
				if err != nil {
					b.Error(err)
					return
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 401 {
					b.Errorf("wrong login: %d", resp.StatusCode)
				}
			}()
		}
		wg.Wait()
		close(stop)
		sampler.Wait()
		peak = max(peak, sampled.Load())
	}
	b.StopTimer()
	b.ReportMetric(float64(peak)/(1<<20), "peak-heap-MiB")
	b.ReportMetric(float64(s.ctl.hashes.peak.Load()), "peak-hashes")
	b.Logf("%d wrong logins at once, %s hash slots: heap grew by at most %.0f MiB, %d hashes ran at once",
		n, strconv.Itoa(slots), float64(peak)/(1<<20), s.ctl.hashes.peak.Load())
}

// heapBytes is the memory held by live and not yet swept heap objects.
func heapBytes() uint64 {
	s := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	metrics.Read(s)
	return s[0].Value.Uint64()
}
