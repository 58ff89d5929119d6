package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"invigil/bus/natstest"
	"invigil/cluster"
	"invigil/internal/testassets"
	"invigil/models"
)

// fetchFile GETs a file route of the API with an optional Range header.
func fetchFile(t *testing.T, c apiClient, path, rng string) (int, http.Header, []byte) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), "GET", c.base+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
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

// The files of a violation stay where they were written: its recording on
// the media node, its evidence on the control node that stored it. Either
// control node serves both, fetching what it does not hold from the node
// that does, ranges included; once the media node is gone its recording
// answers 503 while the evidence still plays.
func TestClusterServesFilesFromTheNodeThatHoldsThem(t *testing.T) {
	if err := models.CheckPresent(testassets.ModelsDir(t)); err != nil {
		t.Fatalf("%v (make test provisions them)", err)
	}
	_, dbURL := startPostgres(t)
	ns := natstest.Own(t)
	env := []string{"INVIGIL_DATABASE_URL=" + dbURL, "INVIGIL_NATS_URL=" + ns.URL()}
	dir := t.TempDir()
	var controls []string
	for _, name := range []string{"control-a", "control-b"} {
		_, base := serveProcess(t, filepath.Join(dir, name), append(env, "INVIGIL_ROLE=control", "INVIGIL_NODE_ID="+name)...)
		controls = append(controls, base)
	}
	media, _ := serveProcess(t, filepath.Join(dir, "media-1"), append(env, "INVIGIL_ROLE=media", "INVIGIL_NODE_ID=media-1")...)

	nc, err := nats.Connect(ns.URL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	reg, err := cluster.Watch(nc, cluster.WatchOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer reg.Close()
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		if n, ok := reg.Node("media-1"); ok && n.Alive {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("media-1 never announced itself: %+v", reg.Nodes())
		}
	}

	admins := []apiClient{adminClient(t, controls[0]), adminClient(t, controls[1])}
	exam, cand, codes := examWithCandidate(t, admins[0])
	code, _, errOut := invoke(t, nil, "simulate", "--server", controls[0], "--code", codes["rest_room"],
		"--video", testassets.Photo(t, "building.jpg"), "--duration", "8s", "--loopback")
	if code != 0 {
		t.Fatalf("simulate: exit %d\n%s", code, errOut)
	}
	var v violationJSON
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		var list []violationJSON
		if s := admins[1].call("GET", fmt.Sprintf("/api/v1/exams/%d/violations?type=face_off_screen", exam), nil, &list); s == 200 && len(list) > 0 {
			v = list[0]
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no face_off_screen stored")
		}
	}
	if v.CandidateID != cand || v.RecordingURL == "" || v.EvidenceURL == "" {
		t.Fatalf("violation %+v: want its recording and its evidence", v)
	}

	// Whichever control node stored it holds the evidence (one of them
	// fetches it from the other), the media node the recording (both
	// fetch it); both serve the same bytes.
	holders := 0
	for _, name := range []string{"control-a", "control-b"} {
		jpgs, _ := filepath.Glob(filepath.Join(dir, name, "evidence", "*.jpg"))
		webms, _ := filepath.Glob(filepath.Join(dir, name, "recordings", "*", "*", "*", "*.webm"))
		if len(jpgs) > 0 {
			holders++
		}
		if len(webms) > 0 {
			t.Errorf("%s has recordings: %v", name, webms)
		}
	}
	if webms, _ := filepath.Glob(filepath.Join(dir, "media-1", "recordings", "*", "*", "*", "*.webm")); holders != 1 || len(webms) == 0 {
		t.Fatalf("%d control nodes hold evidence, media-1 %d recordings: want the evidence on one and the recording on media-1", holders, len(webms))
	}
	var evidence []byte
	for i, admin := range admins {
		status, h, body := fetchFile(t, admin, v.RecordingURL, "bytes=0-99")
		total := ""
		if _, after, ok := strings.Cut(h.Get("Content-Range"), "/"); ok {
			total = after
		}
		if n, err := strconv.Atoi(total); status != http.StatusPartialContent || h.Get("Content-Type") != "video/webm" ||
			!strings.HasPrefix(h.Get("Content-Range"), "bytes 0-99/") || err != nil || n < 100 || len(body) != 100 ||
			!bytes.HasPrefix(body, []byte{0x1A, 0x45, 0xDF, 0xA3}) {
			t.Errorf("control %d: recording bytes=0-99: %d %q %q, %d bytes starting % x, want 206 video/webm and an EBML header",
				i, status, h.Get("Content-Type"), h.Get("Content-Range"), len(body), body[:min(len(body), 4)])
		}
		status, h, body = fetchFile(t, admin, v.EvidenceURL, "")
		if status != http.StatusOK || h.Get("Content-Type") != "image/jpeg" || !bytes.HasPrefix(body, []byte{0xFF, 0xD8}) {
			t.Errorf("control %d: evidence: %d %q, %d bytes, want 200 image/jpeg", i, status, h.Get("Content-Type"), len(body))
		}
		if evidence == nil {
			evidence = body
		} else if !bytes.Equal(body, evidence) {
			t.Errorf("the two control nodes serve different evidence (%d and %d bytes)", len(evidence), len(body))
		}
		status, h, body = fetchFile(t, admin, v.EvidenceURL, "bytes=2-5")
		if status != http.StatusPartialContent || !bytes.Equal(body, evidence[2:6]) || h.Get("Content-Range") != fmt.Sprintf("bytes 2-5/%d", len(evidence)) {
			t.Errorf("control %d: evidence bytes=2-5: %d %q % x", i, status, h.Get("Content-Range"), body)
		}
	}

	// The media node dies: its recording cannot be had, and the API says
	// so; the evidence on the control nodes is still there.
	if err := media.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		status, _, body := fetchFile(t, admins[0], v.RecordingURL, "bytes=0-99")
		var e struct{ Error struct{ Code string } }
		_ = json.Unmarshal(body, &e)
		if status == http.StatusServiceUnavailable && e.Error.Code == "file_node_unavailable" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("recording of a dead media node: %d %s, want 503 file_node_unavailable", status, body)
		}
	}
	for i, admin := range admins {
		if status, _, body := fetchFile(t, admin, v.EvidenceURL, ""); status != http.StatusOK || !bytes.Equal(body, evidence) {
			t.Errorf("control %d: evidence after the media node died: %d, %d bytes", i, status, len(body))
		}
	}
}
