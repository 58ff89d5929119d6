package recording

import (
	"strings"
	"testing"
	"time"

	"github.com/pion/rtp"

	"invigil/media"
)

// FuzzRecorderRTP feeds arbitrary packets — whole RTP packets where the
// bytes parse as one, otherwise payloads with nearby sequence numbers and
// timestamps, so that the VP8/Opus depacketisers and the muxer see
// near-valid garbage — into a video and an audio track. The recorder must
// neither panic (not even inside its recover) nor hang on Close.
func FuzzRecorderRTP(f *testing.F) {
	// Seeds: real packets of the test clip, and a few shapes of garbage.
	c := testClip(f)
	p := newPublisher(f, c, t0)
	var seed []byte
	for i, pkt := range append(p.vp.Packetize(c.video[0], 6000)[:3], p.ap.Packetize(c.audio[0], 960)...) {
		b, _ := pkt.Marshal()
		seed = append(seed, byte(len(b)), byte(len(b)>>8), byte(i%2))
		seed = append(seed, b...)
	}
	f.Add(seed)
	f.Add([]byte{5, 0, 0, 0x90, 0x80, 0x01, 0x9d, 0x01})
	f.Add([]byte{3, 0, 1, 0xfc, 0xff, 0xfe, 40, 0, 0})
	f.Add([]byte{})

	f.Fuzz(func(t *testing.T, data []byte) {
		logs := &lockedBuffer{}
		r, _, _ := newTestRecorder(t, t.TempDir(), func(cfg *Config) {
			cfg.Logger = newQuietLogger(logs) // fuzzing runs this thousands of times
			cfg.KeyframeWait = time.Millisecond
			cfg.TrackWait = time.Millisecond
		})
		track := func(kind media.Kind, mime string) media.PacketWriter {
			return r.TrackStarted(media.Track{SessionID: "s", Identity: "i", Room: "r", Kind: kind, MimeType: mime,
				ClockRate: map[media.Kind]uint32{media.Video: 90000, media.Audio: 48000}[kind], Connection: 1,
				RequestKeyframe: func() {}})
		}
		writers := []media.PacketWriter{track(media.Video, "video/VP8"), track(media.Audio, "audio/opus")}
		// Stamped as the SFU stamps every packet a tap sees.
		clocks := []*media.Clock{media.NewClock(90000), media.NewClock(48000)}
		seq := []uint16{100, 200}
		ts := []uint32{1000, 2000}
		arrival := t0
		for len(data) >= 3 {
			n := int(data[0]) | int(data[1])<<8
			which := int(data[2] & 1)
			data = data[3:]
			n = min(n, len(data))
			chunk := data[:n]
			data = data[n:]
			pkt := &rtp.Packet{}
			if err := pkt.Unmarshal(chunk); err != nil {
				seq[which] += uint16(len(chunk) % 5)
				ts[which] += uint32(len(chunk)%7) * 1500
				pkt = &rtp.Packet{Header: rtp.Header{Version: 2, SequenceNumber: seq[which], Timestamp: ts[which],
					SSRC: uint32(which + 1), Marker: len(chunk)%2 == 0}, Payload: chunk}
			}
			arrival = arrival.Add(10 * time.Millisecond)
			if stamped, ok := clocks[which].Stamp(pkt, arrival); ok {
				writers[which].WritePacket(stamped)
			}
		}
		for _, w := range writers {
			w.Close()
		}
		r.Close()
		if strings.Contains(logs.String(), "panicked") {
			t.Fatalf("depacketiser panicked:\n%s", logs.String())
		}
	})
}
