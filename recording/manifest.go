package recording

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"
)

// ManifestName is the file, next to a session's segments, that lists them.
const ManifestName = "manifest.json"

// ErrNotRecorded is returned by Locate when no segment covers the time.
var ErrNotRecorded = errors.New("no recording covers that time")

// Session is the manifest of one participant session: every segment
// recorded for it, oldest first.
type Session struct {
	Room      string    `json:"room"`
	Identity  string    `json:"identity"`
	SessionID string    `json:"session_id"`
	Role      string    `json:"role,omitempty"`
	Updated   time.Time `json:"updated"`
	Segments  []Segment `json:"segments"`
	// Dir is the session's directory (not stored; filled when read).
	Dir string `json:"-"`
}

// Segment is one WebM file: one peer connection's tracks (a new one starts
// when a track is added mid-connection).
type Segment struct {
	// File is the segment's file name inside the session directory.
	File string `json:"file"`
	// Connection is the peer connection number within the session (1, 2, …).
	Connection int `json:"connection"`
	// Start is the wall-clock time of media time 0 in the file.
	Start time.Time `json:"start"`
	// DurationMS is the media time written so far (final once Complete).
	DurationMS int64 `json:"duration_ms"`
	// Bytes is the file size written so far.
	Bytes  int64          `json:"bytes"`
	Tracks []SegmentTrack `json:"tracks"`
	// Complete is true once the file was finalized cleanly; a segment left
	// incomplete by a crash is still playable up to its last flush.
	Complete bool `json:"complete"`
	// Error says why recording stopped early, if it did.
	Error string `json:"error,omitempty"`
	// Path is File joined to the session directory (not stored).
	Path string `json:"-"`
}

// Duration is the segment's media duration so far.
func (s Segment) Duration() time.Duration { return time.Duration(s.DurationMS) * time.Millisecond }

// End is the wall-clock time of the segment's last written media.
func (s Segment) End() time.Time { return s.Start.Add(s.Duration()) }

// SegmentTrack describes one track inside a segment file.
type SegmentTrack struct {
	Number     uint64 `json:"number"`
	Kind       string `json:"kind"`
	Codec      string `json:"codec"`
	TrackID    string `json:"track_id,omitempty"`
	Width      int    `json:"width,omitempty"`
	Height     int    `json:"height,omitempty"`
	Channels   int    `json:"channels,omitempty"`
	SampleRate int    `json:"sample_rate,omitempty"`
}

// PathPart turns a room, identity or session ID into one safe path
// component. Names made only of letters, digits, '.', '_' and '-' (not
// starting with '.') are kept as they are; anything else is replaced and
// suffixed with a hash of the original so that two different names never
// share a directory.
func PathPart(s string) string {
	const maxLen = 64
	var b strings.Builder
	changed := false
	for _, r := range s {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '_', r == '-', r == '.':
			b.WriteRune(r)
		default:
			b.WriteByte('_')
			changed = true
		}
	}
	out := b.String()
	// No hidden directories, and never "." or "..".
	if trimmed := strings.TrimLeft(out, "."); trimmed != out || out == "" {
		out = strings.Repeat("_", max(len(out)-len(trimmed), 1)) + trimmed
		changed = true
	}
	if len(out) > maxLen {
		out = out[:maxLen]
		changed = true
	}
	if changed {
		sum := sha256.Sum256([]byte(s))
		out += "-" + hex.EncodeToString(sum[:4])
	}
	return out
}

// ParticipantDir is where all sessions of one participant in one room live.
func ParticipantDir(dataDir, room, identity string) string {
	return filepath.Join(dataDir, "recordings", PathPart(room), PathPart(identity))
}

// SessionDir is the directory holding one session's segments and manifest.
func SessionDir(dataDir, room, identity, sessionID string) string {
	return filepath.Join(ParticipantDir(dataDir, room, identity), PathPart(sessionID))
}

// segmentFileName is seg-<connection>-<start>.webm with the start in UTC
// and without colons, so that names sort by time and are safe in URLs.
func segmentFileName(connection int, start time.Time) string {
	return fmt.Sprintf("seg-%d-%s.webm", connection, start.UTC().Format("20060102T150405.000Z"))
}

// ReadManifest reads the manifest in a session directory.
func ReadManifest(sessionDir string) (*Session, error) {
	path := filepath.Join(sessionDir, ManifestName)
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read recording manifest: %w", err)
	}
	var s Session
	if err := json.Unmarshal(b, &s); err != nil {
		return nil, fmt.Errorf("parse recording manifest %s: %w", path, err)
	}
	s.Dir = sessionDir
	for i := range s.Segments {
		s.Segments[i].Path = filepath.Join(sessionDir, s.Segments[i].File)
	}
	return &s, nil
}

// writeManifest replaces the manifest atomically: a reader sees either the
// old or the new one, even if the process dies half-way.
func writeManifest(sessionDir string, s *Session) error {
	b, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return fmt.Errorf("encode recording manifest: %w", err)
	}
	tmp, err := os.CreateTemp(sessionDir, ManifestName+".tmp-*")
	if err != nil {
		return fmt.Errorf("write recording manifest in %s: %w", sessionDir, err)
	}
	_, err = tmp.Write(append(b, '\n'))
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), filepath.Join(sessionDir, ManifestName))
	}
	if err != nil {
		_ = os.Remove(tmp.Name())
		return fmt.Errorf("write recording manifest in %s: %w", sessionDir, err)
	}
	// The rename is durable only once the directory is synced.
	if d, err := os.Open(sessionDir); err == nil {
		_ = d.Sync()
		_ = d.Close()
	}
	return nil
}

// Sessions lists the recorded sessions of one participant in one room,
// oldest first. A participant with no recordings has none (and no error).
func Sessions(dataDir, room, identity string) ([]Session, error) {
	dir := ParticipantDir(dataDir, room, identity)
	entries, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list recordings of %q in %q: %w", identity, room, err)
	}
	var out []Session
	for _, e := range entries {
		if !e.IsDir() {
			continue
		}
		s, err := ReadManifest(filepath.Join(dir, e.Name()))
		if errors.Is(err, fs.ErrNotExist) {
			continue // a session whose first segment never opened
		}
		if err != nil {
			return nil, err
		}
		out = append(out, *s)
	}
	sort.SliceStable(out, func(i, j int) bool { return sessionStart(out[i]).Before(sessionStart(out[j])) })
	return out, nil
}

func sessionStart(s Session) time.Time {
	if len(s.Segments) == 0 {
		return s.Updated
	}
	return s.Segments[0].Start
}

// Segments lists one session's segments, oldest first, with Path set.
func Segments(dataDir, room, identity, sessionID string) ([]Segment, error) {
	s, err := ReadManifest(SessionDir(dataDir, room, identity, sessionID))
	if err != nil {
		return nil, err
	}
	return s.Segments, nil
}

// locateSlack absorbs the manifest lagging the file (it is rewritten every
// flush) and small clock differences between whoever stamped `at` and the
// packet arrival times the recorder used.
const locateSlack = 3 * time.Second

// Locate finds the segment file that shows the participant at wall-clock
// time `at` and the offset into it, e.g. to open the recording at the
// start of a violation. It returns ErrNotRecorded (wrapped) when no segment
// covers that time.
func Locate(dataDir, room, identity string, at time.Time) (segmentPath string, offset time.Duration, err error) {
	sessions, err := Sessions(dataDir, room, identity)
	if err != nil {
		return "", 0, err
	}
	var best *Segment
	var bestDist time.Duration
	for si := range sessions {
		for gi := range sessions[si].Segments {
			seg := &sessions[si].Segments[gi]
			dist := distanceTo(*seg, at)
			if dist > locateSlack {
				continue
			}
			if best == nil || dist < bestDist || (dist == bestDist && seg.Start.After(best.Start)) {
				best, bestDist = seg, dist
			}
		}
	}
	if best == nil {
		return "", 0, fmt.Errorf("locate %s in room %s at %s: %w", identity, room, at.Format(time.RFC3339Nano), ErrNotRecorded)
	}
	offset = at.Sub(best.Start)
	if offset < 0 {
		offset = 0
	}
	if best.Complete && offset > best.Duration() {
		offset = best.Duration()
	}
	return best.Path, offset, nil
}

// distanceTo is how far `at` lies outside the segment's span (0 inside).
func distanceTo(seg Segment, at time.Time) time.Duration {
	switch {
	case at.Before(seg.Start):
		return seg.Start.Sub(at)
	case at.After(seg.End()):
		return at.Sub(seg.End())
	default:
		return 0
	}
}
