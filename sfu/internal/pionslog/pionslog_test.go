package pionslog

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
)

// A flood of pion warnings (one per bad packet from a misbehaving peer)
// reaches the log as warnings only warnBurst times per window.
func TestWarningsAreRateLimited(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelWarn}))
	l := New(log).NewLogger("mux")
	for range 3 * warnBurst {
		l.Warnf("short buffer %d", 1)
		l.Error("dropping candidate")
	}
	l.Info("not shown at warn level")
	if n := strings.Count(buf.String(), "level=WARN"); n != warnBurst {
		t.Errorf("%d warnings logged, want %d", n, warnBurst)
	}
	if !strings.Contains(buf.String(), "pion=mux") {
		t.Errorf("scope missing: %s", buf.String())
	}
}
