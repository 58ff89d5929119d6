package sfu

import (
	"context"
	"errors"
	"io"
	"sync"
	"time"

	"github.com/coder/websocket"

	"invigil/sfu/protocol"
)

// wsConn is one signaling socket. Messages to the client go through a
// bounded queue drained by one writer goroutine, so nothing that sends (the
// forwarding path, another participant's events) ever waits on a slow
// client: a client whose queue overflows is disconnected.
type wsConn struct {
	s    *Server
	ws   *websocket.Conn
	out  chan []byte
	done chan struct{} // closed when the writer has finished

	closeOnce   sync.Once
	closing     chan struct{}
	closeStatus websocket.StatusCode
	closeReason string
}

func newWSConn(s *Server, ws *websocket.Conn) *wsConn {
	return &wsConn{
		s:       s,
		ws:      ws,
		out:     make(chan []byte, s.cfg.SendQueue),
		done:    make(chan struct{}),
		closing: make(chan struct{}),
	}
}

// send queues m without blocking.
func (c *wsConn) send(m protocol.Message) {
	if m.Type == protocol.TypeError {
		c.s.m.signallingErrors.WithLabelValues(m.Code).Inc()
	}
	b, err := protocol.Encode(m)
	if err != nil {
		c.s.log.Error("sfu: encode message", "type", m.Type, "err", err)
		return
	}
	select {
	case <-c.closing:
		return
	default:
	}
	select {
	case c.out <- b:
	default:
		c.s.m.signallingErrors.WithLabelValues(protocol.CodeSlowClient).Inc()
		c.close(websocket.StatusPolicyViolation, protocol.CodeSlowClient)
	}
}

// sendError queues an error message.
func (c *wsConn) sendError(code, reason string) {
	c.send(protocol.NewError(code, reason))
}

// fail sends an error and then closes the socket.
func (c *wsConn) fail(code, reason string, status websocket.StatusCode) {
	c.sendError(code, reason)
	c.close(status, code)
}

// close asks the writer to flush what is queued and close the socket.
func (c *wsConn) close(status websocket.StatusCode, reason string) {
	c.closeOnce.Do(func() {
		c.closeStatus, c.closeReason = status, reason
		close(c.closing)
	})
}

const writeTimeout = 10 * time.Second

// tokenCheckTimeout bounds the token check of a join (the control plane
// reads its database): a join that cannot be checked in time is refused.
const tokenCheckTimeout = 10 * time.Second

// writeLoop is the socket's only writer. It also pings the client, so a
// socket whose peer vanished without a FIN is noticed. Writes have their
// own timeout rather than ctx, so that an error queued just before the
// server stops (shutdown, kicked) still goes out.
func (c *wsConn) writeLoop(ctx context.Context) {
	defer close(c.done)
	ping := time.NewTicker(c.s.cfg.PingInterval)
	defer ping.Stop()
	write := func(b []byte) error {
		// Not ctx (see above): a write queued as the server stops still goes.
		wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), writeTimeout)
		defer cancel()
		return c.ws.Write(wctx, websocket.MessageText, b)
	}
	for {
		select {
		case <-c.closing:
			c.flushAndClose(write)
			return
		default:
		}
		select {
		case b := <-c.out:
			if err := write(b); err != nil {
				c.ws.CloseNow()
				return
			}
		case <-ping.C:
			pctx, cancel := context.WithTimeout(ctx, c.s.cfg.PingInterval)
			err := c.ws.Ping(pctx)
			cancel()
			if err != nil {
				c.ws.CloseNow()
				return
			}
		case <-c.closing:
			c.flushAndClose(write)
			return
		case <-ctx.Done():
			select {
			case <-c.closing:
				c.flushAndClose(write)
			default:
				c.ws.CloseNow()
			}
			return
		}
	}
}

// flushAndClose writes what was queued before the close (an error message
// saying why, typically), then closes politely.
func (c *wsConn) flushAndClose(write func([]byte) error) {
	for {
		select {
		case b := <-c.out:
			if write(b) != nil {
				c.ws.CloseNow()
				return
			}
			continue
		default:
		}
		break
	}
	_ = c.ws.Close(c.closeStatus, c.closeReason)
}

var errTooLarge = errors.New("message too large")

// read returns the next message's bytes. A message over the limit is
// drained (up to the socket's hard read limit) and reported as errTooLarge
// so the caller can answer and go on.
func (c *wsConn) read(ctx context.Context) ([]byte, error) {
	typ, r, err := c.ws.Reader(ctx)
	if err != nil {
		return nil, err
	}
	limit := c.s.cfg.MaxMessageBytes
	data, err := io.ReadAll(io.LimitReader(r, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(data)) > limit {
		if _, err := io.Copy(io.Discard, r); err != nil {
			return nil, err
		}
		return nil, errTooLarge
	}
	if typ != websocket.MessageText {
		return nil, &protocol.Error{Code: protocol.CodeBadJSON, Reason: "messages are text frames"}
	}
	return data, nil
}
