package sfu

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"time"

	"github.com/pion/webrtc/v4"
	"github.com/prometheus/client_golang/prometheus"

	"invigil/media"
)

// Config sets up a Server. Zero values take the defaults shown.
type Config struct {
	// Tokens verifies join tokens. Required.
	Tokens TokenVerifier
	// Taps are told about every published track (recording, analysis).
	Taps []media.Tap
	// Registry receives the invigil_sfu_* metrics; nil keeps them private.
	Registry prometheus.Registerer
	// Logger defaults to slog.Default().
	Logger *slog.Logger
	// OnEvent, if set, is told when participants join, resume, disconnect,
	// leave, publish and unpublish. It runs on one goroutine of its own, in
	// order; events beyond a bounded backlog are dropped and counted.
	OnEvent func(Event)

	// MaxParticipantsPerRoom: 200.
	MaxParticipantsPerRoom int
	// MaxSubscriptions per participant (publisher identities): 64.
	MaxSubscriptions int
	// MaxPublishedTracks per participant: 4 (camera, microphone, screen…).
	MaxPublishedTracks int
	// MaxMessageBytes bounds one signaling message: 64 KiB. A larger one
	// is answered with an error and skipped; one over 64 times this closes
	// the socket.
	MaxMessageBytes int64
	// ResumeWindow is how long a participant whose signaling socket
	// dropped is kept for a resume: 30 s.
	ResumeWindow time.Duration
	// JoinTimeout bounds the wait for the first (join) message: 10 s.
	JoinTimeout time.Duration
	// PingInterval is how often the server pings an idle socket to notice
	// a dead one: 10 s. Browsers answer WebSocket pings by themselves.
	PingInterval time.Duration
	// KeyframeInterval is the least time between two keyframe requests
	// (PLI) sent to one publisher track: 500 ms.
	KeyframeInterval time.Duration
	// ForwardQueue is the packets queued per subscriber track before new
	// ones are dropped: 512 (about a second of 2 Mbit/s video).
	ForwardQueue int
	// SendQueue is the signaling messages queued per socket before the
	// client is dropped as too slow: 1024.
	SendQueue int
	// OriginPatterns lists the browser origins (host patterns such as
	// "exam.example.org" or "*.example.org") allowed besides the server's
	// own; clients that send no Origin (not browsers) are always allowed.
	OriginPatterns []string
	// ICE configures the peer connections.
	ICE ICEConfig
}

// ICEConfig holds the network settings of the server's peer connections.
type ICEConfig struct {
	// Servers are STUN/TURN servers the server itself uses to gather
	// candidates (rarely needed on a server with a public address).
	Servers []webrtc.ICEServer
	// PublicIPs are announced in place of the host addresses (1:1 NAT,
	// e.g. a cloud VM or a Docker port mapping).
	PublicIPs []string
	// UDPPort, if set, multiplexes every peer connection on this one UDP
	// port (easy to open in a firewall or map in Docker).
	UDPPort int
	// TCPPort, if set, also accepts ICE over TCP on this port, for clients
	// on networks that block UDP (media over TCP suffers more from loss, so
	// clients use it only when UDP fails).
	TCPPort int
	// UDPPortMin and UDPPortMax bound the ephemeral ports otherwise.
	UDPPortMin, UDPPortMax uint16
	// Interfaces, if set, keeps only candidates on these interfaces.
	Interfaces []string
	// IncludeLoopback gathers 127.0.0.1 candidates too (tests, a client on
	// the same machine).
	IncludeLoopback bool
	// LoopbackOnly gathers nothing but IPv4 loopback (tests).
	LoopbackOnly bool
	// DisconnectedTimeout, FailedTimeout and KeepAliveInterval override
	// pion's ICE timers (5 s, 25 s, 2 s) when set.
	DisconnectedTimeout, FailedTimeout, KeepAliveInterval time.Duration
}

func (c Config) withDefaults() (Config, error) {
	if c.Tokens == nil {
		return c, errors.New("sfu: Config.Tokens is required")
	}
	def := func(v *int, d int) {
		if *v <= 0 {
			*v = d
		}
	}
	defDur := func(v *time.Duration, d time.Duration) {
		if *v <= 0 {
			*v = d
		}
	}
	def(&c.MaxParticipantsPerRoom, 200)
	def(&c.MaxSubscriptions, 64)
	def(&c.MaxPublishedTracks, 4)
	def(&c.ForwardQueue, 512)
	def(&c.SendQueue, 1024)
	if c.MaxMessageBytes <= 0 {
		c.MaxMessageBytes = 64 << 10
	}
	defDur(&c.ResumeWindow, 30*time.Second)
	defDur(&c.JoinTimeout, 10*time.Second)
	defDur(&c.PingInterval, 10*time.Second)
	defDur(&c.KeyframeInterval, 500*time.Millisecond)
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Registry == nil {
		c.Registry = prometheus.NewRegistry()
	}
	if c.ICE.UDPPort < 0 || c.ICE.UDPPort > 65535 {
		return c, fmt.Errorf("sfu: ICE UDP port %d out of range", c.ICE.UDPPort)
	}
	if c.ICE.TCPPort < 0 || c.ICE.TCPPort > 65535 {
		return c, fmt.Errorf("sfu: ICE TCP port %d out of range", c.ICE.TCPPort)
	}
	if c.ICE.UDPPortMin > c.ICE.UDPPortMax {
		return c, fmt.Errorf("sfu: ICE UDP port range %d-%d is empty", c.ICE.UDPPortMin, c.ICE.UDPPortMax)
	}
	for _, ip := range c.ICE.PublicIPs {
		if net.ParseIP(ip) == nil {
			return c, fmt.Errorf("sfu: public IP %q is not an IP address", ip)
		}
	}
	return c, nil
}
