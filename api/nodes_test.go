package api

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"
)

// With several nodes a violation names the node holding each of its files:
// the evidence this node writes is this node's, the recording the node
// the report names. A file on this node (or on no named node: one
// process, older rows) is served from the data directory; a file on
// another node, without a way to reach it, is 503
// file_node_unavailable.
func TestViolationFilesNameTheirNode(t *testing.T) {
	h := newHarness(t, func(o *ControlOptions) { o.Node = "control-a" })
	ctx := context.Background()
	exam := h.exam()
	cand := h.candidate(exam, "甲")
	proctor := h.staff("pr", "proctor")
	h.assign(exam, "pr")

	segment := append([]byte{0x1A, 0x45, 0xDF, 0xA3}, bytes.Repeat([]byte{7}, 300)...)
	rel := "recordings/exam-1/candidate-1/sess-1/seg-1.webm"
	if err := os.MkdirAll(filepath.Dir(filepath.Join(h.dataDir, rel)), 0o750); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(h.dataDir, rel), segment, 0o600); err != nil {
		t.Fatal(err)
	}
	for key, c := range map[string]struct {
		path, node string
		want       int
		code       string
	}{
		"elsewhere": {rel, "media-1", 503, "file_node_unavailable"},
		"here":      {rel, "control-a", 206, ""},
		"unnamed":   {rel, "", 206, ""},
	} {
		v := h.violation(cand.ID, key)
		v.RecordingPath, v.RecordingNode = c.path, c.node
		if err := h.srv.ViolationOpened(ctx, v); err != nil {
			t.Fatal(err)
		}
		row, err := h.st.ViolationByKey(ctx, key)
		if err != nil {
			t.Fatal(err)
		}
		if row.RecordingNode != c.node || row.EvidenceNode != "control-a" {
			t.Errorf("%s: stored recording node %q, evidence node %q; want %q and control-a", key, row.RecordingNode, row.EvidenceNode, c.node)
		}
		a := h.getRange("/api/v1/violations/"+itoa(row.ID)+"/recording", proctor, "bytes=0-99")
		if a.status != c.want || a.errCode() != c.code {
			t.Errorf("%s: recording %d %s, want %d %s", key, a.status, a.body, c.want, c.code)
		}
		if c.want == 206 && (!bytes.Equal(a.body, segment[:100]) || a.header.Get("Content-Type") != "video/webm") {
			t.Errorf("%s: recording range %q, %d bytes", key, a.header.Get("Content-Type"), len(a.body))
		}
		// The evidence was written here, so it is served from here.
		if e := h.must(200, "GET", "/api/v1/violations/"+itoa(row.ID)+"/evidence", proctor, nil); !bytes.HasPrefix(e.body, []byte{0xff, 0xd8}) {
			t.Errorf("%s: evidence %q", key, e.body)
		}
	}
	// A report without a recording names no recording node, whatever it says.
	v := h.violation(cand.ID, "unrecorded")
	v.RecordingNode = "media-1"
	if err := h.srv.ViolationOpened(ctx, v); err != nil {
		t.Fatal(err)
	}
	if row, err := h.st.ViolationByKey(ctx, "unrecorded"); err != nil || row.RecordingNode != "" {
		t.Errorf("unrecorded: recording node %q, %v", row.RecordingNode, err)
	}
}

// In one process (no node name) nothing names a node: rows stay as they
// were before several nodes existed.
func TestViolationFilesInOneProcessNameNoNode(t *testing.T) {
	h := newHarness(t)
	cand := h.candidate(h.exam(), "乙")
	v := h.violation(cand.ID, "one")
	v.RecordingPath = "recordings/x/seg.webm"
	if err := h.srv.ViolationOpened(context.Background(), v); err != nil {
		t.Fatal(err)
	}
	if row, err := h.st.ViolationByKey(context.Background(), "one"); err != nil || row.RecordingNode != "" || row.EvidenceNode != "" {
		t.Errorf("one process: recording node %q, evidence node %q, %v", row.RecordingNode, row.EvidenceNode, err)
	}
}
