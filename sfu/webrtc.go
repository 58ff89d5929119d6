package sfu

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"

	"github.com/pion/ice/v4"
	"github.com/pion/interceptor"
	"github.com/pion/webrtc/v4"

	"invigil/sfu/internal/pionslog"
)

// newAPI builds the pion API every peer connection of the server shares:
// VP8 and Opus only (the analysis decodes VP8; browsers send it by default),
// no RTX (retransmissions then come on the media SSRC, which forwarding and
// taps see as ordinary packets), NACK both ways, RTCP reports, transport-wide
// congestion control feedback to publishers so browsers ramp up their
// bitrate, and the RTCP counter for metrics.
func newAPI(cfg ICEConfig, m *metrics, log *slog.Logger) (*webrtc.API, io.Closer, error) {
	me := &webrtc.MediaEngine{}
	videoFeedback := []webrtc.RTCPFeedback{{Type: "ccm", Parameter: "fir"}}
	if err := me.RegisterCodec(webrtc.RTPCodecParameters{
		RTPCodecCapability: webrtc.RTPCodecCapability{
			MimeType: webrtc.MimeTypeVP8, ClockRate: 90000, RTCPFeedback: videoFeedback,
		},
		PayloadType: 96,
	}, webrtc.RTPCodecTypeVideo); err != nil {
		return nil, nil, fmt.Errorf("register VP8: %w", err)
	}
	if err := me.RegisterCodec(webrtc.RTPCodecParameters{
		RTPCodecCapability: webrtc.RTPCodecCapability{
			MimeType: webrtc.MimeTypeOpus, ClockRate: 48000, Channels: 2, SDPFmtpLine: "minptime=10;useinbandfec=1",
		},
		PayloadType: 111,
	}, webrtc.RTPCodecTypeAudio); err != nil {
		return nil, nil, fmt.Errorf("register Opus: %w", err)
	}

	ir := &interceptor.Registry{}
	// First, so that it wraps the raw RTCP streams and sees what the NACK
	// generator writes and what the NACK responder consumes.
	ir.Add(rtcpCounterFactory{m: m})
	if err := webrtc.ConfigureNack(me, ir); err != nil {
		return nil, nil, fmt.Errorf("configure NACK: %w", err)
	}
	if err := webrtc.ConfigureRTCPReports(ir); err != nil {
		return nil, nil, fmt.Errorf("configure RTCP reports: %w", err)
	}
	if err := webrtc.ConfigureTWCCSender(me, ir); err != nil {
		return nil, nil, fmt.Errorf("configure TWCC: %w", err)
	}

	logs := pionslog.New(log)
	se := webrtc.SettingEngine{LoggerFactory: logs}
	// Browsers that have camera permission expose their real addresses, so
	// mDNS would only cost sockets and goroutines per connection.
	se.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
	if cfg.DisconnectedTimeout > 0 || cfg.FailedTimeout > 0 || cfg.KeepAliveInterval > 0 {
		se.SetICETimeouts(cfg.DisconnectedTimeout, cfg.FailedTimeout, cfg.KeepAliveInterval)
	}
	if cfg.IncludeLoopback || cfg.LoopbackOnly {
		se.SetIncludeLoopbackCandidate(true)
	}
	if cfg.LoopbackOnly {
		se.SetIPFilter(func(ip net.IP) bool { return ip.IsLoopback() && ip.To4() != nil })
	}
	if len(cfg.Interfaces) > 0 {
		allowed := map[string]bool{}
		for _, name := range cfg.Interfaces {
			allowed[name] = true
		}
		se.SetInterfaceFilter(func(name string) bool { return allowed[name] })
	}
	if len(cfg.PublicIPs) > 0 {
		// Announced in place of the host addresses (1:1 NAT, Docker).
		rule := webrtc.ICEAddressRewriteRule{External: cfg.PublicIPs, AsCandidateType: webrtc.ICECandidateTypeHost, Mode: webrtc.ICEAddressRewriteReplace}
		if err := se.SetICEAddressRewriteRules(rule); err != nil {
			return nil, nil, fmt.Errorf("ICE public addresses %v: %w", cfg.PublicIPs, err)
		}
	}
	if cfg.UDPPortMin > 0 || cfg.UDPPortMax > 0 {
		if err := se.SetEphemeralUDPPortRange(cfg.UDPPortMin, cfg.UDPPortMax); err != nil {
			return nil, nil, fmt.Errorf("ICE port range: %w", err)
		}
	}
	var closers multiCloser
	networks := []webrtc.NetworkType{webrtc.NetworkTypeUDP4, webrtc.NetworkTypeUDP6}
	if cfg.LoopbackOnly {
		networks = []webrtc.NetworkType{webrtc.NetworkTypeUDP4}
	}
	if cfg.UDPPort > 0 {
		conn, err := net.ListenUDP("udp", &net.UDPAddr{Port: cfg.UDPPort})
		if err != nil {
			return nil, nil, fmt.Errorf("listen on ICE UDP port %d: %w (is another server using it?)", cfg.UDPPort, err)
		}
		mux := webrtc.NewICEUDPMux(logs.NewLogger("udpmux"), conn)
		se.SetICEUDPMux(mux)
		closers = append(closers, mux)
	}
	if cfg.TCPPort > 0 {
		ln, err := net.ListenTCP("tcp", &net.TCPAddr{Port: cfg.TCPPort})
		if err != nil {
			closers.Close()
			return nil, nil, fmt.Errorf("listen on ICE TCP port %d: %w (is another server using it?)", cfg.TCPPort, err)
		}
		mux := webrtc.NewICETCPMux(logs.NewLogger("tcpmux"), ln, 64)
		se.SetICETCPMux(mux)
		closers = append(closers, mux)
		if cfg.LoopbackOnly {
			networks = append(networks, webrtc.NetworkTypeTCP4)
		} else {
			networks = append(networks, webrtc.NetworkTypeTCP4, webrtc.NetworkTypeTCP6)
		}
	}
	se.SetNetworkTypes(networks)
	api := webrtc.NewAPI(webrtc.WithMediaEngine(me), webrtc.WithInterceptorRegistry(ir), webrtc.WithSettingEngine(se))
	return api, closers, nil
}

// multiCloser closes the ICE muxes the server owns.
type multiCloser []io.Closer

func (m multiCloser) Close() error {
	var errs []error
	for _, c := range m {
		errs = append(errs, c.Close())
	}
	return errors.Join(errs...)
}
