package api

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"sort"
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
func (s *Server) ViolationOpened(ctx context.Context, v ViolationReport) error {
	c := s.ctl
	if c == nil {
		return errors.New("api: no control plane")
	}
	cid, ok := ParseCandidateIdentity(v.Identity)
	if !ok {
		return fmt.Errorf("violation %s: identity %q is not a candidate: %w", v.Key, v.Identity, ErrViolationRejected)
	}
	if v.Key == "" || v.Type == "" || math.IsNaN(v.Confidence) || math.IsInf(v.Confidence, 0) {
		return fmt.Errorf("violation %q of %s: empty key or type, or confidence %v: %w", v.Key, v.Identity, v.Confidence, ErrViolationRejected)
	}
	cand, err := c.st.Candidate(ctx, cid)
	if err != nil {
		return fmt.Errorf("violation %s: %w", v.Key, rejectMissing(err))
	}
	// A repeated report (a retry, or a replay after a crash) of a stored
	// violation changes nothing, not even its evidence file.
	if _, err := c.st.ViolationByKey(ctx, v.Key); err == nil {
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
		if err := writeFileDurably(filepath.Join(c.opts.DataDir, rel), v.Evidence); err != nil {
			if errors.Is(err, syscall.ENOSPC) {
				return fmt.Errorf("violation %s: save evidence: the disk under %s is full (free disk space): %w",
					v.Key, filepath.Join(c.opts.DataDir, "evidence"), err)
			}
			return fmt.Errorf("violation %s: save evidence: %w", v.Key, err)
		}
		row.EvidencePath = rel
	}
	if len(v.Clip) > 0 {
		rel := clipPath(v.Key)
		if err := writeFileDurably(filepath.Join(c.opts.DataDir, rel), v.Clip); err != nil {
			if row.EvidencePath != "" {
				c.removeUnreferencedEvidence(ctx, row.EvidencePath)
			}
			if errors.Is(err, syscall.ENOSPC) {
				return fmt.Errorf("violation %s: save audio clip: the disk under %s is full (free disk space): %w",
					v.Key, filepath.Join(c.opts.DataDir, "evidence"), err)
			}
			return fmt.Errorf("violation %s: save audio clip: %w", v.Key, err)
		}
		row.ClipPath = rel
	}
	if row.EvidencePath != "" || row.ClipPath != "" {
		// Written into this node's data directory: the other control
		// nodes fetch them from here.
		row.EvidenceNode = c.opts.Node
	}
	var inserted bool
	err = c.update(ctx, func(ctx context.Context, tx *store.Tx) error {
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
		_, err = tx.AppendEvent(ctx, cand.ExamID, contract.EventViolationOpened, cid, c.viewViolation(row, cand.Name))
		return err
	})
	if err != nil {
		for _, rel := range []string{row.EvidencePath, row.ClipPath} {
			if rel != "" {
				c.removeUnreferencedEvidence(ctx, rel)
			}
		}
		return fmt.Errorf("store violation %s: %w", v.Key, rejectMissing(err))
	}
	if inserted {
		c.m.violations.WithLabelValues(v.Type).Inc()
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
func (c *control) removeUnreferencedEvidence(ctx context.Context, rel string) {
	// Not cancelled with the caller's context: it may be the one that
	// ended, and the file must still go.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	used, err := c.st.EvidenceReferenced(ctx, rel)
	if err != nil {
		c.log.Warn("cannot check whether unstored evidence is referenced; kept until the next start", "file", rel, "err", err)
		return
	}
	if used {
		return
	}
	if err := os.Remove(filepath.Join(c.opts.DataDir, rel)); err != nil && !errors.Is(err, os.ErrNotExist) {
		c.log.Warn("cannot remove the evidence of a violation that was not stored", "file", rel, "err", err)
	}
}

// RemoveOrphanEvidence removes the files under the data directory's
// evidence folder that no violation row refers to and that none of the
// pending violation keys (still queued for ViolationOpened) will write,
// plus temporary files of writes a crash cut short. It must run before
// anything calls ViolationOpened (at start): a write in progress would
// look like an orphan. Nothing is removed if the rows cannot be read.
func (s *Server) RemoveOrphanEvidence(ctx context.Context, pendingKeys []string) (int, error) {
	c := s.ctl
	if c == nil {
		return 0, errors.New("api: no control plane")
	}
	dir := filepath.Join(c.opts.DataDir, "evidence")
	des, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("sweep orphaned evidence: %w", err)
	}
	used, err := c.st.EvidencePaths(ctx)
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
		c.log.Info("removed evidence files that no violation refers to (left by a failed or interrupted store)", "files", removed, "dir", dir)
	}
	return removed, nil
}

// ViolationClosed records when a violation's condition cleared. A repeated
// close changes and announces nothing.
func (s *Server) ViolationClosed(ctx context.Context, v ViolationReport) error {
	c := s.ctl
	if c == nil {
		return errors.New("api: no control plane")
	}
	err := c.update(ctx, func(ctx context.Context, tx *store.Tx) error {
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
		_, err = tx.AppendEvent(ctx, row.ExamID, contract.EventViolationClosed, row.CandidateID, c.viewViolation(row, cand.Name))
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
		return err
	}
	return durable.WriteFile(path, data)
}

type violationView struct {
	ID                int64           `json:"id"`
	ExamID            int64           `json:"exam_id"`
	CandidateID       int64           `json:"candidate_id"`
	CandidateName     string          `json:"candidate_name"`
	Type              string          `json:"type" openapi:"violation_type"`
	Policy            string          `json:"policy"`
	Reason            string          `json:"reason"`
	Confidence        float64         `json:"confidence"`
	StartedAt         time.Time       `json:"started_at"`
	OpenedAt          time.Time       `json:"opened_at"`
	EndedAt           *time.Time      `json:"ended_at"`
	Details           json.RawMessage `json:"details"`
	Status            string          `json:"status"`
	EvidenceURL       string          `json:"evidence_url"`
	ClipURL           string          `json:"clip_url"`
	RecordingURL      string          `json:"recording_url"`
	RecordingOffsetMS *int64          `json:"recording_offset_ms"`
	Reviews           []store.Review  `json:"reviews"`
}

func (c *control) viewViolation(v store.Violation, name string) violationView {
	out := violationView{ID: v.ID, ExamID: v.ExamID, CandidateID: v.CandidateID, CandidateName: name, Type: v.Type,
		Policy: v.Policy, Reason: v.Reason, Confidence: v.Confidence, StartedAt: v.StartedAt, OpenedAt: v.OpenedAt,
		Details: v.Details, Status: v.Status, RecordingOffsetMS: v.RecordingOffsetMS, Reviews: v.Reviews}
	if !v.EndedAt.IsZero() {
		t := v.EndedAt
		out.EndedAt = &t
	}
	if len(out.Details) == 0 {
		out.Details = json.RawMessage("{}")
	}
	if out.Reviews == nil {
		out.Reviews = []store.Review{}
	}
	base := "/api/v1/violations/" + strconv.FormatInt(v.ID, 10)
	if v.EvidencePath != "" {
		out.EvidenceURL = base + "/evidence"
	}
	if v.ClipPath != "" {
		out.ClipURL = base + "/clip"
	}
	if v.RecordingPath != "" {
		out.RecordingURL = base + "/recording"
	}
	return out
}

// candidateNames maps an exam's candidate IDs to names for the views.
func (c *control) candidateNames(ctx context.Context, examID int64) (map[int64]store.Candidate, error) {
	cands, err := c.st.ListCandidates(ctx, examID)
	if err != nil {
		return nil, err
	}
	out := make(map[int64]store.Candidate, len(cands))
	for _, cand := range cands {
		out[cand.ID] = cand
	}
	return out, nil
}

func parseFilter(r *http.Request, examID int64) (store.ViolationFilter, error) {
	q := r.URL.Query()
	f := store.ViolationFilter{ExamID: examID, Type: q.Get("type"), Status: q.Get("status")}
	if v := q.Get("candidate"); v != "" {
		id, err := strconv.ParseInt(v, 10, 64)
		if err != nil || id <= 0 {
			return f, errorf(http.StatusBadRequest, "bad_filter", "candidate %q is not an id", v)
		}
		f.CandidateID = id
	}
	if f.Status != "" && !contains([]string{store.StatusPending, store.StatusConfirmed, store.StatusDismissed}, f.Status) {
		return f, errorf(http.StatusBadRequest, "bad_filter", "status %q: want pending, confirmed or dismissed", f.Status)
	}
	for name, dst := range map[string]*time.Time{"from": &f.From, "to": &f.To} {
		if v := q.Get(name); v != "" {
			t, err := time.Parse(time.RFC3339, v)
			if err != nil {
				return f, errorf(http.StatusBadRequest, "bad_filter", "%s %q: want an RFC 3339 time", name, v)
			}
			*dst = t.UTC()
		}
	}
	return f, nil
}

func (c *control) listViolations(w http.ResponseWriter, r *http.Request, p *principal) error {
	e, err := c.examFor(r, p)
	if err != nil {
		return err
	}
	f, err := parseFilter(r, e.ID)
	if err != nil {
		return err
	}
	list, err := c.st.ListViolations(r.Context(), f)
	if err != nil {
		return err
	}
	names, err := c.candidateNames(r.Context(), e.ID)
	if err != nil {
		return err
	}
	out := make([]violationView, 0, len(list))
	for _, v := range list {
		out = append(out, c.viewViolation(v, names[v.CandidateID].Name))
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

func (c *control) violationFromPath(r *http.Request) (store.Violation, error) {
	return byPathID(r, "violation", c.st.Violation)
}

func (c *control) getViolation(w http.ResponseWriter, r *http.Request, p *principal) error {
	v, err := c.violationFor(r, p)
	if err != nil {
		return err
	}
	cand, err := c.st.Candidate(r.Context(), v.CandidateID)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, c.viewViolation(v, cand.Name))
	return nil
}

// serveDataFile serves a stored file (Range requests included): from this
// node's data directory when node is this one (or "", one process), else
// from the node that holds it. The stored relative path must stay inside
// the data directory; a symbolic link in it is followed, as ever (an
// operator's recordings directory on another disk), though the internal
// endpoint that serves other nodes follows none out of it.
func (c *control) serveDataFile(w http.ResponseWriter, r *http.Request, node, rel, contentType string) error {
	if rel == "" || filepath.IsAbs(rel) || !filepath.IsLocal(rel) {
		return errorf(http.StatusNotFound, "no_file", "nothing stored")
	}
	if node != "" && node != c.opts.Node {
		return c.serveRemoteFile(w, r, node, rel, contentType)
	}
	f, err := os.Open(filepath.Join(c.opts.DataDir, rel))
	if errors.Is(err, os.ErrNotExist) {
		return errorf(http.StatusNotFound, "file_gone", "the stored file %s is missing from the data directory", rel)
	}
	if err != nil {
		return err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return err
	}
	w.Header().Set("Content-Type", contentType)
	w.Header().Set("Cache-Control", "private, max-age=60")
	http.ServeContent(w, r, "", st.ModTime(), f)
	return nil
}

// remoteFileHeaders are the headers of another node's answer that describe
// its body; the rest (its cookies, its security headers) are its own.
var remoteFileHeaders = []string{"Content-Length", "Content-Range", "Accept-Ranges", "Last-Modified"}

// serveRemoteFile streams a file that another node holds, with the status,
// length and range that node's http.ServeContent answered, so a player
// seeking in a recording sees the same as from a local file.
func (c *control) serveRemoteFile(w http.ResponseWriter, r *http.Request, node, rel, contentType string) error {
	if c.opts.Files == nil {
		return errorf(http.StatusServiceUnavailable, "file_node_unavailable",
			"the file is on node %s and this node cannot fetch files from other nodes (it runs without NATS or without a cluster_key)", node)
	}
	rng := r.Header.Get("Range")
	if r.Header.Get("If-Range") != "" {
		// If-Range compares the other node's validators, which are not
		// forwarded: the whole file is always a right answer to it.
		rng = ""
	}
	rf, err := c.opts.Files.Open(r.Context(), node, rel, rng)
	switch {
	case errors.Is(err, ErrNodeUnavailable):
		c.log.Warn("a stored file's node does not answer", "node", node, "file", rel, "err", err)
		return &apiError{Status: http.StatusServiceUnavailable, Code: "file_node_unavailable", RetryAfter: 5,
			Message: fmt.Sprintf("the file is on node %s, which does not answer now: try again once it is back", node)}
	case errors.Is(err, ErrRemoteFileMissing):
		return errorf(http.StatusNotFound, "file_gone", "the stored file %s is missing from the data directory of node %s", rel, node)
	case err != nil:
		c.log.Error("cannot fetch a stored file from its node", "node", node, "file", rel, "err", err)
		return errorf(http.StatusBadGateway, "file_node_failed", "fetching the file from node %s failed; the error is in this node's log", node)
	}
	defer rf.Body.Close()
	h := w.Header()
	for _, k := range remoteFileHeaders {
		if v := rf.Header.Get(k); v != "" {
			h.Set(k, v)
		}
	}
	if rf.Status == http.StatusOK || rf.Status == http.StatusPartialContent {
		h.Set("Content-Type", contentType)
		h.Set("Cache-Control", "private, max-age=60")
	} else if ct := rf.Header.Get("Content-Type"); ct != "" {
		h.Set("Content-Type", ct) // a 416's text, as http.ServeContent writes it here
	}
	w.WriteHeader(rf.Status)
	if r.Method == http.MethodHead {
		return nil
	}
	if _, err := io.Copy(w, rf.Body); err != nil {
		// The status is sent: nothing to answer any more. A viewer who
		// seeks away ends the copy this way too.
		c.log.Debug("stored file from another node cut short", "node", node, "file", rel, "err", err)
	}
	return nil
}

func (c *control) evidence(w http.ResponseWriter, r *http.Request, p *principal) error {
	v, err := c.violationFor(r, p)
	if err != nil {
		return err
	}
	return c.serveDataFile(w, r, v.EvidenceNode, v.EvidencePath, "image/jpeg")
}

func (c *control) clip(w http.ResponseWriter, r *http.Request, p *principal) error {
	v, err := c.violationFor(r, p)
	if err != nil {
		return err
	}
	return c.serveDataFile(w, r, v.EvidenceNode, v.ClipPath, "audio/wav")
}

func (c *control) recording(w http.ResponseWriter, r *http.Request, p *principal) error {
	v, err := c.violationFor(r, p)
	if err != nil {
		return err
	}
	return c.serveDataFile(w, r, v.RecordingNode, v.RecordingPath, "video/webm")
}

type reviewRequest struct {
	Decision string `json:"decision"`
	Note     string `json:"note"`
}

func (c *control) review(w http.ResponseWriter, r *http.Request, p *principal) error {
	v, err := c.violationFor(r, p)
	if err != nil {
		return err
	}
	var req reviewRequest
	if err := decodeJSON(r, &req); err != nil {
		return err
	}
	if req.Decision != store.StatusConfirmed && req.Decision != store.StatusDismissed {
		return errorf(http.StatusBadRequest, "bad_decision", "decision %q: want confirmed or dismissed", req.Decision)
	}
	req.Note = strings.TrimSpace(req.Note)
	if err := checkText("review note", req.Note, true); err != nil {
		return err
	}
	if utf8.RuneCountInString(req.Note) > 2000 {
		return errorf(http.StatusBadRequest, "too_long", "a note has at most 2000 characters")
	}
	cand, err := c.st.Candidate(r.Context(), v.CandidateID)
	if err != nil {
		return err
	}
	err = c.update(r.Context(), func(ctx context.Context, tx *store.Tx) error {
		var err error
		v, err = tx.AddReview(ctx, store.Review{ViolationID: v.ID, ReviewerID: p.user.ID, Decision: req.Decision,
			Note: req.Note, At: c.now().UTC()})
		if err != nil {
			return err
		}
		if _, err := tx.AppendEvent(ctx, v.ExamID, contract.EventViolationReviewed, v.CandidateID, c.viewViolation(v, cand.Name)); err != nil {
			return err
		}
		return tx.Audit(ctx, p.user.ID, "violation.review", "violation:"+strconv.FormatInt(v.ID, 10),
			map[string]any{"decision": req.Decision})
	})
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, c.viewViolation(v, cand.Name))
	return nil
}

type riskPart struct {
	Type   string  `json:"type" openapi:"violation_type"`
	Count  int     `json:"count"`
	Weight float64 `json:"weight"`
	Points float64 `json:"points"`
}

type riskView struct {
	Score float64    `json:"score"`
	Level string     `json:"level"`
	Parts []riskPart `json:"parts"`
}

// defaultRiskWeight applies to violation types without a configured weight.
const defaultRiskWeight = 10

// risk explains itself: each violation adds its type's weight times its
// confidence, in full when a proctor confirmed it, half while nobody has
// looked, nothing once dismissed; the total is capped at 100.
func (c *control) risk(list []store.Violation) riskView {
	parts := map[string]*riskPart{}
	total := 0.0
	for _, v := range list {
		factor := 0.5
		switch v.Status {
		case store.StatusConfirmed:
			factor = 1
		case store.StatusDismissed:
			factor = 0
		}
		w, ok := c.opts.RiskWeights[v.Type]
		if !ok {
			w = defaultRiskWeight
		}
		p := parts[v.Type]
		if p == nil {
			p = &riskPart{Type: v.Type, Weight: w}
			parts[v.Type] = p
		}
		p.Count++
		pts := w * v.Confidence * factor
		p.Points += pts
		total += pts
	}
	out := riskView{Score: math.Round(math.Min(total, 100)*10) / 10, Parts: []riskPart{}}
	for _, p := range parts {
		p.Points = math.Round(p.Points*10) / 10
		out.Parts = append(out.Parts, *p)
	}
	sort.Slice(out.Parts, func(i, j int) bool { return out.Parts[i].Points > out.Parts[j].Points })
	switch {
	case out.Score >= 50:
		out.Level = "high"
	case out.Score >= 20:
		out.Level = "medium"
	default:
		out.Level = "low"
	}
	return out
}

type timelineView struct {
	Candidate  candidateView       `json:"candidate"`
	Stages     []store.StageChange `json:"stages"`
	Calls      []callView          `json:"calls"`
	Violations []violationView     `json:"violations"`
	Risk       riskView            `json:"risk"`
}

func (c *control) timeline(w http.ResponseWriter, r *http.Request, p *principal) error {
	cand, err := c.candidateFor(r, p)
	if err != nil {
		return err
	}
	views, err := c.viewCandidates(r.Context(), cand.ExamID, []store.Candidate{cand})
	if err != nil {
		return err
	}
	hist, err := c.st.StageHistory(r.Context(), cand.ID)
	if err != nil {
		return err
	}
	calls, err := c.st.ListCalls(r.Context(), cand.ExamID, "")
	if err != nil {
		return err
	}
	viols, err := c.st.ListViolations(r.Context(), store.ViolationFilter{ExamID: cand.ExamID, CandidateID: cand.ID})
	if err != nil {
		return err
	}
	out := timelineView{Candidate: views[0], Stages: hist, Calls: []callView{}, Violations: []violationView{}, Risk: c.risk(viols)}
	if out.Stages == nil {
		out.Stages = []store.StageChange{}
	}
	for _, call := range calls {
		if call.CandidateID == cand.ID {
			out.Calls = append(out.Calls, viewCall(call))
		}
	}
	for _, v := range viols {
		out.Violations = append(out.Violations, c.viewViolation(v, cand.Name))
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// violationSource says what noticed a violation, for the report: the
// candidate's browser, the microphone (the audio rules) or the camera.
func violationSource(v store.Violation) string {
	var d struct {
		Source string `json:"source"`
	}
	if json.Unmarshal(v.Details, &d) == nil && d.Source == SourceBrowser {
		return SourceBrowser
	}
	if s := contract.SourceOf(v.Type); s != "" {
		return string(s)
	}
	return string(contract.SourceCamera)
}

func (c *control) report(w http.ResponseWriter, r *http.Request, p *principal) error {
	e, err := c.examFor(r, p)
	if err != nil {
		return err
	}
	list, err := c.st.ListViolations(r.Context(), store.ViolationFilter{ExamID: e.ID})
	if err != nil {
		return err
	}
	cands, err := c.candidateNames(r.Context(), e.ID)
	if err != nil {
		return err
	}
	byCand := map[int64][]store.Violation{}
	for _, v := range list {
		byCand[v.CandidateID] = append(byCand[v.CandidateID], v)
	}
	w.Header().Set("Content-Type", "text/csv; charset=utf-8")
	w.Header().Set("Content-Disposition", fmt.Sprintf(`attachment; filename="exam-%d-violations.csv"`, e.ID))
	w.Header().Set("Cache-Control", "no-store")
	cw := csv.NewWriter(w)
	_ = cw.Write([]string{"violation_id", "candidate_id", "candidate_name", "external_id", "type", "started_at", "ended_at",
		"duration_s", "confidence", "status", "reviewer", "review_note", "reviewed_at", "candidate_risk", "recording_offset_ms", "reason", "source"})
	for _, v := range list {
		cand := cands[v.CandidateID]
		ended, dur := "", ""
		if !v.EndedAt.IsZero() {
			ended = v.EndedAt.Format(time.RFC3339)
			dur = strconv.FormatFloat(v.EndedAt.Sub(v.StartedAt).Seconds(), 'f', 1, 64)
		}
		reviewer, note, at := "", "", ""
		if n := len(v.Reviews); n > 0 {
			last := v.Reviews[n-1]
			reviewer, note, at = last.Reviewer, last.Note, last.At.Format(time.RFC3339)
		}
		offset := ""
		if v.RecordingOffsetMS != nil {
			offset = strconv.FormatInt(*v.RecordingOffsetMS, 10)
		}
		_ = cw.Write([]string{strconv.FormatInt(v.ID, 10), strconv.FormatInt(v.CandidateID, 10), csvSafe(cand.Name),
			csvSafe(cand.ExternalID), v.Type, v.StartedAt.Format(time.RFC3339), ended, dur,
			strconv.FormatFloat(v.Confidence, 'f', 2, 64), v.Status, csvSafe(reviewer), csvSafe(note), at,
			strconv.FormatFloat(c.risk(byCand[v.CandidateID]).Score, 'f', 1, 64), offset, csvSafe(v.Reason), violationSource(v)})
	}
	cw.Flush()
	if err := c.st.Audit(r.Context(), p.user.ID, "report.export", "exam:"+strconv.FormatInt(e.ID, 10), nil); err != nil {
		c.log.Warn("audit a report export", "err", err)
	}
	return nil
}
