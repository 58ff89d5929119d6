package recording

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/at-wat/ebml-go"
	"github.com/at-wat/ebml-go/mkvcore"
	"github.com/at-wat/ebml-go/webm"
)

// fileSink is the lowest layer a segment writes to: an *os.File, or in
// tests a file that fails the way a full disk does.
type fileSink interface {
	io.Writer
	io.WriterAt
	Sync() error
	Close() error
}

// createSink opens a new segment file; O_EXCL so that two segments of the
// same connection started in the same millisecond never share a file.
func createSink(path string) (fileSink, error) {
	return os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
}

const (
	// writeOutThreshold bounds what sits in memory between flushes (about
	// a quarter second of 500 kbit/s video).
	writeOutThreshold = 16 << 10
	// headerCapture is how much of the file start we keep to find the
	// Duration element in (the header is a few hundred bytes).
	headerCapture = 4 << 10
	// cuesReserved is the space kept after the header for the seek index,
	// written when the segment is finalized (ebml-go thins the index out
	// if a very long segment needs more).
	cuesReserved = 32 << 10
)

// segmentFile buffers the WebM writer's many small writes and hands them to
// the file only at element boundaries, so that whatever reached the OS is
// a file that ends on a whole element: a crash at any moment leaves a
// decodable prefix. Write never fails towards ebml-go (whose writer
// goroutines would otherwise panic or block); the first error is kept and
// everything after it is discarded, and the recorder stops the segment
// when it sees Err.
type segmentFile struct {
	mu          sync.Mutex
	f           fileSink
	buf         []byte
	boundary    int   // buf[:boundary] ends on a complete element
	written     int64 // bytes handed to the file
	head        []byte
	durationPos int64 // offset of the Info/Duration element, -1 if unknown
	closed      bool
	err         atomic.Pointer[error]
	onWritten   func(n int)
}

func newSegmentFile(f fileSink, onWritten func(n int)) *segmentFile {
	return &segmentFile{f: f, durationPos: -1, onWritten: onWritten}
}

// Err is the first write, sync or close error, if any.
func (s *segmentFile) Err() error {
	if p := s.err.Load(); p != nil {
		return *p
	}
	return nil
}

func (s *segmentFile) setErr(err error) {
	s.err.CompareAndSwap(nil, &err)
}

// Written is how many bytes reached the file.
func (s *segmentFile) Written() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.written
}

func (s *segmentFile) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed || s.Err() != nil {
		return len(p), nil
	}
	if room := headerCapture - len(s.head); room > 0 && s.written == 0 {
		s.head = append(s.head, p[:min(room, len(p))]...)
	}
	s.buf = append(s.buf, p...)
	return len(p), nil
}

// markBoundary is called after ebml-go finished a top-level element.
func (s *segmentFile) markBoundary() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.boundary = len(s.buf)
	if s.boundary >= writeOutThreshold {
		s.writeOutLocked(s.boundary)
	}
}

func (s *segmentFile) writeOutLocked(n int) {
	if n == 0 || s.Err() != nil {
		return
	}
	w, err := s.f.Write(s.buf[:n])
	if err == nil && w < n {
		err = io.ErrShortWrite
	}
	if err != nil {
		// Cut the partial element off again so the file stays a clean,
		// decodable prefix (the disk is full, not the file corrupt).
		if t, ok := s.f.(interface{ Truncate(int64) error }); ok && w > 0 && t.Truncate(s.written) == nil {
			w = 0
		}
		s.written += int64(w)
		s.setErr(err)
		return
	}
	s.written += int64(w)
	if s.onWritten != nil {
		s.onWritten(w)
	}
	rest := copy(s.buf, s.buf[n:])
	s.buf = s.buf[:rest]
	s.boundary -= n
}

// WriteAt is used by ebml-go to fill in the Cues and Duration when the
// segment is finalized; everything buffered goes out first.
func (s *segmentFile) WriteAt(p []byte, off int64) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed || s.Err() != nil {
		return len(p), nil
	}
	s.writeOutLocked(len(s.buf))
	if s.Err() != nil {
		return len(p), nil
	}
	if _, err := s.f.WriteAt(p, off); err != nil {
		s.setErr(err)
	}
	return len(p), nil
}

// locateDuration finds the placeholder Duration that ebml-go writes into
// the Info element when Cues are on (ID 0x4489, size 8, float64 bits 1):
// rewriting it at each flush lets a file cut short by a crash still report
// its length.
func (s *segmentFile) locateDuration() {
	s.mu.Lock()
	defer s.mu.Unlock()
	pattern := []byte{0x44, 0x89, 0x88, 0, 0, 0, 0, 0, 0, 0, 1}
	if i := bytes.Index(s.head, pattern); i >= 0 {
		s.durationPos = int64(i) + 3
	}
}

// Flush writes out every complete element, records the media duration
// in the header and fsyncs. It runs on the recorder's goroutine while the
// WebM writer may keep appending; the fsync itself runs unlocked.
func (s *segmentFile) Flush(durationMS int64) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return s.Err()
	}
	s.writeOutLocked(s.boundary)
	if s.durationPos >= 0 && durationMS > 0 && s.Err() == nil && s.written > s.durationPos+8 {
		var b [8]byte
		binary.BigEndian.PutUint64(b[:], math.Float64bits(float64(durationMS)))
		if _, err := s.f.WriteAt(b[:], s.durationPos); err != nil {
			s.setErr(err)
		}
	}
	s.mu.Unlock()
	if err := s.Err(); err != nil {
		return err
	}
	if err := s.f.Sync(); err != nil {
		s.setErr(err)
	}
	return s.Err()
}

// Close is called by ebml-go once the segment is finalized.
func (s *segmentFile) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	s.writeOutLocked(len(s.buf))
	if s.Err() == nil {
		if err := s.f.Sync(); err != nil {
			s.setErr(err)
		}
	}
	if err := s.f.Close(); err != nil {
		s.setErr(err)
	}
	return nil
}

// abort closes the file without finishing it (after a failure).
func (s *segmentFile) abort() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return
	}
	s.closed = true
	_ = s.f.Close()
}

// webmWriter is one open WebM file: ebml-go's block writers (one per track)
// over a segmentFile.
type webmWriter struct {
	file   *segmentFile
	blocks []webm.BlockWriteCloser
	// lastMS is the newest timestamp the sorter handed to the muxer: what
	// the file holds once the next flush is done.
	lastMS atomic.Int64
	fatal  atomic.Pointer[error]
	closed bool
}

// openWebM writes the header and returns block writers in the order of
// tracks. videoTrack (0 if none) makes clusters start at its keyframes,
// which is what players seek to.
func openWebM(sink fileSink, tracks []webm.TrackEntry, videoTrack uint64, start time.Time, onWritten func(int)) (*webmWriter, error) {
	w := &webmWriter{file: newSegmentFile(sink, onWritten)}
	w.lastMS.Store(-1)
	hook := func(e *ebml.Element) {
		if e.Parent == nil {
			w.file.markBoundary()
		}
	}
	// Frames of the two tracks reach us interleaved only roughly (video
	// waits in the sample builder longer than audio); the sorter orders
	// them, holding at most a second.
	sorter, err := mkvcore.NewMultiTrackBlockSorter(
		mkvcore.WithMaxTimescaleDelay(1000),
		mkvcore.WithMaxDelayedPackets(256),
		mkvcore.WithSortRule(mkvcore.BlockSorterDropOutdated),
	)
	if err != nil {
		return nil, fmt.Errorf("webm sorter: %w", err)
	}
	opts := []mkvcore.BlockWriterOption{
		mkvcore.WithSegmentInfo(&webm.Info{
			TimecodeScale: 1000000, // ms
			MuxingApp:     "invigil (ebml-go)",
			WritingApp:    "invigil",
			DateUTC:       start.UTC(),
		}),
		mkvcore.WithSeekHead(true),
		mkvcore.WithCues(cuesReserved),
		mkvcore.WithBlockInterceptor(&timestampTap{inner: sorter, last: &w.lastMS}),
		mkvcore.WithMarshalOptions(ebml.WithElementWriteHooks(hook)),
		mkvcore.WithOnFatalHandler(func(err error) {
			w.fatal.CompareAndSwap(nil, &err)
		}),
		mkvcore.WithOnErrorHandler(func(error) {}), // ErrIgnoreOldFrame: counted by us as late
	}
	if videoTrack != 0 {
		opts = append(opts, mkvcore.WithMinMaxClusterDuration(videoTrack, 500, 0x7FFF))
	}
	blocks, err := webm.NewSimpleBlockWriter(w.file, tracks, opts...)
	if err != nil {
		return nil, fmt.Errorf("write webm header: %w", err)
	}
	w.blocks = blocks
	w.file.locateDuration()
	// The header goes to disk at once: a file that exists is a WebM file.
	if err := w.file.Flush(0); err != nil {
		w.file.abort()
		_ = w.close()
		return nil, err
	}
	return w, nil
}

func (w *webmWriter) err() error {
	if err := w.file.Err(); err != nil {
		return err
	}
	if p := w.fatal.Load(); p != nil {
		return fmt.Errorf("webm writer: %w", *p)
	}
	return nil
}

// durationMS is the media time the file holds (or will after a flush).
func (w *webmWriter) durationMS() int64 {
	return max(w.lastMS.Load(), 0)
}

func (w *webmWriter) write(trackIndex int, keyframe bool, ms int64, data []byte) {
	_, _ = w.blocks[trackIndex].Write(keyframe, ms, data)
}

func (w *webmWriter) flush() error {
	if err := w.err(); err != nil {
		return err
	}
	return w.file.Flush(w.durationMS())
}

// close finalizes the file (last cluster, Cues, Duration) and closes it.
func (w *webmWriter) close() error {
	if w.closed {
		return w.err()
	}
	w.closed = true
	// Closing the block writers makes ebml-go flush its sorter, write the
	// Cues and Duration and close the file; the last Close waits for that.
	for _, b := range w.blocks {
		_ = b.Close()
	}
	return w.err()
}

// timestampTap sits between the sorter and the muxer and notes the newest
// timestamp that went into the file.
type timestampTap struct {
	inner mkvcore.BlockInterceptor
	last  *atomic.Int64
}

func (t *timestampTap) Intercept(r []mkvcore.BlockReader, w []mkvcore.BlockWriter) {
	tapped := make([]mkvcore.BlockWriter, len(w))
	for i := range w {
		tapped[i] = &tappedWriter{w: w[i], last: t.last}
	}
	t.inner.Intercept(r, tapped)
}

type tappedWriter struct {
	w    mkvcore.BlockWriter
	last *atomic.Int64
}

func (t *tappedWriter) Write(keyframe bool, timestamp int64, b []byte) (int, error) {
	n, err := t.w.Write(keyframe, timestamp, b)
	if timestamp > t.last.Load() {
		t.last.Store(timestamp)
	}
	return n, err
}

// opusHead is the Opus identification header (RFC 7845 §5.1) that WebM
// carries as the Opus track's CodecPrivate.
func opusHead(channels int) []byte {
	b := make([]byte, 19)
	copy(b, "OpusHead")
	b[8] = 1 // version
	b[9] = byte(channels)
	binary.LittleEndian.PutUint16(b[10:], 0) // pre-skip: the stream joins mid-way
	binary.LittleEndian.PutUint32(b[12:], 48000)
	return b
}

// randomUID makes a TrackUID; Matroska wants them unique and non-zero.
func randomUID() uint64 { return rand.Uint64() | 1 }
