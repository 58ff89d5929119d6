package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"invigil/internal/testassets"
	"invigil/models"
)

// TestMain lets a test run `invigil` as a child process (the crash test
// kills one): with INVIGIL_TEST_ARGS set, the test binary is the command.
func TestMain(m *testing.M) {
	if args := os.Getenv("INVIGIL_TEST_ARGS"); args != "" {
		var argv []string
		if err := json.Unmarshal([]byte(args), &argv); err != nil {
			fmt.Fprintln(os.Stderr, "INVIGIL_TEST_ARGS:", err)
			os.Exit(2)
		}
		os.Exit(run(context.Background(), env{stdin: os.Stdin, stdout: os.Stdout, stderr: os.Stderr, getenv: os.Getenv}, argv))
	}
	os.Exit(m.Run())
}

// serveProcess starts `invigil serve` as a child process on data and
// returns it with its base URL.
func serveProcess(t *testing.T, data string, extraEnv ...string) (*exec.Cmd, string) {
	t.Helper()
	modelsDir := testassets.ModelsDir(t)
	args, _ := json.Marshal([]string{"serve", "--addr", "127.0.0.1:0", "--data", data, "--models", modelsDir, "--ice-loopback"})
	cmd := exec.Command(os.Args[0])
	// Every node of a test shares one cluster key (roles control and media
	// need one); extraEnv may name another, later entries win.
	cmd.Env = append(os.Environ(), append([]string{"INVIGIL_TEST_ARGS=" + string(args), "INVIGIL_ADMIN_PASSWORD=" + testAdminPassword,
		"INVIGIL_CLUSTER_KEY=" + testClusterKey}, extraEnv...)...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout = io.Discard
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	urls := make(chan string, 1)
	log := &syncBuffer{}
	logged := make(chan struct{})
	go func() {
		defer close(logged)
		pattern := regexp.MustCompile(`url=(http://127\.0\.0\.1:\d+)`)
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			if m := pattern.FindStringSubmatch(sc.Text()); m != nil {
				// Only the first: the scanner must never stop reading, or
				// the child blocks writing its log.
				select {
				case urls <- m[1]:
				default:
				}
			}
			log.Write([]byte(sc.Text() + "\n"))
		}
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-logged
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("server log:\n%s", log)
		}
	})
	select {
	case u := <-urls:
		return cmd, u
	case <-time.After(60 * time.Second):
		t.Fatalf("serve did not start")
	}
	return nil, ""
}

const testAdminPassword = "admin-password-for-tests"

// testClusterKey is the cluster key of the tests' nodes.
const testClusterKey = "cluster-key-for-tests-0123456789"

// apiClient speaks the control plane's JSON API with a bearer token.
type apiClient struct {
	t     *testing.T
	base  string
	token string
}

func (c apiClient) call(method, path string, body, out any) int {
	c.t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, c.base+path, rd)
	req.Header.Set("Content-Type", "application/json")
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if out != nil && resp.StatusCode < 300 {
		if err := json.Unmarshal(b, out); err != nil {
			c.t.Fatalf("%s %s: %v in %s", method, path, err, b)
		}
	}
	if resp.StatusCode >= 300 {
		c.t.Logf("%s %s: %d %s", method, path, resp.StatusCode, b)
	}
	return resp.StatusCode
}

func adminClient(t *testing.T, base string) apiClient {
	t.Helper()
	var l struct{ Token string }
	c := apiClient{t: t, base: base}
	if s := c.call("POST", "/api/v1/auth/login", map[string]string{"username": "admin", "password": testAdminPassword}, &l); s != 200 {
		t.Fatalf("admin login: %d", s)
	}
	c.token = l.Token
	return c
}

// examWithCandidate creates an exam open now and one candidate, returning
// the exam ID, candidate ID and the candidate's codes.
func examWithCandidate(t *testing.T, c apiClient) (int64, int64, map[string]string) {
	t.Helper()
	var exam struct{ ID int64 }
	now := time.Now().UTC()
	if s := c.call("POST", "/api/v1/exams", map[string]any{"name": "e2e", "starts_at": now.Add(-time.Hour), "ends_at": now.Add(time.Hour)}, &exam); s != 201 {
		t.Fatalf("create exam: %d", s)
	}
	var cand struct {
		ID    int64
		Codes map[string]string
	}
	if s := c.call("POST", fmt.Sprintf("/api/v1/exams/%d/candidates", exam.ID), map[string]string{"name": "模拟考生"}, &cand); s != 201 {
		t.Fatalf("add candidate: %d", s)
	}
	return exam.ID, cand.ID, cand.Codes
}

type violationJSON struct {
	ID                int64      `json:"id"`
	CandidateID       int64      `json:"candidate_id"`
	Type              string     `json:"type"`
	Status            string     `json:"status"`
	EndedAt           *time.Time `json:"ended_at"`
	EvidenceURL       string     `json:"evidence_url"`
	RecordingURL      string     `json:"recording_url"`
	RecordingOffsetMS *int64     `json:"recording_offset_ms"`
}

// A candidate simulated with their rest-room code shows an empty room:
// the face_off_screen violation is stored with its evidence and its place
// in the recording, served through the API.
func TestServeWithSimulatedCandidate(t *testing.T) {
	if err := models.CheckPresent(testassets.ModelsDir(t)); err != nil {
		t.Fatalf("%v (make test provisions them)", err)
	}
	data := filepath.Join(t.TempDir(), "data")
	srv, base := serveProcess(t, data)
	admin := adminClient(t, base)
	exam, cand, codes := examWithCandidate(t, admin)

	type result struct {
		code        int
		out, errOut string
	}
	simDone := make(chan result, 1)
	go func() {
		code, out, errOut := invoke(t, nil, "simulate", "--server", base, "--code", codes["rest_room"],
			"--video", testassets.Photo(t, "building.jpg"), "--duration", "6s", "--audio", "sine", "--loopback")
		simDone <- result{code, out, errOut}
	}()
	// Meanwhile the candidate's page would show the live analysis: nobody
	// in view of the empty room.
	var login struct{ Token string }
	candidate := apiClient{t: t, base: base}
	if s := candidate.call("POST", "/api/v1/candidate/login", map[string]string{"code": codes["rest_room"]}, &login); s != 200 {
		t.Fatalf("candidate login: %d", s)
	}
	candidate.token = login.Token
	var snap struct {
		Faces, Width int
		Checks       struct{ Face, Alone bool }
	}
	var res result
	simulated := false
	for deadline := time.Now().Add(20 * time.Second); ; {
		if candidate.call("GET", "/api/v1/candidate/analysis", nil, &snap) == 200 {
			break
		}
		select {
		case res = <-simDone:
			simulated = true
		default:
		}
		if simulated || time.Now().After(deadline) {
			t.Fatalf("no live analysis of the simulated camera (simulate finished: %v, exit %d)\n%s", simulated, res.code, res.errOut)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if snap.Faces != 0 || snap.Checks.Face || !snap.Checks.Alone || snap.Width == 0 {
		t.Errorf("live analysis of an empty room: %+v", snap)
	}
	res = <-simDone
	code, out, errOut := res.code, res.out, res.errOut
	if code != 0 {
		t.Fatalf("simulate: exit %d\n%s", code, errOut)
	}
	var summary struct{ Joined, Frames int }
	if err := json.Unmarshal([]byte(out), &summary); err != nil || summary.Joined != 1 || summary.Frames < 60 {
		t.Errorf("simulate printed %q (%v)", out, err)
	}
	// Stopping the server closes what is still open and stores it.
	if err := srv.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := srv.Wait(); err != nil {
		t.Fatalf("serve after SIGTERM: %v", err)
	}
	_, base = serveProcess(t, data)
	admin = adminClient(t, base)
	var list []violationJSON
	if s := admin.call("GET", fmt.Sprintf("/api/v1/exams/%d/violations?type=face_off_screen", exam), nil, &list); s != 200 || len(list) == 0 {
		t.Fatalf("violations: %d %+v", s, list)
	}
	v := list[0]
	if v.CandidateID != cand || v.EndedAt == nil || v.EvidenceURL == "" || v.RecordingURL == "" || v.RecordingOffsetMS == nil ||
		*v.RecordingOffsetMS < 0 || *v.RecordingOffsetMS > 1000 {
		t.Fatalf("violation %+v (the room was empty from the start: offset near 0)", v)
	}
	for _, f := range []struct{ url, ctype string }{{v.EvidenceURL, "image/jpeg"}, {v.RecordingURL, "video/webm"}} {
		req, _ := http.NewRequest("GET", base+f.url, nil)
		req.Header.Set("Authorization", "Bearer "+admin.token)
		req.Header.Set("Range", "bytes=0-99")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 206 || resp.Header.Get("Content-Type") != f.ctype {
			t.Errorf("GET %s: %d %s, want 206 %s", f.url, resp.StatusCode, resp.Header.Get("Content-Type"), f.ctype)
		}
	}
	var cands []struct {
		Stage string
		Risk  struct{ Score float64 }
	}
	admin.call("GET", fmt.Sprintf("/api/v1/exams/%d/candidates", exam), nil, &cands)
	if len(cands) != 1 || cands[0].Stage != "rest_room" || cands[0].Risk.Score <= 0 {
		t.Errorf("candidates %+v", cands)
	}
}

// Kill -9 the server right after a violation was announced on the live
// event stream: after a restart the violation is there.
func TestViolationSurvivesKill(t *testing.T) {
	data := filepath.Join(t.TempDir(), "data")
	srv, base := serveProcess(t, data)
	admin := adminClient(t, base)
	exam, _, codes := examWithCandidate(t, admin)

	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", fmt.Sprintf("%s/api/v1/exams/%d/events", base, exam), nil)
	req.Header.Set("Authorization", "Bearer "+admin.token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()

	simDone := make(chan int, 1)
	go func() {
		code, _, _ := invoke(t, nil, "simulate", "--server", base, "--code", codes["rest_room"],
			"--video", testassets.Photo(t, "building.jpg"), "--duration", "10s", "--loopback")
		simDone <- code
	}()
	var acked struct {
		Data struct{ ID int64 } `json:"data"`
	}
	sc := bufio.NewScanner(resp.Body)
	event := ""
	for sc.Scan() {
		line := sc.Text()
		if e, ok := strings.CutPrefix(line, "event: "); ok {
			event = e
		}
		if d, ok := strings.CutPrefix(line, "data: "); ok && event == "violation_opened" {
			if err := json.Unmarshal([]byte(d), &acked); err != nil {
				t.Fatal(err)
			}
			break
		}
	}
	if acked.Data.ID == 0 {
		t.Fatalf("no violation_opened event (%v)", sc.Err())
	}
	// Announced: kill at once, with no chance to flush anything.
	if err := srv.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = srv.Wait()
	cancel()
	<-simDone

	_, base = serveProcess(t, data)
	admin = adminClient(t, base)
	var v violationJSON
	if s := admin.call("GET", fmt.Sprintf("/api/v1/violations/%d", acked.Data.ID), nil, &v); s != 200 || v.Type != "face_off_screen" {
		t.Fatalf("after the kill and restart: %d %+v", s, v)
	}
	if v.EvidenceURL == "" {
		t.Fatal("the evidence was not kept")
	}
	req, _ = http.NewRequest("GET", base+v.EvidenceURL, nil)
	req.Header.Set("Authorization", "Bearer "+admin.token)
	ev, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(ev.Body)
	ev.Body.Close()
	if ev.StatusCode != 200 || len(b) < 1000 || b[0] != 0xff || b[1] != 0xd8 {
		t.Errorf("evidence after the kill: %d, %d bytes", ev.StatusCode, len(b))
	}
}

func TestAdminUsers(t *testing.T) {
	data := t.TempDir()
	vars := map[string]string{"INVIGIL_DATA": data}
	code, out, errOut := invoke(t, vars, "admin", "users", "add", "zhang", "assistant")
	if code != 0 || !strings.Contains(out, "added zhang (assistant") || !regexp.MustCompile(`password: [0-9a-f]{24} \(shown once\)`).MatchString(out) {
		t.Fatalf("add: %d %q %q", code, out, errOut)
	}
	if code, _, errOut := invoke(t, vars, "admin", "users", "add", "zhang", "proctor"); code != 1 || !strings.Contains(errOut, "exists already") {
		t.Errorf("duplicate add: %d %q", code, errOut)
	}
	if code, _, errOut := invoke(t, vars, "admin", "users", "add", "x y", "boss"); code != 2 || !strings.Contains(errOut, "username") {
		t.Errorf("bad add: %d %q", code, errOut)
	}
	if code, out, _ := invoke(t, vars, "admin", "users", "disable", "zhang"); code != 0 || !strings.Contains(out, "disabled zhang") {
		t.Errorf("disable: %d %q", code, out)
	}
	code, out, _ = invoke(t, vars, "admin", "users", "list")
	if code != 0 || !regexp.MustCompile(`zhang\s+assistant\s+disabled`).MatchString(out) {
		t.Errorf("list: %d %q", code, out)
	}
	if code, _, errOut := invoke(t, vars, "admin", "users", "disable", "nobody"); code != 1 || !strings.Contains(errOut, `no user "nobody"`) {
		t.Errorf("disable nobody: %d %q", code, errOut)
	}
	var out2, err2 bytes.Buffer
	e := env{stdin: strings.NewReader("new-secret-123\n"), stdout: &out2, stderr: &err2, getenv: func(k string) string { return vars[k] }}
	if code := run(context.Background(), e, []string{"admin", "users", "passwd", "--password-stdin", "zhang"}); code != 0 || strings.Contains(out2.String(), "shown once") {
		t.Errorf("passwd from stdin: %d %q %q", code, out2.String(), err2.String())
	}
}
