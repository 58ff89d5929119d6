package api

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Slow and greedy clients. A client that sends its request body one byte
// every few seconds holds a connection and a goroutine for as long as it
// likes, and a few hundred such clients from one network crowd everyone else
// out. Two guards: a deadline for reading each request body, and a cap on
// the connections one client network keeps open at once.

// errBodyTimeout is what reading a body returns once its deadline passed.
var errBodyTimeout = errors.New("the request body did not arrive in time")

// bodyDeadline gives every request body timeout to arrive whole. The
// deadline is set on the connection only while the body is being read and
// cleared at its end, so a handler that then works for longer (waiting for
// the database) is not cut off, and requests without a body — the event
// streams and the signaling WebSocket, which live for hours — never get
// one.
func bodyDeadline(timeout time.Duration, next http.Handler) http.Handler {
	if timeout <= 0 {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Body == nil || r.Body == http.NoBody || (r.ContentLength == 0 && len(r.TransferEncoding) == 0) {
			next.ServeHTTP(w, r)
			return
		}
		rc := http.NewResponseController(w)
		if err := rc.SetReadDeadline(time.Now().Add(timeout)); err != nil {
			// A ResponseWriter that cannot set deadlines (a test recorder):
			// serve without one rather than refuse.
			next.ServeHTTP(w, r)
			return
		}
		r.Body = &deadlineBody{ReadCloser: r.Body, rc: rc, timeout: timeout}
		next.ServeHTTP(w, r)
	})
}

// deadlineBody clears the read deadline once the body has been read to its
// end and turns the deadline's error into errBodyTimeout.
type deadlineBody struct {
	io.ReadCloser
	rc      *http.ResponseController
	timeout time.Duration
	done    bool
}

func (b *deadlineBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	switch {
	case errors.Is(err, io.EOF) && !b.done:
		b.done = true
		// The rest of the exchange runs under the server's own timeouts.
		_ = b.rc.SetReadDeadline(time.Time{})
	case err != nil && (errors.Is(err, os.ErrDeadlineExceeded) || isTimeout(err)):
		return n, fmt.Errorf("%w: it had %s after the headers", errBodyTimeout, b.timeout)
	}
	return n, err
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// clientNetwork is the network a client address belongs to for rate limits
// and connection caps: an IPv4 address on its own, an IPv6 address's /64
// (one subscriber's whole allocation, which a guesser can walk through at
// will). It accepts "host:port" or a bare address; "" when it is neither.
func clientNetwork(addr string) string {
	ap, err := netip.ParseAddrPort(addr)
	var a netip.Addr
	if err == nil {
		a = ap.Addr()
	} else if a, err = netip.ParseAddr(addr); err != nil {
		return ""
	}
	a = a.Unmap()
	if a.Is4() {
		return a.String()
	}
	p, err := a.WithZone("").Prefix(64)
	if err != nil {
		return ""
	}
	return p.String()
}

// connLimitListener refuses a connection when its client network already
// has max open, with a short 503 so a browser behind it says why instead of
// "connection reset".
type connLimitListener struct {
	net.Listener
	max     int
	refused prometheus.Counter

	mu   sync.Mutex
	open map[string]int
	// refusing counts the goroutines writing 503s, so Close waits for them.
	refusing sync.WaitGroup
}

func limitConnsPerNetwork(ln net.Listener, max int, refused prometheus.Counter) net.Listener {
	if max <= 0 {
		return ln
	}
	return &connLimitListener{Listener: ln, max: max, refused: refused, open: map[string]int{}}
}

func (l *connLimitListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		key := clientNetwork(c.RemoteAddr().String())
		l.mu.Lock()
		if l.open[key] >= l.max {
			l.mu.Unlock()
			l.refused.Inc()
			l.refuse(c)
			continue
		}
		l.open[key]++
		l.mu.Unlock()
		return &limitedConn{Conn: c, release: func() { l.release(key) }}, nil
	}
}

// refuse answers 503 without reading the request, in the background so a
// client that does not read cannot stall Accept; the write deadline bounds
// the goroutine.
func (l *connLimitListener) refuse(c net.Conn) {
	l.refusing.Add(1)
	go func() {
		defer l.refusing.Done()
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(time.Second))
		body := `{"error":{"code":"too_many_connections","message":"too many open connections from your network; close some and retry"}}` + "\n"
		if _, err := fmt.Fprintf(c, "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nContent-Length: %d\r\nRetry-After: 5\r\nConnection: close\r\nX-Content-Type-Options: nosniff\r\n\r\n%s", len(body), body); err != nil {
			return
		}
		// Closing with the client's request unread would reset the
		// connection and could destroy the answer before the client reads
		// it: say we are done, then drain what it sent until it hangs up
		// or the deadline ends.
		if cw, ok := c.(interface{ CloseWrite() error }); ok {
			_ = cw.CloseWrite()
		}
		_, _ = io.Copy(io.Discard, io.LimitReader(c, 64<<10))
	}()
}

func (l *connLimitListener) release(key string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.open[key]--; l.open[key] <= 0 {
		delete(l.open, key)
	}
}

func (l *connLimitListener) Close() error {
	err := l.Listener.Close()
	l.refusing.Wait()
	return err
}

// limitedConn gives its slot back once, however often it is closed (the
// HTTP server and a hijacking WebSocket may both close it).
type limitedConn struct {
	net.Conn
	once    sync.Once
	release func()
}

func (c *limitedConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(c.release)
	return err
}
