package store

import (
	"encoding/json"
	"errors"
	"time"

	"invigil/contract"
	"invigil/stage"
)

// Errors callers branch on; every error returned wraps one of these or
// carries context of its own.
var (
	ErrNotFound = errors.New("not found")
	// ErrConflict: a unique value is taken, or the row changed so that the
	// write no longer applies (a stage move that is not allowed).
	ErrConflict = errors.New("conflict")
)

// Staff roles (package contract's).
const (
	RoleAdmin     = contract.RoleAdmin
	RoleAssistant = contract.RoleAssistant
	RoleExaminer  = contract.RoleExaminer
	RoleProctor   = contract.RoleProctor
)

// Roles lists the staff roles.
var Roles = contract.StaffRoles

type User struct {
	ID           int64     `json:"id"`
	Username     string    `json:"username"`
	Role         string    `json:"role"`
	PasswordHash string    `json:"-"`
	Disabled     bool      `json:"disabled"`
	CreatedAt    time.Time `json:"created_at"`
}

// UserUpdate changes the fields that are set.
type UserUpdate struct {
	Disabled     *bool
	Role         *string
	PasswordHash *string
}

// Token kinds.
const (
	TokenStaff     = "staff"
	TokenCandidate = "candidate"
)

// Token is a login session. Only the SHA-256 of the bearer secret is kept,
// so a copy of the database does not log anybody in.
type Token struct {
	Hash        string // hex SHA-256 of the secret
	Kind        string // TokenStaff or TokenCandidate
	UserID      int64  // staff tokens
	CandidateID int64  // candidate tokens
	CSRF        string
	CreatedAt   time.Time
	ExpiresAt   time.Time
	RevokedAt   time.Time // zero while valid
}

type Exam struct {
	ID                int64     `json:"id"`
	Name              string    `json:"name"`
	StartsAt          time.Time `json:"starts_at"`
	EndsAt            time.Time `json:"ends_at"`
	EarlyLoginMinutes int       `json:"early_login_minutes"`
	// LateLoginMinutes closes first logins this long after StartsAt; 0
	// keeps them open until EndsAt.
	LateLoginMinutes int `json:"late_login_minutes"`
	// Policies holds the per-room policy overrides the admin set, by room
	// ("waiting", "interview", "rest_room"); absent rooms use the defaults.
	Policies  map[string]json.RawMessage `json:"policies"`
	CreatedAt time.Time                  `json:"created_at"`
}

// Code kinds.
const (
	CodeMock      = "mock"
	CodeInterview = "interview"
	CodeRestRoom  = "rest_room"
)

// CodeKinds lists the kinds every candidate gets, one code each.
var CodeKinds = []string{CodeMock, CodeInterview, CodeRestRoom}

type Candidate struct {
	ID              int64       `json:"id"`
	ExamID          int64       `json:"exam_id"`
	Name            string      `json:"name"`
	ExternalID      string      `json:"external_id"`
	Stage           stage.Stage `json:"stage"`
	StageSince      time.Time   `json:"stage_since"`
	DeviceCheckedAt time.Time   `json:"-"` // zero until the device check ends well
	InterviewedAt   time.Time   `json:"-"` // zero until the interview ends
	CreatedAt       time.Time   `json:"created_at"`
}

// NewCandidate is one row of an import.
type NewCandidate struct {
	Name       string
	ExternalID string
}

// CandidateCodes is a candidate with its invitation codes by kind.
type CandidateCodes struct {
	Candidate
	Codes map[string]string `json:"codes"`
}

// CodeMatch is what an active invitation code opens.
type CodeMatch struct {
	CandidateID int64
	ExamID      int64
	Kind        string
}

// StageChange is one row of a candidate's stage history.
type StageChange struct {
	ID          int64       `json:"id"`
	CandidateID int64       `json:"candidate_id"`
	From        stage.Stage `json:"from"`
	To          stage.Stage `json:"to"`
	At          time.Time   `json:"at"`
	ActorID     int64       `json:"actor_id,omitempty"` // staff user; 0 = the candidate or the system
	Reason      string      `json:"reason,omitempty"`
}

// Call kinds and states.
const (
	CallDeviceCheck = "device_check"
	CallInterview   = "interview"
	CallSpotCheck   = "spot_check"

	CallRinging  = "ringing"
	CallActive   = "active"
	CallEnded    = "ended"
	CallDeclined = "declined"
)

type Call struct {
	ID          int64     `json:"id"`
	ExamID      int64     `json:"exam_id"`
	CandidateID int64     `json:"candidate_id"`
	StaffID     int64     `json:"staff_id"`
	StaffName   string    `json:"staff_name"` // filled on reads (join with users)
	Kind        string    `json:"kind"`
	State       string    `json:"state"`
	Outcome     string    `json:"outcome,omitempty"` // "done" or "retry" once ended
	CreatedAt   time.Time `json:"created_at"`
	AcceptedAt  time.Time `json:"accepted_at,omitzero"`
	EndedAt     time.Time `json:"ended_at,omitzero"`
}

type Score struct {
	CandidateID int64     `json:"candidate_id"`
	ExaminerID  int64     `json:"examiner_id"`
	Score       float64   `json:"score"`
	Comment     string    `json:"comment"`
	UpdatedAt   time.Time `json:"updated_at"`
	PublishedAt time.Time `json:"published_at,omitzero"`
}

// Violation statuses.
const (
	StatusPending   = "pending"
	StatusConfirmed = "confirmed"
	StatusDismissed = "dismissed"
)

type Violation struct {
	ID          int64     `json:"id"`
	Key         string    `json:"key"` // the pipeline's key; unique
	ExamID      int64     `json:"exam_id"`
	CandidateID int64     `json:"candidate_id"`
	Type        string    `json:"type"`
	Policy      string    `json:"policy"`
	Reason      string    `json:"reason"`
	Confidence  float64   `json:"confidence"`
	StartedAt   time.Time `json:"started_at"`
	OpenedAt    time.Time `json:"opened_at"`
	EndedAt     time.Time `json:"ended_at,omitzero"` // zero while the condition lasts
	// Details are the detector's numbers at the onset (JSON object).
	Details json.RawMessage `json:"details,omitempty"`
	// EvidencePath, ClipPath (the WAV of the microphone up to the opening)
	// and RecordingPath are relative to the data directory; "" when there
	// is none.
	EvidencePath      string `json:"-"`
	ClipPath          string `json:"-"`
	RecordingPath     string `json:"-"`
	RecordingOffsetMS *int64 `json:"recording_offset_ms"`
	// RecordingNode names the node whose data directory holds the
	// recording (the media node that wrote it), EvidenceNode the one
	// holding the evidence image and the clip (the control node that
	// stored them); "" is whichever node reads the row (one process).
	RecordingNode string   `json:"-"`
	EvidenceNode  string   `json:"-"`
	Status        string   `json:"status"`
	Reviews       []Review `json:"reviews"` // filled by Violation and ListViolations
}

type ViolationFilter struct {
	ExamID      int64
	CandidateID int64     // 0 = all
	Type        string    // "" = all
	Status      string    // "" = all
	From, To    time.Time // on StartedAt; zero = unbounded
	Limit       int       // 0 = no limit
}

type Review struct {
	ID          int64     `json:"id"`
	ViolationID int64     `json:"violation_id"`
	ReviewerID  int64     `json:"reviewer_id"`
	Reviewer    string    `json:"reviewer"` // username, filled on reads
	Decision    string    `json:"decision"` // StatusConfirmed or StatusDismissed
	Note        string    `json:"note"`
	At          time.Time `json:"at"`
}

// Recording is one recorded segment file of a candidate.
type Recording struct {
	ID          int64     `json:"id"`
	ExamID      int64     `json:"exam_id"`
	CandidateID int64     `json:"candidate_id"`
	SessionID   string    `json:"session_id"`
	Path        string    `json:"path"` // relative to the data directory; unique
	StartedAt   time.Time `json:"started_at"`
}

// Event is one entry of an exam's live event log. Seq counts from 1 per
// exam with no gaps, so a page that saw Seq n asks for everything after n.
type Event struct {
	Seq         int64           `json:"seq"`
	ExamID      int64           `json:"exam_id"`
	Type        string          `json:"type"`
	At          time.Time       `json:"at"`
	CandidateID int64           `json:"candidate_id,omitempty"`
	Data        json.RawMessage `json:"data"`
}

type AuditEntry struct {
	ID      int64           `json:"id"`
	At      time.Time       `json:"at"`
	ActorID int64           `json:"actor_id"`
	Action  string          `json:"action"`
	Target  string          `json:"target"`
	Details json.RawMessage `json:"details,omitempty"`
}
