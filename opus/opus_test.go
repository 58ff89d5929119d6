package opus

import (
	"errors"
	"fmt"
	"math"
	"math/rand"
	"testing"
	"time"

	"invigil/audio"
)

// frontCenter is a real recorded voice from Debian's alsa-utils (the test
// group of scripts/install.sh): 48 kHz mono 16-bit, 1.43 s of "front center".
const frontCenter = "/usr/share/sounds/alsa/Front_Center.wav"

func voice(t testing.TB) []float32 {
	t.Helper()
	w, err := audio.ReadWAVFile(frontCenter)
	if err != nil {
		t.Fatalf("%v (scripts/install.sh test installs alsa-utils)", err)
	}
	if w.SampleRate != SampleRate {
		t.Fatalf("%s is %d Hz, want %d", frontCenter, w.SampleRate, SampleRate)
	}
	return w.Mono()
}

func newEncoder(t testing.TB, opts EncoderOptions) *Encoder {
	t.Helper()
	e, err := NewEncoder(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close() })
	return e
}

func newDecoder(t testing.TB) *Decoder { return newDecoderAt(t, SampleRate) }

func newDecoderAt(t testing.TB, rate int) *Decoder {
	t.Helper()
	d, err := NewDecoderAt(rate)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	return d
}

// encodeAll cuts interleaved pcm into frames (the last padded with
// silence, plus one frame of silence so the codec's lookahead comes out)
// and encodes each.
func encodeAll(t testing.TB, e *Encoder, pcm []float32) [][]byte {
	t.Helper()
	step := e.FrameSamples() * e.Options().Channels
	padded := append(append([]float32(nil), pcm...), make([]float32, 2*step-len(pcm)%step)...)
	var packets [][]byte
	for pos := 0; pos+step <= len(padded); pos += step {
		p, err := e.Encode(padded[pos : pos+step])
		if err != nil {
			t.Fatalf("frame %d: %v", pos/step, err)
		}
		packets = append(packets, p)
	}
	return packets
}

func decodeAll(t testing.TB, d *Decoder, packets [][]byte) []float32 {
	t.Helper()
	var out []float32
	for i, p := range packets {
		var err error
		if out, err = d.AppendDecode(out, p); err != nil {
			t.Fatalf("packet %d: %v", i, err)
		}
	}
	return out
}

// compare lines decoded up with orig after the codec's delay and gives the
// signal-to-noise ratio of the decoded waveform and their correlation.
func compare(orig, decoded []float32, delay int) (snrDB, corr float64) {
	var sig, noise, dd, od float64
	for i, o := range orig {
		if i+delay >= len(decoded) {
			break
		}
		x := float64(decoded[i+delay])
		sig += float64(o) * float64(o)
		noise += (x - float64(o)) * (x - float64(o))
		dd += x * x
		od += x * float64(o)
	}
	return 10 * math.Log10(sig/noise), od / math.Sqrt(sig*dd)
}

// bestLag is the delay (0…maxLag samples) at which decoded matches orig best.
func bestLag(orig, decoded []float32, maxLag int) int {
	best, bestCorr := 0, -2.0
	for lag := 0; lag <= maxLag; lag++ {
		if _, c := compare(orig, decoded, lag); c > bestCorr {
			best, bestCorr = lag, c
		}
	}
	return best
}

// TestRoundTripVoice: a real voice encoded as a browser would and decoded
// again is the same voice: the decoded waveform lags by exactly the
// encoder's lookahead and matches the original within a bound set from
// measurement (Opus is perceptual, so the waveform SNR is modest; the
// bounds leave a few dB of margin so a broken decode path — wrong scale,
// wrong rate, dropped or repeated frames — fails).
func TestRoundTripVoice(t *testing.T) {
	pcm := voice(t)
	for _, c := range []struct {
		bitrate          int
		minSNR, minSNR16 float64
	}{
		// Measured: 7.4, 7.8, 7.7 dB at 48 kHz and 8.3, 8.6, 8.5 dB at 16 kHz
		// (correlation 0.91–0.93). Opus codes speech by its spectrum (SILK's
		// linear prediction, CELT's band energies), not its exact waveform,
		// so even 64 kb/s gains little waveform SNR.
		{16000, 5, 6}, {32000, 5, 6}, {64000, 5, 6},
	} {
		e := newEncoder(t, EncoderOptions{Bitrate: c.bitrate})
		packets := encodeAll(t, e, pcm)
		d := newDecoder(t)
		out := decodeAll(t, d, packets)
		if want := len(packets) * 960; len(out) != want {
			t.Fatalf("%d packets decoded to %d samples, want %d", len(packets), len(out), want)
		}
		lookahead, err := e.Lookahead()
		if err != nil {
			t.Fatal(err)
		}
		lag := bestLag(pcm, out, 2000)
		snr, corr := compare(pcm, out, lag)
		snrLook, _ := compare(pcm, out, lookahead)
		// What the speech detector hears: both down-sampled to 16 kHz.
		narrowLag := bestLag(audio.Resample48to16(pcm), audio.Resample48to16(out), 700)
		snr16, corr16 := compare(audio.Resample48to16(pcm), audio.Resample48to16(out), narrowLag)
		bytes := 0
		for _, p := range packets {
			bytes += len(p)
		}
		t.Logf("%d b/s: %.1f kb/s actual, lookahead %d, best lag %d: SNR %.1f dB (%.1f at the lookahead), correlation %.4f; at 16 kHz lag %d: SNR %.1f dB, correlation %.4f",
			c.bitrate, float64(bytes*8)/(float64(len(packets))*0.02)/1000, lookahead, lag, snr, snrLook, corr, narrowLag, snr16, corr16)
		// SILK's resampler makes the best waveform match come a few samples
		// before the nominal lookahead (306–307 against 312 measured).
		if lag < lookahead-10 || lag > lookahead+10 {
			t.Errorf("%d b/s: decoded voice lags %d samples, the encoder's lookahead is %d", c.bitrate, lag, lookahead)
		}
		if snr < c.minSNR || snr16 < c.minSNR16 {
			t.Errorf("%d b/s: SNR %.1f dB (48 kHz), %.1f dB (16 kHz); want ≥ %.0f and %.0f", c.bitrate, snr, snr16, c.minSNR, c.minSNR16)
		}
		// The level is kept: a detector gating on energy must see the
		// microphone's loudness.
		if gain := rmsOf(out) / rmsOf(pcm) * math.Sqrt(float64(len(pcm))/float64(len(out))); gain < 0.9 || gain > 1.1 {
			t.Errorf("%d b/s: decoded level %.3f of the original's", c.bitrate, gain)
		}
	}
}

// TestPacketDurations: every frame size a browser may send decodes to that
// many samples, and ParsePacket reads the same from the TOC.
func TestPacketDurations(t *testing.T) {
	pcm := voice(t)[:SampleRate/2]
	for _, frame := range []time.Duration{2500 * time.Microsecond, 5 * time.Millisecond, 10 * time.Millisecond,
		20 * time.Millisecond, 40 * time.Millisecond, 60 * time.Millisecond} {
		e := newEncoder(t, EncoderOptions{Frame: frame})
		d := newDecoder(t)
		for i, p := range encodeAll(t, e, pcm) {
			info, err := ParsePacket(p)
			if err != nil {
				t.Fatalf("%v packet %d: %v", frame, i, err)
			}
			if info.Duration() != frame || info.Stereo {
				t.Fatalf("%v packet %d parsed as %+v (%v)", frame, i, info, info.Duration())
			}
			out, err := d.Decode(p)
			if err != nil {
				t.Fatalf("%v packet %d: %v", frame, i, err)
			}
			if len(out) != e.FrameSamples() {
				t.Fatalf("%v packet %d: %d samples, want %d", frame, i, len(out), e.FrameSamples())
			}
		}
	}
}

// TestStereoDownmix: a stereo stream decodes to one channel holding both.
func TestStereoDownmix(t *testing.T) {
	mono := voice(t)
	both := make([]float32, 2*len(mono))
	leftOnly := make([]float32, 2*len(mono))
	for i, s := range mono {
		both[2*i], both[2*i+1] = s, s
		leftOnly[2*i] = s
	}
	for _, c := range []struct {
		name           string
		pcm            []float32
		gainLo, gainHi float64
	}{
		{"same voice in both channels", both, 0.9, 1.1},
		{"voice in the left channel only", leftOnly, 0.4, 0.6},
	} {
		e := newEncoder(t, EncoderOptions{Channels: 2, Bitrate: 64000})
		packets := encodeAll(t, e, c.pcm)
		if info, err := ParsePacket(packets[10]); err != nil || !info.Stereo {
			t.Fatalf("%s: packet %+v, %v: not stereo", c.name, info, err)
		}
		out := decodeAll(t, newDecoder(t), packets)
		lookahead, _ := e.Lookahead()
		_, corr := compare(mono, out, lookahead)
		gain := rmsOf(out) / rmsOf(mono)
		t.Logf("%s: correlation %.4f, gain %.3f", c.name, corr, gain)
		if corr < 0.9 || gain < c.gainLo || gain > c.gainHi {
			t.Errorf("%s: correlation %.3f, gain %.3f; want ≥ 0.9 and gain in [%.1f, %.1f]", c.name, corr, gain, c.gainLo, c.gainHi)
		}
	}
}

func rmsOf(x []float32) float64 {
	var s float64
	for _, v := range x {
		s += float64(v) * float64(v)
	}
	return math.Sqrt(s / float64(len(x)))
}

// TestConcealment: lost packets are filled with the right amount of audio
// that carries the voice on (not silence), and decoding resumes after.
func TestConcealment(t *testing.T) {
	pcm := voice(t)
	e := newEncoder(t, EncoderOptions{})
	packets := encodeAll(t, e, pcm)
	d := newDecoder(t)
	// Packet 49 (0.98 s) is the loudest part of "center".
	decodeAll(t, d, packets[:49])
	for _, lost := range []time.Duration{20 * time.Millisecond, 2500 * time.Microsecond, 60 * time.Millisecond} {
		out, err := d.DecodeLost(lost)
		if err != nil {
			t.Fatalf("conceal %v: %v", lost, err)
		}
		if want := int(lost.Seconds() * SampleRate); len(out) != want {
			t.Errorf("conceal %v: %d samples, want %d", lost, len(out), want)
		}
		if lost == 20*time.Millisecond && rmsOf(out) < 0.001 {
			t.Errorf("concealment in the middle of a word is silent (RMS %.5f)", rmsOf(out))
		}
	}
	long, err := d.DecodeLost(MaxConcealment)
	if err != nil || len(long) != SampleRate {
		t.Errorf("conceal %v: %d samples, %v", MaxConcealment, len(long), err)
	}
	for _, bad := range []time.Duration{0, -20 * time.Millisecond, 7 * time.Millisecond, time.Millisecond + 1, 2 * time.Second} {
		if _, err := d.DecodeLost(bad); err == nil {
			t.Errorf("conceal %v accepted", bad)
		}
	}
	if out := decodeAll(t, d, packets[50:]); len(out) != 960*len(packets[50:]) {
		t.Errorf("after concealment: %d samples", len(out))
	}
	// AppendDecodeLost appends.
	dst := []float32{7}
	if dst, err = d.AppendDecodeLost(dst, 10*time.Millisecond); err != nil || len(dst) != 481 || dst[0] != 7 {
		t.Errorf("AppendDecodeLost: %d samples, %v", len(dst), err)
	}
}

// TestFEC: a lost packet recovered from the next one's forward error
// correction sounds more like the original than concealment guesses.
func TestFEC(t *testing.T) {
	pcm := voice(t)
	e := newEncoder(t, EncoderOptions{InbandFEC: true, PacketLossPercent: 20})
	packets := encodeAll(t, e, pcm)
	lookahead, _ := e.Lookahead()
	const lost = 49 // the loudest part of "center"
	segment := func(useFEC bool) float64 {
		d := newDecoder(t)
		out := decodeAll(t, d, packets[:lost])
		var err error
		if useFEC {
			out, err = d.AppendDecodeFEC(out, packets[lost+1], 20*time.Millisecond)
		} else {
			out, err = d.AppendDecodeLost(out, 20*time.Millisecond)
		}
		if err != nil {
			t.Fatal(err)
		}
		if len(out) != 960*(lost+1) {
			t.Fatalf("%d samples after recovery, want %d", len(out), 960*(lost+1))
		}
		// The recovered 20 ms, against the original it stands for.
		from := lost*960 - lookahead
		snr, _ := compare(pcm[from:from+960], out[lost*960:], 0)
		return snr
	}
	withFEC, withPLC := segment(true), segment(false)
	t.Logf("lost packet %d: SNR %.1f dB recovered by FEC, %.1f dB concealed", lost, withFEC, withPLC)
	if withFEC < withPLC+3 {
		t.Errorf("FEC gives %.1f dB, concealment %.1f dB: FEC should be clearly better", withFEC, withPLC)
	}
	d := newDecoder(t)
	if _, err := d.AppendDecodeFEC(nil, []byte{}, 20*time.Millisecond); !errors.Is(err, ErrInvalidPacket) {
		t.Errorf("FEC from an empty packet: %v", err)
	}
	if _, err := d.AppendDecodeFEC(nil, packets[1], 200*time.Millisecond); err == nil {
		t.Error("FEC for 200 ms accepted")
	}
}

func TestParsePacketFraming(t *testing.T) {
	silk20 := byte(1 << 3)  // config 1: SILK NB 20 ms
	celt2 := byte(16 << 3)  // config 16: CELT NB 2.5 ms
	celt20 := byte(31 << 3) // config 31: CELT FB 20 ms
	frame := func(n int) []byte { return make([]byte, n) }
	cat := func(parts ...[]byte) []byte {
		var out []byte
		for _, p := range parts {
			out = append(out, p...)
		}
		return out
	}
	for _, c := range []struct {
		name         string
		packet       []byte
		frames, size int
		stereo       bool
	}{
		{"code 0", cat([]byte{silk20}, frame(40)), 1, 960, false},
		{"code 0 stereo", cat([]byte{celt20 | 4}, frame(100)), 1, 960, true},
		{"code 0 DTX (TOC only)", []byte{silk20}, 1, 960, false},
		{"code 1", cat([]byte{silk20 | 1}, frame(80)), 2, 960, false},
		{"code 2", cat([]byte{silk20 | 2, 10}, frame(10), frame(30)), 2, 960, false},
		{"code 2 two-byte length", cat([]byte{silk20 | 2, 252, 1}, frame(256), frame(3)), 2, 960, false},
		{"code 3 CBR", cat([]byte{celt2 | 3, 48}, frame(48*10)), 48, 120, false},
		{"code 3 VBR", cat([]byte{celt20 | 3, 0x80 | 3, 5, 7}, frame(5), frame(7), frame(9)), 3, 960, false},
		{"code 3 padded", cat([]byte{celt20 | 3, 0x40 | 2, 255, 10}, frame(2*20), frame(264)), 2, 960, false},
	} {
		info, err := ParsePacket(c.packet)
		if err != nil {
			t.Errorf("%s: %v", c.name, err)
			continue
		}
		if info.Frames != c.frames || info.FrameSamples != c.size || info.Stereo != c.stereo {
			t.Errorf("%s: %+v, want %d frames of %d samples, stereo %v", c.name, info, c.frames, c.size, c.stereo)
		}
	}
}

func TestDecoderRejectsGarbage(t *testing.T) {
	pcm := voice(t)
	packets := encodeAll(t, newEncoder(t, EncoderOptions{}), pcm)
	silk20 := byte(1 << 3)
	celt20 := byte(31 << 3)
	d := newDecoder(t)
	for _, c := range []struct {
		name   string
		packet []byte
	}{
		{"nil", nil},
		{"empty", []byte{}},
		{"oversized", make([]byte, MaxPacketBytes+1)},
		{"code 1 with an odd payload", append([]byte{silk20 | 1}, make([]byte, 41)...)},
		{"code 1 with frames over 1275 bytes", append([]byte{silk20 | 1}, make([]byte, 2*1276)...)},
		{"code 0 frame over 1275 bytes", append([]byte{silk20}, make([]byte, 1276)...)},
		{"code 2 without its length", []byte{silk20 | 2}},
		{"code 2 cut in a two-byte length", []byte{silk20 | 2, 253}},
		{"code 2 first frame longer than the packet", []byte{silk20 | 2, 50, 1, 2, 3}},
		{"code 3 without frame count", []byte{celt20 | 3}},
		{"code 3 of zero frames", []byte{celt20 | 3, 0, 1, 2}},
		{"code 3 over 120 ms", append([]byte{celt20 | 3, 7}, make([]byte, 70)...)},
		{"code 3 CBR not divisible", append([]byte{celt20 | 3, 3}, make([]byte, 10)...)},
		{"code 3 VBR lengths past the end", []byte{celt20 | 3, 0x80 | 3, 200, 200, 1}},
		{"code 3 VBR length cut off", []byte{celt20 | 3, 0x80 | 2}},
		{"code 3 padding past the end", []byte{celt20 | 3, 0x40 | 1, 100, 1, 2}},
		{"code 3 padding length cut off", []byte{celt20 | 3, 0x40 | 1, 255}},
	} {
		out, err := d.Decode(c.packet)
		if !errors.Is(err, ErrInvalidPacket) {
			t.Errorf("%s: %d samples, error %v; want ErrInvalidPacket", c.name, len(out), err)
		}
	}
	// Random bytes, truncated and bit-flipped real packets: an error or the
	// packet's worth of audio, never a crash.
	rng := rand.New(rand.NewSource(1))
	accepted := 0
	for i := 0; i < 3000; i++ {
		var p []byte
		switch i % 3 {
		case 0:
			p = make([]byte, rng.Intn(1500))
			rng.Read(p)
		case 1:
			real := packets[rng.Intn(len(packets))]
			p = real[:rng.Intn(len(real)+1)]
		default:
			p = append([]byte(nil), packets[rng.Intn(len(packets))]...)
			for k := 0; k < 1+rng.Intn(5); k++ {
				p[rng.Intn(len(p))] ^= byte(1 + rng.Intn(255))
			}
		}
		out, err := d.Decode(p)
		if err == nil {
			accepted++
			info, _ := ParsePacket(p)
			if len(out) != info.Samples() {
				t.Fatalf("garbage packet decoded to %d samples, its TOC says %d", len(out), info.Samples())
			}
			for _, s := range out {
				if math.IsNaN(float64(s)) || math.IsInf(float64(s), 0) {
					t.Fatal("garbage decoded to NaN or infinity")
				}
			}
		}
	}
	t.Logf("%d of 3000 damaged packets were well-formed enough to decode", accepted)
	// The decoder still works: a fresh stream (after Reset) decodes as on a
	// new decoder.
	if err := d.Reset(); err != nil {
		t.Fatal(err)
	}
	got := decodeAll(t, d, packets)
	want := decodeAll(t, newDecoder(t), packets)
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("after garbage and Reset, sample %d is %v, a fresh decoder gives %v", i, got[i], want[i])
		}
	}
}

func TestUseAfterClose(t *testing.T) {
	packets := encodeAll(t, newEncoder(t, EncoderOptions{}), voice(t)[:9600])
	d, err := NewDecoder()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := d.Decode(packets[0]); err != nil {
		t.Fatal(err)
	}
	d.Close()
	d.Close()
	if _, err := d.Decode(packets[1]); !errors.Is(err, ErrClosed) {
		t.Errorf("Decode after Close: %v", err)
	}
	if _, err := d.DecodeLost(20 * time.Millisecond); !errors.Is(err, ErrClosed) {
		t.Errorf("DecodeLost after Close: %v", err)
	}
	if _, err := d.AppendDecodeFEC(nil, packets[1], 20*time.Millisecond); !errors.Is(err, ErrClosed) {
		t.Errorf("AppendDecodeFEC after Close: %v", err)
	}
	if err := d.Reset(); !errors.Is(err, ErrClosed) {
		t.Errorf("Reset after Close: %v", err)
	}
	e, err := NewEncoder(EncoderOptions{})
	if err != nil {
		t.Fatal(err)
	}
	e.Close()
	e.Close()
	if _, err := e.Encode(make([]float32, 960)); !errors.Is(err, ErrClosed) {
		t.Errorf("Encode after Close: %v", err)
	}
	if _, err := e.Lookahead(); !errors.Is(err, ErrClosed) {
		t.Errorf("Lookahead after Close: %v", err)
	}
}

func TestEncoderRejectsBadInput(t *testing.T) {
	for _, o := range []EncoderOptions{
		{Channels: 3},
		{Channels: -1},
		{Bitrate: 100},
		{Bitrate: 1 << 20},
		{Frame: 30 * time.Millisecond},
		{Frame: 120 * time.Millisecond},
		{Frame: time.Millisecond},
		{Frame: 20*time.Millisecond + 1},
		{Complexity: 11},
		{PacketLossPercent: 101},
	} {
		if e, err := NewEncoder(o); err == nil {
			e.Close()
			t.Errorf("%+v accepted", o)
		}
	}
	e := newEncoder(t, EncoderOptions{Channels: 2})
	for _, pcm := range [][]float32{nil, make([]float32, 960), make([]float32, 1921)} {
		if _, err := e.Encode(pcm); err == nil {
			t.Errorf("stereo encoder took %d samples", len(pcm))
		}
	}
	bad := make([]float32, 1920)
	bad[5] = float32(math.NaN())
	if _, err := e.Encode(bad); err == nil {
		t.Error("NaN sample accepted")
	}
	bad[5] = float32(math.Inf(1))
	if _, err := e.Encode(bad); err == nil {
		t.Error("infinite sample accepted")
	}
	if o := e.Options(); o.Bitrate != 32000 || o.Frame != 20*time.Millisecond || o.Channels != 2 {
		t.Errorf("defaults %+v", o)
	}
}

// TestNoCodecLeaks: every decoder and encoder made is freed by Close (the C
// side counts them).
func TestNoCodecLeaks(t *testing.T) {
	before := liveCodecs()
	var ds []*Decoder
	var es []*Encoder
	for i := 0; i < 50; i++ {
		d, err := NewDecoder()
		if err != nil {
			t.Fatal(err)
		}
		e, err := NewEncoder(EncoderOptions{})
		if err != nil {
			t.Fatal(err)
		}
		ds, es = append(ds, d), append(es, e)
	}
	if n := liveCodecs() - before; n != 100 {
		t.Fatalf("%d codecs live after making 100", n)
	}
	for i := range ds {
		ds[i].Close()
		es[i].Close()
		es[i].Close()
	}
	if n := liveCodecs() - before; n != 0 {
		t.Errorf("%d codecs leaked", n)
	}
	// A failed NewEncoder frees what libopus made.
	if _, err := NewEncoder(EncoderOptions{Bitrate: 1}); err == nil {
		t.Fatal("bitrate 1 accepted")
	}
	if n := liveCodecs() - before; n != 0 {
		t.Errorf("%d codecs leaked by a refused encoder", n)
	}
}

// FuzzDecode feeds arbitrary bytes to a fresh decoder and to one in the
// middle of a real voice stream: never a crash, and ParsePacket's verdict
// is libopus's own (a packet it accepts decodes to exactly the samples it
// announces; one it refuses, libopus refuses too).
func FuzzDecode(f *testing.F) {
	pcm := voice(f)
	packets := encodeAll(f, newEncoder(f, EncoderOptions{}), pcm[:SampleRate/2])
	for _, p := range packets[:5] {
		f.Add(p)
	}
	for _, frame := range []time.Duration{2500 * time.Microsecond, 60 * time.Millisecond} {
		f.Add(encodeAll(f, newEncoder(f, EncoderOptions{Frame: frame, Channels: 2}), make([]float32, 5760))[0])
	}
	f.Add([]byte{})
	f.Add([]byte{31<<3 | 3, 0xc0 | 3, 255, 3, 5, 7})
	fresh, primed, raw := newDecoder(f), newDecoder(f), newDecoder(f)
	low := newDecoderAt(f, 16000) // the pipeline's
	f.Fuzz(func(t *testing.T, data []byte) {
		info, perr := ParsePacket(data)
		out, err := fresh.Decode(data)
		if (err == nil) != (perr == nil) {
			t.Fatalf("ParsePacket: %v; Decode: %v", perr, err)
		}
		if err == nil && len(out) != info.Samples() {
			t.Fatalf("decoded %d samples, packet says %d", len(out), info.Samples())
		}
		out, err = low.Decode(data)
		if (err == nil) != (perr == nil) {
			t.Fatalf("ParsePacket: %v; Decode at 16 kHz: %v", perr, err)
		}
		if err == nil && len(out) != info.Samples()/3 {
			t.Fatalf("decoded %d samples at 16 kHz, packet says %d at 48 kHz", len(out), info.Samples())
		}
		if len(data) > 0 && len(data) <= MaxPacketBytes {
			_, got, lerr := raw.decodeRaw(nil, data, MaxPacketSamples, false)
			if (lerr == nil) != (perr == nil) {
				t.Fatalf("ParsePacket: %v; libopus itself: %v", perr, lerr)
			}
			if lerr == nil && got != info.Samples() {
				t.Fatalf("libopus decoded %d samples, ParsePacket says %d", got, info.Samples())
			}
		}
		for _, p := range packets[:3] {
			if _, err := primed.Decode(p); err != nil {
				t.Fatalf("real packet: %v", err)
			}
		}
		primed.Decode(data)
		if _, err := primed.DecodeLost(20 * time.Millisecond); err != nil {
			t.Fatalf("concealment after a fuzzed packet: %v", err)
		}
	})
}

// BenchmarkDecode: the cost of decoding a candidate's microphone, per 20 ms
// packet of real voice at 32 kb/s (ns/op) and per second of audio, at
// 48 kHz and straight at 16 kHz (what the speech detector takes).
func BenchmarkDecode(b *testing.B) {
	packets := encodeAll(b, newEncoder(b, EncoderOptions{}), voice(b))
	for _, rate := range []int{SampleRate, 16000} {
		b.Run(fmt.Sprintf("%dHz", rate), func(b *testing.B) {
			d := newDecoderAt(b, rate)
			out := make([]float32, 0, 960)
			i := 0
			for b.Loop() {
				var err error
				if out, err = d.AppendDecode(out[:0], packets[i%len(packets)]); err != nil {
					b.Fatal(err)
				}
				i++
			}
			perPacket := float64(b.Elapsed().Nanoseconds()) / float64(b.N)
			b.ReportMetric(perPacket*50/1e6, "ms/audio-s")
		})
	}
}

// BenchmarkEncode: what a simulated microphone costs, per 20 ms frame.
func BenchmarkEncode(b *testing.B) {
	pcm := voice(b)
	e := newEncoder(b, EncoderOptions{})
	i := 0
	for b.Loop() {
		pos := (i * 960) % (len(pcm) - 960)
		if _, err := e.Encode(pcm[pos : pos+960]); err != nil {
			b.Fatal(err)
		}
		i++
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)*50/1e6, "ms/audio-s")
}

// A decoder at 16 kHz gives what decoding at 48 kHz and filtering down
// gives: a third of the samples, packet by packet and for concealment, and
// the same voice.
func TestDecoderAtLowerRate(t *testing.T) {
	if _, err := NewDecoderAt(44100); err == nil {
		t.Error("a decoder at 44.1 kHz was made; libopus has no such rate")
	}
	packets := encodeAll(t, newEncoder(t, EncoderOptions{}), voice(t))
	full, low := newDecoder(t), newDecoderAt(t, 16000)
	if low.Rate() != 16000 || full.Rate() != SampleRate {
		t.Fatalf("rates %d and %d", full.Rate(), low.Rate())
	}
	out48 := decodeAll(t, full, packets)
	var out16 []float32
	for i, p := range packets {
		n := len(out16)
		var err error
		if out16, err = low.AppendDecode(out16, p); err != nil {
			t.Fatal(err)
		}
		if got := len(out16) - n; got != 320 {
			t.Fatalf("packet %d: %d samples at 16 kHz, want 320", i, got)
		}
	}
	lost, err := low.DecodeLost(40 * time.Millisecond)
	if err != nil || len(lost) != 640 {
		t.Fatalf("40 ms concealed at 16 kHz: %d samples, %v; want 640", len(lost), err)
	}
	// The filter delays its output by a few samples more than libopus's
	// own path; at the best alignment within 4 ms the two must match.
	filtered := audio.Resample48to16(out48)
	lag := bestLag(out16, filtered, 64)
	_, corr := compare(out16, filtered, lag)
	if corr < 0.9 {
		t.Errorf("the 16 kHz decode correlates %.3f with the 48 kHz decode filtered down (lag %d), want ≥ 0.9", corr, lag)
	}
	t.Logf("correlation with the 48 kHz decode filtered down: %.3f at a lag of %d samples", corr, lag)
}
