// Package recording records every published track to WebM for the whole
// session: one segment file per participant connection (holding its VP8
// video and Opus audio), a manifest per session that maps wall-clock time
// to a file and an offset, periodic flushes so that a crash loses at most
// a few seconds and leaves playable files, and failures (disk full, an
// unwritable directory) that stop the recording with a clear log line and
// a metric but never touch forwarding.
//
// Layout: <dataDir>/recordings/<room>/<identity>/<session>/
// seg-<connection>-<start>.webm and manifest.json.
package recording

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"invigil/media"
)

// Config configures a Recorder. Zero values take the defaults.
type Config struct {
	// DataDir is the data directory; recordings go under DataDir/recordings.
	DataDir string
	// FlushInterval is how often buffered media is written out and fsynced
	// and the manifest rewritten: the most a crash can lose, plus up to a
	// second the muxer holds to interleave audio and video. Default 2s.
	FlushInterval time.Duration
	// QueueSize is the packets buffered per connection between WriteRTP and
	// the writer goroutine; beyond it packets are dropped and counted.
	// Default 2048 (about 10 s of 640×480 video with audio).
	QueueSize int
	// TrackWait is how long a connection's first track waits for its
	// sibling (video for audio, audio for video) so that both go into one
	// file. Default 1s.
	TrackWait time.Duration
	// KeyframeWait is how long a new segment waits for every video track's
	// first keyframe before it opens without the laggards (they join a new
	// segment once they have one). Default 4s.
	KeyframeWait time.Duration
	// KeyframeRetry is how often a keyframe is asked for again while a
	// video track waits for one. Default 1s.
	KeyframeRetry time.Duration
	// Logger defaults to slog.Default().
	Logger *slog.Logger
	// Registerer receives the invigil_recording_* metrics; nil registers
	// nothing.
	Registerer prometheus.Registerer
}

func (c *Config) setDefaults() {
	if c.FlushInterval <= 0 {
		c.FlushInterval = 2 * time.Second
	}
	if c.QueueSize <= 0 {
		c.QueueSize = 2048
	}
	if c.TrackWait <= 0 {
		c.TrackWait = time.Second
	}
	if c.KeyframeWait <= 0 {
		c.KeyframeWait = 4 * time.Second
	}
	if c.KeyframeRetry <= 0 {
		c.KeyframeRetry = time.Second
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
}

// Recorder implements media.Tap: every published track it is told about is
// recorded. It is safe for concurrent use.
type Recorder struct {
	cfg    Config
	log    *slog.Logger
	m      *metrics
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	tick   time.Duration

	mu       sync.Mutex
	closed   bool
	conns    map[connKey]*connRecorder
	sessions map[sessionKey]*sessionState

	// createSink opens a segment file; tests replace it with a file that
	// fails like a full disk where mounting a small tmpfs is not allowed.
	createSink func(path string) (fileSink, error)
}

var _ media.Tap = (*Recorder)(nil)

// New makes a Recorder writing under cfg.DataDir. An unwritable directory
// is not fatal here: it is logged and counted now, and again for each
// participant whose recording it stops.
func New(cfg Config) (*Recorder, error) {
	if cfg.DataDir == "" {
		return nil, errors.New("recording: no data directory configured")
	}
	cfg.setDefaults()
	m, err := newMetrics(cfg.Registerer)
	if err != nil {
		return nil, fmt.Errorf("recording metrics: %w", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &Recorder{
		cfg:        cfg,
		log:        cfg.Logger.With("component", "recording"),
		m:          m,
		ctx:        ctx,
		cancel:     cancel,
		tick:       min(cfg.FlushInterval/2, 250*time.Millisecond),
		conns:      make(map[connKey]*connRecorder),
		sessions:   make(map[sessionKey]*sessionState),
		createSink: createSink,
	}
	dir := filepath.Join(cfg.DataDir, "recordings")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		reason := classify(err)
		m.errors.WithLabelValues(reason).Inc()
		r.log.Error("recordings directory is not usable; nothing will be recorded until it is fixed",
			"dir", dir, "reason", reason, "err", err, "hint", hint(reason, dir))
	}
	return r, nil
}

// Close finalizes every open segment and manifest and stops all the
// recorder's goroutines. Tracks started afterwards are not recorded.
func (r *Recorder) Close() error {
	r.mu.Lock()
	r.closed = true
	r.mu.Unlock()
	r.cancel()
	r.wg.Wait()
	return nil
}

// TrackStarted implements media.Tap. It returns nil (do not tap) for codecs
// the recorder cannot store and after Close.
func (r *Recorder) TrackStarted(t media.Track) media.PacketWriter {
	kind, ok := trackKind(t)
	if !ok {
		r.m.errors.WithLabelValues(reasonUnsupported).Inc()
		r.log.Warn("track not recorded: only VP8 video and Opus audio can be recorded",
			"room", t.Room, "identity", t.Identity, "track", t.TrackID, "mime", t.MimeType)
		return nil
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return nil
	}
	key := connKey{sessionKey{t.Room, t.Identity, t.SessionID}, t.Connection}
	c := r.conns[key]
	if c == nil {
		c = r.newConn(key, t)
		r.conns[key] = c
	}
	ts := newTrackState(t, kind)
	c.live++
	c.queueAdd(ts)
	return &trackWriter{c: c, t: ts}
}

func trackKind(t media.Track) (media.Kind, bool) {
	switch strings.ToLower(t.MimeType) {
	case "video/vp8":
		return media.Video, true
	case "audio/opus":
		return media.Audio, true
	}
	return "", false
}

// trackClosed is called when the SFU closes a track writer. The connection
// leaves the map with its last track, so that a track started after that
// gets a fresh connection recorder (and segment) rather than a finishing one.
func (r *Recorder) trackClosed(w *trackWriter) {
	r.mu.Lock()
	c := w.c
	c.live--
	if c.live == 0 && r.conns[c.key] == c {
		delete(r.conns, c.key)
	}
	r.mu.Unlock()
	c.queueClose(w.t)
}

// connDone reports whether a connection whose tracks have all closed may
// stop (no track was started on it meanwhile).
func (r *Recorder) connDone(c *connRecorder) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return c.live == 0
}

func (r *Recorder) acquireSession(k sessionKey, role string) *sessionState {
	s := r.sessions[k]
	if s == nil {
		s = &sessionState{key: k, role: role, dir: SessionDir(r.cfg.DataDir, k.room, k.identity, k.session), log: r.log}
		r.sessions[k] = s
	}
	s.refs++
	return s
}

func (r *Recorder) releaseSession(s *sessionState) {
	r.mu.Lock()
	defer r.mu.Unlock()
	s.refs--
	if s.refs == 0 && r.sessions[s.key] == s {
		delete(r.sessions, s.key)
	}
}

// trackWriter is what the SFU writes one track's packets to.
type trackWriter struct {
	c      *connRecorder
	t      *trackState
	closed atomic.Bool
}

// WritePacket hands the packet to the connection's writer goroutine
// without ever blocking: when its queue is full the packet is dropped and
// counted. The packet is the recorder's own copy, kept without copying.
func (w *trackWriter) WritePacket(p media.Packet) {
	if p.RTP == nil || w.closed.Load() || w.c.stopped.Load() {
		return
	}
	select {
	case w.c.packets <- packetItem{t: w.t, pkt: p}:
		w.c.queued.Add(1)
	default:
		w.c.r.m.droppedPackets.WithLabelValues(dropQueueFull).Inc()
	}
}

// Close ends the track; its buffered frames are still written.
func (w *trackWriter) Close() {
	if w.closed.Swap(true) {
		return
	}
	w.c.r.trackClosed(w)
}

// sessionState serializes manifest updates of one session, whose
// connections may overlap briefly on a reconnect.
type sessionState struct {
	key  sessionKey
	role string
	dir  string
	log  *slog.Logger
	refs int // guarded by Recorder.mu

	mu  sync.Mutex
	man *Session
}

// update changes the manifest and rewrites it atomically. A manifest left
// by an earlier run (a crash, a restart) is kept and extended.
func (s *sessionState) update(fn func(*Session)) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.man == nil {
		s.man = &Session{Room: s.key.room, Identity: s.key.identity, SessionID: s.key.session, Role: s.role}
		old, err := ReadManifest(s.dir)
		switch {
		case err == nil:
			s.man.Segments = old.Segments
		case !errors.Is(err, fs.ErrNotExist):
			aside := filepath.Join(s.dir, ManifestName+".unreadable-"+time.Now().UTC().Format("20060102T150405Z"))
			_ = os.Rename(filepath.Join(s.dir, ManifestName), aside)
			s.log.Warn("recording manifest unreadable; starting a new one", "dir", s.dir, "kept_as", aside, "err", err)
		}
	}
	fn(s.man)
	s.man.Updated = time.Now().UTC()
	if err := os.MkdirAll(s.dir, 0o755); err != nil {
		return fmt.Errorf("create recording directory %s: %w", s.dir, err)
	}
	return writeManifest(s.dir, s.man)
}

func (s *sessionState) updateSegment(file string, fn func(*Segment)) error {
	return s.update(func(m *Session) {
		for i := range m.Segments {
			if m.Segments[i].File == file {
				fn(&m.Segments[i])
				return
			}
		}
	})
}

// classify maps a filesystem error to the reason label of
// invigil_recording_errors_total.
func classify(err error) string {
	switch {
	case errors.Is(err, syscall.ENOSPC), errors.Is(err, syscall.EDQUOT):
		return reasonDiskFull
	case errors.Is(err, fs.ErrPermission), errors.Is(err, syscall.EROFS),
		errors.Is(err, syscall.ENOTDIR), errors.Is(err, syscall.EISDIR):
		return reasonUnwritable
	}
	return reasonIO
}

// hint is the "what to do" half of a failure's log line.
func hint(reason, dir string) string {
	switch reason {
	case reasonDiskFull:
		return "free disk space on the volume holding " + dir + "; live forwarding and analysis continue, and the participant's next connection is recorded again"
	case reasonUnwritable:
		return "make " + dir + " a writable directory (check --data and its permissions); live forwarding and analysis continue"
	}
	return "check the disk holding " + dir + "; live forwarding and analysis continue"
}
