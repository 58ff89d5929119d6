// Package protocol is the SFU's signaling wire format: one JSON object per
// WebSocket text message, told apart by its "type". The server (package sfu),
// the Go client (package sfu/client) and the web pages all speak it; the
// package sfu documentation lists every message with examples.
//
// Message is deliberately one flat struct rather than a type per message: it
// maps one-to-one onto the JSON a browser builds by hand, and Parse checks
// that the fields each type needs are there.
package protocol

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/pion/webrtc/v4"
)

// Message types. Client to server: Join, Offer (publisher connection),
// Answer (subscriber connection), Candidate, Subscribe, Unsubscribe,
// RestartICE, Leave, Ping. Server to client: Joined, Offer (subscriber
// connection), Answer (publisher connection), Candidate, Subscribed,
// Unsubscribed, ParticipantJoined, ParticipantLeft, TrackPublished,
// TrackUnpublished, Error, Pong.
const (
	TypeJoin              = "join"
	TypeJoined            = "joined"
	TypeOffer             = "offer"
	TypeAnswer            = "answer"
	TypeCandidate         = "candidate"
	TypeSubscribe         = "subscribe"
	TypeUnsubscribe       = "unsubscribe"
	TypeSubscribed        = "subscribed"
	TypeUnsubscribed      = "unsubscribed"
	TypeRestartICE        = "restart_ice"
	TypeLeave             = "leave"
	TypePing              = "ping"
	TypePong              = "pong"
	TypeError             = "error"
	TypeParticipantJoined = "participant_joined"
	TypeParticipantLeft   = "participant_left"
	TypeTrackPublished    = "track_published"
	TypeTrackUnpublished  = "track_unpublished"
)

// The two peer connections a participant may have. The client offers on
// its publisher connection and the server offers on the subscriber
// connection, so neither side ever has to resolve an offer collision.
const (
	TargetPublisher  = "publisher"
	TargetSubscriber = "subscriber"
)

// Error codes carried by an error message.
const (
	CodeBadJSON         = "bad_json"          // not a JSON object
	CodeUnknownType     = "unknown_type"      // "type" missing or not known
	CodeBadRequest      = "bad_request"       // a required field is missing or invalid
	CodeTooLarge        = "message_too_large" // over the server's message limit
	CodeUnauthorized    = "unauthorized"      // bad or expired token; the server closes
	CodeNotJoined       = "not_joined"        // a message other than join before joined
	CodeAlreadyJoined   = "already_joined"    // a second join on one socket
	CodeNotAllowed      = "not_allowed"       // the token's grants forbid it
	CodeLimit           = "limit"             // a server limit was reached
	CodeBadSDP          = "bad_sdp"           // an offer or answer that does not apply
	CodeBadCandidate    = "bad_candidate"     // an ICE candidate that does not apply
	CodeSessionNotFound = "session_not_found" // resume_session unknown or expired: joined as a new session
	CodeKicked          = "kicked"            // removed by the control plane; the server closes
	CodeReplaced        = "replaced"          // the same identity joined elsewhere; the server closes
	CodeSlowClient      = "slow_client"       // the client did not read its messages; the server closes
	CodeShutdown        = "shutdown"          // the server is stopping
	CodeInternal        = "internal"          // a server fault
)

// Message is one signaling message. Only the fields that its Type uses are
// set; the rest are omitted from the JSON.
type Message struct {
	Type string `json:"type"`

	// join
	Token         string `json:"token,omitempty"`
	ResumeSession string `json:"resume_session,omitempty"`

	// joined
	SessionID  string `json:"session_id,omitempty"`
	Identity   string `json:"identity,omitempty"` // also subscribe, unsubscribe, (un)subscribed, participant_left
	Resumed    bool   `json:"resumed,omitempty"`
	Connection int    `json:"connection,omitempty"`
	// Participants are those the joiner may see, with their tracks.
	Participants []Participant `json:"participants,omitempty"`

	// offer, answer
	SDP string `json:"sdp,omitempty"`
	// candidate: Target says which peer connection (publisher or
	// subscriber) the candidate belongs to.
	Target    string                   `json:"target,omitempty"`
	Candidate *webrtc.ICECandidateInit `json:"candidate,omitempty"`

	// participant_joined
	Participant *Participant `json:"participant,omitempty"`
	// track_published, track_unpublished
	Track *Track `json:"track,omitempty"`

	// error
	Code   string `json:"code,omitempty"`
	Reason string `json:"message,omitempty"`
}

// Participant describes another participant as a client sees it.
type Participant struct {
	Identity string  `json:"identity"`
	Name     string  `json:"name,omitempty"`
	Role     string  `json:"role,omitempty"`
	Tracks   []Track `json:"tracks,omitempty"`
}

// Track describes a published track. A subscriber receives it with the
// WebRTC stream ID StreamID (the publisher's identity) and track ID ID.
type Track struct {
	Identity string `json:"identity"`
	ID       string `json:"id"`
	StreamID string `json:"stream_id"`
	Kind     string `json:"kind"`
	MimeType string `json:"mime_type,omitempty"`
}

// Error is a parse failure with the code to send back.
type Error struct {
	Code   string
	Reason string
}

func (e *Error) Error() string { return e.Code + ": " + e.Reason }

// ErrorCode returns the protocol error code carried by err, or CodeInternal.
func ErrorCode(err error) string {
	var pe *Error
	if errors.As(err, &pe) {
		return pe.Code
	}
	return CodeInternal
}

// Parse decodes one message and checks that it is a known type with the
// fields that type needs. It never panics, whatever the input; its error is
// an *Error whose code the server sends back.
func Parse(data []byte) (Message, error) {
	var m Message
	trimmed := bytes.TrimSpace(data)
	if len(trimmed) == 0 || trimmed[0] != '{' {
		return Message{}, &Error{CodeBadJSON, "a message is one JSON object"}
	}
	if err := json.Unmarshal(trimmed, &m); err != nil {
		return Message{}, &Error{CodeBadJSON, fmt.Sprintf("invalid JSON: %v", err)}
	}
	if err := m.Validate(); err != nil {
		return Message{}, err
	}
	return m, nil
}

// Validate checks that m is a known type carrying the fields it needs.
func (m *Message) Validate() error {
	need := func(ok bool, what string) error {
		if !ok {
			return &Error{CodeBadRequest, fmt.Sprintf("%s needs %s", m.Type, what)}
		}
		return nil
	}
	switch m.Type {
	case TypeJoin:
		return need(m.Token != "", `"token"`)
	case TypeOffer, TypeAnswer:
		return need(m.SDP != "", `"sdp"`)
	case TypeCandidate:
		if err := need(m.Candidate != nil, `"candidate"`); err != nil {
			return err
		}
		return need(m.Target == TargetPublisher || m.Target == TargetSubscriber,
			`"target": "publisher" or "subscriber"`)
	case TypeSubscribe, TypeUnsubscribe, TypeSubscribed, TypeUnsubscribed, TypeParticipantLeft:
		return need(m.Identity != "", `"identity"`)
	case TypeJoined:
		return need(m.SessionID != "", `"session_id"`)
	case TypeParticipantJoined:
		return need(m.Participant != nil && m.Participant.Identity != "", `"participant"`)
	case TypeTrackPublished, TypeTrackUnpublished:
		return need(m.Track != nil && m.Track.ID != "", `"track"`)
	case TypeError:
		return need(m.Code != "", `"code"`)
	case TypeRestartICE, TypeLeave, TypePing, TypePong:
		return nil
	case "":
		return &Error{CodeUnknownType, `missing "type"`}
	default:
		t := m.Type
		if len(t) > 64 {
			t = t[:64] + "…"
		}
		return &Error{CodeUnknownType, fmt.Sprintf("unknown message type %q", t)}
	}
}

// Encode marshals m. It fails only for a message that Parse would reject.
func Encode(m Message) ([]byte, error) {
	if err := m.Validate(); err != nil {
		return nil, err
	}
	return json.Marshal(m)
}

// NewError builds an error message.
func NewError(code, reason string) Message {
	return Message{Type: TypeError, Code: code, Reason: reason}
}
