// Package pionslog routes pion's logs into a log/slog logger, for the SFU
// server and its Go client.
package pionslog

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/pion/logging"
)

// Factory routes pion's logs into an slog logger. pion's
// warnings and errors are mostly a remote peer's doing (an oversized
// packet, a stale ICE candidate), one per packet at worst, so they are
// logged as warnings at most warnBurst times per warnWindow and as debug
// beyond that: a misbehaving client cannot flood the log. Its info and
// below are debug.
type Factory struct {
	log   *slog.Logger
	limit *warnLimiter
}

// New returns a factory for webrtc.SettingEngine.LoggerFactory.
func New(log *slog.Logger) Factory {
	return Factory{log: log, limit: &warnLimiter{}}
}

// NewLogger implements logging.LoggerFactory.
func (f Factory) NewLogger(scope string) logging.LeveledLogger {
	return pionLogger{log: f.log.With("pion", scope), limit: f.limit}
}

const (
	warnBurst  = 20
	warnWindow = 10 * time.Second
)

type warnLimiter struct {
	mu    sync.Mutex
	start time.Time
	n     int
}

func (w *warnLimiter) allow() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	now := time.Now()
	if now.Sub(w.start) > warnWindow {
		w.start, w.n = now, 0
	}
	w.n++
	return w.n <= warnBurst
}

type pionLogger struct {
	log   *slog.Logger
	limit *warnLimiter
}

func (l pionLogger) emit(level slog.Level, msg string) {
	if level >= slog.LevelWarn && l.limit != nil && !l.limit.allow() {
		level = slog.LevelDebug
	}
	if l.log.Enabled(context.Background(), level) {
		l.log.Log(context.Background(), level, msg)
	}
}

func (l pionLogger) Trace(msg string)                  {}
func (l pionLogger) Tracef(format string, args ...any) {}
func (l pionLogger) Debug(msg string)                  { l.emit(slog.LevelDebug, msg) }
func (l pionLogger) Debugf(format string, args ...any) {
	if l.log.Enabled(context.Background(), slog.LevelDebug) {
		l.emit(slog.LevelDebug, fmt.Sprintf(format, args...))
	}
}
func (l pionLogger) Info(msg string) { l.emit(slog.LevelDebug, msg) }
func (l pionLogger) Infof(format string, args ...any) {
	l.Debugf(format, args...)
}
func (l pionLogger) Warn(msg string) { l.emit(slog.LevelWarn, msg) }
func (l pionLogger) Warnf(format string, args ...any) {
	l.emit(slog.LevelWarn, fmt.Sprintf(format, args...))
}
func (l pionLogger) Error(msg string) { l.emit(slog.LevelWarn, msg) }
func (l pionLogger) Errorf(format string, args ...any) {
	l.emit(slog.LevelWarn, fmt.Sprintf(format, args...))
}
