// Package media holds the few types that the SFU shares with the packages
// it feeds (recording, pipeline): a description of a published track and
// the writer a tap hands back. It is a leaf: the SFU, the recorder and the
// analysis pipeline all import it and none of them imports another.
package media

import (
	"time"
)

// Kind is "video" or "audio".
type Kind string

const (
	Video Kind = "video"
	Audio Kind = "audio"
)

// Track describes one published track as the SFU sees it.
type Track struct {
	// SessionID identifies the participant's session; it survives
	// reconnects (a resumed participant keeps it).
	SessionID string
	// Identity is the participant's identity from its token (for a
	// candidate, the candidate ID).
	Identity string
	// Role is the participant's role from its token ("candidate",
	// "assistant", "examiner", "proctor").
	Role string
	// Room is the room (exam) the participant joined.
	Room string
	// TrackID is unique within the session.
	TrackID string
	Kind    Kind
	// MimeType is e.g. "video/VP8" or "audio/opus"; ClockRate and Channels
	// as negotiated; PayloadType is the publisher's.
	MimeType    string
	ClockRate   uint32
	Channels    uint16
	PayloadType uint8
	// Connection counts the participant's peer connections in this session,
	// from 1: a reconnect starts a new connection (and a new recording
	// segment) in the same session.
	Connection int
	// Started is the wall-clock time the track's first packet arrived.
	Started time.Time
	// RequestKeyframe asks the publisher for a keyframe (PLI), rate-limited
	// by the SFU; safe to call from any goroutine.
	RequestKeyframe func()
}

// PacketWriter receives every RTP packet of one track, normalised by the
// track's Clock, in a copy of its own that it may keep and change. The SFU
// calls WritePacket from its forwarding goroutine, so implementations must
// never block: hand the packet off (bounded) or drop it and count the drop.
// Close is called once when the track ends; no WritePacket follows it.
type PacketWriter interface {
	WritePacket(p Packet)
	Close()
}

// Tap is told about every published track and may return a writer for its
// packets (nil to ignore the track).
type Tap interface {
	TrackStarted(t Track) PacketWriter
}
