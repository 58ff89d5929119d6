package client_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http/httptest"
	"strings"
	"time"

	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"

	"invigil/sfu"
	"invigil/sfu/client"
	"invigil/sfu/protocol"
)

// A candidate publishes a microphone and a hidden proctor in the same room
// subscribes to it, through a real SFU on loopback: the proctor learns of
// the track from the signaling and receives its packets.
func ExampleDial() {
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	tokens := sfu.HMACTokens{Key: []byte("an example key of at least 32 bytes!")}
	srv, err := sfu.New(sfu.Config{Tokens: tokens, Logger: quiet, ICE: sfu.ICEConfig{LoopbackOnly: true}})
	if err != nil {
		panic(err)
	}
	defer srv.Close()
	web := httptest.NewServer(srv)
	defer web.Close()
	url := "ws" + strings.TrimPrefix(web.URL, "http")
	api, err := client.NewAPI(client.APIOptions{LoopbackOnly: true, Logger: quiet})
	if err != nil {
		panic(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	join := func(g sfu.Grants, onTrack func(string, *webrtc.TrackRemote, *webrtc.RTPReceiver)) *client.Client {
		g.Room, g.ExpiresAt = "exam-1", time.Now().Add(time.Hour)
		tok, err := tokens.Issue(g)
		if err != nil {
			panic(err)
		}
		c, err := client.Dial(ctx, client.Config{URL: url, Token: tok, API: api, Logger: quiet, OnTrack: onTrack})
		if err != nil {
			panic(err)
		}
		return c
	}

	candidate := join(sfu.Grants{Identity: "candidate-1", Role: "candidate", CanPublish: true}, nil)
	defer candidate.Leave()
	mic, err := webrtc.NewTrackLocalStaticRTP(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeOpus, ClockRate: 48000, Channels: 2}, "microphone", "candidate-1")
	if err != nil {
		panic(err)
	}
	if _, err := candidate.Publish(ctx, mic); err != nil {
		panic(err)
	}
	// 20 ms Opus packets of silence, as a muted microphone sends.
	go func() {
		for seq := uint16(0); ctx.Err() == nil; seq++ {
			p := &rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: 111, SequenceNumber: seq, Timestamp: uint32(seq) * 960}, Payload: []byte{0xf8, 0xff, 0xfe}}
			if err := mic.WriteRTP(p); err != nil {
				return
			}
			time.Sleep(20 * time.Millisecond)
		}
	}()

	received := make(chan string, 1)
	// The grant names whom the proctor may watch; only they are announced.
	proctor := join(sfu.Grants{Identity: "staff-7", Role: "proctor", CanSubscribe: true, Hidden: true, Subscribe: []string{"candidate-1"}},
		func(identity string, track *webrtc.TrackRemote, _ *webrtc.RTPReceiver) {
			if _, _, err := track.ReadRTP(); err == nil {
				select {
				case received <- identity + " " + track.Codec().MimeType:
				default:
				}
			}
		})
	defer proctor.Leave()
	// The candidate's track appears in the room: in the join answer when it
	// was published first, else as track_published.
	published := false
	for _, p := range proctor.Joined().Participants {
		published = published || (p.Identity == "candidate-1" && len(p.Tracks) > 0)
	}
	if !published {
		if _, err := proctor.WaitFor(ctx, func(m protocol.Message) bool {
			return m.Type == protocol.TypeTrackPublished && m.Track.Identity == "candidate-1"
		}); err != nil {
			panic(err)
		}
	}
	if err := proctor.Subscribe("candidate-1"); err != nil {
		panic(err)
	}
	select {
	case got := <-received:
		fmt.Println("proctor receives", got)
	case <-ctx.Done():
		fmt.Println("nothing received")
	}
	// Output:
	// proctor receives candidate-1 audio/opus
}
