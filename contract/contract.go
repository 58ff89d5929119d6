// Package contract holds what Invigil's parts agree on: the control plane
// (api), the media plane (sfu, pipeline), simulate and the pages. Each of
// them used to spell these out for itself; now they take them from here,
// and the pages from the generated web/static/assets/contract.js, which a
// test keeps equal to JavaScript().
//
// The names are API contracts (DESIGN.md): new ones may be added, none
// renamed. The package imports nothing of Invigil's, so anything may
// import it.
package contract

import (
	"slices"
	"strconv"
	"strings"
	"time"
)

// SignallingPath is where the SFU's signaling WebSocket is mounted on the
// server; the pages and simulate connect there.
const SignallingPath = "/sfu/ws"

// Roles. Staff log in with a username and password; candidates with an
// invitation code.
const (
	RoleAdmin     = "admin"
	RoleAssistant = "assistant"
	RoleExaminer  = "examiner"
	RoleProctor   = "proctor"
	RoleCandidate = "candidate"
)

// StaffRoles are the roles a staff account can have.
var StaffRoles = []string{RoleAdmin, RoleAssistant, RoleExaminer, RoleProctor}

// The SFU sees only identities and room names; the control plane maps
// them back to candidates, staff and exams.
const (
	candidatePrefix = "candidate-"
	staffPrefix     = "staff-"
	examPrefix      = "exam-"
	// LoadIdentityPrefix starts the identities of load-test candidates,
	// whose tokens are signed with the configured sfu_token_key: they may
	// never be a real candidate or staff member, nor join an exam's room.
	LoadIdentityPrefix = "load-"
)

// CandidateIdentity is candidate id's SFU identity.
func CandidateIdentity(id int64) string { return candidatePrefix + strconv.FormatInt(id, 10) }

// StaffIdentity is staff user id's SFU identity.
func StaffIdentity(id int64) string { return staffPrefix + strconv.FormatInt(id, 10) }

// ExamRoom is exam id's SFU room.
func ExamRoom(id int64) string { return examPrefix + strconv.FormatInt(id, 10) }

// IsExamRoom reports whether room is an exam's (and not a load test's).
func IsExamRoom(room string) bool { return strings.HasPrefix(room, examPrefix) }

// ParseCandidateIdentity is CandidateIdentity's inverse.
func ParseCandidateIdentity(identity string) (int64, bool) { return parseID(identity, candidatePrefix) }

// ParseStaffIdentity is StaffIdentity's inverse.
func ParseStaffIdentity(identity string) (int64, bool) { return parseID(identity, staffPrefix) }

func parseID(identity, prefix string) (int64, bool) {
	rest, ok := strings.CutPrefix(identity, prefix)
	if !ok {
		return 0, false
	}
	id, err := strconv.ParseInt(rest, 10, 64)
	return id, err == nil && id > 0 && strconv.FormatInt(id, 10) == rest
}

// Grants is what a media token allows its bearer. The control plane
// decides them (a candidate publishes and sees only whom the server
// subscribes it to; a proctor is hidden and may see a room's candidates);
// the SFU enforces them.
type Grants struct {
	// Identity names the participant: a candidate ID or a staff user ID. It
	// is unique on the server: a second join with the same identity
	// replaces the first.
	Identity string `json:"sub"`
	Name     string `json:"name,omitempty"`
	// Role is one of the roles above; the SFU passes it on to taps and to
	// other participants.
	Role string `json:"role,omitempty"`
	// Room is the room (exam) joined; participants only ever see and
	// subscribe to others in the same room.
	Room         string `json:"room"`
	CanPublish   bool   `json:"pub,omitempty"`
	CanSubscribe bool   `json:"subs,omitempty"`
	// Hidden participants appear in no other participant's list or
	// notifications (a proctor watching the rest room).
	Hidden bool `json:"hidden,omitempty"`
	// Subscribe lists the identities the bearer may subscribe to itself;
	// "*" means everyone in the room. With CanSubscribe and an empty list,
	// the bearer sees no one until the server API subscribes it.
	Subscribe []string `json:"see,omitempty"`
	// ExpiresAt bounds when the token may be used to join or resume; a
	// session that joined in time is not cut off when it passes.
	ExpiresAt time.Time `json:"-"`
}

// MaySubscribeTo reports whether g lets its bearer subscribe to identity
// by itself (without the server subscribing it).
func (g Grants) MaySubscribeTo(identity string) bool {
	return g.CanSubscribe && (slices.Contains(g.Subscribe, "*") || slices.Contains(g.Subscribe, identity))
}

// Source says what noticed a violation.
type Source string

const (
	SourceCamera     Source = "camera"
	SourceMicrophone Source = "microphone"
	// SourceBrowser: the candidate's page reported it itself; stored as
	// details.source = "browser".
	SourceBrowser Source = "browser"
)

// Violation type names.
const (
	FaceOffScreen  = "face_off_screen"
	ExtraPerson    = "extra_person"
	HeadTurn       = "head_turn"
	HandsOutOfView = "hands_out_of_view"
	Distance       = "distance"
	CameraBlocked  = "camera_blocked"
	Talking        = "talking"
	MicrophoneOff  = "microphone_off"
	// PhoneCall is judged on the camera (a hand held at the ear or cheek),
	// the microphone deciding how long it must last.
	PhoneCall    = "phone_call"
	LeftPage     = "left_page"
	SecondScreen = "second_screen"
	Headphones   = "headphones"
)

// ViolationType is one violation type and what notices it.
type ViolationType struct {
	Name   string `json:"name"`
	Source Source `json:"source"`
}

// ViolationTypes lists every violation type in a stable order: the
// camera's and the microphone's (which a room's policy turns on and off),
// then the browser's own reports.
var ViolationTypes = []ViolationType{
	{FaceOffScreen, SourceCamera},
	{ExtraPerson, SourceCamera},
	{HeadTurn, SourceCamera},
	{HandsOutOfView, SourceCamera},
	{Distance, SourceCamera},
	{CameraBlocked, SourceCamera},
	{Talking, SourceMicrophone},
	{MicrophoneOff, SourceMicrophone},
	{PhoneCall, SourceCamera},
	{LeftPage, SourceBrowser},
	{SecondScreen, SourceBrowser},
	{Headphones, SourceBrowser},
}

// SourceOf says what notices violation type name ("" for an unknown one).
func SourceOf(name string) Source {
	for _, t := range ViolationTypes {
		if t.Name == name {
			return t.Source
		}
	}
	return ""
}

// ViolationNames lists the names of ViolationTypes whose source is one of
// sources (all of them without sources).
func ViolationNames(sources ...Source) []string {
	var out []string
	for _, t := range ViolationTypes {
		if len(sources) == 0 || slices.Contains(sources, t.Source) {
			out = append(out, t.Name)
		}
	}
	return out
}

// Live event types: what an exam's event stream (GET
// /api/v1/exams/{exam}/events and the candidate's own stream) carries in
// each event's `type`.
const (
	EventCandidateAdded    = "candidate_added"
	EventStageChanged      = "stage_changed"
	EventCallRinging       = "call_ringing"
	EventCallStarted       = "call_started"
	EventCallEnded         = "call_ended"
	EventViolationOpened   = "violation_opened"
	EventViolationClosed   = "violation_closed"
	EventViolationReviewed = "violation_reviewed"
	EventScorePublished    = "score_published"
	EventHelpRequested     = "help_requested"
	EventPresence          = "presence"
)

// EventTypes lists every live event type; the pages listen for these.
var EventTypes = []string{
	EventCandidateAdded, EventStageChanged, EventCallRinging, EventCallStarted, EventCallEnded,
	EventViolationOpened, EventViolationClosed, EventViolationReviewed, EventScorePublished,
	EventHelpRequested, EventPresence,
}
