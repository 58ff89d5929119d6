package recording

import "github.com/prometheus/client_golang/prometheus"

// Error reasons used as the `reason` label of invigil_recording_errors_total.
const (
	reasonDiskFull    = "disk_full"   // ENOSPC / EDQUOT
	reasonUnwritable  = "unwritable"  // permissions, read-only fs, a path that is not a directory
	reasonIO          = "io"          // any other write, sync or close failure
	reasonUnsupported = "unsupported" // a codec the recorder cannot put into WebM
)

// Drop reasons used as the `reason` label of the dropped counters.
const (
	dropQueueFull      = "queue_full"      // the writer goroutine fell behind; forwarding was not slowed
	dropBeforeKeyframe = "before_keyframe" // video cannot start (or resume after loss) without a keyframe
	dropInvalid        = "invalid"         // a packet or frame that cannot belong to the stream (sequence, timestamp, VP8 header)
	dropBadKeyframe    = "bad_keyframe"    // a frame tagged as a VP8 keyframe whose header is broken (vpx.ParseHeader)
	dropLate           = "late"            // older than what the file already holds
	dropPendingFull    = "pending_full"    // too much buffered while waiting for the segment to open
)

type metrics struct {
	bytesWritten   prometheus.Counter
	segments       prometheus.Counter
	active         prometheus.Gauge
	droppedPackets *prometheus.CounterVec
	droppedFrames  *prometheus.CounterVec
	framesWritten  *prometheus.CounterVec
	errors         *prometheus.CounterVec
	flushSeconds   prometheus.Histogram
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		bytesWritten: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "invigil_recording_bytes_written_total",
			Help: "Bytes of WebM written to recording files.",
		}),
		segments: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "invigil_recording_segments_total",
			Help: "Recording segment files started.",
		}),
		active: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "invigil_recording_active_segments",
			Help: "Recording segment files currently open for writing.",
		}),
		droppedPackets: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "invigil_recording_dropped_packets_total",
			Help: "RTP packets the recorder did not take, by reason.",
		}, []string{"reason"}),
		droppedFrames: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "invigil_recording_dropped_frames_total",
			Help: "Depacketised frames not written to a recording, by kind and reason.",
		}, []string{"kind", "reason"}),
		framesWritten: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "invigil_recording_frames_written_total",
			Help: "Frames handed to the WebM writer, by kind.",
		}, []string{"kind"}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "invigil_recording_errors_total",
			Help: "Recording failures, by reason; a failed recording stops, forwarding goes on.",
		}, []string{"reason"}),
		flushSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "invigil_recording_flush_seconds",
			Help:    "Time to write out and fsync a segment file.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 4, 8),
		}),
	}
	if reg == nil {
		return m, nil
	}
	for _, c := range []prometheus.Collector{m.bytesWritten, m.segments, m.active, m.droppedPackets,
		m.droppedFrames, m.framesWritten, m.errors, m.flushSeconds} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}
