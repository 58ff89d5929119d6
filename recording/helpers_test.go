package recording

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pion/rtp"
	"github.com/pion/rtp/codecs"
	"github.com/pion/webrtc/v4/pkg/media/ivfreader"
	"github.com/pion/webrtc/v4/pkg/media/oggreader"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"invigil/internal/testassets"
	"invigil/media"
	"invigil/vpx"
)

const (
	clipSeconds = 5
	clipFPS     = 15
	opusFrame   = 20 * time.Millisecond
)

// clip is real media made once per test binary: VP8 of a real photo at
// 640×480, 15 fps, a keyframe every 2 s, and Opus of a 440 Hz tone in
// 20 ms packets, both 5 s long.
type clip struct {
	video    [][]byte
	keyframe []bool
	audio    [][]byte
}

var (
	clipOnce sync.Once
	clipData *clip
	clipErr  error
	clipDir  string
)

func TestMain(m *testing.M) {
	code := m.Run()
	if clipDir != "" {
		_ = os.RemoveAll(clipDir)
	}
	os.Exit(code)
}

func requireTool(t testing.TB, name string) {
	t.Helper()
	if _, err := exec.LookPath(name); err != nil {
		t.Fatalf("%s not found (%v): install it with `apt-get install ffmpeg` or run `make test`", name, err)
	}
}

func testClip(t testing.TB) *clip {
	t.Helper()
	requireTool(t, "ffmpeg")
	photo := testassets.Photo(t, "messi5.jpg")
	clipOnce.Do(func() { clipData, clipErr = makeClip(photo) })
	if clipErr != nil {
		t.Fatalf("make test clip: %v", clipErr)
	}
	return clipData
}

func makeClip(photo string) (*clip, error) {
	dir, err := os.MkdirTemp("", "invigil-recording-clip-")
	if err != nil {
		return nil, err
	}
	clipDir = dir
	ivf := filepath.Join(dir, "clip.ivf")
	ogg := filepath.Join(dir, "a.ogg")
	secs := strconv.Itoa(clipSeconds)
	// A slow zoom so that inter frames carry real changes, as a camera's do.
	if out, err := exec.Command("ffmpeg", "-v", "error", "-y", "-loop", "1", "-i", photo, "-t", secs,
		"-vf", "scale=800:600,zoompan=z='1+0.002*on':d=1:s=640x480:fps=15", "-r", "15",
		"-c:v", "libvpx", "-deadline", "realtime", "-cpu-used", "8", "-b:v", "500k", "-g", "30", "-auto-alt-ref", "0", "-lag-in-frames", "0", "-f", "ivf", ivf).CombinedOutput(); err != nil {
		return nil, errors.New("ffmpeg vp8: " + err.Error() + ": " + string(out))
	}
	if out, err := exec.Command("ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", "sine=frequency=440:duration="+secs,
		"-c:a", "libopus", "-b:a", "32k", "-frame_duration", "20", "-page_duration", "20000", ogg).CombinedOutput(); err != nil {
		return nil, errors.New("ffmpeg opus: " + err.Error() + ": " + string(out))
	}
	c := &clip{}
	f, err := os.Open(ivf)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	ir, _, err := ivfreader.NewWith(f)
	if err != nil {
		return nil, err
	}
	for {
		frame, _, err := ir.ParseNextFrame()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, err
		}
		hdr, err := vpx.ParseHeader(frame)
		if err != nil {
			return nil, fmt.Errorf("ffmpeg wrote a frame that does not parse as VP8: %w", err)
		}
		c.video = append(c.video, frame)
		c.keyframe = append(c.keyframe, hdr.Keyframe)
	}
	g, err := os.Open(ogg)
	if err != nil {
		return nil, err
	}
	defer g.Close()
	or, _, err := oggreader.NewWith(g)
	if err != nil {
		return nil, err
	}
	for {
		page, hdr, err := or.ParseNextPage()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, err
		}
		if bytes.HasPrefix(page, []byte("OpusTags")) || hdr.GranulePosition == 0 {
			continue
		}
		c.audio = append(c.audio, page)
	}
	if len(c.video) != clipSeconds*clipFPS || !c.keyframe[0] {
		return nil, errors.New("unexpected clip: " + strconv.Itoa(len(c.video)) + " video frames")
	}
	if len(c.audio) < clipSeconds*50-2 {
		return nil, errors.New("unexpected clip: " + strconv.Itoa(len(c.audio)) + " opus packets")
	}
	return c, nil
}

// publisher plays the clip into track writers the way the SFU would:
// RTP from pion's packetizers, arrival times spaced like real time but
// handed over as fast as the recorder takes them.
type publisher struct {
	t      testing.TB
	clip   *clip
	video  media.PacketWriter
	audio  media.PacketWriter
	vp, ap rtp.Packetizer
	vi, ai int // frames sent so far
	// content is the clip frame sent next; like a browser, the publisher
	// answers a keyframe request with a keyframe
	content       int
	keyframesSent int32
	deaf          bool // ignores keyframe requests
	// lockstep makes every write wait until the recorder has handled it,
	// so that its keyframe requests reach the publisher in media time
	// even though media is fed faster than real time.
	lockstep     bool
	base         time.Time
	jitter       func(i int) time.Duration
	mutate       func(p *rtp.Packet, video bool) []*rtp.Packet
	keyframeAsks atomic.Int32
	// the SFU's clock for each track, which normalises packets before
	// any tap sees them
	vclock, aclock *media.Clock
}

func newPublisher(t testing.TB, c *clip, base time.Time) *publisher {
	return &publisher{
		t: t, clip: c, base: base, vclock: media.NewClock(90000), aclock: media.NewClock(48000),
		// Timestamps and sequence numbers start just before they wrap.
		vp: rtp.NewPacketizerWithOptions(1200, &codecs.VP8Payloader{EnablePictureID: true},
			rtp.NewFixedSequencer(65500), 90000, rtp.WithSSRC(0x1111), rtp.WithPayloadType(96),
			rtp.WithTimestamp(0xFFFFFFFF-90000)),
		ap: rtp.NewPacketizerWithOptions(1200, &codecs.OpusPayloader{},
			rtp.NewFixedSequencer(65000), 48000, rtp.WithSSRC(0x2222), rtp.WithPayloadType(111),
			rtp.WithTimestamp(0xFFFFFFFF-48000*2)),
	}
}

// track describes one of the publisher's tracks.
func (p *publisher) track(kind media.Kind, session, identity, role string, connection int) media.Track {
	t := media.Track{
		SessionID: session, Identity: identity, Role: role, Room: "exam-1",
		TrackID: string(kind) + "-" + strconv.Itoa(connection), Kind: kind, Connection: connection,
		Started: p.base,
	}
	if kind == media.Video {
		t.MimeType, t.ClockRate, t.PayloadType = "video/VP8", 90000, 96
		t.RequestKeyframe = func() { p.keyframeAsks.Add(1) }
	} else {
		t.MimeType, t.ClockRate, t.Channels, t.PayloadType = "audio/opus", 48000, 2, 111
	}
	return t
}

// start registers both tracks with the recorder.
func (p *publisher) start(r *Recorder, session, identity, role string, connection int) {
	p.video = r.TrackStarted(p.track(media.Video, session, identity, role, connection))
	p.audio = r.TrackStarted(p.track(media.Audio, session, identity, role, connection))
	if p.video == nil || p.audio == nil {
		p.t.Fatal("recorder did not tap the tracks")
	}
}

// feed sends the next d of media (looping the clip), video and audio
// interleaved by media time.
func (p *publisher) feed(d time.Duration) {
	end := p.mediaTime() + d
	for {
		vt := time.Duration(p.vi) * time.Second / clipFPS
		at := time.Duration(p.ai) * opusFrame
		if vt >= end && at >= end {
			return
		}
		if vt <= at {
			if asks := p.keyframeAsks.Load(); asks > p.keyframesSent && !p.deaf {
				p.keyframesSent = asks
				for !p.clip.keyframe[p.content%len(p.clip.video)] {
					p.content++
				}
			}
			frame := p.clip.video[p.content%len(p.clip.video)]
			p.send(p.video, p.vp.Packetize(frame, 90000/clipFPS), vt, p.vi, true)
			p.vi++
			p.content++
		} else {
			pkt := p.clip.audio[p.ai%len(p.clip.audio)]
			p.send(p.audio, p.ap.Packetize(pkt, 960), at, p.ai, false)
			p.ai++
		}
	}
}

func (p *publisher) send(w media.PacketWriter, pkts []*rtp.Packet, at time.Duration, i int, video bool) {
	arrival := p.base.Add(at)
	if p.jitter != nil {
		arrival = arrival.Add(p.jitter(i))
	}
	for _, pkt := range pkts {
		out := []*rtp.Packet{pkt}
		if p.mutate != nil {
			out = p.mutate(pkt, video)
		}
		clock := p.aclock
		if video {
			clock = p.vclock
		}
		for _, q := range out {
			stamped, ok := clock.Stamp(q.Clone(), arrival)
			if !ok {
				continue // stray: the SFU hands it to no tap
			}
			w.WritePacket(stamped)
			if tw, ok := w.(*trackWriter); ok && p.lockstep {
				for i := 0; tw.c.handled.Load() < tw.c.queued.Load() && !tw.c.stopped.Load(); i++ {
					if i < 1000 {
						runtime.Gosched()
					} else {
						time.Sleep(50 * time.Microsecond)
					}
				}
			}
		}
	}
}

// mediaTime is how much media has been fed.
func (p *publisher) mediaTime() time.Duration {
	return max(time.Duration(p.vi)*time.Second/clipFPS, time.Duration(p.ai)*opusFrame)
}

func (p *publisher) stop() {
	p.video.Close()
	p.audio.Close()
}

func newTestRecorder(t testing.TB, dir string, mod func(*Config)) (*Recorder, *prometheus.Registry, *lockedBuffer) {
	t.Helper()
	reg := prometheus.NewRegistry()
	logs := &lockedBuffer{}
	cfg := Config{
		DataDir:       dir,
		FlushInterval: 200 * time.Millisecond,
		Registerer:    reg,
		Logger:        slog.New(slog.NewTextHandler(io.MultiWriter(logs, testWriter{t}), &slog.HandlerOptions{Level: slog.LevelDebug})),
	}
	if _, bench := t.(*testing.B); bench {
		cfg.Logger = newQuietLogger(logs) // keep benchmark output to figures
	}
	if mod != nil {
		mod(&cfg)
	}
	r, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return r, reg, logs
}

// newQuietLogger logs warnings and errors to the buffer only.
func newQuietLogger(b *lockedBuffer) *slog.Logger {
	return slog.New(slog.NewTextHandler(b, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(string(bytes.TrimRight(p, "\n")))
	return len(p), nil
}

// metricValue reads a counter or gauge, summed over the series whose
// labels include the given ones.
func metricValue(t testing.TB, reg *prometheus.Registry, name string, labels map[string]string) float64 {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var sum float64
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
	series:
		for _, m := range f.GetMetric() {
			have := map[string]string{}
			for _, l := range m.GetLabel() {
				have[l.GetName()] = l.GetValue()
			}
			for k, v := range labels {
				if have[k] != v {
					continue series
				}
			}
			sum += value(m)
		}
	}
	return sum
}

func value(m *dto.Metric) float64 {
	switch {
	case m.GetCounter() != nil:
		return m.GetCounter().GetValue()
	case m.GetGauge() != nil:
		return m.GetGauge().GetValue()
	}
	return 0
}

// probe is what ffprobe says about a file, frames counted by decoding.
type probe struct {
	Streams []struct {
		CodecName    string `json:"codec_name"`
		CodecType    string `json:"codec_type"`
		Width        int    `json:"width"`
		Height       int    `json:"height"`
		NbReadFrames string `json:"nb_read_frames"`
		NbReadPkts   string `json:"nb_read_packets"`
	} `json:"streams"`
	Format struct {
		Duration string `json:"duration"`
	} `json:"format"`
}

func ffprobe(t testing.TB, path string) probe {
	t.Helper()
	requireTool(t, "ffprobe")
	out, err := exec.Command("ffprobe", "-v", "error", "-count_frames", "-count_packets",
		"-show_entries", "stream=codec_name,codec_type,width,height,nb_read_frames,nb_read_packets:format=duration",
		"-of", "json", path).Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			t.Fatalf("ffprobe %s: %v: %s", path, err, ee.Stderr)
		}
		t.Fatalf("ffprobe %s: %v", path, err)
	}
	var p probe
	if err := json.Unmarshal(out, &p); err != nil {
		t.Fatalf("ffprobe output: %v: %s", err, out)
	}
	return p
}

// streamFrames is the decoded frame count of the first stream of a type.
func (p probe) streamFrames(t testing.TB, codecType string) int {
	t.Helper()
	for _, s := range p.Streams {
		if s.CodecType == codecType {
			n, err := strconv.Atoi(s.NbReadFrames)
			if err != nil {
				t.Fatalf("ffprobe frame count %q: %v", s.NbReadFrames, err)
			}
			return n
		}
	}
	t.Fatalf("no %s stream in %+v", codecType, p)
	return 0
}

func (p probe) duration(t testing.TB) time.Duration {
	t.Helper()
	f, err := strconv.ParseFloat(p.Format.Duration, 64)
	if err != nil {
		t.Fatalf("ffprobe duration %q: %v", p.Format.Duration, err)
	}
	return time.Duration(f * float64(time.Second))
}

// decodeErrors runs a full decode of the file and returns what ffmpeg
// complained about (empty for a clean file).
func decodeErrors(t testing.TB, path string) string {
	t.Helper()
	out, err := exec.Command("ffmpeg", "-v", "error", "-i", path, "-f", "null", "-").CombinedOutput()
	if err != nil {
		return err.Error() + ": " + string(out)
	}
	return string(out)
}

// packetTimes lists the presentation times of a stream's packets.
func packetTimes(t testing.TB, path, stream string) []time.Duration {
	t.Helper()
	out, err := exec.Command("ffprobe", "-v", "error", "-select_streams", stream,
		"-show_entries", "packet=pts_time", "-of", "csv=p=0", path).Output()
	if err != nil {
		t.Fatalf("ffprobe packets of %s: %v", path, err)
	}
	var times []time.Duration
	for _, line := range bytes.Fields(out) {
		f, err := strconv.ParseFloat(string(bytes.TrimRight(line, ",")), 64)
		if err != nil {
			t.Fatalf("ffprobe pts %q: %v", line, err)
		}
		times = append(times, time.Duration(f*float64(time.Second)))
	}
	return times
}

func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
