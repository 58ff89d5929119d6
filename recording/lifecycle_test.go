package recording

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/pion/rtp"

	"invigil/media"
)

// Shutting down with participants still publishing finalizes every file
// and manifest and leaves no goroutine behind (ebml-go's included); staff
// in a call are recorded like candidates.
func TestCloseStopsEverything(t *testing.T) {
	c := testClip(t)
	before := runtime.NumGoroutine()
	dir := t.TempDir()
	r, reg, _ := newTestRecorder(t, dir, nil)

	cand := newPublisher(t, c, t0)
	cand.start(r, "sess-1", "cand-42", "candidate", 1)
	staff := newPublisher(t, c, t0.Add(time.Second))
	staff.start(r, "sess-7", "examiner-1", "examiner", 1)
	cand.feed(2 * time.Second)
	staff.feed(2 * time.Second)
	waitFor(t, "both segments open", func() bool {
		return metricValue(t, reg, "invigil_recording_active_segments", nil) == 2
	})
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the recorder's goroutines to end", func() bool { return runtime.NumGoroutine() <= before })

	for _, who := range []string{"cand-42", "examiner-1"} {
		sessions, err := Sessions(dir, "exam-1", who)
		if err != nil || len(sessions) != 1 || len(sessions[0].Segments) != 1 || !sessions[0].Segments[0].Complete {
			t.Fatalf("%s: %+v %v", who, sessions, err)
		}
		if n := ffprobe(t, sessions[0].Segments[0].Path).streamFrames(t, "video"); n != 30 {
			t.Errorf("%s: %d video frames, fed 30", who, n)
		}
	}
	if got := metricValue(t, reg, "invigil_recording_active_segments", nil); got != 0 {
		t.Errorf("active after close %v", got)
	}
	// After Close: no new taps; old writers return at once.
	if w := r.TrackStarted(cand.track(media.Video, "sess-2", "cand-43", "candidate", 1)); w != nil {
		t.Error("a track was tapped after Close")
	}
	cand.feed(time.Second)
	cand.stop()
	staff.stop()
}

// A track of a codec WebM cannot hold here is not tapped, and that is
// counted and logged.
func TestUnsupportedCodecIgnored(t *testing.T) {
	r, reg, logs := newTestRecorder(t, t.TempDir(), nil)
	defer r.Close()
	w := r.TrackStarted(media.Track{SessionID: "s", Identity: "i", Room: "r", Kind: media.Video, MimeType: "video/H264", Connection: 1})
	if w != nil {
		t.Error("H.264 track tapped")
	}
	if metricValue(t, reg, "invigil_recording_errors_total", map[string]string{"reason": reasonUnsupported}) != 1 ||
		!strings.Contains(logs.String(), "only VP8 video and Opus audio") {
		t.Error("unsupported codec not reported")
	}
}

func TestPathPart(t *testing.T) {
	for _, same := range []string{"cand-42", "exam_2026.1", "3f2a-11ee-b0c1"} {
		if got := PathPart(same); got != same {
			t.Errorf("PathPart(%q) = %q, want it unchanged", same, got)
		}
	}
	for _, odd := range []string{"", ".", "..", "../../etc", "a/b", "a\\b", "王小明", "x y", ".hidden", strings.Repeat("x", 300)} {
		got := PathPart(odd)
		if strings.ContainsAny(got, `/\ `) || strings.HasPrefix(got, ".") || got == "" || len(got) > 80 {
			t.Errorf("PathPart(%q) = %q is not one safe component", odd, got)
		}
	}
	if PathPart("a/b") == PathPart("a_b") || PathPart("a/b") == PathPart("a:b") {
		t.Error("different names share a directory")
	}
	dir := SessionDir("/data", "../x", "../../y", "z/../../w")
	if !strings.HasPrefix(dir, "/data/recordings/") || strings.Count(dir, "/") != 5 {
		t.Errorf("SessionDir escapes or nests: %s", dir)
	}
}

// Locate reads manifests written by earlier runs (here by hand): the
// segment containing the time wins; a gap shorter than the slack maps to
// the nearer segment; a live (incomplete) segment accepts times past its
// last flush; far-off times are not recorded.
func TestLocateManifests(t *testing.T) {
	dir := t.TempDir()
	sdir := SessionDir(dir, "exam-1", "cand-42", "sess-a")
	if err := os.MkdirAll(sdir, 0o755); err != nil {
		t.Fatal(err)
	}
	s := &Session{Room: "exam-1", Identity: "cand-42", SessionID: "sess-a", Segments: []Segment{
		{File: "seg-1-a.webm", Connection: 1, Start: t0, DurationMS: 60_000, Complete: true},
		{File: "seg-2-b.webm", Connection: 2, Start: t0.Add(62 * time.Second), DurationMS: 10_000},
	}}
	if err := writeManifest(sdir, s); err != nil {
		t.Fatal(err)
	}
	// A second session of the same candidate, later that day.
	sdir2 := SessionDir(dir, "exam-1", "cand-42", "sess-b")
	os.MkdirAll(sdir2, 0o755)
	if err := writeManifest(sdir2, &Session{Segments: []Segment{{File: "seg-1-c.webm", Connection: 1, Start: t0.Add(time.Hour), DurationMS: 5000, Complete: true}}}); err != nil {
		t.Fatal(err)
	}
	// A session directory without a manifest (its first segment never
	// opened) is skipped.
	os.MkdirAll(SessionDir(dir, "exam-1", "cand-42", "sess-c"), 0o755)

	cases := []struct {
		at   time.Duration
		file string
		off  time.Duration
	}{
		{30 * time.Second, "seg-1-a.webm", 30 * time.Second},
		{60500 * time.Millisecond, "seg-1-a.webm", 60 * time.Second}, // just past a complete segment: its end
		{61700 * time.Millisecond, "seg-2-b.webm", 0},                // in the gap, nearer the next
		{75 * time.Second, "seg-2-b.webm", 13 * time.Second},         // past the live segment's last flush
		{time.Hour + 2*time.Second, "seg-1-c.webm", 2 * time.Second},
		{-2 * time.Second, "seg-1-a.webm", 0},
	}
	for _, tc := range cases {
		path, off, err := Locate(dir, "exam-1", "cand-42", t0.Add(tc.at))
		if err != nil || filepath.Base(path) != tc.file || off != tc.off {
			t.Errorf("Locate(+%v) = %s %v %v, want %s %v", tc.at, filepath.Base(path), off, err, tc.file, tc.off)
		}
	}
	for _, at := range []time.Duration{-time.Minute, 30 * time.Minute} {
		if _, _, err := Locate(dir, "exam-1", "cand-42", t0.Add(at)); !errors.Is(err, ErrNotRecorded) {
			t.Errorf("Locate(+%v): %v, want ErrNotRecorded", at, err)
		}
	}
	sessions, err := Sessions(dir, "exam-1", "cand-42")
	if err != nil || len(sessions) != 2 || sessions[0].SessionID != "sess-a" {
		t.Errorf("Sessions: %+v %v", sessions, err)
	}
	if _, err := Segments(dir, "exam-1", "cand-42", "nope"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Segments of an unknown session: %v", err)
	}
	// No leftovers of the atomic rewrite.
	if m, _ := filepath.Glob(filepath.Join(sdir, "*.tmp-*")); len(m) != 0 {
		t.Errorf("temporary manifests left: %v", m)
	}
}

// A manifest from an earlier run of the process (a crash) is extended, not
// replaced, when the session goes on.
func TestManifestSurvivesRestart(t *testing.T) {
	c := testClip(t)
	dir := t.TempDir()
	for run := 1; run <= 2; run++ {
		r, _, _ := newTestRecorder(t, dir, nil)
		p := newPublisher(t, c, t0.Add(time.Duration(run)*time.Minute))
		p.start(r, "sess-1", "cand-42", "candidate", run)
		p.feed(time.Second)
		p.stop()
		r.Close()
	}
	segs, err := Segments(dir, "exam-1", "cand-42", "sess-1")
	if err != nil || len(segs) != 2 || segs[0].Connection != 1 || segs[1].Connection != 2 {
		t.Fatalf("segments after a restart: %+v %v", segs, err)
	}
}

// Many packets through WritePacket never wait for the writer: the hot path
// is a channel send or a counted drop.
func BenchmarkWritePacket(b *testing.B) {
	r, _, _ := newTestRecorder(b, b.TempDir(), func(cfg *Config) { cfg.QueueSize = 1 << 16 })
	defer r.Close()
	w := r.TrackStarted(media.Track{SessionID: "s", Identity: "i", Room: "r", Kind: media.Audio, MimeType: "audio/opus", Connection: 1})
	defer w.Close()
	pkt := &rtp.Packet{Header: rtp.Header{SSRC: 1}, Payload: []byte{0xfc, 1, 2, 3}}
	now := time.Now()
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		pkt.SequenceNumber = uint16(i)
		w.WritePacket(media.Packet{RTP: pkt, Arrival: now, Wall: now, ExtSeq: uint64(i)})
	}
}

// The cost of recording one candidate (640×480 VP8 at 15 fps + Opus):
// process CPU per second of media — depacketising, muxing, writing and
// the periodic fsync, plus the test's own RTP packetising — and how many
// candidates one core could record at that cost.
func BenchmarkRecordCandidate(b *testing.B) {
	c := testClip(b)
	r, _, _ := newTestRecorder(b, b.TempDir(), func(cfg *Config) { cfg.QueueSize = 8192 })
	p := newPublisher(b, c, t0)
	p.start(r, "sess-1", "cand-42", "candidate", 1)
	conn := p.video.(*trackWriter).c
	cpu0, _ := processCPU()
	for b.Loop() {
		p.feed(time.Second)
		for conn.handled.Load() < conn.queued.Load() {
			time.Sleep(time.Millisecond)
		}
	}
	cpu1, _ := processCPU()
	p.stop()
	r.Close()
	if conn.queued.Load() == 0 {
		b.Fatal("nothing recorded")
	}
	perSecond := (cpu1 - cpu0) / time.Duration(b.N)
	b.ReportMetric(float64(perSecond.Microseconds()), "cpu-µs/media-s")
	b.ReportMetric(float64(time.Second)/float64(perSecond), "candidates/core")
}
