package sfu_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	mrand "math/rand/v2"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"

	"invigil/sfu"
	"invigil/sfu/protocol"
)

// rawConn is a bare WebSocket to send what no well-behaved client would.
type rawConn struct {
	t  *testing.T
	ws *websocket.Conn
}

func (ts *testServer) raw(ctx context.Context) *rawConn {
	ts.t.Helper()
	ws, _, err := websocket.Dial(ctx, ts.url, nil) //nolint:bodyclose // the handshake response has no body to close once the socket is up
	if err != nil {
		ts.t.Fatal(err)
	}
	ws.SetReadLimit(1 << 20)
	ts.t.Cleanup(func() { _ = ws.CloseNow() })
	return &rawConn{t: ts.t, ws: ws}
}

// with returns r reporting to t (a subtest).
func (r *rawConn) with(t *testing.T) *rawConn { return &rawConn{t: t, ws: r.ws} }

func (r *rawConn) send(ctx context.Context, typ websocket.MessageType, b []byte) error {
	return r.ws.Write(ctx, typ, b)
}

func (r *rawConn) sendJSON(ctx context.Context, m protocol.Message) {
	r.t.Helper()
	b, err := json.Marshal(m)
	if err != nil {
		r.t.Fatal(err)
	}
	if err := r.send(ctx, websocket.MessageText, b); err != nil {
		r.t.Fatal(err)
	}
}

// next reads until a message of type typ; an error reading (the server
// closed) is returned.
func (r *rawConn) next(ctx context.Context, typ string) (protocol.Message, error) {
	for {
		_, b, err := r.ws.Read(ctx)
		if err != nil {
			return protocol.Message{}, err
		}
		m, err := protocol.Parse(b)
		if err != nil {
			r.t.Fatalf("server sent an invalid message %q: %v", b, err)
		}
		if m.Type == typ {
			return m, nil
		}
		r.t.Logf("skipped %+v", m)
	}
}

func (r *rawConn) expectError(ctx context.Context, code string) {
	r.t.Helper()
	m, err := r.next(ctx, protocol.TypeError)
	if err != nil {
		r.t.Fatalf("waiting for error %s: %v", code, err)
	}
	if m.Code != code {
		r.t.Fatalf("error %q (%s), want %q", m.Code, m.Reason, code)
	}
}

// expectClosed checks the server closes the socket after its error.
func (r *rawConn) expectClosed(ctx context.Context) {
	r.t.Helper()
	for {
		if _, _, err := r.ws.Read(ctx); err != nil {
			if errors.Is(err, context.DeadlineExceeded) {
				r.t.Fatal("server did not close the socket")
			}
			return
		}
	}
}

// Every kind of bad input gets an error (and a close where it must); the
// server then still forwards media for well-behaved participants.
func TestBadInput(t *testing.T) {
	ts := newTestServer(t, nil)
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()

	huge := bytes.Repeat([]byte("x"), 1<<20)
	hugeJSON := append(append([]byte(`{"type":"ping","sdp":"`), huge...), '"', '}')
	expired := ts.tokens
	expired.Now = func() time.Time { return time.Now().Add(2 * time.Hour) }
	expiredTok := ts.token(candidateGrants("late")) // valid for an hour
	other := sfu.HMACTokens{Key: []byte("another key, another server!!!!!")}
	forged, err := other.Issue(sfu.Grants{Identity: "x", Room: "exam-1", ExpiresAt: time.Now().Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	_ = expired

	preJoin := []struct {
		name   string
		typ    websocket.MessageType
		data   []byte
		code   string
		closes bool
	}{
		{"not JSON", websocket.MessageText, []byte("hello"), protocol.CodeBadJSON, false},
		{"truncated JSON", websocket.MessageText, []byte(`{"type":"join",`), protocol.CodeBadJSON, false},
		{"JSON array", websocket.MessageText, []byte(`[1,2]`), protocol.CodeBadJSON, false},
		{"wrong field type", websocket.MessageText, []byte(`{"type":"join","token":5}`), protocol.CodeBadJSON, false},
		{"no type", websocket.MessageText, []byte(`{}`), protocol.CodeUnknownType, false},
		{"unknown type", websocket.MessageText, []byte(`{"type":"teleport"}`), protocol.CodeUnknownType, false},
		{"binary frame", websocket.MessageBinary, []byte{0, 1, 2}, protocol.CodeBadJSON, false},
		{"1 MiB message", websocket.MessageText, hugeJSON, protocol.CodeTooLarge, false},
		{"offer before join", websocket.MessageText, []byte(`{"type":"offer","sdp":"v=0"}`), protocol.CodeNotJoined, false},
		{"join without token", websocket.MessageText, []byte(`{"type":"join"}`), protocol.CodeBadRequest, false},
		{"garbage token", websocket.MessageText, []byte(`{"type":"join","token":"abc.def"}`), protocol.CodeUnauthorized, true},
		{"forged token", websocket.MessageText, mustJSON(t, protocol.Message{Type: "join", Token: forged}), protocol.CodeUnauthorized, true},
	}
	t.Run("5 MiB message closes", func(t *testing.T) {
		r := ts.raw(ctx).with(t)
		_ = r.send(ctx, websocket.MessageText, bytes.Repeat([]byte("x"), 5<<20))
		r.expectClosed(ctx)
	})
	for _, tc := range preJoin {
		t.Run(tc.name, func(t *testing.T) {
			r := ts.raw(ctx).with(t)
			if err := r.send(ctx, tc.typ, tc.data); err != nil {
				t.Fatal(err)
			}
			r.expectError(ctx, tc.code)
			if tc.closes {
				r.expectClosed(ctx)
				return
			}
			// The socket still works: a ping is answered.
			r.sendJSON(ctx, protocol.Message{Type: protocol.TypePing})
			if _, err := r.next(ctx, protocol.TypePong); err != nil {
				t.Fatalf("no pong after bad input: %v", err)
			}
		})
	}

	t.Run("expired token", func(t *testing.T) {
		srvExpired := newTestServer(t, func(c *sfu.Config) { c.Tokens = expired })
		r := srvExpired.raw(ctx)
		r.sendJSON(ctx, protocol.Message{Type: protocol.TypeJoin, Token: expiredTok})
		r.expectError(ctx, protocol.CodeUnauthorized)
		r.expectClosed(ctx)
	})

	// After joining.
	r := ts.raw(ctx)
	r.sendJSON(ctx, protocol.Message{Type: protocol.TypeJoin, Token: ts.token(candidateGrants("rogue"))})
	if _, err := r.next(ctx, protocol.TypeJoined); err != nil {
		t.Fatal(err)
	}
	validOffer := func() string {
		pc, err := ts.api.NewPeerConnection(webrtc.Configuration{})
		if err != nil {
			t.Fatal(err)
		}
		defer pc.Close()
		if _, err := pc.AddTransceiverFromKind(webrtc.RTPCodecTypeVideo); err != nil {
			t.Fatal(err)
		}
		o, err := pc.CreateOffer(nil)
		if err != nil {
			t.Fatal(err)
		}
		return o.SDP
	}()
	joined := []struct {
		name string
		msg  protocol.Message
		raw  []byte
		code string
	}{
		{"second join", protocol.Message{Type: protocol.TypeJoin, Token: "x"}, nil, protocol.CodeAlreadyJoined},
		{"garbage SDP", protocol.Message{Type: protocol.TypeOffer, SDP: "this is not SDP"}, nil, protocol.CodeBadSDP},
		{"SDP without media", protocol.Message{Type: protocol.TypeOffer, SDP: "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\n"}, nil, protocol.CodeBadSDP},
		{"truncated SDP", protocol.Message{Type: protocol.TypeOffer, SDP: validOffer[:len(validOffer)/2]}, nil, protocol.CodeBadSDP},
		{"answer without offer", protocol.Message{Type: protocol.TypeAnswer, SDP: validOffer}, nil, protocol.CodeBadSDP},
		{"candidate without target", protocol.Message{}, []byte(`{"type":"candidate","candidate":{"candidate":"x"}}`), protocol.CodeBadRequest},
		{"subscribe to self", protocol.Message{Type: protocol.TypeSubscribe, Identity: "rogue"}, nil, protocol.CodeBadRequest},
		{"subscribe not granted", protocol.Message{Type: protocol.TypeSubscribe, Identity: "cand-9"}, nil, protocol.CodeNotAllowed},
		{"server-only type", protocol.Message{Type: protocol.TypeJoined, SessionID: "S1"}, nil, protocol.CodeUnknownType},
		{"1 MiB after join", protocol.Message{}, hugeJSON, protocol.CodeTooLarge},
	}
	for _, tc := range joined {
		t.Run(tc.name, func(t *testing.T) {
			r := r.with(t)
			data := tc.raw
			if data == nil {
				data = mustJSON(t, tc.msg)
			}
			if err := r.send(ctx, websocket.MessageText, data); err != nil {
				t.Fatal(err)
			}
			r.expectError(ctx, tc.code)
		})
	}
	// A valid offer still works on the same socket after all that, and a
	// malformed candidate afterwards is refused.
	r.sendJSON(ctx, protocol.Message{Type: protocol.TypeOffer, SDP: validOffer})
	if _, err := r.next(ctx, protocol.TypeAnswer); err != nil {
		t.Fatalf("valid offer after bad input: %v", err)
	}
	r.sendJSON(ctx, protocol.Message{Type: protocol.TypeCandidate, Target: protocol.TargetPublisher,
		Candidate: &webrtc.ICECandidateInit{Candidate: "candidate:garbage"}})
	r.expectError(ctx, protocol.CodeBadCandidate)

	if v := metric(t, ts.reg, "invigil_sfu_signalling_errors_total", map[string]string{"code": protocol.CodeBadSDP}); v < 4 {
		t.Errorf("bad_sdp errors counted: %v", v)
	}

	// The server is up and forwarding.
	cand := ts.join(ctx, candidateGrants("cand-1"), nil)
	publishVideo(ctx, t, cand)
	rcv := newReceiver(true)
	exam := ts.join(ctx, staffGrants("examiner-1", "cand-1"), rcv)
	if err := exam.Subscribe("cand-1"); err != nil {
		t.Fatal(err)
	}
	rcv.waitPackets(ctx, t, "cand-1", 20)
}

// A client that does not join in time is disconnected.
func TestJoinTimeout(t *testing.T) {
	ts := newTestServer(t, func(c *sfu.Config) { c.JoinTimeout = 200 * time.Millisecond })
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	r := ts.raw(ctx)
	r.expectClosed(ctx)
}

// A publisher may not publish beyond its grants or the track limit.
func TestPublishLimits(t *testing.T) {
	ts := newTestServer(t, func(c *sfu.Config) { c.MaxPublishedTracks = 1 })
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()

	viewer := ts.join(ctx, sfu.Grants{Identity: "viewer", CanSubscribe: true}, nil)
	track, err := webrtc.NewTrackLocalStaticSample(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeVP8}, "v", "s")
	if err != nil {
		t.Fatal(err)
	}
	shortCtx, shortCancel := context.WithTimeout(ctx, 2*time.Second)
	defer shortCancel()
	if _, err := viewer.Publish(shortCtx, track); err == nil {
		t.Error("a token without CanPublish published")
	}
	waitEvent(ctx, t, viewer, protocol.TypeError, protocol.CodeNotAllowed)

	cand := ts.join(ctx, candidateGrants("cand-1"), nil)
	v1, _ := webrtc.NewTrackLocalStaticSample(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeVP8}, "v1", "s")
	v2, _ := webrtc.NewTrackLocalStaticSample(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeVP8}, "v2", "s")
	if _, err := cand.Publish(ctx, v1, v2); err != nil {
		t.Fatal(err)
	}
	sendFrames(t, v1, 2500)
	sendFrames(t, v2, 2500)
	waitEvent(ctx, t, cand, protocol.TypeError, protocol.CodeLimit)
	ts.tap.waitFor(ctx, t, "one track", func(s []tapTrack) bool { return len(s) == 1 && s[0].Packets > 10 })
	if n := len(ts.tap.snapshot()); n != 1 {
		t.Errorf("%d tracks published, limit 1", n)
	}
}

func mustJSON(t *testing.T, m protocol.Message) []byte {
	t.Helper()
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// A publisher sending garbage RTP (random payloads, sequence numbers and
// timestamps, padding, junk header extensions, oversized packets) is
// forwarded or dropped packet by packet; the server and the other
// publishers carry on.
func TestGarbageRTPFromPublisher(t *testing.T) {
	ts := newTestServer(t, nil)
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()

	rogue := ts.join(ctx, candidateGrants("rogue"), nil)
	track, err := webrtc.NewTrackLocalStaticRTP(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeVP8}, "v", "s")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := rogue.Publish(ctx, track); err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		rnd := mrand.New(mrand.NewPCG(1, 2))
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			case <-time.After(5 * time.Millisecond):
			}
			size := rnd.IntN(1200)
			if i%10 == 0 {
				size = 3000 // over the MTU: dropped by the transport
			}
			payload := make([]byte, size)
			for j := range payload {
				payload[j] = byte(rnd.Uint32())
			}
			p := &rtp.Packet{Header: rtp.Header{
				Version: 2, SequenceNumber: uint16(rnd.Uint32()), Timestamp: rnd.Uint32(), Marker: rnd.IntN(2) == 0,
			}, Payload: payload}
			if i%3 == 0 {
				_ = p.Header.SetExtension(uint8(1+rnd.IntN(14)), payload[:min(len(payload), 8)])
			}
			if i%4 == 0 {
				p.Padding, p.PaddingSize = true, byte(1+rnd.IntN(200))
			}
			_ = track.WriteRTP(p)
		}
	}()
	t.Cleanup(func() { close(stop); <-done })

	cand := ts.join(ctx, candidateGrants("cand-1"), nil)
	publishVideo(ctx, t, cand)

	rcv := newReceiver(true)
	exam := ts.join(ctx, staffGrants("examiner-1", "*"), rcv)
	for _, id := range []string{"rogue", "cand-1"} {
		if err := exam.Subscribe(id); err != nil {
			t.Fatal(err)
		}
	}
	rcv.waitPackets(ctx, t, "rogue", 50)
	rcv.waitPackets(ctx, t, "cand-1", 50)
	// Subscribers get what the rogue sends; the taps only what the
	// track's clock believes is a stream (random sequence numbers are
	// stray), and the candidate's stream in full.
	ts.tap.waitFor(ctx, t, "both tracks tapped", func(s []tapTrack) bool {
		return len(s) == 2 && s[0].Packets > 0 && s[1].Packets > 50
	})
	stray := metric(t, ts.reg, "invigil_sfu_rtp_clock_fixes_total", map[string]string{"kind": "video", "what": "stray"})
	if stray < 50 {
		t.Errorf("%v of the rogue's packets stray, want most of them", stray)
	}
}
