package main

import (
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"invigil/cluster"
	"invigil/internal/testassets"
	"invigil/models"
	"invigil/simulate"
)

// A cluster on loopback, each node its own process: one control node and
// two media nodes on one PostgreSQL and one nats-server. The media nodes
// announce themselves; the control node places two exams on different
// media nodes and says so in the media token; a simulated candidate that
// logs in on the control node sends its camera to its exam's media node,
// the device check's live analysis comes from there over NATS, and the
// face_off_screen violation its empty room raises reaches the control
// node's store through JetStream and a proctor's event stream on the
// control node.
func TestClusterPlacesExamsOnMediaNodes(t *testing.T) {
	if err := models.CheckPresent(testassets.ModelsDir(t)); err != nil {
		t.Fatalf("%v (make test provisions them)", err)
	}
	_, dbURL := startPostgres(t)
	ns := startNATS(t)
	env := []string{"INVIGIL_DATABASE_URL=" + dbURL, "INVIGIL_NATS_URL=" + ns.URL()}
	dir := t.TempDir()
	_, control := serveProcess(t, filepath.Join(dir, "control"), append(env, "INVIGIL_ROLE=control", "INVIGIL_NODE_ID=control")...)
	mediaBase := map[string]string{}
	for _, name := range []string{"media-1", "media-2"} {
		_, base := serveProcess(t, filepath.Join(dir, name), append(env, "INVIGIL_ROLE=media", "INVIGIL_NODE_ID="+name)...)
		mediaBase[signallingURL(base)] = name
	}

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
		alive := 0
		for _, n := range reg.Nodes() {
			if n.Alive {
				alive++
			}
		}
		if alive == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("media nodes announced: %+v", reg.Nodes())
		}
	}

	admin := adminClient(t, control)
	exam1, cand1, codes1 := examWithCandidate(t, admin)
	exam2, _, codes2 := examWithCandidate(t, admin)
	// Each exam's candidate is told where its media go: two exams, two
	// media nodes (both empty: the second exam goes where fewer are).
	nodeOf := map[int64]string{}
	logins := map[int64]simulate.Login{}
	for exam, code := range map[int64]string{exam1: codes1["rest_room"], exam2: codes2["rest_room"]} {
		l, err := simulate.LoginWithCode(t.Context(), control, code)
		if err != nil {
			t.Fatal(err)
		}
		sig, err := simulate.MediaURL(t.Context(), control, l.Token)
		if err != nil {
			t.Fatal(err)
		}
		if nodeOf[exam] = mediaBase[sig]; nodeOf[exam] == "" {
			t.Fatalf("exam %d's media at %s, which is no media node's (%v)", exam, sig, mediaBase)
		}
		logins[exam] = l
	}
	if nodeOf[exam1] == nodeOf[exam2] {
		t.Errorf("both exams on %s, want one on each media node", nodeOf[exam1])
	}
	t.Logf("exam %d on %s, exam %d on %s", exam1, nodeOf[exam1], exam2, nodeOf[exam2])

	events := openStream(t, admin, exam1)
	type result struct {
		code        int
		out, errOut string
	}
	simDone := make(chan result, 1)
	go func() {
		code, out, errOut := invoke(t, nil, "simulate", "--server", control, "--code", codes1["rest_room"],
			"--video", testassets.Photo(t, "building.jpg"), "--duration", "8s", "--loopback")
		simDone <- result{code, out, errOut}
	}()
	// The device check's live analysis: asked of the control node, which
	// asks the exam's media node.
	candidate := apiClient{t: t, base: control, token: logins[exam1].Token}
	var snap struct{ Faces, Width int }
	for deadline := time.Now().Add(30 * time.Second); candidate.call("GET", "/api/v1/candidate/analysis", nil, &snap) != 200; time.Sleep(200 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("no live analysis of the simulated camera through the control node")
		}
	}
	if snap.Width == 0 || snap.Faces != 0 {
		t.Errorf("live analysis of an empty room through the control node: %+v", snap)
	}
	var opened sseEvent
	for deadline := time.After(40 * time.Second); opened.Type != "violation_opened"; {
		select {
		case opened = <-events:
		case <-deadline:
			t.Fatal("no violation_opened on the control node's event stream")
		}
	}
	res := <-simDone
	if res.code != 0 {
		t.Fatalf("simulate: exit %d\n%s", res.code, res.errOut)
	}
	var list []violationJSON
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		list = nil
		if s := admin.call("GET", fmt.Sprintf("/api/v1/exams/%d/violations?type=face_off_screen", exam1), nil, &list); s == 200 && len(list) > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no face_off_screen stored on the control node: %+v", list)
		}
	}
	if v := list[0]; v.CandidateID != cand1 || v.EvidenceURL == "" {
		t.Errorf("violation %+v", v)
	}
}
