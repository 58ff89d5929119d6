package recording

import (
	"errors"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/pion/rtp"

	"invigil/media"
)

var t0 = time.Date(2026, 3, 14, 9, 26, 53, 589_000_000, time.UTC)

func near(a, b, tol time.Duration) bool { return math.Abs(float64(a-b)) <= float64(tol) }

// A candidate publishes 5 s of real VP8 and Opus (timestamps and sequence
// numbers wrapping, arrival jittered): the file has both streams, every
// frame, the right duration and a timeline from RTP time.
func TestRecordsPlayableWebM(t *testing.T) {
	c := testClip(t)
	dir := t.TempDir()
	r, reg, _ := newTestRecorder(t, dir, nil)
	p := newPublisher(t, c, t0)
	// Arrival jitter of up to 40 ms must not move frames: media time
	// comes from RTP timestamps.
	p.jitter = func(i int) time.Duration { return time.Duration(i*7919%40) * time.Millisecond }
	p.start(r, "sess-1", "cand-42", "candidate", 1)
	p.feed(clipSeconds * time.Second)
	p.stop()
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}

	sessions, err := Sessions(dir, "exam-1", "cand-42")
	if err != nil {
		t.Fatal(err)
	}
	if len(sessions) != 1 || len(sessions[0].Segments) != 1 {
		t.Fatalf("want 1 session with 1 segment, got %+v", sessions)
	}
	seg := sessions[0].Segments[0]
	if !seg.Complete || seg.Error != "" || seg.Connection != 1 || seg.Bytes == 0 {
		t.Fatalf("segment not complete: %+v", seg)
	}
	if !seg.Start.Equal(t0) {
		t.Errorf("segment start %v, want the first packet's arrival %v", seg.Start, t0)
	}
	wantName := "seg-1-20260314T092653.589Z.webm"
	if seg.File != wantName || seg.Path != filepath.Join(dir, "recordings", "exam-1", "cand-42", "sess-1", wantName) {
		t.Errorf("segment file %q at %q", seg.File, seg.Path)
	}
	if len(seg.Tracks) != 2 || seg.Tracks[0].Codec != "V_VP8" || seg.Tracks[0].Width != 640 || seg.Tracks[1].Codec != "A_OPUS" {
		t.Errorf("segment tracks %+v", seg.Tracks)
	}
	if st, err := os.Stat(seg.Path); err != nil || st.Size() != seg.Bytes {
		t.Errorf("manifest says %d bytes, file: %v %v", seg.Bytes, st, err)
	}

	pr := ffprobe(t, seg.Path)
	if got := pr.streamFrames(t, "video"); got != len(c.video) {
		t.Errorf("video frames decoded: %d, fed %d", got, len(c.video))
	}
	if got := pr.streamFrames(t, "audio"); got < clipSeconds*50-2 {
		t.Errorf("audio frames decoded: %d, fed %d", got, clipSeconds*50)
	}
	if d := pr.duration(t); !near(d, clipSeconds*time.Second, time.Second) {
		t.Errorf("duration %v, fed %v", d, clipSeconds*time.Second)
	}
	if !near(seg.Duration(), clipSeconds*time.Second, time.Second) {
		t.Errorf("manifest duration %v", seg.Duration())
	}
	if e := decodeErrors(t, seg.Path); e != "" {
		t.Errorf("ffmpeg decode errors: %s", e)
	}
	// Frame i sits at i/15 s whatever the arrival jitter was.
	vts := packetTimes(t, seg.Path, "v:0")
	for i, ts := range vts {
		if want := time.Duration(i) * time.Second / clipFPS; !near(ts, want, 2*time.Millisecond) {
			t.Fatalf("video frame %d at %v, want %v", i, ts, want)
		}
	}
	ats := packetTimes(t, seg.Path, "a:0")
	if len(ats) == 0 || !near(ats[0], 0, 2*time.Millisecond) || !near(ats[len(ats)-1], time.Duration(len(ats)-1)*opusFrame, 2*time.Millisecond) {
		t.Errorf("audio timeline: first %v last %v of %d", ats[0], ats[len(ats)-1], len(ats))
	}

	if got := metricValue(t, reg, "invigil_recording_frames_written_total", map[string]string{"kind": "video"}); got != float64(len(c.video)) {
		t.Errorf("frames written metric %v", got)
	}
	if got := metricValue(t, reg, "invigil_recording_bytes_written_total", nil); got != float64(seg.Bytes) {
		t.Errorf("bytes metric %v, file %d", got, seg.Bytes)
	}
	if got := metricValue(t, reg, "invigil_recording_segments_total", nil); got != 1 {
		t.Errorf("segments metric %v", got)
	}
	if got := metricValue(t, reg, "invigil_recording_active_segments", nil); got != 0 {
		t.Errorf("active segments after close: %v", got)
	}
	if got := metricValue(t, reg, "invigil_recording_dropped_packets_total", nil); got != 0 {
		t.Errorf("dropped packets %v", got)
	}
}

// A reconnect (connection 2 of the same session) adds a second segment to
// the session's manifest, and Locate maps wall-clock times into them.
func TestReconnectSegmentsAndLocate(t *testing.T) {
	c := testClip(t)
	dir := t.TempDir()
	r, _, _ := newTestRecorder(t, dir, nil)
	defer r.Close()

	first := newPublisher(t, c, t0)
	first.start(r, "sess-1", "cand-42", "candidate", 1)
	first.feed(4 * time.Second)
	first.stop()

	// The candidate's Wi-Fi failed; 2 s later they are back on a hotspot.
	t1 := t0.Add(6 * time.Second)
	second := newPublisher(t, c, t1)
	second.start(r, "sess-1", "cand-42", "candidate", 2)
	second.feed(4 * time.Second)
	second.stop()

	var segs []Segment
	waitFor(t, "both segments complete", func() bool {
		var err error
		segs, err = Segments(dir, "exam-1", "cand-42", "sess-1")
		return err == nil && len(segs) == 2 && segs[0].Complete && segs[1].Complete
	})
	if segs[0].Connection != 1 || segs[1].Connection != 2 || !segs[1].Start.Equal(t1) {
		t.Fatalf("segments %+v", segs)
	}
	if !strings.HasPrefix(segs[1].File, "seg-2-") {
		t.Errorf("second segment named %q", segs[1].File)
	}

	path, off, err := Locate(dir, "exam-1", "cand-42", t0.Add(3200*time.Millisecond))
	if err != nil || path != segs[0].Path || !near(off, 3200*time.Millisecond, time.Millisecond) {
		t.Fatalf("Locate 3.2 s into segment 1: %q %v %v", path, off, err)
	}
	// The frame at that offset is the one published 3.2 s in (frame 48).
	vts := packetTimes(t, path, "v:0")
	if len(vts) <= 48 || !near(vts[48], off, 2*time.Millisecond) {
		t.Errorf("frame 48 of segment 1 at %v, Locate said %v", vts[48], off)
	}

	path, off, err = Locate(dir, "exam-1", "cand-42", t1.Add(1500*time.Millisecond))
	if err != nil || path != segs[1].Path || !near(off, 1500*time.Millisecond, time.Millisecond) {
		t.Fatalf("Locate into segment 2: %q %v %v", path, off, err)
	}
	if _, _, err := Locate(dir, "exam-1", "cand-42", t0.Add(-time.Hour)); !errors.Is(err, ErrNotRecorded) {
		t.Errorf("Locate an hour before: %v", err)
	}
	if _, _, err := Locate(dir, "exam-1", "someone-else", t0); !errors.Is(err, ErrNotRecorded) {
		t.Errorf("Locate an unknown candidate: %v", err)
	}
	for _, s := range segs {
		pr := ffprobe(t, s.Path)
		if n := pr.streamFrames(t, "video"); n != 60 {
			t.Errorf("%s: %d video frames, fed 60", s.File, n)
		}
		if d := pr.duration(t); !near(d, 4*time.Second, time.Second) {
			t.Errorf("%s: duration %v", s.File, d)
		}
	}
}

// Killing the process mid-recording (here: copying the file while it is
// still being written) leaves a file that decodes up to the last flush.
func TestCrashLeavesDecodableFile(t *testing.T) {
	c := testClip(t)
	dir := t.TempDir()
	r, _, _ := newTestRecorder(t, dir, nil)
	defer r.Close()
	p := newPublisher(t, c, t0)
	p.start(r, "sess-1", "cand-42", "candidate", 1)
	p.feed(4 * time.Second)

	var seg Segment
	waitFor(t, "a flush with 2.5 s of media", func() bool {
		segs, err := Segments(dir, "exam-1", "cand-42", "sess-1")
		if err != nil || len(segs) != 1 {
			return false
		}
		seg = segs[0]
		return seg.DurationMS >= 2500
	})
	b, err := os.ReadFile(seg.Path)
	if err != nil {
		t.Fatal(err)
	}
	crashed := filepath.Join(t.TempDir(), "crashed.webm")
	if err := os.WriteFile(crashed, b, 0o644); err != nil {
		t.Fatal(err)
	}
	if e := decodeErrors(t, crashed); e != "" {
		t.Errorf("decoding the crashed copy: %s", e)
	}
	pr := ffprobe(t, crashed)
	frames := pr.streamFrames(t, "video")
	wantMin := int(seg.DurationMS)*clipFPS/1000 - 1
	if frames < wantMin {
		t.Errorf("crashed copy decodes %d video frames; the manifest promised %d ms (%d frames)", frames, seg.DurationMS, wantMin)
	}
	if pr.streamFrames(t, "audio") < int(seg.DurationMS)/20-5 {
		t.Errorf("crashed copy has too little audio")
	}
	// The header's Duration was rewritten at the flush.
	if d := pr.duration(t); !near(d, seg.Duration(), time.Second) {
		t.Errorf("crashed copy reports duration %v, manifest %v", d, seg.Duration())
	}

	// Recording goes on and finishes normally.
	p.feed(time.Second)
	p.stop()
	waitFor(t, "segment complete", func() bool {
		segs, err := Segments(dir, "exam-1", "cand-42", "sess-1")
		return err == nil && len(segs) == 1 && segs[0].Complete
	})
	if n := ffprobe(t, seg.Path).streamFrames(t, "video"); n != 75 {
		t.Errorf("final file: %d video frames, fed 75", n)
	}
}

// Video that starts mid-stream is held back until a keyframe (and one is
// asked for); audio before it is kept.
func TestVideoStartsAtKeyframe(t *testing.T) {
	c := testClip(t)
	dir := t.TempDir()
	r, reg, _ := newTestRecorder(t, dir, nil)
	p := newPublisher(t, c, t0)
	p.start(r, "sess-1", "cand-42", "candidate", 1)
	p.deaf = true          // the next keyframe is the clip's own, at frame 30
	p.vi, p.content = 5, 5 // join 5 frames after a keyframe
	p.ai = 17
	p.feed(3 * time.Second)
	p.stop()
	r.Close()

	segs, err := Segments(dir, "exam-1", "cand-42", "sess-1")
	if err != nil || len(segs) != 1 {
		t.Fatalf("segments %v %v", segs, err)
	}
	pr := ffprobe(t, segs[0].Path)
	if n := pr.streamFrames(t, "video"); n != p.vi-30 {
		t.Errorf("video frames %d, want %d (from the keyframe at frame 30 on)", n, p.vi-30)
	}
	if e := decodeErrors(t, segs[0].Path); e != "" {
		t.Errorf("decode: %s", e)
	}
	if p.keyframeAsks.Load() == 0 {
		t.Error("no keyframe was requested")
	}
	if got := metricValue(t, reg, "invigil_recording_dropped_frames_total", map[string]string{"reason": dropBeforeKeyframe}); got != 25 {
		t.Errorf("frames dropped before the keyframe: %v, want 25", got)
	}
	// Audio from before the first keyframe is in the file: the segment
	// starts with the first audio packet.
	if !segs[0].Start.Equal(t0.Add(17 * opusFrame)) {
		t.Errorf("segment start %v", segs[0].Start)
	}
}

// A track that joins a connection whose file is already open (a staff
// member turning the camera on after talking) gets a new segment with all
// tracks; staff are recorded like candidates.
func TestTrackAddedLaterStartsNewSegment(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := testClip(t)
		dir := t.TempDir()
		r, _, _ := newTestRecorder(t, dir, func(cfg *Config) { cfg.TrackWait = 100 * time.Millisecond })
		p := newPublisher(t, c, t0)
		p.audio = r.TrackStarted(p.track(media.Audio, "sess-9", "examiner-1", "examiner", 1))
		p.video = discard{}
		p.feed(time.Second)
		// Past TrackWait: an audio-only file opens. The bubble's clock moves
		// on at once, as soon as every goroutine of the recorder is idle.
		time.Sleep(300 * time.Millisecond)
		p.feed(time.Second)
		p.video = r.TrackStarted(p.track(media.Video, "sess-9", "examiner-1", "examiner", 1))
		p.content = 30 // a keyframe
		p.feed(2 * time.Second)
		p.stop()
		r.Close()

		sessions, err := Sessions(dir, "exam-1", "examiner-1")
		if err != nil || len(sessions) != 1 {
			t.Fatalf("sessions %v %v", sessions, err)
		}
		s := sessions[0]
		if s.Role != "examiner" || len(s.Segments) != 2 {
			t.Fatalf("session %+v", s)
		}
		if len(s.Segments[0].Tracks) != 1 || len(s.Segments[1].Tracks) != 2 {
			t.Errorf("tracks per segment: %+v / %+v", s.Segments[0].Tracks, s.Segments[1].Tracks)
		}
		for _, seg := range s.Segments {
			if !seg.Complete {
				t.Errorf("%s incomplete", seg.File)
			}
			if e := decodeErrors(t, seg.Path); e != "" {
				t.Errorf("%s: %s", seg.File, e)
			}
		}
		if n := ffprobe(t, s.Segments[1].Path).streamFrames(t, "video"); n < 25 {
			t.Errorf("second segment has %d video frames", n)
		}
	})
}

type discard struct{}

func (discard) WritePacket(media.Packet) {}
func (discard) Close()                   {}

// Keyframes whose VP8 header is broken never reach the file, nor do the
// frames that depend on them: the recording freezes from the bad keyframe
// to the next good one, each dropped frame is counted, a keyframe is
// asked for, and ffmpeg decodes the file without an error.
func TestCorruptKeyframesDropped(t *testing.T) {
	good := testClip(t)
	var keyframes []int
	for i, kf := range good.keyframe {
		if kf {
			keyframes = append(keyframes, i)
		}
	}
	if len(good.video) != 75 || len(keyframes) != 3 || keyframes[1] != 30 || keyframes[2] != 60 {
		t.Fatalf("test clip: %d frames, keyframes at %v; want 75 with keyframes at 0, 30, 60", len(good.video), keyframes)
	}
	// The first keyframe loses its start code; the third claims a first
	// partition longer than the frame.
	c := &clip{video: append([][]byte(nil), good.video...), keyframe: good.keyframe, audio: good.audio}
	noStartCode := append([]byte(nil), good.video[0]...)
	noStartCode[3], noStartCode[4], noStartCode[5] = 0, 0, 0
	c.video[0] = noStartCode
	overlong := append([]byte(nil), good.video[60]...)
	overlong[1] |= 0xe0
	overlong[2] = 0xff
	c.video[60] = overlong
	for _, f := range [][]byte{noStartCode, overlong} {
		if f[0]&1 != 0 {
			t.Fatal("the corrupt frames must still be tagged as keyframes")
		}
	}

	dir := t.TempDir()
	r, reg, _ := newTestRecorder(t, dir, nil)
	p := newPublisher(t, c, t0)
	p.deaf = true // keyframe requests go unanswered: the clip's own keyframes come when they come
	p.start(r, "sess-1", "cand-42", "candidate", 1)
	p.feed(clipSeconds * time.Second)
	p.stop()
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}

	segs, err := Segments(dir, "exam-1", "cand-42", "sess-1")
	if err != nil || len(segs) != 1 {
		t.Fatalf("segments %v %v", segs, err)
	}
	seg := segs[0]
	if !seg.Complete || len(seg.Tracks) != 2 || seg.Tracks[0].Width != 640 || seg.Tracks[0].Height != 480 {
		t.Fatalf("segment %+v", seg)
	}
	if e := decodeErrors(t, seg.Path); e != "" {
		t.Errorf("ffmpeg decode errors: %s", e)
	}
	// Only the good keyframe at 30 and the frames after it up to the bad
	// one at 60 are in the file, at their own times.
	vts := packetTimes(t, seg.Path, "v:0")
	if len(vts) != 30 {
		t.Fatalf("%d video frames in the file, want 30 (frames 30 to 59)", len(vts))
	}
	if first, last := vts[0], vts[len(vts)-1]; !near(first, 2*time.Second, 2*time.Millisecond) || !near(last, 59*time.Second/clipFPS, 2*time.Millisecond) {
		t.Errorf("video from %v to %v, want 2s to %v", first, last, 59*time.Second/clipFPS)
	}
	drop := func(reason string) float64 {
		return metricValue(t, reg, "invigil_recording_dropped_frames_total", map[string]string{"kind": "video", "reason": reason})
	}
	if n := drop(dropBadKeyframe); n != 2 {
		t.Errorf("%v bad keyframes counted, want 2", n)
	}
	if n := drop(dropBeforeKeyframe); n != 29+14 {
		t.Errorf("%v frames dropped waiting for a keyframe, want %d (1–29 and 61–74)", n, 29+14)
	}
	if n := drop(dropInvalid); n != 0 {
		t.Errorf("%v frames counted invalid", n)
	}
	if n := metricValue(t, reg, "invigil_recording_frames_written_total", map[string]string{"kind": "video"}); n != 30 {
		t.Errorf("%v video frames written", n)
	}
	if p.keyframeAsks.Load() == 0 {
		t.Error("no keyframe asked for after a bad keyframe")
	}
}

// A sender whose RTP clock jumps an hour ahead, then back an hour and a
// half, mid-recording: the SFU's clock dates the frames by their arrival
// until it follows the jump, so the file runs on without a gap or a
// dropped frame, as long as the media that was sent.
func TestClockJumpsLeaveNoGap(t *testing.T) {
	c := testClip(t)
	dir := t.TempDir()
	r, reg, _ := newTestRecorder(t, dir, nil)
	p := newPublisher(t, c, t0)
	p.lockstep = true
	p.start(r, "sess-1", "cand-42", "candidate", 1)
	jump := func(d time.Duration) func(*rtp.Packet, bool) []*rtp.Packet {
		return func(pkt *rtp.Packet, video bool) []*rtp.Packet {
			rate := int64(48000)
			if video {
				rate = 90000
			}
			q := pkt.Clone()
			q.Timestamp += uint32(int64(d) * rate / int64(time.Second))
			return []*rtp.Packet{q}
		}
	}
	p.feed(2 * time.Second)
	p.mutate = jump(time.Hour)
	p.feed(2 * time.Second)
	p.mutate = jump(-30 * time.Minute)
	p.feed(2 * time.Second)
	p.stop()
	r.Close()

	segs, err := Segments(dir, "exam-1", "cand-42", "sess-1")
	if err != nil || len(segs) != 1 {
		t.Fatalf("segments %v %v", segs, err)
	}
	times := packetTimes(t, segs[0].Path, "v:0")
	if len(times) != p.vi {
		t.Errorf("%d video frames in the file, %d sent", len(times), p.vi)
	}
	for i := 1; i < len(times); i++ {
		if d := times[i] - times[i-1]; d < 50*time.Millisecond || d > 84*time.Millisecond {
			t.Errorf("frame %d follows the one before by %v, want one frame (67 ms)", i, d)
		}
	}
	if d := ffprobe(t, segs[0].Path).duration(t); !near(d, 6*time.Second, 200*time.Millisecond) {
		t.Errorf("recorded %v of 6 s", d)
	}
	if got := metricValue(t, reg, "invigil_recording_dropped_frames_total", nil); got != 0 {
		t.Errorf("%v frames dropped", got)
	}
}
