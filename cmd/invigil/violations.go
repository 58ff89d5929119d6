package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	"invigil/pipeline"
	"invigil/recording"
)

// ViolationsFile is where serve appends violations until the control plane
// stores them.
const ViolationsFile = "violations.jsonl"

// violationLog is the pipeline's sink until the control plane exists: it
// logs every violation event and appends it as one JSON line to
// <data>/violations.jsonl, with the evidence JPEG of an opened violation in
// <data>/evidence/<key>.jpg and, when the recording covers it, the segment
// and offset to play it from.
type violationLog struct {
	dataDir string
	log     *slog.Logger

	mu     sync.Mutex
	f      *os.File
	closed bool
}

var _ pipeline.ViolationSink = (*violationLog)(nil)

// violationRecord is one line of violations.jsonl.
type violationRecord struct {
	Event string    `json:"event"` // opened or closed
	Time  time.Time `json:"time"`  // when the line was written
	pipeline.Violation
	// Evidence is the JPEG's path relative to the data directory.
	Evidence string `json:"evidence,omitempty"`
	// Recording is the segment (relative to the data directory) that shows
	// the violation's start, RecordingOffsetMS where in it.
	Recording         string `json:"recording,omitempty"`
	RecordingOffsetMS *int64 `json:"recording_offset_ms,omitempty"`
}

func openViolationLog(dataDir string, log *slog.Logger) (*violationLog, error) {
	path := filepath.Join(dataDir, ViolationsFile)
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o640)
	if err != nil {
		return nil, fmt.Errorf("open violation log: %w", err)
	}
	return &violationLog{dataDir: dataDir, log: log.With("component", "violations"), f: f}, nil
}

func (l *violationLog) ViolationOpened(ctx context.Context, v pipeline.Violation) error {
	rec := violationRecord{Event: "opened", Violation: v}
	if len(v.Evidence) > 0 {
		rel := filepath.Join("evidence", recording.PathPart(v.Key)+".jpg")
		if err := writeFileSync(filepath.Join(l.dataDir, rel), v.Evidence); err != nil {
			l.log.Error("cannot save evidence", "key", v.Key, "err", err)
		} else {
			rec.Evidence = rel
		}
	}
	seg, off, err := recording.Locate(l.dataDir, v.Room, v.Identity, v.StartedAt)
	if err == nil {
		if rel, err := filepath.Rel(l.dataDir, seg); err == nil {
			ms := off.Milliseconds()
			rec.Recording, rec.RecordingOffsetMS = rel, &ms
		}
	} else if !errors.Is(err, recording.ErrNotRecorded) {
		l.log.Warn("cannot locate the recording of a violation", "key", v.Key, "err", err)
	}
	l.log.Warn("violation opened", "identity", v.Identity, "room", v.Room, "type", v.Type, "reason", v.Reason,
		"started_at", v.StartedAt, "confidence", v.Confidence, "key", v.Key, "evidence", rec.Evidence,
		"recording", rec.Recording, "recording_offset", off)
	return l.append(rec)
}

func (l *violationLog) ViolationClosed(ctx context.Context, v pipeline.Violation) error {
	l.log.Info("violation closed", "identity", v.Identity, "room", v.Room, "type", v.Type, "key", v.Key,
		"duration", v.EndedAt.Sub(v.StartedAt).Round(time.Millisecond))
	return l.append(violationRecord{Event: "closed", Violation: v})
}

func (l *violationLog) append(rec violationRecord) error {
	rec.Time = time.Now().UTC()
	b, err := json.Marshal(rec)
	if err != nil {
		return fmt.Errorf("encode violation %s: %w", rec.Key, err)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return errors.New("violation log closed")
	}
	if _, err := l.f.Write(append(b, '\n')); err != nil {
		return fmt.Errorf("append to %s: %w", l.f.Name(), err)
	}
	// A violation is rare and matters: it must survive a crash.
	if err := l.f.Sync(); err != nil {
		return fmt.Errorf("sync %s: %w", l.f.Name(), err)
	}
	return nil
}

func (l *violationLog) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return nil
	}
	l.closed = true
	return l.f.Close()
}

// writeFileSync writes a whole file durably (temporary name, fsync, rename).
func writeFileSync(path string, data []byte) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	_, err = tmp.Write(data)
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), path)
	}
	if err != nil {
		_ = os.Remove(tmp.Name())
	}
	return err
}
