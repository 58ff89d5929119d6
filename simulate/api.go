package simulate

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/pion/interceptor"
	"github.com/pion/logging"
	"github.com/pion/rtcp"
	"github.com/pion/webrtc/v4"

	"invigil/sfu/client"
)

// newAPI is sfu/client.NewAPI with an interceptor that tells the candidate
// when the SFU asks for a keyframe (client.Publish reads and discards the
// senders' RTCP itself, so the requests can only be seen on their way),
// and pion's logs at the levels a simulated candidate deserves.
func newAPI(loopbackOnly bool, log *slog.Logger, onKeyframeRequest func()) (*webrtc.API, error) {
	api, err := client.NewAPI(client.APIOptions{
		LoopbackOnly:  loopbackOnly,
		Logger:        log,
		Interceptors:  []interceptor.Factory{keyframeWatchFactory{on: onKeyframeRequest}},
		LoggerFactory: pionLogs{log: log.With("component", "pion")},
	})
	if err != nil {
		return nil, fmt.Errorf("simulate: %w", err)
	}
	return api, nil
}

type keyframeWatchFactory struct{ on func() }

func (f keyframeWatchFactory) NewInterceptor(string) (interceptor.Interceptor, error) {
	return &keyframeWatch{on: f.on}, nil
}

// keyframeWatch calls on for every PLI or FIR that reaches a sender.
type keyframeWatch struct {
	interceptor.NoOp
	on func()
}

func (k *keyframeWatch) BindRTCPReader(reader interceptor.RTCPReader) interceptor.RTCPReader {
	return interceptor.RTCPReaderFunc(func(b []byte, a interceptor.Attributes) (int, interceptor.Attributes, error) {
		n, attr, err := reader.Read(b, a)
		if err != nil || n == 0 {
			return n, attr, err
		}
		if attr == nil {
			attr = interceptor.Attributes{}
		}
		pkts, perr := attr.GetRTCPPackets(b[:n])
		if perr != nil {
			return n, attr, err
		}
		for _, p := range pkts {
			switch p.(type) {
			case *rtcp.PictureLossIndication, *rtcp.FullIntraRequest:
				k.on()
			}
		}
		return n, attr, err
	})
}

// pionLogs routes pion's logs into slog. A simulated candidate's pion
// warnings are about its own peer connection, rarely worth more than debug;
// errors become warnings.
type pionLogs struct{ log *slog.Logger }

func (p pionLogs) NewLogger(scope string) logging.LeveledLogger {
	return pionLogger{log: p.log.With("scope", scope)}
}

type pionLogger struct{ log *slog.Logger }

func (l pionLogger) emit(level slog.Level, msg string) {
	if l.log.Enabled(context.Background(), level) {
		l.log.Log(context.Background(), level, msg)
	}
}

func (l pionLogger) emitf(level slog.Level, format string, args ...any) {
	if l.log.Enabled(context.Background(), level) {
		l.log.Log(context.Background(), level, fmt.Sprintf(format, args...))
	}
}

func (l pionLogger) Trace(string)                   {}
func (l pionLogger) Tracef(string, ...any)          {}
func (l pionLogger) Debug(msg string)               { l.emit(slog.LevelDebug-4, msg) }
func (l pionLogger) Debugf(format string, a ...any) { l.emitf(slog.LevelDebug-4, format, a...) }
func (l pionLogger) Info(msg string)                { l.emit(slog.LevelDebug, msg) }
func (l pionLogger) Infof(format string, a ...any)  { l.emitf(slog.LevelDebug, format, a...) }
func (l pionLogger) Warn(msg string)                { l.emit(slog.LevelDebug, msg) }
func (l pionLogger) Warnf(format string, a ...any)  { l.emitf(slog.LevelDebug, format, a...) }
func (l pionLogger) Error(msg string)               { l.emit(slog.LevelWarn, msg) }
func (l pionLogger) Errorf(format string, a ...any) { l.emitf(slog.LevelWarn, format, a...) }
