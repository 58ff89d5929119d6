package sfu_test

import (
	"context"
	"errors"
	"net"
	"testing"

	"github.com/pion/webrtc/v4"

	"invigil/media"
	"invigil/sfu"
	"invigil/sfu/client"
	"invigil/sfu/protocol"
)

// Close with sessions in progress tells every client, ends every track
// (taps Close) and stops every goroutine (checked at cleanup).
func TestServerCloseEndsEverything(t *testing.T) {
	ts := newTestServer(t, nil)
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	cand := ts.join(ctx, candidateGrants("cand-1"), nil)
	publishVideo(ctx, t, cand)
	rcv := newReceiver(true)
	exam := ts.join(ctx, staffGrants("examiner-1", "cand-1"), rcv)
	if err := exam.Subscribe("cand-1"); err != nil {
		t.Fatal(err)
	}
	rcv.waitPackets(ctx, t, "cand-1", 10)

	if err := ts.srv.Close(); err != nil {
		t.Fatal(err)
	}
	waitEvent(ctx, t, cand, protocol.TypeError, protocol.CodeShutdown)
	waitEvent(ctx, t, exam, protocol.TypeError, protocol.CodeShutdown)
	for _, tr := range ts.tap.snapshot() {
		if !tr.Closed {
			t.Errorf("track open after Close: %+v", tr.Track)
		}
	}
	if _, err := dialErr(ctx, ts, candidateGrants("late")); err == nil {
		t.Error("joined a closed server")
	}
	if err := ts.srv.Subscribe("examiner-1", "cand-1"); !errors.Is(err, sfu.ErrClosed) {
		t.Errorf("Subscribe after Close: %v", err)
	}
	if v := metric(t, ts.reg, "invigil_sfu_participants", nil); v != 0 {
		t.Errorf("participants gauge after Close: %v", v)
	}
}

// A resume while the server still thinks the old socket is alive (the
// client noticed the drop first) takes the session over.
func TestResumeTakesOverLiveSocket(t *testing.T) {
	ts := newTestServer(t, nil)
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	old := ts.join(ctx, candidateGrants("cand-1"), nil)
	publishVideo(ctx, t, old)
	ts.tap.waitFor(ctx, t, "track", func(s []tapTrack) bool { return len(s) == 1 })

	cur := ts.joinResume(ctx, candidateGrants("cand-1"), nil, old.SessionID())
	if j := cur.Joined(); !j.Resumed || j.SessionID != old.SessionID() || j.Connection != 2 {
		t.Fatalf("joined %+v", j)
	}
	waitEvent(ctx, t, old, protocol.TypeError, protocol.CodeReplaced)
	ts.tap.waitFor(ctx, t, "old track closed", func(s []tapTrack) bool { return s[0].Closed })
	publishVideo(ctx, t, cur)
	ts.tap.waitFor(ctx, t, "new track", func(s []tapTrack) bool {
		return len(s) == 2 && s[1].Track.Connection == 2 && s[1].Packets > 5
	})
}

// Audio and video from one publisher both reach the subscriber and the
// taps, with their codec parameters.
func TestAudioAndVideo(t *testing.T) {
	ts := newTestServer(t, nil)
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	cand := ts.join(ctx, candidateGrants("cand-1"), nil)
	video, _ := webrtc.NewTrackLocalStaticSample(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeVP8}, "camera", "cam")
	audio, _ := webrtc.NewTrackLocalStaticSample(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeOpus, ClockRate: 48000, Channels: 2}, "mic", "cam")
	if _, err := cand.Publish(ctx, video, audio); err != nil {
		t.Fatal(err)
	}
	sendFrames(t, video, 2500)
	sendFrames(t, audio, 120)

	kinds := make(chan string, 4)
	exam := ts.join(ctx, staffGrants("examiner-1", "*"), nil)
	_ = exam
	rcv := newReceiver(true)
	exam2, err := client.Dial(ctx, client.Config{URL: ts.url, Token: ts.token(staffGrants("examiner-2", "*")), API: ts.api,
		Logger: testLogger(),
		OnTrack: func(id string, tr *webrtc.TrackRemote, r *webrtc.RTPReceiver) {
			kinds <- tr.Kind().String() + " " + tr.Codec().MimeType
			rcv.onTrack(id, tr, r)
		}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(exam2.Close)
	if err := exam2.Subscribe("cand-1"); err != nil {
		t.Fatal(err)
	}
	got := map[string]bool{}
	for len(got) < 2 {
		select {
		case k := <-kinds:
			got[k] = true
		case <-ctx.Done():
			t.Fatalf("tracks received: %v", got)
		}
	}
	if !got["video video/VP8"] || !got["audio audio/opus"] {
		t.Errorf("tracks received: %v", got)
	}
	taps := ts.tap.waitFor(ctx, t, "both tracks", func(s []tapTrack) bool { return len(s) == 2 })
	for _, tr := range taps {
		if tr.Track.Kind == media.Audio && (tr.Track.ClockRate != 48000 || tr.Track.Channels != 2) {
			t.Errorf("audio track: %+v", tr.Track)
		}
	}
	pub := waitEvent(ctx, t, exam, protocol.TypeTrackPublished, "")
	if pub.Track.Identity != "cand-1" || pub.Track.StreamID != "cand-1" {
		t.Errorf("track_published %+v", pub.Track)
	}
}

// With ICE.UDPPort every connection shares one UDP port.
func TestSingleUDPPort(t *testing.T) {
	probe, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	port := probe.LocalAddr().(*net.UDPAddr).Port
	probe.Close()
	ts := newTestServer(t, func(c *sfu.Config) { c.ICE.UDPPort = port })
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	cand := ts.join(ctx, candidateGrants("cand-1"), nil)
	publishVideo(ctx, t, cand)
	rcv := newReceiver(true)
	exam := ts.join(ctx, staffGrants("examiner-1", "cand-1"), rcv)
	if err := exam.Subscribe("cand-1"); err != nil {
		t.Fatal(err)
	}
	rcv.waitPackets(ctx, t, "cand-1", 20)
	pair, err := cand.Publisher().SCTP().Transport().ICETransport().GetSelectedCandidatePair()
	if err != nil || pair == nil {
		t.Fatalf("selected pair: %v %v", pair, err)
	}
	if int(pair.Remote.Port) != port {
		t.Errorf("server candidate port %d, want %d", pair.Remote.Port, port)
	}
}

// A pure subscriber asks for an ICE restart with restart_ice; the server
// re-offers with new credentials and media keeps flowing.
func TestRestartICERequest(t *testing.T) {
	ts := newTestServer(t, nil)
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	cand := ts.join(ctx, candidateGrants("cand-1"), nil)
	publishVideo(ctx, t, cand)
	rcv := newReceiver(true)
	proctor := ts.join(ctx, sfu.Grants{Identity: "proctor", CanSubscribe: true, Hidden: true, Subscribe: []string{"*"}}, rcv)
	if err := proctor.Subscribe("cand-1"); err != nil {
		t.Fatal(err)
	}
	rcv.waitPackets(ctx, t, "cand-1", 10)
	before := proctor.Subscriber().RemoteDescription().SDP
	if err := proctor.RestartICE(ctx); err != nil {
		t.Fatal(err)
	}
	n := rcv.count("cand-1")
	rcv.waitPackets(ctx, t, "cand-1", n+50)
	if after := proctor.Subscriber().RemoteDescription().SDP; ufragOf(after) == ufragOf(before) {
		t.Error("subscriber ICE credentials unchanged after restart_ice")
	}
}

// With ICE.TCPPort a client that cannot use UDP connects over TCP.
func TestICEOverTCP(t *testing.T) {
	probe, err := net.ListenTCP("tcp4", &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	port := probe.Addr().(*net.TCPAddr).Port
	probe.Close()
	ts := newTestServer(t, func(c *sfu.Config) { c.ICE.TCPPort = port })
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	tcpOnly, err := client.NewAPI(client.APIOptions{LoopbackOnly: true, Logger: testLogger(),
		NetworkTypes: []webrtc.NetworkType{webrtc.NetworkTypeTCP4}})
	if err != nil {
		t.Fatal(err)
	}
	c, err := client.Dial(ctx, client.Config{URL: ts.url, Token: ts.token(candidateGrants("cand-1")), API: tcpOnly, Logger: testLogger()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	publishVideo(ctx, t, c)
	ts.tap.waitFor(ctx, t, "packets over TCP", func(s []tapTrack) bool { return len(s) == 1 && s[0].Packets > 20 })
	pair, err := c.Publisher().SCTP().Transport().ICETransport().GetSelectedCandidatePair()
	if err != nil || pair == nil {
		t.Fatalf("selected pair: %v %v", pair, err)
	}
	if pair.Local.Protocol != webrtc.ICEProtocolTCP || int(pair.Remote.Port) != port {
		t.Errorf("selected pair %s, want TCP to port %d", pair, port)
	}
}
