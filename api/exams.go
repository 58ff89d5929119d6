package api

import (
	"context"
	"crypto/rand"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"invigil/contract"
	"invigil/control"
	"invigil/detectors/rules"
	"invigil/stage"
	"invigil/store"
)

type examRequest struct {
	Name              string    `json:"name"`
	StartsAt          time.Time `json:"starts_at"`
	EndsAt            time.Time `json:"ends_at"`
	EarlyLoginMinutes *int      `json:"early_login_minutes,omitempty"`
	// LateLoginMinutes closes first logins this long after the start
	// (0 or absent: open until the end).
	LateLoginMinutes *int `json:"late_login_minutes,omitempty"`
}

type idAnswer struct {
	ID int64 `json:"id"`
}

type examView struct {
	ID                int64                   `json:"id"`
	Name              string                  `json:"name"`
	StartsAt          time.Time               `json:"starts_at"`
	EndsAt            time.Time               `json:"ends_at"`
	EarlyLoginMinutes int                     `json:"early_login_minutes"`
	LateLoginMinutes  int                     `json:"late_login_minutes"`
	Policies          map[string]rules.Policy `json:"policies"`
	// Overridden lists the rooms whose policy the admin changed.
	Overridden []string  `json:"overridden"`
	CreatedAt  time.Time `json:"created_at"`
}

func (c *handlers) viewExam(e store.Exam) examView {
	v := examView{ID: e.ID, Name: e.Name, StartsAt: e.StartsAt, EndsAt: e.EndsAt, EarlyLoginMinutes: e.EarlyLoginMinutes,
		LateLoginMinutes: e.LateLoginMinutes,
		Policies:         map[string]rules.Policy{}, Overridden: []string{}, CreatedAt: e.CreatedAt}
	if v.EarlyLoginMinutes == 0 {
		v.EarlyLoginMinutes = int(c.opts.EarlyLogin / time.Minute)
	}
	for _, room := range control.PolicyRooms {
		pol, err := control.PolicyFor(e, room)
		if err != nil {
			c.log.Error("stored policy override no longer parses", "exam", e.ID, "room", room, "err", err)
			pol, _ = rules.DefaultPolicy(room)
		}
		v.Policies[room] = pol
		if len(e.Policies[room]) > 0 {
			v.Overridden = append(v.Overridden, room)
		}
	}
	return v
}

func (c *handlers) createExam(w http.ResponseWriter, r *http.Request, p *principal) error {
	var req examRequest
	if err := decodeJSON(r, &req); err != nil {
		return err
	}
	req.Name = strings.TrimSpace(req.Name)
	if err := checkText("exam name", req.Name, false); err != nil {
		return err
	}
	switch {
	case req.Name == "" || utf8.RuneCountInString(req.Name) > 200:
		return errorf(http.StatusBadRequest, "bad_name", "an exam needs a name of 1 to 200 characters")
	case req.StartsAt.IsZero() || req.EndsAt.IsZero():
		return errorf(http.StatusBadRequest, "bad_time", "starts_at and ends_at are required (RFC 3339)")
	case !req.EndsAt.After(req.StartsAt):
		return errorf(http.StatusBadRequest, "bad_time", "ends_at must be after starts_at")
	case req.EarlyLoginMinutes != nil && (*req.EarlyLoginMinutes < 0 || *req.EarlyLoginMinutes > 1440):
		return errorf(http.StatusBadRequest, "bad_early_login", "early_login_minutes must be 0 to 1440")
	case req.LateLoginMinutes != nil && (*req.LateLoginMinutes < 0 || *req.LateLoginMinutes > 1440):
		return errorf(http.StatusBadRequest, "bad_late_login", "late_login_minutes must be 0 to 1440")
	}
	e := store.Exam{Name: req.Name, StartsAt: req.StartsAt.UTC(), EndsAt: req.EndsAt.UTC(), CreatedAt: c.now().UTC()}
	if req.EarlyLoginMinutes != nil {
		e.EarlyLoginMinutes = *req.EarlyLoginMinutes
	}
	if req.LateLoginMinutes != nil {
		e.LateLoginMinutes = *req.LateLoginMinutes
	}
	err := c.plane.Update(r.Context(), func(ctx context.Context, tx *store.Tx) error {
		var err error
		if e, err = tx.CreateExam(ctx, e); err != nil {
			return err
		}
		return tx.Audit(ctx, p.user.ID, "exam.create", "exam:"+strconv.FormatInt(e.ID, 10), map[string]any{"name": e.Name})
	})
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, idAnswer{ID: e.ID})
	return nil
}

func (c *handlers) listExams(w http.ResponseWriter, r *http.Request, p *principal) error {
	exams, err := c.plane.Exams(r.Context(), p.actor())
	if err != nil {
		return err
	}
	out := make([]examView, 0, len(exams))
	for _, e := range exams {
		out = append(out, c.viewExam(e))
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

func (c *handlers) examFromPath(r *http.Request) (store.Exam, error) {
	return byPathID(r, "exam", c.st.Exam)
}

func (c *handlers) getExam(w http.ResponseWriter, r *http.Request, p *principal) error {
	e, err := c.examFor(r, p)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, c.viewExam(e))
	return nil
}

// setPolicy is PUT /exams/{exam}/policies/{room}: the body is the
// override, checked and applied by the plane.
func (c *handlers) setPolicy(w http.ResponseWriter, r *http.Request, p *principal) error {
	id, err := pathID(r, "exam")
	if err != nil {
		return err
	}
	body, err := io.ReadAll(r.Body)
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return errorf(http.StatusRequestEntityTooLarge, "body_too_large", "policy body larger than %d bytes", tooBig.Limit)
		}
		return bodyReadError(err)
	}
	var probe map[string]json.RawMessage
	if err := json.Unmarshal(body, &probe); err != nil {
		return errorf(http.StatusBadRequest, "bad_json", "a policy override is a JSON object: %s", describeDecodeError(err))
	}
	pol, err := c.plane.SetRoomPolicy(r.Context(), p.actor(), id, r.PathValue("room"), body)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, pol)
	return nil
}

// newCode draws a uniformly random 6-digit code from crypto/rand.
func newCode() (string, error) {
	n, err := rand.Int(rand.Reader, big.NewInt(1_000_000))
	if err != nil {
		return "", fmt.Errorf("draw an invitation code: %w", err)
	}
	return fmt.Sprintf("%06d", n.Int64()), nil
}

type newCandidateRequest struct {
	Name       string `json:"name"`
	ExternalID string `json:"external_id,omitempty"`
}

type candidateCodesAnswer struct {
	ID         int64             `json:"id"`
	Name       string            `json:"name"`
	ExternalID string            `json:"external_id"`
	Codes      map[string]string `json:"codes"`
}

// checkCandidateName is the rule for a candidate's name and external ID,
// from the API and from each CSV row alike.
func checkCandidateName(name, ext string) error {
	if p := textProblem(name, false); p != "" {
		return fmt.Errorf("name: %s", p)
	}
	if p := textProblem(ext, false); p != "" {
		return fmt.Errorf("external_id: %s", p)
	}
	if name == "" || utf8.RuneCountInString(name) > 100 {
		return errors.New("a candidate needs a name of 1 to 100 characters")
	}
	if utf8.RuneCountInString(ext) > 100 {
		return errors.New("external_id has at most 100 characters")
	}
	return nil
}

// importBatch is how many candidates one write transaction creates: about
// 22 ms of holding the database's write lock (BenchmarkImportBatch, 2
// shared cores), so a bulk import never holds it for more than
// ~100 ms at a time and the violation path and every other writer get
// their turn between batches.
const importBatch = 50

// addCandidates creates the candidates, in order, in transactions of
// importBatch each. Everything that can be checked is checked before the
// first write (names by the callers, external IDs here), so a bad list
// stores nothing. Should a later batch still fail (the disk, a concurrent
// import taking an external ID), the batches before it stay and the error
// says how many were created and from which row on nothing was, so the
// caller can import the rest again.
func (c *handlers) addCandidates(ctx context.Context, actor int64, exam store.Exam, list []store.NewCandidate) ([]candidateCodesAnswer, error) {
	if !c.now().Before(exam.EndsAt) {
		return nil, errorf(http.StatusConflict, "exam_over", "exam %d has ended; codes would never be valid", exam.ID)
	}
	row := map[string]int{} // external ID → 1-based row
	for i, nc := range list {
		if nc.ExternalID == "" {
			continue
		}
		if j, dup := row[nc.ExternalID]; dup {
			return nil, errorf(http.StatusConflict, "conflict", "rows %d and %d share external ID %q; nothing was imported", j, i+1, nc.ExternalID)
		}
		row[nc.ExternalID] = i + 1
	}
	if len(row) > 0 {
		existing, err := c.st.ListCandidates(ctx, exam.ID)
		if err != nil {
			return nil, err
		}
		for _, cand := range existing {
			if i, taken := row[cand.ExternalID]; taken && cand.ExternalID != "" {
				return nil, errorf(http.StatusConflict, "conflict", "row %d: external ID %q is already used in exam %d (candidate %d); nothing was imported",
					i, cand.ExternalID, exam.ID, cand.ID)
			}
		}
	}
	target := "exam:" + strconv.FormatInt(exam.ID, 10)
	out := make([]candidateCodesAnswer, 0, len(list))
	for start := 0; start < len(list); start += importBatch {
		batch := list[start:min(start+importBatch, len(list))]
		last := start+len(batch) == len(list)
		created := make([]candidateCodesAnswer, 0, len(batch))
		began := time.Now()
		err := c.plane.Update(ctx, func(ctx context.Context, tx *store.Tx) error {
			created = created[:0]
			for _, nc := range batch {
				cc, err := tx.CreateCandidate(ctx, exam.ID, nc, newCode)
				if err != nil {
					return err
				}
				if _, err := tx.AppendEvent(ctx, exam.ID, contract.EventCandidateAdded, cc.ID, map[string]any{"name": cc.Name, "stage": cc.Stage}); err != nil {
					return err
				}
				created = append(created, candidateCodesAnswer{ID: cc.ID, Name: cc.Name, ExternalID: cc.ExternalID, Codes: cc.Codes})
			}
			if !last {
				return nil
			}
			return tx.Audit(ctx, actor, "candidates.add", target, map[string]any{"count": len(list)})
		})
		if err == nil {
			out = append(out, created...)
			if !last {
				// SQLite's busy handler polls instead of queueing, so a
				// writer that takes the lock again at once starves those
				// waiting (a violation waited out a whole 3000-row import
				// so): leave the lock free for as long as we held it.
				pause := time.NewTimer(time.Since(began))
				select {
				case <-pause.C:
				case <-ctx.Done():
					pause.Stop()
				}
			}
			continue
		}
		if start == 0 {
			return nil, err
		}
		// The batches before this one are stored: say so in the audit log
		// and in the answer.
		if aerr := c.st.Audit(context.WithoutCancel(ctx), actor, "candidates.add", target,
			map[string]any{"count": start, "of": len(list), "stopped_at_row": start + 1}); aerr != nil {
			c.log.Warn("audit a partial candidate import", "err", aerr)
		}
		status, why := http.StatusInternalServerError, "the server failed to store it (the error is in its log)"
		var ae *apiError
		switch {
		case errors.As(err, &ae):
			status, why = ae.Status, ae.Message
		case errors.Is(err, store.ErrConflict):
			status, why = http.StatusConflict, err.Error()
		default:
			c.log.Error("candidate import stopped part way", "exam", exam.ID, "imported", start, "of", len(list), "err", err)
		}
		return out, errorf(status, "import_incomplete",
			"imported rows 1 to %d of %d (their codes are in the codes export); row %d (%q) and the rows after it were not imported: %s; import rows %d to %d again",
			start, len(list), start+1, list[start].Name, why, start+1, len(list))
	}
	return out, nil
}

func (c *handlers) addCandidate(w http.ResponseWriter, r *http.Request, p *principal) error {
	e, err := c.examFromPath(r)
	if err != nil {
		return err
	}
	var req newCandidateRequest
	if err := decodeJSON(r, &req); err != nil {
		return err
	}
	nc := store.NewCandidate{Name: strings.TrimSpace(req.Name), ExternalID: strings.TrimSpace(req.ExternalID)}
	if err := checkText("candidate name", nc.Name, false); err != nil {
		return err
	}
	if err := checkText("candidate external_id", nc.ExternalID, false); err != nil {
		return err
	}
	if err := checkCandidateName(nc.Name, nc.ExternalID); err != nil {
		return errorf(http.StatusBadRequest, "bad_name", "%v", err)
	}
	out, err := c.addCandidates(r.Context(), p.user.ID, e, []store.NewCandidate{nc})
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, out[0])
	return nil
}

type importAnswer struct {
	Created []candidateCodesAnswer `json:"created"`
}

// maxImportRows bounds one import (the body limit bounds its bytes).
const maxImportRows = 10000

// importCandidates reads a CSV with a header row naming `name` and
// optionally `external_id` (a UTF-8 BOM from spreadsheet exports is
// tolerated). The whole file is checked before anything is stored, so a
// bad row never leaves half an import behind.
func (c *handlers) importCandidates(w http.ResponseWriter, r *http.Request, p *principal) error {
	e, err := c.examFromPath(r)
	if err != nil {
		return err
	}
	body, err := io.ReadAll(r.Body)
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return errorf(http.StatusRequestEntityTooLarge, "body_too_large", "CSV larger than %d bytes: split it", tooBig.Limit)
		}
		return bodyReadError(err)
	}
	list, err := parseCandidateCSV(body)
	if err != nil {
		return err
	}
	out, err := c.addCandidates(r.Context(), p.user.ID, e, list)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, importAnswer{Created: out})
	return nil
}

// csvSafe defuses spreadsheet formulas: a cell starting with = + - @ is
// prefixed with ' so opening the export cannot run anything.
func csvSafe(s string) string {
	if s != "" && strings.ContainsRune("=+-@\t\r", rune(s[0])) {
		return "'" + s
	}
	return s
}

func (c *handlers) exportCodes(w http.ResponseWriter, r *http.Request, p *principal) error {
	e, err := c.examFromPath(r)
	if err != nil {
		return err
	}
	list, err := c.st.ExamCodes(r.Context(), e.ID)
	if err != nil {
		return err
	}
	if err := c.st.Audit(r.Context(), p.user.ID, "codes.export", "exam:"+strconv.FormatInt(e.ID, 10), nil); err != nil {
		return err
	}
	w.Header().Set("Content-Type", "text/csv; charset=utf-8")
	w.Header().Set("Content-Disposition", fmt.Sprintf(`attachment; filename="exam-%d-codes.csv"`, e.ID))
	w.Header().Set("Cache-Control", "no-store")
	cw := csv.NewWriter(w)
	_ = cw.Write([]string{"candidate_id", "name", "external_id", "mock_code", "interview_code", "rest_room_code"})
	for _, cc := range list {
		_ = cw.Write([]string{strconv.FormatInt(cc.ID, 10), csvSafe(cc.Name), csvSafe(cc.ExternalID),
			cc.Codes[store.CodeMock], cc.Codes[store.CodeInterview], cc.Codes[store.CodeRestRoom]})
	}
	cw.Flush()
	return nil
}

type candidateView struct {
	ID             int64       `json:"id"`
	ExamID         int64       `json:"exam_id"`
	Name           string      `json:"name"`
	ExternalID     string      `json:"external_id"`
	Stage          stage.Stage `json:"stage"`
	StageSince     time.Time   `json:"stage_since"`
	Identity       string      `json:"identity"`
	Online         bool        `json:"online"`
	OpenViolations int         `json:"open_violations"`
	Risk           riskView    `json:"risk"`
	Call           *callView   `json:"call"`
}

func (c *handlers) viewCandidates(ctx context.Context, examID int64, cands []store.Candidate) ([]candidateView, error) {
	pending, err := c.st.PendingViolations(ctx, examID)
	if err != nil {
		return nil, err
	}
	f := store.ViolationFilter{ExamID: examID}
	if len(cands) == 1 {
		f.CandidateID = cands[0].ID // one candidate's page: not the whole exam's violations
	}
	viols, err := c.st.ListViolations(ctx, f)
	if err != nil {
		return nil, err
	}
	byCand := map[int64][]store.Violation{}
	for _, v := range viols {
		byCand[v.CandidateID] = append(byCand[v.CandidateID], v)
	}
	calls, err := c.st.ListCalls(ctx, examID, "")
	if err != nil {
		return nil, err
	}
	current := map[int64]store.Call{}
	for _, call := range calls {
		if call.State == store.CallRinging || call.State == store.CallActive {
			current[call.CandidateID] = call
		}
	}
	out := make([]candidateView, 0, len(cands))
	for _, cand := range cands {
		v := candidateView{ID: cand.ID, ExamID: cand.ExamID, Name: cand.Name, ExternalID: cand.ExternalID,
			Stage: cand.Stage, StageSince: cand.StageSince, Identity: candidateIdentity(cand.ID),
			Online: c.plane.Online(cand.ID), OpenViolations: pending[cand.ID],
			Risk: c.plane.Risk(byCand[cand.ID])}
		if call, ok := current[cand.ID]; ok {
			cv := viewCall(call)
			v.Call = &cv
		}
		out = append(out, v)
	}
	return out, nil
}

func (c *handlers) listCandidates(w http.ResponseWriter, r *http.Request, p *principal) error {
	e, err := c.examFor(r, p)
	if err != nil {
		return err
	}
	cands, err := c.st.ListCandidates(r.Context(), e.ID)
	if err != nil {
		return err
	}
	out, err := c.viewCandidates(r.Context(), e.ID, cands)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

type candidateDetail struct {
	candidateView
	History []store.StageChange `json:"history"`
}

func (c *handlers) getCandidate(w http.ResponseWriter, r *http.Request, p *principal) error {
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
	writeJSON(w, http.StatusOK, candidateDetail{candidateView: views[0], History: hist})
	return nil
}

func (c *handlers) staffLeave(w http.ResponseWriter, r *http.Request, p *principal) error {
	id, err := pathID(r, "candidate")
	if err != nil {
		return err
	}
	cand, err := c.plane.SendAway(r.Context(), p.actor(), id)
	if err != nil {
		return err
	}
	views, err := c.viewCandidates(r.Context(), cand.ExamID, []store.Candidate{cand})
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, views[0])
	return nil
}

func (c *handlers) calibrate(w http.ResponseWriter, r *http.Request, p *principal) error {
	id, err := pathID(r, "candidate")
	if err != nil {
		return err
	}
	if err := c.plane.Calibrate(r.Context(), p.actor(), id); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// parseCandidateCSV reads an import: a header row naming `name` and
// optionally `external_id` (a UTF-8 BOM from spreadsheet exports is
// tolerated), then one candidate a row. Errors name the line.
func parseCandidateCSV(body []byte) ([]store.NewCandidate, error) {
	if !utf8.Valid(body) {
		return nil, errorf(http.StatusBadRequest, "bad_csv", "CSV line %d: the CSV is not UTF-8 text (save it as CSV UTF-8)", invalidUTF8Line(body))
	}
	body = []byte(strings.TrimPrefix(string(body), "\ufeff"))
	rd := csv.NewReader(strings.NewReader(string(body)))
	rd.FieldsPerRecord = -1
	header, err := rd.Read()
	if err != nil {
		return nil, errorf(http.StatusBadRequest, "bad_csv", "cannot read the CSV header: %v", err)
	}
	if err := checkCSVCells(rd, header); err != nil {
		return nil, err
	}
	col := map[string]int{}
	for i, h := range header {
		col[strings.ToLower(strings.TrimSpace(h))] = i
	}
	nameCol, ok := col["name"]
	if !ok {
		return nil, errorf(http.StatusBadRequest, "bad_csv", "the CSV header must name a \"name\" column (and may name \"external_id\"); got %q", header)
	}
	extCol, hasExt := col["external_id"]
	var list []store.NewCandidate
	for {
		rec, err := rd.Read()
		if err == io.EOF {
			break
		}
		if err != nil {
			// A csv.ParseError names its own line.
			return nil, errorf(http.StatusBadRequest, "bad_csv", "CSV: %v", err)
		}
		line, _ := rd.FieldPos(0) // rec has at least one field when err is nil
		if err := checkCSVCells(rd, rec); err != nil {
			return nil, err
		}
		if len(rec) == 1 && strings.TrimSpace(rec[0]) == "" {
			continue
		}
		nc := store.NewCandidate{}
		if nameCol < len(rec) {
			nc.Name = strings.TrimSpace(rec[nameCol])
		}
		if hasExt && extCol < len(rec) {
			nc.ExternalID = strings.TrimSpace(rec[extCol])
		}
		if err := checkCandidateName(nc.Name, nc.ExternalID); err != nil {
			return nil, errorf(http.StatusBadRequest, "bad_csv", "CSV line %d: %v", line, err)
		}
		if list = append(list, nc); len(list) > maxImportRows {
			return nil, errorf(http.StatusBadRequest, "bad_csv", "more than %d candidates in one import", maxImportRows)
		}
	}
	if len(list) == 0 {
		return nil, errorf(http.StatusBadRequest, "bad_csv", "the CSV has no candidate rows")
	}
	return list, nil
}

// checkCSVCells refuses a row any of whose cells, used or not, holds a
// character a name may not: an import is the organiser's data, and a
// hidden character in a column we ignore today is still a sign the file
// is not what it looks like. The error names the line (where the cell
// starts) and the column.
func checkCSVCells(rd *csv.Reader, rec []string) error {
	for i, cell := range rec {
		if p := textProblem(cell, false); p != "" {
			line, _ := rd.FieldPos(i)
			return errorf(http.StatusBadRequest, "bad_csv", "CSV line %d, column %d: %s", line, i+1, p)
		}
	}
	return nil
}

// invalidUTF8Line is the line number of the first byte of body that is
// not UTF-8.
func invalidUTF8Line(body []byte) int {
	line := 1
	for i := 0; i < len(body); {
		r, n := utf8.DecodeRune(body[i:])
		if r == utf8.RuneError && n <= 1 {
			break
		}
		if r == '\n' {
			line++
		}
		i += n
	}
	return line
}
