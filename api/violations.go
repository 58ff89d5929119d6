package api

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"invigil/contract"
	"invigil/control"
	"invigil/store"
)

// ViolationReport is a violation as the media plane reports it
// (control.ViolationReport); cmd adapts the pipeline's events to it.
type ViolationReport = control.ViolationReport

// ErrViolationRejected marks a violation report that can never be stored;
// see control.ErrViolationRejected.
var ErrViolationRejected = control.ErrViolationRejected

var errNoControlPlane = errors.New("api: no control plane")

// ViolationOpened stores a violation (control.Plane.ViolationOpened).
func (s *Server) ViolationOpened(ctx context.Context, v ViolationReport) error {
	if s.ctl == nil {
		return errNoControlPlane
	}
	return s.ctl.plane.ViolationOpened(ctx, v)
}

// ViolationClosed records when a violation's condition cleared
// (control.Plane.ViolationClosed).
func (s *Server) ViolationClosed(ctx context.Context, v ViolationReport) error {
	if s.ctl == nil {
		return errNoControlPlane
	}
	return s.ctl.plane.ViolationClosed(ctx, v)
}

// RemoveOrphanEvidence sweeps evidence files no violation refers to
// (control.Plane.RemoveOrphanEvidence); it must run before anything calls
// ViolationOpened.
func (s *Server) RemoveOrphanEvidence(ctx context.Context, pendingKeys []string) (int, error) {
	if s.ctl == nil {
		return 0, errNoControlPlane
	}
	return s.ctl.plane.RemoveOrphanEvidence(ctx, pendingKeys)
}

type violationView = control.ViolationView

// candidateNames maps an exam's candidate IDs to names for the views.
func (c *handlers) candidateNames(ctx context.Context, examID int64) (map[int64]store.Candidate, error) {
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

func (c *handlers) listViolations(w http.ResponseWriter, r *http.Request, p *principal) error {
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
		out = append(out, control.ViewViolation(v, names[v.CandidateID].Name))
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

func (c *handlers) getViolation(w http.ResponseWriter, r *http.Request, p *principal) error {
	v, err := c.violationFor(r, p)
	if err != nil {
		return err
	}
	cand, err := c.st.Candidate(r.Context(), v.CandidateID)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, control.ViewViolation(v, cand.Name))
	return nil
}

// serveDataFile serves a stored file (Range requests included): from this
// node's data directory when node is this one (or "", one process), else
// from the node that holds it. The stored relative path must stay inside
// the data directory; a symbolic link in it is followed, as ever (an
// operator's recordings directory on another disk), though the internal
// endpoint that serves other nodes follows none out of it.
func (c *handlers) serveDataFile(w http.ResponseWriter, r *http.Request, node, rel, contentType string) error {
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
func (c *handlers) serveRemoteFile(w http.ResponseWriter, r *http.Request, node, rel, contentType string) error {
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

func (c *handlers) evidence(w http.ResponseWriter, r *http.Request, p *principal) error {
	v, err := c.violationFor(r, p)
	if err != nil {
		return err
	}
	return c.serveDataFile(w, r, v.EvidenceNode, v.EvidencePath, "image/jpeg")
}

func (c *handlers) clip(w http.ResponseWriter, r *http.Request, p *principal) error {
	v, err := c.violationFor(r, p)
	if err != nil {
		return err
	}
	return c.serveDataFile(w, r, v.EvidenceNode, v.ClipPath, "audio/wav")
}

func (c *handlers) recording(w http.ResponseWriter, r *http.Request, p *principal) error {
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

func (c *handlers) review(w http.ResponseWriter, r *http.Request, p *principal) error {
	id, err := pathID(r, "violation")
	if err != nil {
		return err
	}
	var req reviewRequest
	if err := decodeJSON(r, &req); err != nil {
		return err
	}
	v, err := c.plane.Review(r.Context(), p.actor(), id, req.Decision, req.Note)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, v)
	return nil
}

type riskView = control.RiskView

type timelineView struct {
	Candidate  candidateView       `json:"candidate"`
	Stages     []store.StageChange `json:"stages"`
	Calls      []callView          `json:"calls"`
	Violations []violationView     `json:"violations"`
	Risk       riskView            `json:"risk"`
}

func (c *handlers) timeline(w http.ResponseWriter, r *http.Request, p *principal) error {
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
	out := timelineView{Candidate: views[0], Stages: hist, Calls: []callView{}, Violations: []violationView{}, Risk: c.plane.Risk(viols)}
	if out.Stages == nil {
		out.Stages = []store.StageChange{}
	}
	for _, call := range calls {
		if call.CandidateID == cand.ID {
			out.Calls = append(out.Calls, viewCall(call))
		}
	}
	for _, v := range viols {
		out.Violations = append(out.Violations, control.ViewViolation(v, cand.Name))
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

func (c *handlers) report(w http.ResponseWriter, r *http.Request, p *principal) error {
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
			strconv.FormatFloat(c.plane.Risk(byCand[v.CandidateID]).Score, 'f', 1, 64), offset, csvSafe(v.Reason), violationSource(v)})
	}
	cw.Flush()
	if err := c.st.Audit(r.Context(), p.user.ID, "report.export", "exam:"+strconv.FormatInt(e.ID, 10), nil); err != nil {
		c.log.Warn("audit a report export", "err", err)
	}
	return nil
}
