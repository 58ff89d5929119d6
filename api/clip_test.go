package api

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"invigil/audio"
	"invigil/store"
)

// testClip is a WAV as the pipeline makes one: 16 kHz mono.
func testClip(t *testing.T, seconds float64) []byte {
	t.Helper()
	samples := make([]int16, int(seconds*16000))
	for i := range samples {
		samples[i] = int16((i * 37) % 2000)
	}
	var b bytes.Buffer
	if err := audio.WriteWAV(&b, &audio.WAV{SampleRate: 16000, Channels: 1, Samples: samples}); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// getRange fetches path with a Range header.
func (h *harness) getRange(path, token, rng string) answer {
	h.t.Helper()
	req, err := http.NewRequest("GET", h.base+path, nil)
	if err != nil {
		h.t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Range", rng)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		h.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return answer{status: resp.StatusCode, body: b, header: resp.Header}
}

// An audio violation's clip is stored next to its image, listed as
// clip_url, served as audio/wav with Range requests to whoever may see the
// evidence image and to nobody else, and still there after a restart; a
// violation without one says so.
func TestViolationClip(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	exam, other := h.exam(), h.exam()
	cand := h.candidate(exam, "甲")
	proctor, outsider := h.staff("pr", "proctor"), h.staff("pr-other", "proctor")
	h.assign(exam, "pr")
	h.assign(other, "pr-other")

	clip := testClip(t, 3)
	v := h.violation(cand.ID, "talk/1")
	v.Type, v.Reason, v.Clip = "talking", "speech for 2.0 s within 5 s", clip
	if err := h.srv.ViolationOpened(ctx, v); err != nil {
		t.Fatal(err)
	}
	silent := h.violation(cand.ID, "video-only")
	if err := h.srv.ViolationOpened(ctx, silent); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(evidenceFiles(t, h.dataDir), " "); got != "talk_1.jpg talk_1.wav video-only.jpg" {
		t.Fatalf("evidence files: %s", got)
	}

	var list []violationView
	h.must(200, "GET", "/api/v1/exams/"+itoa(exam)+"/violations", proctor, nil).decode(t, &list)
	if len(list) != 2 {
		t.Fatalf("violations: %s", mustJSON(list))
	}
	var talk violationView
	for _, x := range list {
		switch x.Type {
		case "talking":
			talk = x
		default:
			if x.ClipURL != "" {
				t.Errorf("a violation without a clip lists clip_url %q", x.ClipURL)
			}
			h.must(404, "GET", "/api/v1/violations/"+itoa(x.ID)+"/clip", proctor, nil)
		}
	}
	if want := "/api/v1/violations/" + itoa(talk.ID) + "/clip"; talk.ClipURL != want {
		t.Fatalf("clip_url %q, want %q", talk.ClipURL, want)
	}

	whole := h.must(200, "GET", talk.ClipURL, proctor, nil)
	if ct := whole.header.Get("Content-Type"); ct != "audio/wav" || !bytes.Equal(whole.body, clip) {
		t.Fatalf("clip: %s, %d bytes (want audio/wav, %d bytes)", ct, len(whole.body), len(clip))
	}
	if w, err := audio.ReadWAV(bytes.NewReader(whole.body)); err != nil || w.SampleRate != 16000 || w.Frames() != 48000 {
		t.Fatalf("served clip: %v", err)
	}
	part := h.getRange(talk.ClipURL, proctor, "bytes=44-1043")
	if part.status != http.StatusPartialContent || !bytes.Equal(part.body, clip[44:1044]) ||
		part.header.Get("Content-Range") != "bytes 44-1043/"+itoa(int64(len(clip))) {
		t.Errorf("Range: %d %q, %d bytes", part.status, part.header.Get("Content-Range"), len(part.body))
	}

	// The evidence image's access rules, caller by caller.
	candTok := h.codeLogin(cand.Codes["rest_room"]).Token
	evidence := strings.TrimSuffix(talk.ClipURL, "/clip") + "/evidence"
	for who, tok := range map[string]string{"no login": "", "candidate": candTok, "proctor of another exam": outsider,
		"proctor": proctor, "admin": h.admin} {
		got, want := h.do("GET", talk.ClipURL, tok, nil).status, h.do("GET", evidence, tok, nil).status
		if got != want {
			t.Errorf("%s: clip %d, evidence image %d", who, got, want)
		}
		if allowed := who == "proctor" || who == "admin"; allowed != (got == 200) {
			t.Errorf("%s: clip %d", who, got)
		}
	}

	// The sweep keeps it, and a clip nobody refers to goes.
	if err := os.WriteFile(filepath.Join(h.dataDir, "evidence", "orphan.wav"), []byte("RIFF"), 0o640); err != nil {
		t.Fatal(err)
	}
	if n, err := h.srv.RemoveOrphanEvidence(ctx, nil); err != nil || n != 1 {
		t.Fatalf("sweep removed %d: %v", n, err)
	}

	// A restart: a new store and server on the same data directory.
	if err := h.st.Close(); err != nil {
		t.Fatal(err)
	}
	st, err := store.Open(ctx, filepath.Join(h.dataDir, "invigil.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	s, err := New(Options{Registry: prometheus.NewRegistry(), Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		Control: &ControlOptions{Store: st, DataDir: h.dataDir, Now: h.clock.Now, CodeAttempts: 5}})
	if err != nil {
		t.Fatal(err)
	}
	if n, err := s.RemoveOrphanEvidence(ctx, nil); err != nil || n != 0 {
		t.Fatalf("the sweep at the restart removed %d: %v", n, err)
	}
	h2 := &harness{t: t, st: st, srv: s, dataDir: h.dataDir, clock: h.clock, base: serveOnLoopback(t, s)}
	tok := h2.login("admin", adminPassword)
	var again violationView
	h2.must(200, "GET", "/api/v1/violations/"+itoa(talk.ID), tok, nil).decode(t, &again)
	if again.ClipURL != talk.ClipURL {
		t.Fatalf("after the restart clip_url %q", again.ClipURL)
	}
	if got := h2.must(200, "GET", again.ClipURL, tok, nil); !bytes.Equal(got.body, clip) {
		t.Fatalf("after the restart the clip is %d bytes", len(got.body))
	}
}
