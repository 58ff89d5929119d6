package sfu

import (
	"github.com/pion/interceptor"
	"github.com/pion/rtcp"
	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the SFU's Prometheus series, all named invigil_sfu_*.
type metrics struct {
	participants     prometheus.Gauge
	tracks           *prometheus.GaugeVec // kind
	subscribers      *prometheus.GaugeVec // kind: tracks forwarded to a subscriber
	packetsIn        *prometheus.CounterVec
	bytesIn          *prometheus.CounterVec
	packetsOut       *prometheus.CounterVec
	bytesOut         *prometheus.CounterVec
	packetsDropped   *prometheus.CounterVec // reason
	nacks            *prometheus.CounterVec // direction
	plis             *prometheus.CounterVec // direction
	pliRateLimited   prometheus.Counter
	reconnects       *prometheus.CounterVec // kind
	signallingErrors *prometheus.CounterVec // code
	eventsDropped    prometheus.Counter
	clockFixes       *prometheus.CounterVec // kind, what
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	byKind := []string{"kind"}
	m := &metrics{
		participants: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "invigil_sfu_participants", Help: "Participants in a session, connected or waiting for a resume."}),
		tracks: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "invigil_sfu_tracks", Help: "Published tracks being received."}, byKind),
		subscribers: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "invigil_sfu_subscribers", Help: "Published tracks being forwarded, counted once per subscriber."}, byKind),
		packetsIn: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "invigil_sfu_rtp_packets_in_total", Help: "RTP packets received from publishers."}, byKind),
		bytesIn: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "invigil_sfu_rtp_bytes_in_total", Help: "RTP payload bytes received from publishers."}, byKind),
		packetsOut: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "invigil_sfu_rtp_packets_out_total", Help: "RTP packets forwarded to subscribers."}, byKind),
		bytesOut: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "invigil_sfu_rtp_bytes_out_total", Help: "RTP payload bytes forwarded to subscribers."}, byKind),
		packetsDropped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "invigil_sfu_rtp_packets_dropped_total",
			Help: "RTP packets not forwarded: queue_full (a slow subscriber), malformed (not RTP), write_error."}, []string{"reason"}),
		nacks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "invigil_sfu_nacks_total",
			Help: "RTCP NACK packets: received from subscribers, sent to publishers."}, []string{"direction"}),
		plis: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "invigil_sfu_plis_total",
			Help: "Keyframe requests (PLI/FIR): received from subscribers, sent to publishers."}, []string{"direction"}),
		pliRateLimited: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "invigil_sfu_pli_rate_limited_total", Help: "Keyframe requests not sent to a publisher because one was sent recently."}),
		reconnects: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "invigil_sfu_reconnects_total",
			Help: "Reconnects: resume (session taken over), resume_failed (session gone, joined anew), ice_restart, expired (not resumed in time)."}, byKind),
		signallingErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "invigil_sfu_signalling_errors_total", Help: "Error messages sent to clients, by code."}, []string{"code"}),
		eventsDropped: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "invigil_sfu_events_dropped_total", Help: "Participant events not delivered to the control plane because it fell behind."}),
		clockFixes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "invigil_sfu_rtp_clock_fixes_total",
			Help: "What normalising published tracks' RTP for recording and analysis took: stray (a packet whose sequence number is far from the stream's, not handed on), renumbered (a sequence restart followed), clock_jump (an RTP clock jump followed), misdated (a packet dated by its arrival because its timestamp was not believed)."},
			[]string{"kind", "what"}),
	}
	for _, c := range []prometheus.Collector{m.eventsDropped, m.clockFixes, m.participants, m.tracks, m.subscribers, m.packetsIn, m.bytesIn,
		m.packetsOut, m.bytesOut, m.packetsDropped, m.nacks, m.plis, m.pliRateLimited, m.reconnects, m.signallingErrors} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// rtcpCounter is an interceptor that counts NACK and PLI/FIR packets on
// every peer connection: those read come from subscribers, those written go
// to publishers (the NACK generator and our keyframe requests).
type rtcpCounter struct {
	interceptor.NoOp
	m *metrics
}

type rtcpCounterFactory struct{ m *metrics }

func (f rtcpCounterFactory) NewInterceptor(string) (interceptor.Interceptor, error) {
	return &rtcpCounter{m: f.m}, nil
}

func (c *rtcpCounter) count(pkts []rtcp.Packet, direction string) {
	for _, p := range pkts {
		switch p.(type) {
		case *rtcp.TransportLayerNack:
			c.m.nacks.WithLabelValues(direction).Inc()
		case *rtcp.PictureLossIndication, *rtcp.FullIntraRequest:
			c.m.plis.WithLabelValues(direction).Inc()
		}
	}
}

func (c *rtcpCounter) BindRTCPReader(reader interceptor.RTCPReader) interceptor.RTCPReader {
	return interceptor.RTCPReaderFunc(func(b []byte, a interceptor.Attributes) (int, interceptor.Attributes, error) {
		n, attr, err := reader.Read(b, a)
		if err != nil {
			return n, attr, err
		}
		if attr == nil {
			attr = make(interceptor.Attributes)
		}
		if pkts, perr := attr.GetRTCPPackets(b[:n]); perr == nil {
			c.count(pkts, "received")
		}
		return n, attr, nil
	})
}

func (c *rtcpCounter) BindRTCPWriter(writer interceptor.RTCPWriter) interceptor.RTCPWriter {
	return interceptor.RTCPWriterFunc(func(pkts []rtcp.Packet, attr interceptor.Attributes) (int, error) {
		c.count(pkts, "sent")
		return writer.Write(pkts, attr)
	})
}
