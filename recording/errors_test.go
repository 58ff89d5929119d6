package recording

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pion/rtp"
)

// fullDisk is a segment file on a disk with `free` bytes left: writes
// beyond that fail with ENOSPC, like the kernel's. Used where mounting a
// small tmpfs is not permitted.
type fullDisk struct {
	*os.File
	free int64
}

func (f *fullDisk) Write(p []byte) (int, error) {
	if int64(len(p)) <= f.free {
		f.free -= int64(len(p))
		return f.File.Write(p)
	}
	n, _ := f.File.Write(p[:f.free])
	f.free = 0
	return n, &os.PathError{Op: "write", Path: f.Name(), Err: syscall.ENOSPC}
}

func smallTmpfs(t *testing.T, dir string) bool {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", dir).CombinedOutput()
	if err != nil {
		t.Logf("cannot mount a 64 KiB tmpfs (%v: %s); simulating a full disk at the file layer", err, strings.TrimSpace(string(out)))
		return false
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", dir).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v: %s", dir, err, out)
		}
	})
	return true
}

// A full disk stops that participant's recording with one clear log line
// and a metric; WritePacket keeps returning at once and takes nothing more;
// what was written stays decodable.
func TestDiskFull(t *testing.T) {
	for _, mode := range []string{"tmpfs", "enospc-file"} {
		t.Run(mode, func(t *testing.T) {
			c := testClip(t)
			dir := filepath.Join(t.TempDir(), "data")
			mounted := mode == "tmpfs" && smallTmpfs(t, dir)
			r, reg, logs := newTestRecorder(t, dir, nil)
			defer r.Close()
			if !mounted {
				r.createSink = func(path string) (fileSink, error) {
					f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
					if err != nil {
						return nil, err
					}
					return &fullDisk{File: f, free: 60 << 10}, nil
				}
			}
			p := newPublisher(t, c, t0)
			p.start(r, "sess-1", "cand-42", "candidate", 1)
			p.feed(5 * time.Second)
			waitFor(t, "the disk-full error", func() bool {
				return metricValue(t, reg, "invigil_recording_errors_total", map[string]string{"reason": reasonDiskFull}) == 1
			})
			log := logs.String()
			if !strings.Contains(log, `msg="recording stopped for this connection" `) || !strings.Contains(log, "reason=disk_full") ||
				!strings.Contains(log, "free disk space") || !strings.Contains(log, "no space left on device") {
				t.Errorf("log does not say clearly what happened:\n%s", log)
			}
			// Forwarding goes on: the writer takes nothing and drops nothing.
			waitFor(t, "the writer to stop", func() bool { return p.video.(*trackWriter).c.stopped.Load() })
			queued := len(p.video.(*trackWriter).c.packets)
			p.feed(5 * time.Second)
			if n := len(p.video.(*trackWriter).c.packets); n != queued {
				t.Errorf("%d packets queued to a stopped recording", n-queued)
			}
			if got := metricValue(t, reg, "invigil_recording_dropped_packets_total", nil); got != 0 {
				t.Errorf("dropped packets %v after the recording stopped", got)
			}
			if got := metricValue(t, reg, "invigil_recording_active_segments", nil); got != 0 {
				t.Errorf("active segments %v", got)
			}
			p.stop()

			// The part that reached the disk is a clean prefix.
			files, _ := filepath.Glob(filepath.Join(SessionDir(dir, "exam-1", "cand-42", "sess-1"), "seg-*.webm"))
			if len(files) != 1 {
				t.Fatalf("segment files %v", files)
			}
			if e := decodeErrors(t, files[0]); e != "" {
				t.Errorf("the partial file does not decode cleanly: %s", e)
			}
			if got := metricValue(t, reg, "invigil_recording_errors_total", nil); got != 1 {
				t.Errorf("errors counted %v, want 1", got)
			}
		})
	}
}

// An unwritable data directory (here a path under a regular file — root
// ignores permission bits) is reported at start and per participant.
func TestUnwritableDirectory(t *testing.T) {
	c := testClip(t)
	file := filepath.Join(t.TempDir(), "not-a-dir")
	if err := os.WriteFile(file, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	r, reg, logs := newTestRecorder(t, filepath.Join(file, "data"), nil)
	defer r.Close()
	if got := metricValue(t, reg, "invigil_recording_errors_total", map[string]string{"reason": reasonUnwritable}); got != 1 {
		t.Errorf("unwritable at start counted %v", got)
	}
	p := newPublisher(t, c, t0)
	p.start(r, "sess-1", "cand-42", "candidate", 1)
	p.feed(2 * time.Second)
	waitFor(t, "the participant's error", func() bool {
		return metricValue(t, reg, "invigil_recording_errors_total", map[string]string{"reason": reasonUnwritable}) == 2
	})
	if log := logs.String(); !strings.Contains(log, "not a directory") || !strings.Contains(log, "writable directory") {
		t.Errorf("log does not say what to do:\n%s", log)
	}
	waitFor(t, "the writer to stop", func() bool { return p.video.(*trackWriter).c.stopped.Load() })
	queued := len(p.video.(*trackWriter).c.packets)
	p.feed(2 * time.Second)
	if n := len(p.video.(*trackWriter).c.packets); n != queued {
		t.Errorf("%d packets queued to a stopped recording", n-queued)
	}
	if got := metricValue(t, reg, "invigil_recording_dropped_packets_total", nil); got != 0 {
		t.Errorf("dropped %v", got)
	}
	p.stop()
}

// Garbage from a publisher — corrupt and truncated payloads, packets with
// wild sequence numbers and timestamps, empty and duplicated packets — is
// survived: the recording goes on, ffmpeg reads it, and once the garbage
// stops the picture is back at the next keyframe.
func TestGarbageRTPSurvived(t *testing.T) {
	c := testClip(t)
	dir := t.TempDir()
	// Media is fed faster than real time: let every keyframe request
	// through, as the SFU's (wall-clock) rate limit would in real time.
	r, reg, logs := newTestRecorder(t, dir, func(cfg *Config) { cfg.KeyframeRetry = time.Nanosecond })
	p := newPublisher(t, c, t0)
	n := 0
	garbage := func(pkt *rtp.Packet, video bool) []*rtp.Packet {
		n++
		bad := pkt.Clone()
		switch n % 11 {
		case 1: // bytes flipped inside the payload
			for i := len(bad.Payload) / 2; i < len(bad.Payload); i += 7 {
				bad.Payload[i] ^= 0x5a
			}
			return []*rtp.Packet{bad}
		case 2: // payload replaced by noise
			for i := range bad.Payload {
				bad.Payload[i] = byte(i*131 + n)
			}
			return []*rtp.Packet{bad}
		case 3: // truncated to the descriptor
			bad.Payload = bad.Payload[:1]
			return []*rtp.Packet{bad}
		case 4: // an extra packet from nowhere in sequence and time
			bad.SequenceNumber += uint16(n * 9973)
			bad.Timestamp += uint32(n) * 123456789
			return []*rtp.Packet{pkt, bad}
		case 5: // empty
			bad.Payload = nil
			return []*rtp.Packet{pkt, bad}
		case 6: // duplicated
			return []*rtp.Packet{pkt, bad}
		case 7: // a keyframe header on garbage
			bad.Payload = append([]byte{0x90, 0x80, 0x01, 0x10, 0x00, 0x00, 0x9d, 0x01, 0x2a, 0xff, 0xff, 0xff, 0xff}, bad.Payload...)
			return []*rtp.Packet{bad}
		case 8: // a timestamp a little off
			bad.Timestamp += 45000
			return []*rtp.Packet{bad}
		}
		return []*rtp.Packet{pkt}
	}
	p.lockstep = true
	p.start(r, "sess-1", "cand-42", "candidate", 1)
	p.feed(3 * time.Second)
	p.mutate = garbage
	p.feed(4 * time.Second)
	p.mutate = nil
	p.feed(3 * time.Second)
	p.stop()
	r.Close()

	if strings.Contains(logs.String(), "panicked") {
		t.Errorf("the depacketiser panicked:\n%s", logs.String())
	}
	segs, err := Segments(dir, "exam-1", "cand-42", "sess-1")
	if err != nil || len(segs) != 1 {
		t.Fatalf("segments %v %v", segs, err)
	}
	seg := segs[0]
	if !seg.Complete {
		t.Errorf("incomplete: %s", seg.Error)
	}
	if out, err := exec.Command("ffmpeg", "-v", "error", "-i", seg.Path, "-f", "null", "-").CombinedOutput(); err != nil {
		t.Errorf("ffmpeg gave up on %s: %v: %s", seg.File, err, out)
	}
	pr := ffprobe(t, seg.Path)
	if d := pr.duration(t); !near(d, 10*time.Second, time.Second) {
		t.Errorf("recorded %v of 10 s", d)
	}
	var before, after int
	for _, ts := range packetTimes(t, seg.Path, "v:0") {
		switch {
		case ts < 3*time.Second:
			before++
		case ts >= 7*time.Second:
			after++
		}
	}
	if before != 45 || after < 40 {
		t.Errorf("video frames before the garbage %d of 45, after it %d of 45", before, after)
	}
	if a := pr.streamFrames(t, "audio"); a < 400 {
		t.Errorf("audio frames %d of 500", a)
	}
	t.Logf("dropped frames: invalid %v, before keyframe %v, late %v; dropped packets %v",
		metricValue(t, reg, "invigil_recording_dropped_frames_total", map[string]string{"reason": dropInvalid}),
		metricValue(t, reg, "invigil_recording_dropped_frames_total", map[string]string{"reason": dropBeforeKeyframe}),
		metricValue(t, reg, "invigil_recording_dropped_frames_total", map[string]string{"reason": dropLate}),
		metricValue(t, reg, "invigil_recording_dropped_packets_total", nil))
}

// Padding-only packets (bandwidth probes) take sequence numbers but are
// not loss: no frame is dropped for them.
func TestPaddingIsNotLoss(t *testing.T) {
	c := testClip(t)
	dir := t.TempDir()
	r, reg, _ := newTestRecorder(t, dir, nil)
	p := newPublisher(t, c, t0)
	p.mutate = func(pkt *rtp.Packet, video bool) []*rtp.Packet {
		if !video || !pkt.Marker {
			return []*rtp.Packet{pkt}
		}
		out := []*rtp.Packet{pkt}
		for _, pad := range p.vp.GeneratePadding(3) {
			pad.Timestamp = pkt.Timestamp
			out = append(out, pad)
		}
		return out
	}
	p.start(r, "sess-1", "cand-42", "candidate", 1)
	p.feed(3 * time.Second)
	p.stop()
	r.Close()
	if got := metricValue(t, reg, "invigil_recording_frames_written_total", map[string]string{"kind": "video"}); got != 45 {
		t.Errorf("video frames written %v of 45; dropped %v", got,
			metricValue(t, reg, "invigil_recording_dropped_frames_total", nil))
	}
}

// A writer goroutine that cannot keep up costs dropped packets, counted,
// never a blocked WritePacket; the file resumes cleanly at a keyframe.
func TestQueueFullDropsAndRecovers(t *testing.T) {
	c := testClip(t)
	dir := t.TempDir()
	r, reg, _ := newTestRecorder(t, dir, func(cfg *Config) {
		cfg.QueueSize = 4
		cfg.KeyframeRetry = time.Nanosecond
	})
	p := newPublisher(t, c, t0)
	p.start(r, "sess-1", "cand-42", "candidate", 1)
	p.lockstep = true
	p.feed(2 * time.Second)
	// Bursts far faster than the writer goroutine takes them.
	p.lockstep = false
	dropped := func() float64 {
		return metricValue(t, reg, "invigil_recording_dropped_packets_total", map[string]string{"reason": dropQueueFull})
	}
	for round := 0; round < 20 && dropped() == 0; round++ {
		p.feed(time.Second)
	}
	if dropped() == 0 {
		t.Fatal("a 4-packet queue never overflowed")
	}
	resumed := p.mediaTime()
	p.lockstep = true
	p.feed(3 * time.Second)
	p.stop()
	r.Close()

	segs, err := Segments(dir, "exam-1", "cand-42", "sess-1")
	if err != nil || len(segs) != 1 {
		t.Fatalf("segments %v %v", segs, err)
	}
	if e := decodeErrors(t, segs[0].Path); e != "" {
		t.Errorf("frames after a loss were written before a keyframe: %s", e)
	}
	var after int
	for _, ts := range packetTimes(t, segs[0].Path, "v:0") {
		if ts >= resumed {
			after++
		}
	}
	if after < 40 {
		t.Errorf("%d of 45 video frames recorded after the bursts", after)
	}
	t.Logf("dropped frames: invalid %v, before keyframe %v, late %v; dropped packets %v; keyframes asked %d",
		metricValue(t, reg, "invigil_recording_dropped_frames_total", map[string]string{"reason": dropInvalid}),
		metricValue(t, reg, "invigil_recording_dropped_frames_total", map[string]string{"reason": dropBeforeKeyframe}),
		metricValue(t, reg, "invigil_recording_dropped_frames_total", map[string]string{"reason": dropLate}),
		metricValue(t, reg, "invigil_recording_dropped_packets_total", nil), p.keyframeAsks.Load())
}
