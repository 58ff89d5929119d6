package control

import (
	"encoding/json"
	"math"
	"sort"
	"strconv"
	"time"

	"invigil/store"
)

// The shapes below are written into the exam's event log by the
// operations that change calls and violations, and the API answers with
// the same shapes, so that a page reads a call or a violation alike from
// either.

// CallView is a call as events and the API show it.
type CallView struct {
	ID                int64     `json:"id"`
	ExamID            int64     `json:"exam_id"`
	CandidateID       int64     `json:"candidate_id"`
	CandidateIdentity string    `json:"candidate_identity"`
	StaffID           int64     `json:"staff_id"`
	StaffName         string    `json:"staff_name"`
	StaffIdentity     string    `json:"staff_identity"`
	Kind              string    `json:"kind"`
	State             string    `json:"state"`
	Outcome           string    `json:"outcome,omitempty"`
	CreatedAt         time.Time `json:"created_at"`
	AcceptedAt        time.Time `json:"accepted_at,omitzero"`
	EndedAt           time.Time `json:"ended_at,omitzero"`
}

// ViewCall is c's CallView.
func ViewCall(c store.Call) CallView {
	return CallView{ID: c.ID, ExamID: c.ExamID, CandidateID: c.CandidateID, CandidateIdentity: candidateIdentity(c.CandidateID),
		StaffID: c.StaffID, StaffName: c.StaffName, StaffIdentity: staffIdentity(c.StaffID), Kind: c.Kind, State: c.State,
		Outcome: c.Outcome, CreatedAt: c.CreatedAt, AcceptedAt: c.AcceptedAt, EndedAt: c.EndedAt}
}

// ViolationView is a violation as events and the API show it, with the
// links to its files.
type ViolationView struct {
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

// ViewViolation is v's ViolationView; name is its candidate's.
func ViewViolation(v store.Violation, name string) ViolationView {
	out := ViolationView{ID: v.ID, ExamID: v.ExamID, CandidateID: v.CandidateID, CandidateName: name, Type: v.Type,
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

// RiskPart is one violation type's share of a risk score.
type RiskPart struct {
	Type   string  `json:"type" openapi:"violation_type"`
	Count  int     `json:"count"`
	Weight float64 `json:"weight"`
	Points float64 `json:"points"`
}

// RiskView is a candidate's risk score, with how it came about.
type RiskView struct {
	Score float64    `json:"score"`
	Level string     `json:"level"`
	Parts []RiskPart `json:"parts"`
}

// defaultRiskWeight applies to violation types without a configured weight.
const defaultRiskWeight = 10

// Risk explains itself: each violation adds its type's weight times its
// confidence, in full when a proctor confirmed it, half while nobody has
// looked, nothing once dismissed; the total is capped at 100.
func (p *Plane) Risk(list []store.Violation) RiskView {
	parts := map[string]*RiskPart{}
	total := 0.0
	for _, v := range list {
		factor := 0.5
		switch v.Status {
		case store.StatusConfirmed:
			factor = 1
		case store.StatusDismissed:
			factor = 0
		}
		w, ok := p.opts.RiskWeights[v.Type]
		if !ok {
			w = defaultRiskWeight
		}
		part := parts[v.Type]
		if part == nil {
			part = &RiskPart{Type: v.Type, Weight: w}
			parts[v.Type] = part
		}
		part.Count++
		pts := w * v.Confidence * factor
		part.Points += pts
		total += pts
	}
	out := RiskView{Score: math.Round(math.Min(total, 100)*10) / 10, Parts: []RiskPart{}}
	for _, part := range parts {
		part.Points = math.Round(part.Points*10) / 10
		out.Parts = append(out.Parts, *part)
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
