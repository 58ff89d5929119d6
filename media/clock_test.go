package media

import (
	"testing"
	"time"

	"github.com/pion/rtp"
)

// A sender of 15 fps video in 3 packets a frame, stamped by a Clock as
// the SFU stamps what it hands its taps.
type sender struct {
	t       *testing.T
	c       *Clock
	seq     uint16
	ts      uint32
	ssrc    uint32
	arrival time.Time
	frame   int
	out     []Packet
}

var start = time.Unix(1_000_000, 0)

const (
	tsPerFrame = 6000
	frameTime  = time.Second / 15
)

func newSender(t *testing.T, seq uint16, ts uint32) *sender {
	return &sender{t: t, c: NewClock(90000), seq: seq, ts: ts, ssrc: 7, arrival: start}
}

// frames sends n frames in real time and returns the stamped packets
// (those the clock found stray left out: the tests check how many).
func (s *sender) frames(n int) []Packet {
	var got []Packet
	for range n {
		for k := range 3 {
			p := &rtp.Packet{Header: rtp.Header{Version: 2, SSRC: s.ssrc, SequenceNumber: s.seq, Timestamp: s.ts, Marker: k == 2}}
			s.seq++
			if out, ok := s.c.Stamp(p, s.arrival); ok {
				got = append(got, out)
			}
		}
		s.ts += tsPerFrame
		s.arrival = s.arrival.Add(frameTime)
		s.frame++
	}
	s.out = append(s.out, got...)
	return got
}

// checkContinuous: extended sequence numbers step by one (or by gap where
// said), each frame's normalised timestamp follows the last by one frame,
// and every packet's wall time is its arrival give or take tolerance.
func checkContinuous(t *testing.T, pkts []Packet, tolerance time.Duration) {
	t.Helper()
	for i := 1; i < len(pkts); i++ {
		a, b := pkts[i-1], pkts[i]
		if b.ExtSeq != a.ExtSeq+1 {
			t.Errorf("packet %d: extended sequence %d after %d", i, b.ExtSeq, a.ExtSeq)
		}
		if uint16(b.ExtSeq) != b.RTP.SequenceNumber {
			t.Errorf("packet %d: sequence number %d is not the extended one's low bits (%d)", i, b.RTP.SequenceNumber, b.ExtSeq)
		}
		if d := b.RTP.Timestamp - a.RTP.Timestamp; d != 0 && d != tsPerFrame && d != tsPerFrame+1 && d != tsPerFrame-1 {
			t.Errorf("packet %d: normalised timestamp stepped by %d", i, int32(d))
		}
	}
	for i, p := range pkts {
		if d := p.Wall.Sub(p.Arrival); d.Abs() > tolerance {
			t.Errorf("packet %d (seq %d): wall time %v from its arrival", i, p.ExtSeq, d)
		}
	}
}

func TestClockPassesAHealthyStreamThrough(t *testing.T) {
	// Both numberings wrap within the first second.
	s := newSender(t, 65530, 0xFFFFFFFF-3*tsPerFrame)
	got := s.frames(60)
	checkContinuous(t, got, time.Millisecond)
	if first := uint64(1<<16 + 65530); got[0].ExtSeq != first || got[len(got)-1].ExtSeq != first+179 {
		t.Errorf("extended sequence numbers %d…%d, want %d…%d", got[0].ExtSeq, got[len(got)-1].ExtSeq, first, first+179)
	}
	for i, p := range got {
		// The normalised timestamp is the sender's own when its clock
		// agrees with the arrivals.
		if want := 0xFFFFFFFF - 3*tsPerFrame + uint32(i/3)*tsPerFrame; p.RTP.Timestamp != want {
			t.Fatalf("packet %d: timestamp %d, want the sender's %d", i, p.RTP.Timestamp, want)
		}
	}
	if st := s.c.Stats(); st != (ClockStats{}) {
		t.Errorf("a healthy stream needed fixing: %+v", st)
	}
}

func TestClockFollowsATimestampJump(t *testing.T) {
	for _, jump := range []int64{3600 * 90000, -3600 * 90000, 20 * 90000} {
		s := newSender(t, 100, 5000)
		s.frames(30)
		s.ts += uint32(jump)
		s.frames(30)
		// Every frame dated by when it came, the two before the clock was
		// followed included; the normalised timestamp never jumps.
		checkContinuous(t, s.out, time.Millisecond)
		// Misdated: the packets of the frames before the one that makes
		// the run long enough, and that frame's first packet.
		if st := s.c.Stats(); st.ClockJumps != 1 || st.Misdated != 3*(framesToFollowClock-1)+1 || st.Stray != 0 {
			t.Errorf("jump of %d: %+v, want one clock jump followed at the %dth misdated frame", jump, st, framesToFollowClock)
		}
	}
}

func TestClockDatesALoneWildFrameByItsArrival(t *testing.T) {
	s := newSender(t, 100, 5000)
	s.frames(10)
	s.ts += 0x7fff0000
	wild := s.frames(1)
	s.ts -= 0x7fff0000
	s.frames(10)
	checkContinuous(t, s.out, time.Millisecond)
	if wild[0].Wall != wild[0].Arrival {
		t.Errorf("the wild frame is dated %v, it arrived %v", wild[0].Wall, wild[0].Arrival)
	}
	if st := s.c.Stats(); st.ClockJumps != 0 || st.Misdated != 3 {
		t.Errorf("%+v: want the three packets of the wild frame misdated and no jump followed", st)
	}
}

func TestClockSlowTimestampsTrailUpToTheSkew(t *testing.T) {
	// A network stall of 2 s: the frames captured meanwhile arrive in a
	// burst, late; they keep their own (earlier) media time.
	s := newSender(t, 100, 5000)
	s.frames(15)
	s.arrival = s.arrival.Add(2 * time.Second)
	late := s.frames(1)
	if d := late[0].Arrival.Sub(late[0].Wall); (d - 2*time.Second).Abs() > time.Millisecond {
		t.Errorf("a frame 2 s late is dated %v before its arrival", d)
	}
	if st := s.c.Stats(); st.Misdated != 0 {
		t.Errorf("%+v: a late frame is no reason to disbelieve its timestamp", st)
	}
}

func TestClockScreensStraySequenceNumbers(t *testing.T) {
	s := newSender(t, 1000, 5000)
	s.frames(5)
	for _, off := range []uint16{100, 5000, 40000, 65000 - 600} {
		p := &rtp.Packet{Header: rtp.Header{SSRC: 7, SequenceNumber: s.seq + off, Timestamp: s.ts}}
		if _, ok := s.c.Stamp(p, s.arrival); ok {
			t.Errorf("a lone packet %d ahead was handed on", off)
		}
	}
	// Another SSRC, alone.
	if _, ok := s.c.Stamp(&rtp.Packet{Header: rtp.Header{SSRC: 8, SequenceNumber: s.seq, Timestamp: s.ts}}, s.arrival); ok {
		t.Error("a lone packet of another SSRC was handed on")
	}
	s.frames(5)
	checkContinuous(t, s.out, time.Millisecond)
	if st := s.c.Stats(); st.Stray != 5 || st.Renumbered != 0 {
		t.Errorf("%+v, want 5 stray", st)
	}
}

func TestClockFollowsARenumberingAndAnOutage(t *testing.T) {
	s := newSender(t, 1000, 5000)
	s.frames(5)
	before := s.out[len(s.out)-1].ExtSeq
	s.seq = 30000 // a sender that restarted its numbering
	after := s.frames(5)
	// The first packet of the new numbering waits for the second to
	// believe it, so it is lost; one number is left out for what was lost.
	if len(after) != 14 || after[0].ExtSeq != before+2 {
		t.Fatalf("after a renumbering: %d packets from %d, want 14 from %d", len(after), after[0].ExtSeq, before+2)
	}
	checkContinuous(t, after, time.Millisecond)

	before = after[len(after)-1].ExtSeq
	s.seq += 1000 // an outage: 1000 packets lost
	after = s.frames(2)
	// The first after the outage waits for probation too; the second
	// comes 1002 numbers after the last before it.
	if len(after) != 5 || after[0].ExtSeq != before+1002 {
		t.Errorf("after an outage of 1000 packets: %d packets from %d, want 5 from %d", len(after), after[0].ExtSeq, before+1002)
	}
	if st := s.c.Stats(); st.Renumbered != 1 || st.Stray != 2 {
		t.Errorf("%+v, want one renumbering and the two probing packets stray", st)
	}
}

func TestClockFollowsANewSSRC(t *testing.T) {
	s := newSender(t, 1000, 5000)
	s.frames(5)
	before := s.out[len(s.out)-1]
	s.ssrc, s.seq, s.ts = 9, 17, 123456789
	var after []Packet
	for k := range 6 {
		p := &rtp.Packet{Header: rtp.Header{SSRC: s.ssrc, SequenceNumber: s.seq, Timestamp: s.ts + uint32(k/3)*tsPerFrame}}
		s.seq++
		if out, ok := s.c.Stamp(p, s.arrival.Add(time.Duration(k/3)*frameTime)); ok {
			after = append(after, out)
		}
	}
	if len(after) != 5 || after[0].ExtSeq != before.ExtSeq+2 {
		t.Fatalf("after a new SSRC: %d packets from %d, want 5 from %d", len(after), after[0].ExtSeq, before.ExtSeq+2)
	}
	if d := after[0].Wall.Sub(after[0].Arrival); d != 0 {
		t.Errorf("the new stream's first packet dated %v from its arrival", d)
	}
	if d := after[0].RTP.Timestamp - before.RTP.Timestamp; d < tsPerFrame-1 || d > tsPerFrame+1 {
		t.Errorf("the normalised timestamp stepped by %d across the new SSRC, want a frame", int32(d))
	}
}

// FuzzClock: whatever arrives, nothing panics, extended sequence numbers
// of what is handed on stay within the reorder window of the highest,
// and a packet's wall time is never more than the skew before its arrival
// nor more than the agreement after it.
func FuzzClock(f *testing.F) {
	f.Add([]byte{0, 1, 0, 0, 0, 0, 10, 0, 2, 0, 0, 23, 112, 10})
	f.Add([]byte{255, 255, 255, 255, 255, 255, 1, 0, 0, 0, 0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, data []byte) {
		c := NewClock(90000)
		arrival := start
		var highest uint64
		first := true
		for len(data) >= 7 {
			p := &rtp.Packet{Header: rtp.Header{
				SequenceNumber: uint16(data[0])<<8 | uint16(data[1]),
				Timestamp:      uint32(data[2])<<24 | uint32(data[3])<<16 | uint32(data[4])<<8 | uint32(data[5]),
				SSRC:           uint32(data[6] & 1),
			}}
			arrival = arrival.Add(time.Duration(data[6]>>1) * 5 * time.Millisecond)
			data = data[7:]
			out, ok := c.Stamp(p, arrival)
			if !ok {
				continue
			}
			if first || out.ExtSeq > highest {
				highest, first = out.ExtSeq, false
			} else if highest-out.ExtSeq >= maxSeqReorder {
				t.Fatalf("extended sequence %d, %d behind the highest", out.ExtSeq, highest-out.ExtSeq)
			}
			if d := out.Wall.Sub(out.Arrival); d < -maxTimestampSkew || d > clockAgreement {
				t.Fatalf("wall time %v from the arrival", d)
			}
		}
	})
}
