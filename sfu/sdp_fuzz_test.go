package sfu

import (
	"io"
	"log/slog"
	"runtime"
	"testing"
	"time"

	"github.com/pion/webrtc/v4"

	"invigil/sfu/protocol"
)

// FuzzPublisherOffer feeds arbitrary SDP offers to a participant's
// publisher connection: the server answers or refuses, and the connection
// then still accepts a valid offer.
func FuzzPublisherOffer(f *testing.F) {
	s, err := New(Config{
		Tokens: HMACTokens{Key: []byte("0123456789abcdef")},
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		ICE:    ICEConfig{LoopbackOnly: true},
	})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { _ = s.Close() })
	valid := validOffer(f, s.api)
	f.Add(valid)
	f.Add("v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\n")
	f.Add(valid[:len(valid)/3])
	f.Add("")
	f.Fuzz(func(t *testing.T, sdp string) {
		p := newParticipant(s, Grants{Identity: "fuzz", Room: "r", CanPublish: true})
		c := &wsConn{s: s, out: make(chan []byte, 1024), closing: make(chan struct{}), done: make(chan struct{})}
		finished := make(chan struct{})
		go func() {
			defer close(finished)
			defer p.resetMedia()
			p.handleOffer(c, sdp)
			p.handleOffer(c, valid)
		}()
		select {
		case <-finished:
		case <-time.After(20 * time.Second):
			buf := make([]byte, 1<<20)
			t.Fatalf("offer %q hangs:\n%s", sdp, buf[:runtime.Stack(buf, true)])
		}
		var last protocol.Message
		for len(c.out) > 0 {
			m, err := protocol.Parse(<-c.out)
			if err != nil {
				t.Fatalf("server sent an invalid message: %v", err)
			}
			last = m
		}
		if last.Type != protocol.TypeAnswer {
			t.Fatalf("a valid offer after %q was not answered: %+v", sdp, last)
		}
	})
}

func validOffer(f *testing.F, api *webrtc.API) string {
	pc, err := api.NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		f.Fatal(err)
	}
	defer pc.Close()
	for _, k := range []webrtc.RTPCodecType{webrtc.RTPCodecTypeVideo, webrtc.RTPCodecTypeAudio} {
		if _, err := pc.AddTransceiverFromKind(k, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionSendonly}); err != nil {
			f.Fatal(err)
		}
	}
	o, err := pc.CreateOffer(nil)
	if err != nil {
		f.Fatal(err)
	}
	return o.SDP
}
