package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"invigil/api"
	"invigil/bus/natstest"
)

// fileNode is a data directory with what a node keeps there (a recording
// segment, an evidence image, the database, the outbox), a secret beside
// it, and links in and out, served by a real internal endpoint.
type fileNode struct {
	dir, secretPath string
	segment         []byte
	srv             *httptest.Server
}

const (
	testSegment  = "recordings/exam-1/candidate-2/sess-1/seg-1-20261203T120000.000Z.webm"
	testEvidence = "evidence/cand-2-face_off_screen-1.jpg"
)

func startFileNode(t *testing.T, key string) *fileNode {
	t.Helper()
	top := t.TempDir()
	n := &fileNode{dir: filepath.Join(top, "data"), secretPath: filepath.Join(top, "secret.jpg")}
	n.segment = append([]byte{0x1A, 0x45, 0xDF, 0xA3}, bytes.Repeat([]byte("webm"), 1000)...)
	files := map[string][]byte{
		testSegment:       n.segment,
		testEvidence:      []byte("\xff\xd8\xff evidence"),
		"invigil.db":      []byte("the database"),
		"outbox/0001.jpg": []byte("a queued entry"),
		"recordings/exam-1/candidate-2/sess-1/manifest.json": []byte("{}"),
	}
	for rel, b := range files {
		p := filepath.Join(n.dir, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o750); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(n.secretPath, []byte("SECRET outside the data directory"), 0o600); err != nil {
		t.Fatal(err)
	}
	for link, target := range map[string]string{
		"evidence/escape.jpg":    n.secretPath,                   // absolute, out
		"evidence/relescape.jpg": "../../secret.jpg",             // relative, out
		"recordings/out/x.webm":  filepath.Join(top),             // a directory out
		"evidence/inside.jpg":    "cand-2-face_off_screen-1.jpg", // stays inside: served
		"evidence/dir.jpg":       "../recordings",                // a directory inside
	} {
		p := filepath.Join(n.dir, link)
		if err := os.MkdirAll(filepath.Dir(p), 0o750); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(target, p); err != nil {
			t.Fatal(err)
		}
	}
	nf, err := newNodeFiles(n.dir, key, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = nf.Close() })
	n.srv = httptest.NewServer(nf)
	t.Cleanup(n.srv.Close)
	return n
}

// get fetches rel with the given Authorization and Range headers.
func (n *fileNode) get(t *testing.T, rel, auth, rng string) (int, http.Header, []byte) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), "GET", n.srv.URL+internalFilesPath+"?path="+url.QueryEscape(rel), nil)
	if err != nil {
		t.Fatal(err)
	}
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	if rng != "" {
		req.Header.Set("Range", rng)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, resp.Header, b
}

// Without a signature by the cluster key, for this path, still good, the
// endpoint answers 401 and nothing else.
func TestInternalFilesNeedTheClusterKey(t *testing.T) {
	n := startFileNode(t, testClusterKey)
	s := fileSigner{key: []byte(testClusterKey)}
	other := fileSigner{key: []byte("another-cluster-key-0123456789")}
	now := time.Now()
	good := s.authorization(testSegment, now)
	exp, sig, _ := strings.Cut(strings.TrimPrefix(good, fileAuthScheme+" "), ".")
	for name, auth := range map[string]string{
		"none":                     "",
		"the key as a bearer":      "Bearer " + testClusterKey,
		"the key in the scheme":    fileAuthScheme + " " + testClusterKey,
		"another key":              other.authorization(testSegment, now),
		"another path's signature": s.authorization(testEvidence, now),
		"expired":                  s.authorization(testSegment, now.Add(-2*fileSignatureLife)),
		"too far ahead":            s.authorization(testSegment, now.Add(fileSignatureMaxAhead+time.Minute)),
		"a later expiry, same mac": fmt.Sprintf("%s %d.%s", fileAuthScheme, now.Add(3*time.Minute).Unix(), sig),
		"no signature":             fileAuthScheme + " " + exp + ".",
		"garbage":                  fileAuthScheme + " " + exp + ".zz" + sig[2:],
	} {
		code, h, body := n.get(t, testSegment, auth, "")
		if code != http.StatusUnauthorized || h.Get("WWW-Authenticate") != fileAuthScheme || bytes.Contains(body, []byte("webm")) {
			t.Errorf("%s: %d %q %s, want 401", name, code, h.Get("WWW-Authenticate"), body)
		}
	}
	// Without authentication a hostile path is told nothing more.
	if code, _, _ := n.get(t, "../secret.jpg", "", ""); code != http.StatusUnauthorized {
		t.Errorf("unsigned hostile path: %d, want 401", code)
	}
	if code, h, body := n.get(t, testSegment, good, ""); code != 200 || h.Get("Content-Type") != "video/webm" || !bytes.Equal(body, n.segment) {
		t.Errorf("signed: %d %q, %d bytes, want 200 video/webm and the segment", code, h.Get("Content-Type"), len(body))
	}
	if _, err := newNodeFiles(n.dir, "short", slog.New(slog.DiscardHandler)); err == nil {
		t.Error("a node serves its files with a 5-character cluster key")
	}
}

// Even signed requests get recordings, evidence images and clips of the
// data directory only: never a path that climbs out, an absolute one, a
// link that leads out, the database, the outbox or a manifest.
func TestInternalFilesStayInTheDataDirectory(t *testing.T) {
	n := startFileNode(t, testClusterKey)
	s := fileSigner{key: []byte(testClusterKey)}
	for rel, want := range map[string]int{
		"../secret.jpg":                                      400,
		"evidence/../../secret.jpg":                          400,
		"recordings/../evidence/escape.jpg":                  400,
		n.secretPath:                                         400,
		"/etc/passwd":                                        400,
		"evidence/./cand-2-face_off_screen-1.jpg":            400,
		"evidence//cand-2-face_off_screen-1.jpg":             400,
		`evidence\..\..\secret.jpg`:                          400,
		"evidence/x.jpg\x00.webm":                            400,
		"invigil.db":                                         400,
		"outbox/0001.jpg":                                    400,
		"recordings/exam-1/candidate-2/sess-1/manifest.json": 400,
		"evidence/cand-2-face_off_screen-1.txt":              400,
		"evidence":                                           400,
		"":                                                   400,
		"evidence/escape.jpg":                                403, // a link out, absolute
		"evidence/relescape.jpg":                             403, // a link out, relative
		"recordings/out/x.webm":                              403, // a link to a directory out
		"evidence/dir.jpg":                                   403, // a directory, not a file
		"evidence/missing.jpg":                               404,
	} {
		code, _, body := n.get(t, rel, s.authorization(rel, time.Now()), "")
		if code != want || bytes.Contains(body, []byte("SECRET")) || bytes.Contains(body, []byte("database")) {
			t.Errorf("%q: %d %s, want %d", rel, code, body, want)
		}
	}
	// A link that stays inside is the file it points to.
	if code, h, body := n.get(t, "evidence/inside.jpg", s.authorization("evidence/inside.jpg", time.Now()), ""); code != 200 ||
		h.Get("Content-Type") != "image/jpeg" || !bytes.HasPrefix(body, []byte("\xff\xd8\xff")) {
		t.Errorf("a link inside the data directory: %d %q %q", code, h.Get("Content-Type"), body)
	}
}

// Range requests answer as http.ServeContent does for a local file.
func TestInternalFilesServeRanges(t *testing.T) {
	n := startFileNode(t, testClusterKey)
	s := fileSigner{key: []byte(testClusterKey)}
	auth := s.authorization(testSegment, time.Now())
	code, h, body := n.get(t, testSegment, auth, "bytes=0-99")
	if code != http.StatusPartialContent || h.Get("Content-Range") != fmt.Sprintf("bytes 0-99/%d", len(n.segment)) ||
		h.Get("Content-Type") != "video/webm" || !bytes.Equal(body, n.segment[:100]) {
		t.Errorf("bytes=0-99: %d %q %q, %d bytes", code, h.Get("Content-Range"), h.Get("Content-Type"), len(body))
	}
	code, h, body = n.get(t, testSegment, auth, "bytes=-4")
	if code != http.StatusPartialContent || !bytes.Equal(body, n.segment[len(n.segment)-4:]) {
		t.Errorf("bytes=-4: %d %q %q", code, h.Get("Content-Range"), body)
	}
	if code, h, _ = n.get(t, testSegment, auth, fmt.Sprintf("bytes=%d-", len(n.segment)+10)); code != http.StatusRequestedRangeNotSatisfiable ||
		h.Get("Content-Range") != fmt.Sprintf("bytes */%d", len(n.segment)) {
		t.Errorf("a range past the end: %d %q, want 416", code, h.Get("Content-Range"))
	}
}

// remoteFiles finds a node over NATS and fetches from its endpoint; a node
// that does not answer is ErrNodeUnavailable, a file it lacks
// ErrRemoteFileMissing, a node with another key an error saying so.
func TestRemoteFilesFetchFromTheHoldingNode(t *testing.T) {
	ns := natstest.Own(t)
	nc, err := nats.Connect(ns.URL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	log := slog.New(slog.DiscardHandler)
	n := startFileNode(t, testClusterKey)
	sub, err := answerWhere(nc, "media-x", n.srv.URL, log)
	if err != nil {
		t.Fatal(err)
	}
	strange := startFileNode(t, "another-cluster-key-0123456789")
	if _, err := answerWhere(nc, "strange", strange.srv.URL, log); err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	rf, err := newRemoteFiles(nc, testClusterKey, reg)
	if err != nil {
		t.Fatal(err)
	}

	f, err := rf.Open(t.Context(), "media-x", testSegment, "bytes=0-99")
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(f.Body)
	_ = f.Body.Close()
	if err != nil || f.Status != http.StatusPartialContent || f.Header.Get("Content-Range") != fmt.Sprintf("bytes 0-99/%d", len(n.segment)) ||
		!bytes.Equal(body, n.segment[:100]) {
		t.Errorf("range through remoteFiles: %d %q, %d bytes, %v", f.Status, f.Header.Get("Content-Range"), len(body), err)
	}
	if _, err := rf.Open(t.Context(), "media-x", "evidence/missing.jpg", ""); !errors.Is(err, api.ErrRemoteFileMissing) {
		t.Errorf("a missing file: %v, want ErrRemoteFileMissing", err)
	}
	if _, err := rf.Open(t.Context(), "strange", testSegment, ""); err == nil || errors.Is(err, api.ErrNodeUnavailable) ||
		!strings.Contains(err.Error(), "401") {
		t.Errorf("a node with another cluster key: %v, want an error with its 401", err)
	}
	if _, err := rf.Open(t.Context(), "bad.node", testSegment, ""); err == nil || errors.Is(err, api.ErrNodeUnavailable) {
		t.Errorf("a stored node name that is no node name: %v", err)
	}
	// Gone from NATS: unavailable at once, not after a timeout.
	if err := sub.Unsubscribe(); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if _, err := rf.Open(t.Context(), "media-x", testSegment, ""); !errors.Is(err, api.ErrNodeUnavailable) || time.Since(start) > time.Second {
		t.Errorf("a node that stopped answering: %v after %s, want ErrNodeUnavailable at once", err, time.Since(start))
	}
	// Still on NATS, but its HTTP is gone.
	if _, err := answerWhere(nc, "media-x", n.srv.URL, log); err != nil {
		t.Fatal(err)
	}
	n.srv.Close()
	if _, err := rf.Open(t.Context(), "media-x", testSegment, ""); !errors.Is(err, api.ErrNodeUnavailable) {
		t.Errorf("a node whose HTTP is gone: %v, want ErrNodeUnavailable", err)
	}
	for result, want := range map[string]float64{"ok": 1, "missing": 1, "failed": 2, "unavailable": 2} {
		if got := testutil.ToFloat64(rf.fetches.WithLabelValues(result)); got != want {
			t.Errorf("invigil_remote_file_fetches_total{result=%q} = %v, want %v", result, got, want)
		}
	}
}
