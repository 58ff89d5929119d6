package sfu

import (
	"testing"
	"time"

	"github.com/pion/rtp"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"invigil/media"
)

// The publisher's read loop only ever does non-blocking sends: a
// subscriber whose writer has stalled completely (its queue full, nobody
// draining it) loses packets, counted, while the next subscriber and the
// taps get every one. This is the property the loopback test cannot force,
// since pion on loopback never stalls.
func TestForwardNeverBlocksOnAStalledSubscriber(t *testing.T) {
	m, err := newMetrics(prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	up := &upTrack{
		s:         &Server{m: m},
		clock:     media.NewClock(90000),
		info:      media.Track{Kind: media.Video},
		packetsIn: m.packetsIn.WithLabelValues("video"),
		bytesIn:   m.bytesIn.WithLabelValues("video"),
		malformed: m.packetsDropped.WithLabelValues("malformed"),
	}
	up.downs.Store(&[]*downTrack{})
	dropped := m.packetsDropped.WithLabelValues("queue_full")
	stalled := &downTrack{up: up, queue: make(chan *rtp.Packet, 4), dropped: dropped}
	healthy := &downTrack{up: up, queue: make(chan *rtp.Packet, 1000), dropped: dropped}
	up.addDown(stalled)
	up.addDown(healthy)
	tap := &countingWriter{}

	const n = 1000
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := range n {
			up.forward(&rtp.Packet{Header: rtp.Header{SequenceNumber: uint16(i)}, Payload: []byte{1, 2, 3}},
				time.Now(), []media.PacketWriter{tap})
		}
	}()
	select {
	case <-done:
	case <-time.After(testDeadline):
		t.Fatal("forward blocked on a stalled subscriber")
	}
	if len(healthy.queue) != n || tap.n != n {
		t.Errorf("healthy subscriber got %d, tap %d, want %d", len(healthy.queue), tap.n, n)
	}
	if got := testutil.ToFloat64(dropped); got != n-4 {
		t.Errorf("dropped %v, want %d", got, n-4)
	}
	// Taps get copies: changing one does not change what subscribers see.
	first := <-healthy.queue
	if first.Payload[0] != 1 || tap.last == first {
		t.Error("tap shares the forwarded packet")
	}

	up.removeDown(stalled)
	if up.subscriberCount() != 1 {
		t.Errorf("after removeDown: %d subscribers", up.subscriberCount())
	}
}

// testDeadline only catches a hang; nothing is timed.
const testDeadline = 30 * time.Second

type countingWriter struct {
	n    int
	last *rtp.Packet
}

func (w *countingWriter) WritePacket(p media.Packet) {
	w.n++
	w.last = p.RTP
	p.RTP.Payload[0] = 99
}
func (w *countingWriter) Close() {}

func TestICEUfrag(t *testing.T) {
	sdp := "v=0\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\na=ice-ufrag:abcd\r\na=ice-pwd:x\r\n"
	if got := iceUfrag(sdp); got != "abcd" {
		t.Errorf("iceUfrag = %q", got)
	}
	if got := iceUfrag("v=0\r\n"); got != "" {
		t.Errorf("iceUfrag without one = %q", got)
	}
}
