package control

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"time"
	"unicode/utf8"

	"invigil/contract"
	"invigil/internal/durable"
	"invigil/store"
)

// ViolationReport is a violation as the media plane reports it; cmd adapts
// the pipeline's events to it.
type ViolationReport struct {
	Key        string
	Identity   string // SFU identity: candidate-<id>
	Type       string
	Policy     string
	Reason     string
	Confidence float64
	StartedAt  time.Time
	OpenedAt   time.Time
	EndedAt    time.Time
	Details    map[string]any
	// Evidence is a JPEG of the onset frame (opens only).
	Evidence []byte
	// Clip is a WAV of the candidate's microphone up to the opening (opens
	// only; nil without a live microphone). Optional in the outbox's
	// entries, so entries queued before clips existed still decode.
	Clip []byte `json:",omitempty"`
	// RecordingPath (relative to the data directory) and offset locate the
	// onset in the recording; "" when it is not recorded.
	RecordingPath     string
	RecordingOffsetMS *int64
	// RecordingNode names the node whose data directory holds the
	// recording (several nodes: the media node that wrote it); "" in one
	// process. Optional, so that entries queued before it existed decode.
	RecordingNode string `json:",omitempty"`
}

// ErrViolationRejected marks a violation report that can never be stored
// (its identity is no candidate, the candidate or violation does not
// exist, the report is invalid): retrying it is pointless. Every other
// error from ViolationOpened and ViolationClosed (the database is locked,
// the disk is full) may go away, and the same report may be retried.
var ErrViolationRejected = errors.New("violation cannot be stored")

// ViolationOpened stores a violation, with its evidence image on disk
// first, and only then announces it: whatever a proctor has seen survives
// a crash. Reporting the same key again stores and announces nothing more,
// so a caller may retry until it gets nil. When the row cannot be stored,
// the evidence file written for it is removed again (unless a row refers
// to it), so a failure leaves no orphan behind.
func (p *Plane) ViolationOpened(ctx context.Context, v ViolationReport) error {
	cid, ok := contract.ParseCandidateIdentity(v.Identity)
	if !ok {
		return fmt.Errorf("violation %s: identity %q is not a candidate: %w", v.Key, v.Identity, ErrViolationRejected)
	}
	if v.Key == "" || v.Type == "" || math.IsNaN(v.Confidence) || math.IsInf(v.Confidence, 0) {
		return fmt.Errorf("violation %q of %s: empty key or type, or confidence %v: %w", v.Key, v.Identity, v.Confidence, ErrViolationRejected)
	}
	cand, err := p.st.Candidate(ctx, cid)
	if err != nil {
		return fmt.Errorf("violation %s: %w", v.Key, rejectMissing(err))
	}
	// A repeated report (a retry, or a replay after a crash) of a stored
	// violation changes nothing, not even its evidence file.
	if _, err := p.st.ViolationByKey(ctx, v.Key); err == nil {
		return nil
	} else if !errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("violation %s: %w", v.Key, err)
	}
	row := store.Violation{Key: v.Key, ExamID: cand.ExamID, CandidateID: cid, Type: v.Type, Policy: v.Policy,
		Reason: v.Reason, Confidence: v.Confidence, StartedAt: v.StartedAt.UTC(), OpenedAt: v.OpenedAt.UTC(),
		EndedAt: v.EndedAt.UTC(), RecordingPath: v.RecordingPath, RecordingOffsetMS: v.RecordingOffsetMS}
	if v.RecordingPath != "" {
		row.RecordingNode = v.RecordingNode
	}
	if v.EndedAt.IsZero() {
		row.EndedAt = time.Time{}
	}
	if len(v.Details) > 0 {
		if row.Details, err = json.Marshal(v.Details); err != nil {
			return fmt.Errorf("violation %s: details: %w: %w", v.Key, ErrViolationRejected, err)
		}
	}
	if len(v.Evidence) > 0 {
		rel := evidencePath(v.Key)
		if err := writeFileDurably(filepath.Join(p.opts.DataDir, rel), v.Evidence); err != nil {
			if errors.Is(err, syscall.ENOSPC) {
				return fmt.Errorf("violation %s: save evidence: the disk under %s is full (free disk space): %w",
					v.Key, filepath.Join(p.opts.DataDir, "evidence"), err)
			}
			return fmt.Errorf("violation %s: save evidence: %w", v.Key, err)
		}
		row.EvidencePath = rel
	}
	if len(v.Clip) > 0 {
		rel := clipPath(v.Key)
		if err := writeFileDurably(filepath.Join(p.opts.DataDir, rel), v.Clip); err != nil {
			if row.EvidencePath != "" {
				p.removeUnreferencedEvidence(ctx, row.EvidencePath)
			}
			if errors.Is(err, syscall.ENOSPC) {
				return fmt.Errorf("violation %s: save audio clip: the disk under %s is full (free disk space): %w",
					v.Key, filepath.Join(p.opts.DataDir, "evidence"), err)
			}
			return fmt.Errorf("violation %s: save audio clip: %w", v.Key, err)
		}
		row.ClipPath = rel
	}
	if row.EvidencePath != "" || row.ClipPath != "" {
		// Written into this node's data directory: the other control
		// nodes fetch them from here.
		row.EvidenceNode = p.opts.Node
	}
	var inserted bool
	err = p.Update(ctx, func(ctx context.Context, tx *store.Tx) error {
		if v.RecordingPath != "" {
			if _, err := tx.AddRecording(ctx, store.Recording{ExamID: cand.ExamID, CandidateID: cid,
				Path: v.RecordingPath, StartedAt: v.StartedAt.UTC()}); err != nil {
				return err
			}
		}
		var err error
		row, inserted, err = tx.InsertViolation(ctx, row)
		if err != nil || !inserted {
			return err
		}
		_, err = tx.AppendEvent(ctx, cand.ExamID, contract.EventViolationOpened, cid, ViewViolation(row, cand.Name))
		return err
	})
	if err != nil {
		for _, rel := range []string{row.EvidencePath, row.ClipPath} {
			if rel != "" {
				p.removeUnreferencedEvidence(ctx, rel)
			}
		}
		return fmt.Errorf("store violation %s: %w", v.Key, rejectMissing(err))
	}
	if inserted {
		p.opts.ViolationStored(v.Type)
	}
	return nil
}

// rejectMissing marks what no retry can fix: a candidate, exam or
// violation that does not exist, a recording claimed by someone else.
func rejectMissing(err error) error {
	if errors.Is(err, store.ErrNotFound) || errors.Is(err, store.ErrConflict) {
		return fmt.Errorf("%w: %w", ErrViolationRejected, err)
	}
	return err
}

// evidencePath is where a violation's evidence image goes, relative to the
// data directory.
func evidencePath(key string) string {
	return filepath.Join("evidence", safeFileName(key)+".jpg")
}

// clipPath is where a violation's audio clip goes, next to its image.
func clipPath(key string) string {
	return filepath.Join("evidence", safeFileName(key)+".wav")
}

// removeUnreferencedEvidence removes an evidence file whose row could not
// be stored. It is kept when a row refers to it (two keys may share a file
// name) or when that cannot be checked: the start-up sweep
// (RemoveOrphanEvidence) gets it then.
func (p *Plane) removeUnreferencedEvidence(ctx context.Context, rel string) {
	// Not tied to the caller's context: it may be the one that
	// ended, and the file must still go.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	used, err := p.st.EvidenceReferenced(ctx, rel)
	if err != nil {
		p.log.Warn("cannot check whether unstored evidence is referenced; kept until the next start", "file", rel, "err", err)
		return
	}
	if used {
		return
	}
	if err := os.Remove(filepath.Join(p.opts.DataDir, rel)); err != nil && !errors.Is(err, os.ErrNotExist) {
		p.log.Warn("cannot remove the evidence of a violation that was not stored", "file", rel, "err", err)
	}
}

// RemoveOrphanEvidence removes the files under the data directory's
// evidence folder that no violation row refers to and that none of the
// pending violation keys (still queued for ViolationOpened) will write,
// plus temporary files of writes a crash cut short. It must run before
// anything calls ViolationOpened (at start): a write in progress would
// look like an orphan. Nothing is removed if the rows cannot be read.
func (p *Plane) RemoveOrphanEvidence(ctx context.Context, pendingKeys []string) (int, error) {
	dir := filepath.Join(p.opts.DataDir, "evidence")
	des, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("sweep orphaned evidence: %w", err)
	}
	used, err := p.st.EvidencePaths(ctx)
	if err != nil {
		return 0, fmt.Errorf("sweep orphaned evidence: %w", err)
	}
	for _, k := range pendingKeys {
		used[evidencePath(k)] = true
		used[clipPath(k)] = true
	}
	removed := 0
	for _, de := range des {
		name := de.Name()
		if !de.Type().IsRegular() {
			continue
		}
		unfinished := durable.IsTemp(name)
		evidenceFile := strings.HasSuffix(name, ".jpg") || strings.HasSuffix(name, ".wav")
		if !unfinished && (!evidenceFile || used[filepath.Join("evidence", name)]) {
			continue
		}
		if err := os.Remove(filepath.Join(dir, name)); err != nil && !errors.Is(err, os.ErrNotExist) {
			return removed, fmt.Errorf("sweep orphaned evidence: %w", err)
		}
		removed++
	}
	if removed > 0 {
		p.log.Info("removed evidence files that no violation refers to (left by a failed or interrupted store)", "files", removed, "dir", dir)
	}
	return removed, nil
}

// ViolationClosed records when a violation's condition cleared. A repeated
// close changes and announces nothing.
func (p *Plane) ViolationClosed(ctx context.Context, v ViolationReport) error {
	err := p.Update(ctx, func(ctx context.Context, tx *store.Tx) error {
		old, err := tx.ViolationByKey(ctx, v.Key)
		if err != nil {
			return err
		} else if !old.EndedAt.IsZero() {
			return nil // a repeated close: announced already
		}
		if !v.EndedAt.IsZero() && v.EndedAt.Before(old.StartedAt) {
			return fmt.Errorf("end %s is before the start %s: %w", v.EndedAt.UTC().Format(time.RFC3339Nano),
				old.StartedAt.Format(time.RFC3339Nano), ErrViolationRejected)
		}
		row, err := tx.EndViolation(ctx, v.Key, v.EndedAt.UTC())
		if err != nil {
			return err
		}
		cand, err := tx.Candidate(ctx, row.CandidateID)
		if err != nil {
			return err
		}
		_, err = tx.AppendEvent(ctx, row.ExamID, contract.EventViolationClosed, row.CandidateID, ViewViolation(row, cand.Name))
		return err
	})
	if err != nil {
		return fmt.Errorf("close violation %s: %w", v.Key, rejectMissing(err))
	}
	return nil
}

var unsafeName = regexp.MustCompile(`[^A-Za-z0-9_.-]+`)

func safeFileName(key string) string {
	s := unsafeName.ReplaceAllString(key, "_")
	if len(s) > 120 {
		s = s[:120]
	}
	return strings.TrimLeft(s, ".")
}

// writeFileDurably writes path whole or not at all (durable.WriteFile),
// creating its directory.
func writeFileDurably(path string, data []byte) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
		return fmt.Errorf("create %s: %w", filepath.Dir(path), err)
	}
	return durable.WriteFile(path, data)
}

// Review is a's decision on violation violationID: confirmed or
// dismissed, with a note.
func (p *Plane) Review(ctx context.Context, a Actor, violationID int64, decision, note string) (ViolationView, error) {
	v, err := p.Violation(ctx, a, violationID)
	if err != nil {
		return ViolationView{}, err
	}
	if decision != store.StatusConfirmed && decision != store.StatusDismissed {
		return ViolationView{}, Errorf(Invalid, "bad_decision", "decision %q: want confirmed or dismissed", decision)
	}
	note = strings.TrimSpace(note)
	if err := CheckText("review note", note, true); err != nil {
		return ViolationView{}, err
	}
	if utf8.RuneCountInString(note) > 2000 {
		return ViolationView{}, Errorf(Invalid, "too_long", "a note has at most 2000 characters")
	}
	cand, err := p.st.Candidate(ctx, v.CandidateID)
	if err != nil {
		return ViolationView{}, err
	}
	err = p.Update(ctx, func(ctx context.Context, tx *store.Tx) error {
		var err error
		v, err = tx.AddReview(ctx, store.Review{ViolationID: v.ID, ReviewerID: a.ID, Decision: decision,
			Note: note, At: p.now().UTC()})
		if err != nil {
			return err
		}
		if _, err := tx.AppendEvent(ctx, v.ExamID, contract.EventViolationReviewed, v.CandidateID, ViewViolation(v, cand.Name)); err != nil {
			return err
		}
		return tx.Audit(ctx, a.ID, "violation.review", "violation:"+strconv.FormatInt(v.ID, 10),
			map[string]any{"decision": decision})
	})
	if err != nil {
		return ViolationView{}, err
	}
	return ViewViolation(v, cand.Name), nil
}
