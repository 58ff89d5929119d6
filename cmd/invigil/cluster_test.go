package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"invigil/bus/natstest"
	"invigil/cluster"
	"invigil/contract"
	"invigil/internal/testassets"
	"invigil/models"
	"invigil/recording"
	"invigil/simulate"
	"invigil/store/pgtest"
)

// A cluster on loopback, each node its own process: one control node and
// two media nodes on one PostgreSQL and one nats-server. The media nodes
// announce themselves; the control node places two exams on different
// media nodes and says so in the media token; a simulated candidate that
// logs in on the control node sends its camera to its exam's media node,
// the device check's live analysis comes from there over NATS, and the
// violations the two candidates' empty rooms raise on the two media nodes
// reach a proctor's event streams of both exams on the control node, and
// its store, through JetStream.
func TestClusterPlacesExamsOnMediaNodes(t *testing.T) {
	if err := models.CheckPresent(testassets.ModelsDir(t)); err != nil {
		t.Fatalf("%v (make test provisions them)", err)
	}
	cl := startCluster(t)
	control, mediaBase := cl.control, cl.mediaBase
	admin := adminClient(t, control)
	// A media node serves no API: the control node does.
	for sig := range mediaBase {
		base := nodeBase(sig)
		if s := (apiClient{t: t, base: base}).call("POST", "/api/v1/auth/login", map[string]string{"username": "admin", "password": testAdminPassword}, nil); s != 404 {
			t.Errorf("log in on media node %s: %d, want 404", base, s)
		}
	}
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

	// A proctor on the control node watches both exams; both candidates
	// send an empty room, each to its own media node.
	streams := map[int64]<-chan sseEvent{exam1: openStream(t, admin, exam1), exam2: openStream(t, admin, exam2)}
	type result struct {
		code        int
		out, errOut string
	}
	simDone := make(chan result, 2)
	for _, code := range []string{codes1["rest_room"], codes2["rest_room"]} {
		go func() {
			code, out, errOut := invoke(t, nil, "simulate", "--server", control, "--code", code,
				"--video", testassets.Photo(t, "building.jpg"), "--duration", "8s", "--loopback")
			simDone <- result{code, out, errOut}
		}()
	}
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
	for exam, events := range streams {
		var opened sseEvent
		for deadline := time.After(40 * time.Second); opened.Type != "violation_opened"; {
			select {
			case opened = <-events:
			case <-deadline:
				t.Fatalf("no violation_opened of exam %d (on %s) on the control node's event stream", exam, nodeOf[exam])
			}
		}
	}
	for range 2 {
		if res := <-simDone; res.code != 0 {
			t.Fatalf("simulate: exit %d\n%s", res.code, res.errOut)
		}
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

// testCluster is one control node and two media nodes, each its own
// process, on one PostgreSQL and one nats-server.
type testCluster struct {
	pg        *pgtest.Server
	nats      *natstest.Server
	control   string
	media     map[string]*exec.Cmd // by node name
	mediaData map[string]string    // node name → data directory
	mediaBase map[string]string    // signaling URL → node name
	reg       *cluster.Registry
}

func startCluster(t *testing.T) *testCluster {
	t.Helper()
	pg, dbURL := startPostgres(t)
	ns := natstest.Own(t)
	env := []string{"INVIGIL_DATABASE_URL=" + dbURL, "INVIGIL_NATS_URL=" + ns.URL()}
	dir := t.TempDir()
	c := &testCluster{pg: pg, nats: ns, media: map[string]*exec.Cmd{}, mediaData: map[string]string{}, mediaBase: map[string]string{}}
	_, c.control = serveProcess(t, filepath.Join(dir, "control"), append(env, "INVIGIL_ROLE=control", "INVIGIL_NODE_ID=control")...)
	for _, name := range []string{"media-1", "media-2"} {
		c.mediaData[name] = filepath.Join(dir, name)
		cmd, base := serveProcess(t, c.mediaData[name], append(env, "INVIGIL_ROLE=media", "INVIGIL_NODE_ID="+name)...)
		c.media[name], c.mediaBase[signallingURL(base)] = cmd, name
	}
	nc, err := nats.Connect(ns.URL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	if c.reg, err = cluster.Watch(nc, cluster.WatchOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.reg.Close() })
	c.waitAlive(t, 2)
	return c
}

// waitAlive waits until n media nodes are alive.
func (c *testCluster) waitAlive(t *testing.T, n int) {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		alive := 0
		for _, s := range c.reg.Nodes() {
			if s.Alive {
				alive++
			}
		}
		if alive == n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("want %d media nodes alive: %+v", n, c.reg.Nodes())
		}
	}
}

// A media node is SIGKILLed while its exam's candidate sends: the control
// node notices (missed heartbeats), places the exam on the other media
// node, and the candidate, asking the control node where to go each time
// its resume fails, continues there on a new connection, recorded in a new
// segment on the new node; the violation acknowledged before the kill
// stays stored and the empty room raises face_off_screen again on the new
// node. The time to reconnect and the gap in what was sent are logged.
func TestClusterMediaNodeDies(t *testing.T) {
	if err := models.CheckPresent(testassets.ModelsDir(t)); err != nil {
		t.Fatalf("%v (make test provisions them)", err)
	}
	cl := startCluster(t)
	admin := adminClient(t, cl.control)
	var mu sync.Mutex
	var sent []simulate.SentFrame
	rc := cl.runCandidate(t, admin, []simulate.Clip{{File: testassets.Photo(t, "building.jpg")}},
		func(f simulate.SentFrame) { mu.Lock(); sent = append(sent, f); mu.Unlock() })
	exam, cand, locate, c := rc.exam, rc.id, rc.locate, rc.c
	first := cl.mediaBase[rc.sig]

	stored := func() int {
		var list []violationJSON
		admin.call("GET", fmt.Sprintf("/api/v1/exams/%d/violations?type=face_off_screen", exam), nil, &list)
		return len(list)
	}
	for deadline := time.Now().Add(40 * time.Second); stored() == 0; time.Sleep(200 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("no face_off_screen stored before the kill")
		}
	}
	killed := time.Now()
	if err := cl.media[first].Process.Kill(); err != nil {
		t.Fatal(err)
	}
	// The candidate's frames on its next connection: a new session on the
	// other node, whose frames count from 0 again.
	var resumed simulate.SentFrame
	found := false
	for deadline := time.Now().Add(60 * time.Second); !found; time.Sleep(20 * time.Millisecond) {
		mu.Lock()
		for i := 1; i < len(sent) && !found; i++ {
			if sent[i].Index == 0 && sent[i].At.After(killed) {
				resumed, found = sent[i], true
			}
		}
		mu.Unlock()
		if !found && time.Now().After(deadline) {
			t.Fatalf("the candidate did not reconnect within a minute of the kill (stats %+v)", c.Stats())
		}
	}
	moved, err := locate(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	second := cl.mediaBase[moved]
	if second == "" || second == first {
		t.Fatalf("after %s died the exam's media are at %s (%s)", first, moved, second)
	}
	mu.Lock()
	var lastBefore simulate.SentFrame
	for _, f := range sent {
		if f.At.Before(resumed.At) {
			lastBefore = f
		}
	}
	mu.Unlock()
	t.Logf("%s killed; the candidate sent again on %s %v after the kill (its last frame to %s %v before the first to %s; %d resume attempts failed)",
		first, second, resumed.At.Sub(killed).Round(time.Millisecond), first, resumed.At.Sub(lastBefore.At).Round(time.Millisecond), second, c.Stats().ConnectionsFailed)

	// The violation from before the kill stays; the new node raises one.
	for deadline := time.Now().Add(40 * time.Second); stored() < 2; time.Sleep(200 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%d face_off_screen stored: want the one from before the kill and one from %s", stored(), second)
		}
	}
	sessions, err := recording.Sessions(cl.mediaData[second], contract.ExamRoom(exam), contract.CandidateIdentity(cand))
	if err != nil || len(sessions) == 0 || len(sessions[0].Segments) == 0 {
		t.Errorf("recording on %s: %+v, %v", second, sessions, err)
	}
}

// PostgreSQL and then NATS restart while a candidate in a rest room comes
// and goes: the nodes reconnect by themselves and carry on, and every
// violation the media node's pipeline opened is stored on the control node
// once, none lost while the database or NATS was away (the media node's
// outbox and JetStream hold them until they are stored).
func TestClusterSurvivesDatabaseAndNATSRestarts(t *testing.T) {
	if err := models.CheckPresent(testassets.ModelsDir(t)); err != nil {
		t.Fatalf("%v (make test provisions them)", err)
	}
	cl := startCluster(t)
	admin := adminClient(t, cl.control)
	// Away 4 s, back 3 s: face_off_screen opens and closes every loop.
	rc := cl.runCandidate(t, admin, []simulate.Clip{
		{File: testassets.Photo(t, "building.jpg"), Seconds: 4},
		{File: testassets.Photo(t, "messi5.jpg"), Seconds: 3},
	}, nil)
	exam, sig := rc.exam, rc.sig
	node := cl.mediaBase[sig]

	stored := func() []violationJSON {
		var list []violationJSON
		admin.call("GET", fmt.Sprintf("/api/v1/exams/%d/violations", exam), nil, &list)
		return list
	}
	for deadline := time.Now().Add(40 * time.Second); len(stored()) == 0; time.Sleep(200 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("no violation stored before the restarts")
		}
	}
	base := nodeBase(sig)
	var duringOutage float64
	if err := cl.pg.Restart(t.Context(), func() {
		before := openedOn(t, base)
		time.Sleep(8 * time.Second)
		duringOutage = openedOn(t, base) - before
	}); err != nil {
		t.Fatal(err)
	}
	t.Logf("PostgreSQL was away for 8 s; %v violations opened meanwhile", duringOutage)
	if duringOutage == 0 {
		t.Error("no violation opened while PostgreSQL was away: the test would prove nothing")
	}
	if err := cl.nats.Restart(t.Context()); err != nil {
		t.Fatal(err)
	}
	time.Sleep(8 * time.Second) // a loop or so with NATS back
	rc.stop()

	// The media node's own count of what it opened, against what the
	// control node stored.
	var opened float64
	var list []violationJSON
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(500 * time.Millisecond) {
		opened = openedOn(t, base)
		list = stored()
		closed := 0
		for _, v := range list {
			if v.EndedAt != nil {
				closed++
			}
		}
		if opened > 0 && float64(len(list)) == opened && closed == len(list) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s opened %v violations; the control node stored %d, %d of them closed", node, opened, len(list), closed)
		}
	}
	t.Logf("%s opened %v violations across the restarts; the control node stored each once, closed", node, opened)
}

// openedOn sums invigil_pipeline_violations_total{event="opened"} of a
// node's /metrics.
func openedOn(t *testing.T, base string) float64 {
	t.Helper()
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	sum := 0.0
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "invigil_pipeline_violations_total{") && strings.Contains(line, `event="opened"`) {
			if v, err := strconv.ParseFloat(line[strings.LastIndex(line, " ")+1:], 64); err == nil {
				sum += v
			}
		}
	}
	return sum
}

// clusterCandidate is a simulated candidate of a new exam, logged in on
// the control node and sending to its exam's media node, which it asks the
// control node for again whenever a resume fails.
type clusterCandidate struct {
	exam, id int64
	sig      string // the exam's media node's signaling URL when it joined
	locate   func(ctx context.Context) (string, error)
	c        *simulate.Candidate
	stop     func() // leaves, once; the test's end does it too
}

func (cl *testCluster) runCandidate(t *testing.T, admin apiClient, clips []simulate.Clip, onFrame func(simulate.SentFrame)) *clusterCandidate {
	t.Helper()
	exam, cand, codes := examWithCandidate(t, admin)
	l, err := simulate.LoginWithCode(t.Context(), cl.control, codes["rest_room"])
	if err != nil {
		t.Fatal(err)
	}
	rc := &clusterCandidate{exam: exam, id: cand,
		locate: func(ctx context.Context) (string, error) { return simulate.MediaURL(ctx, cl.control, l.Token) }}
	if rc.sig, err = rc.locate(t.Context()); err != nil {
		t.Fatal(err)
	}
	cam, err := simulate.NewCamera(clips, simulate.CameraOptions{Width: 640, Height: 480, FPS: 15})
	if err != nil {
		t.Fatal(err)
	}
	rc.c, err = simulate.Join(t.Context(), simulate.Config{URL: rc.sig, Locate: rc.locate, Token: l.Token, Camera: cam,
		LoopbackOnly: true, ResumeWindow: time.Minute, Logger: discardLogger(), OnFrame: onFrame})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	runDone := make(chan error, 1)
	go func() { runDone <- rc.c.Run(ctx) }()
	var once sync.Once
	rc.stop = func() {
		once.Do(func() {
			cancel()
			if err := <-runDone; err != nil {
				t.Errorf("candidate: %v", err)
			}
			rc.c.Leave()
		})
	}
	t.Cleanup(rc.stop)
	return rc
}

// nodeBase is a node's HTTP base URL from its signaling URL.
func nodeBase(signaling string) string {
	return strings.TrimSuffix(strings.Replace(signaling, "ws://", "http://", 1), contract.SignallingPath)
}
