package api

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"invigil/internal/metrictest"
	"invigil/store"
)

func TestClientNetwork(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"192.0.2.7:4431", "192.0.2.7"},
		{"192.0.2.7", "192.0.2.7"},
		{"[::ffff:192.0.2.7]:80", "192.0.2.7"},
		{"[2001:db8:1:2:3:4:5:6]:443", "2001:db8:1:2::/64"},
		{"[2001:db8:1:2:ffff::1]:443", "2001:db8:1:2::/64"},
		{"2001:db8:1:3::1", "2001:db8:1:3::/64"},
		{"[fe80::1%eth0]:80", "fe80::/64"},
		{"not an address", ""},
		{"", ""},
	} {
		if got := clientNetwork(c.in); got != c.want {
			t.Errorf("clientNetwork(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

// slowOutcome is how a trickling client's request ended.
type slowOutcome int

const (
	slowCut     slowOutcome = iota // 408: its body took too long
	slowRefused                    // 503: its network had too many connections
	slowOther                      // anything else: a failure of the test
)

// trickle sends a login request whose body comes one byte every gap, from
// the loopback address local, and reports how the server ended it. It gives
// up after limit: a server that lets it trickle that long has failed.
func trickle(ctx context.Context, addr, local string, gap, limit time.Duration) (slowOutcome, string) {
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(local)}, Timeout: 5 * time.Second}
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return slowOther, "dial: " + err.Error()
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(limit))
	head := "POST /api/v1/auth/login HTTP/1.1\r\nHost: invigil\r\nContent-Type: application/json\r\nContent-Length: 400\r\n\r\n"
	if _, err := io.WriteString(c, head); err != nil {
		return slowOther, "write headers: " + err.Error()
	}
	status := make(chan string, 1)
	go func() {
		line, err := bufio.NewReader(c).ReadString('\n')
		if err != nil {
			status <- "read: " + err.Error()
			return
		}
		status <- strings.TrimSpace(line)
	}()
	tick := time.NewTicker(gap)
	defer tick.Stop()
	for {
		select {
		case s := <-status:
			switch {
			case strings.HasPrefix(s, "HTTP/1.1 408"):
				return slowCut, s
			case strings.HasPrefix(s, "HTTP/1.1 503"):
				return slowRefused, s
			}
			return slowOther, s
		case <-tick.C:
			// A write may fail once the server has answered and closed;
			// the answer is what counts.
			_, _ = io.WriteString(c, " ")
		}
	}
}

// The promise: 100 clients trickling request bodies from one network
// cannot hold the server. Each body gets BodyTimeout to arrive (then 408 and
// the connection closes), the network gets MaxConnsPerNetwork connections
// (the rest a 503 at once), and meanwhile requests from another network
// are answered as usual.
func TestSlowClientsCannotHoldTheServer(t *testing.T) {
	dir := t.TempDir()
	st, err := store.Open(context.Background(), filepath.Join(dir, "invigil.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	hash, err := HashPassword(adminPassword)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.CreateUser(context.Background(), "admin", hash, store.RoleAdmin); err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	const maxConns = 30
	s, err := New(Options{Registry: reg, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		BodyTimeout: time.Second, MaxConnsPerNetwork: maxConns,
		Control: &ControlOptions{Store: st, DataDir: dir}})
	if err != nil {
		t.Fatal(err)
	}
	base := serveOnLoopback(t, s)
	addr := strings.TrimPrefix(base, "http://")

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	const slow = 100
	outcomes := make([]slowOutcome, slow)
	details := make([]string, slow)
	var wg sync.WaitGroup
	for i := range slow {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// 400 bytes at one per 200 ms would take 80 s.
			outcomes[i], details[i] = trickle(ctx, addr, "127.0.0.2", 200*time.Millisecond, 20*time.Second)
		}()
	}

	// Meanwhile the real users on 127.0.0.1 log in and read; every
	// request must be answered properly.
	client := &http.Client{Timeout: 10 * time.Second}
	for i := range 10 {
		resp, err := client.Post(base+"/api/v1/auth/login", "application/json",
			strings.NewReader(fmt.Sprintf(`{"username":"admin","password":%q}`, adminPassword)))
		if err != nil {
			t.Fatalf("login %d while slow clients trickle: %v", i, err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("login %d while slow clients trickle = %d %s", i, resp.StatusCode, body)
		}
		resp, err = client.Get(base + "/healthz")
		if err != nil {
			t.Fatalf("healthz %d while slow clients trickle: %v", i, err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("healthz %d while slow clients trickle = %d", i, resp.StatusCode)
		}
	}

	wg.Wait()
	count := map[slowOutcome]int{}
	for i, o := range outcomes {
		count[o]++
		if o == slowOther {
			t.Errorf("slow client %d: %s (want a 408 or a 503)", i, details[i])
		}
	}
	t.Logf("slow clients: %d cut with 408, %d refused with 503", count[slowCut], count[slowRefused])
	// Every slow client that got a connection was cut; at most maxConns
	// ever held one at once, so at least slow-maxConns were refused at
	// first (some refused ones may retry into freed slots: none do here).
	if count[slowCut] == 0 || count[slowCut] > maxConns {
		t.Errorf("%d slow clients cut by the body deadline, want 1..%d", count[slowCut], maxConns)
	}
	if count[slowRefused] < slow-maxConns {
		t.Errorf("%d slow clients refused, want at least %d", count[slowRefused], slow-maxConns)
	}
	if got := metrictest.Sum(t, reg, "invigil_http_connections_refused_total"); int(got) != count[slowRefused] {
		t.Errorf("invigil_http_connections_refused_total = %v, want %d", got, count[slowRefused])
	}

	// The slots are given back: the network can connect again.
	resp, err := (&http.Client{Transport: &http.Transport{DialContext: (&net.Dialer{
		LocalAddr: &net.TCPAddr{IP: net.ParseIP("127.0.0.2")}}).DialContext}}).Get(base + "/healthz")
	if err != nil {
		t.Fatalf("127.0.0.2 after the slow clients: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("127.0.0.2 after the slow clients = %d", resp.StatusCode)
	}
}

// A body that arrives whole, however large the handler's later work, is
// not cut by the deadline: it is cleared once the body has been read, and
// requests without a body (event streams) never get one.
func TestBodyDeadlineSparesWholeBodiesAndStreams(t *testing.T) {
	reg := prometheus.NewRegistry()
	s, err := New(Options{Registry: reg, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		BodyTimeout: 300 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	released := make(chan struct{})
	s.Handle("POST /slow-handler", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, err := io.ReadAll(r.Body); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		// Work longer than the body deadline, then answer, while the
		// client waits: the connection must stay up.
		<-time.After(900 * time.Millisecond)
		w.WriteHeader(http.StatusNoContent)
	}))
	s.Handle("GET /stream", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		w.WriteHeader(http.StatusOK)
		http.NewResponseController(w).Flush()
		select {
		case <-released:
			io.WriteString(w, "data: still here\n\n")
		case <-r.Context().Done():
		}
	}))
	base := serveOnLoopback(t, s)

	resp, err := http.Post(base+"/slow-handler", "application/json", strings.NewReader(`{"a":1}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent {
		t.Fatalf("a whole body with a slow handler = %d, want 204", resp.StatusCode)
	}

	resp, err = http.Get(base + "/stream")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	// Past the body deadline, the stream is still open and delivers.
	<-time.After(900 * time.Millisecond)
	close(released)
	b, err := io.ReadAll(resp.Body)
	if err != nil || !strings.Contains(string(b), "still here") {
		t.Fatalf("stream after the body deadline: %q, %v", b, err)
	}
}
