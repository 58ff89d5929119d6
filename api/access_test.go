package api

import (
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"invigil/internal/metrictest"
)

// expectedAccess is who may call each route, written out by hand and not
// read from the route table it checks: a role added to or dropped from a
// route in routes.go fails TestAccessMatrix until this table is changed
// too, on purpose. "none" is a caller without a login.
var expectedAccess = map[string][]string{
	"GET /api/v1/openapi.json":   {"admin", "assistant", "examiner", "proctor", "candidate", "none"},
	"POST /api/v1/auth/login":    {"admin", "assistant", "examiner", "proctor", "candidate", "none"},
	"POST /api/v1/auth/logout":   {"admin", "assistant", "examiner", "proctor", "candidate"},
	"GET /api/v1/auth/me":        {"admin", "assistant", "examiner", "proctor"},
	"POST /api/v1/media/token":   {"admin", "assistant", "examiner", "proctor", "candidate"},
	"GET /api/v1/users":          {"admin"},
	"POST /api/v1/users":         {"admin"},
	"PATCH /api/v1/users/{user}": {"admin"},

	"POST /api/v1/candidate/login":      {"admin", "assistant", "examiner", "proctor", "candidate", "none"},
	"GET /api/v1/candidate/me":          {"candidate"},
	"POST /api/v1/candidate/leave":      {"candidate"},
	"POST /api/v1/candidate/help":       {"candidate"},
	"GET /api/v1/candidate/analysis":    {"candidate"},
	"GET /api/v1/candidate/events":      {"candidate"},
	"POST /api/v1/candidate/signals":    {"candidate"},
	"POST /api/v1/calls/{call}/accept":  {"candidate"},
	"POST /api/v1/calls/{call}/decline": {"candidate"},

	"POST /api/v1/exams":                          {"admin"},
	"GET /api/v1/exams":                           {"admin", "assistant", "examiner", "proctor"},
	"GET /api/v1/exams/{exam}":                    {"admin", "assistant", "examiner", "proctor"},
	"GET /api/v1/exams/{exam}/staff":              {"admin"},
	"PUT /api/v1/exams/{exam}/staff":              {"admin"},
	"PUT /api/v1/exams/{exam}/policies/{room}":    {"admin"},
	"POST /api/v1/exams/{exam}/candidates":        {"admin"},
	"POST /api/v1/exams/{exam}/candidates/import": {"admin"},
	"GET /api/v1/exams/{exam}/codes.csv":          {"admin"},
	"GET /api/v1/exams/{exam}/candidates":         {"admin", "assistant", "examiner", "proctor"},
	"GET /api/v1/exams/{exam}/calls":              {"admin", "assistant", "examiner", "proctor"},
	"GET /api/v1/exams/{exam}/violations":         {"admin", "assistant", "examiner", "proctor"},
	"GET /api/v1/exams/{exam}/report.csv":         {"admin", "proctor"},
	"GET /api/v1/exams/{exam}/events":             {"admin", "assistant", "examiner", "proctor"},

	"GET /api/v1/candidates/{candidate}":                {"admin", "assistant", "examiner", "proctor"},
	"POST /api/v1/candidates/{candidate}/leave":         {"admin", "assistant", "examiner", "proctor"},
	"POST /api/v1/candidates/{candidate}/calibrate":     {"admin", "assistant", "examiner"},
	"POST /api/v1/candidates/{candidate}/calls":         {"admin", "assistant", "examiner"},
	"POST /api/v1/calls/{call}/end":                     {"admin", "assistant", "examiner"},
	"PUT /api/v1/candidates/{candidate}/score":          {"admin", "examiner"},
	"POST /api/v1/candidates/{candidate}/score/publish": {"admin", "examiner"},
	"GET /api/v1/candidates/{candidate}/score":          {"admin", "assistant", "examiner", "proctor"},
	"GET /api/v1/candidates/{candidate}/timeline":       {"admin", "assistant", "examiner", "proctor"},

	"GET /api/v1/violations/{violation}":           {"admin", "assistant", "examiner", "proctor"},
	"GET /api/v1/violations/{violation}/evidence":  {"admin", "assistant", "examiner", "proctor"},
	"GET /api/v1/violations/{violation}/clip":      {"admin", "assistant", "examiner", "proctor"},
	"GET /api/v1/violations/{violation}/recording": {"admin", "assistant", "examiner", "proctor"},
	"POST /api/v1/violations/{violation}/review":   {"admin", "proctor"},
}

// Every route × every role, and no login at all: a refused caller gets
// exactly 401 unauthenticated (no login) or 403 forbidden (wrong role); an
// allowed one never does. Path IDs point at nothing, so allowed callers
// get 404s and 400s, which is what tells them apart.
func TestAccessMatrix(t *testing.T) {
	h := newHarness(t)
	exam := h.exam()
	cand := h.candidate(exam, "matrix")
	tokens := map[string]string{
		"admin":     h.admin,
		"assistant": h.staff("as", "assistant"),
		"examiner":  h.staff("ex", "examiner"),
		"proctor":   h.staff("pr", "proctor"),
		"candidate": h.codeLogin(cand.Codes["rest_room"]).Token,
		"none":      "",
	}
	ids := regexp.MustCompile(`\{[a-z]+\}`)
	routes := h.srv.ctl.routes()
	served := map[string]bool{}
	for _, rt := range routes {
		key := rt.method + " " + rt.path
		served[key] = true
		if _, ok := expectedAccess[key]; !ok {
			t.Errorf("route %s is not in the hand-written expectedAccess table: decide who may call it and add it", key)
		}
	}
	for key := range expectedAccess {
		if !served[key] {
			t.Errorf("expectedAccess lists %s, which the server does not serve", key)
		}
	}
	for _, rt := range routes {
		key := rt.method + " " + rt.path
		if rt.path == "/api/v1/auth/logout" {
			continue // revokes the token the other rows need; checked below
		}
		path := ids.ReplaceAllString(rt.path, "987654")
		for role, tok := range tokens {
			allowed := slices.Contains(expectedAccess[key], role)
			var a answer
			if strings.HasSuffix(rt.path, "/events") && allowed {
				continue // a stream on a real exam is tested elsewhere; here it would not end
			}
			a = h.do(rt.method, path, tok, "{}")
			code := a.errCode()
			refused := code == "unauthenticated" || code == "forbidden"
			switch {
			case allowed && refused:
				t.Errorf("%s as %s: refused (%d %s), want allowed", key, role, a.status, a.body)
			case !allowed && role == "none" && (a.status != 401 || code != "unauthenticated"):
				t.Errorf("%s without login: %d %s, want 401", key, a.status, a.body)
			case !allowed && role != "none" && (a.status != 403 || code != "forbidden"):
				t.Errorf("%s as %s: %d %s, want 403", key, role, a.status, a.body)
			}
		}
	}
	// Logout: everyone logged in may; the token is dead afterwards.
	for role, tok := range tokens {
		if role == "none" {
			h.must(401, "POST", "/api/v1/auth/logout", tok, nil)
			continue
		}
		h.must(204, "POST", "/api/v1/auth/logout", tok, nil)
		if a := h.do("GET", "/api/v1/exams", tok, nil); a.status != 401 {
			t.Errorf("%s's token works after logout: %d", role, a.status)
		}
	}
}

// Wrong codes from one address: after CodeAttempts of them the client gets
// 429 with Retry-After, even for a right code, and the failures are counted.
func TestCodeBruteForce(t *testing.T) {
	h := newHarness(t, func(o *ControlOptions) { o.CodeAttempts = 3; o.CodeAlertAddresses = 1 })
	exam := h.exam()
	cand := h.candidate(exam, "target")
	wrong := "000000"
	if wrong == cand.Codes["interview"] || wrong == cand.Codes["mock"] || wrong == cand.Codes["rest_room"] {
		wrong = "999999"
	}
	for i := range 2 {
		a := h.do("POST", "/api/v1/candidate/login", "", map[string]string{"code": wrong})
		if a.status != 404 || a.errCode() != "unknown_code" {
			t.Fatalf("wrong code %d: %d %s", i, a.status, a.body)
		}
		var e struct {
			Error apiError `json:"error"`
		}
		a.decode(t, &e)
		if e.Error.ZH == "" || e.Error.EN == "" {
			t.Errorf("no bilingual message: %s", a.body)
		}
	}
	a := h.do("POST", "/api/v1/candidate/login", "", map[string]string{"code": wrong})
	if a.status != 429 || a.header.Get("Retry-After") != "1" {
		t.Fatalf("third wrong code: %d Retry-After %q %s", a.status, a.header.Get("Retry-After"), a.body)
	}
	a = h.do("POST", "/api/v1/candidate/login", "", map[string]string{"code": cand.Codes["interview"]})
	if a.status != 429 {
		t.Fatalf("right code while limited: %d %s", a.status, a.body)
	}
	h.clock.Add(1100 * time.Millisecond)
	// The next wrong one owes twice as long.
	a = h.do("POST", "/api/v1/candidate/login", "", map[string]string{"code": wrong})
	if a.status != 429 || a.header.Get("Retry-After") != "2" {
		t.Fatalf("fourth wrong code: %d Retry-After %q", a.status, a.header.Get("Retry-After"))
	}
	h.clock.Add(2100 * time.Millisecond)
	h.codeLogin(cand.Codes["interview"])
	if n := metrictest.Sum(t, h.reg, "invigil_code_attempts_failed_total"); n != 4 {
		t.Errorf("failed attempts counted %v, want 4", n)
	}
	if n := metrictest.Sum(t, h.reg, "invigil_code_guessing_alert"); n != 1 {
		t.Errorf("guessing alert %v, want 1 (threshold 1 address)", n)
	}
	// Once the failures age out of the alert's window, the alert falls back.
	h.clock.Add(11 * time.Minute)
	h.do("POST", "/api/v1/candidate/login", "", map[string]string{"code": cand.Codes["interview"]})
	if n := metrictest.Sum(t, h.reg, "invigil_code_guessing_alert"); n != 0 {
		t.Errorf("guessing alert %v 11 minutes after the last wrong code, want 0", n)
	}
	// Malformed codes are answered clearly and count as tries too. (A
	// right code forgives no wrong ones; an hour without any does.)
	h.clock.Add(time.Hour + time.Minute)
	a = h.do("POST", "/api/v1/candidate/login", "", map[string]string{"code": "12ab"})
	if a.status != 400 || a.errCode() != "bad_code" {
		t.Errorf("malformed code: %d %s", a.status, a.body)
	}
}

func TestLoginWindow(t *testing.T) {
	h := newHarness(t)
	start := h.clock.Now().Add(2 * time.Hour)
	var id idAnswer
	h.must(201, "POST", "/api/v1/exams", h.admin, map[string]any{"name": "Later", "starts_at": start, "ends_at": start.Add(time.Hour)}).decode(t, &id)
	cand := h.candidate(id.ID, "early bird")
	a := h.do("POST", "/api/v1/candidate/login", "", map[string]string{"code": cand.Codes["interview"]})
	if a.status != 403 || a.errCode() != "too_early" || !strings.Contains(string(a.body), "2026-11-26 09:15") {
		t.Fatalf("two hours early: %d %s", a.status, a.body)
	}
	h.clock.Add(76 * time.Minute) // 44 minutes before the start
	if l := h.codeLogin(cand.Codes["interview"]); l.Stage != "device_check_waiting" {
		t.Fatalf("44 minutes early: %+v", l)
	}
	late := h.candidate(id.ID, "late")
	h.clock.Add(105 * time.Minute) // after the end
	a = h.do("POST", "/api/v1/candidate/login", "", map[string]string{"code": late.Codes["interview"]})
	if a.status != 403 || a.errCode() != "too_late" {
		t.Fatalf("after the window: %d %s", a.status, a.body)
	}
	// One already inside may come back to where they are.
	if l := h.codeLogin(cand.Codes["interview"]); l.Stage != "device_check_waiting" {
		t.Fatalf("resume after the window: %+v", l)
	}

	// An exam whose first logins close 15 minutes after the start: a
	// latecomer is refused, one who came in time moves on as usual.
	start = h.clock.Now().Add(-10 * time.Minute)
	h.must(201, "POST", "/api/v1/exams", h.admin, map[string]any{"name": "Strict", "starts_at": start,
		"ends_at": start.Add(3 * time.Hour), "late_login_minutes": 15}).decode(t, &id)
	onTime, latecomer := h.candidate(id.ID, "on time"), h.candidate(id.ID, "latecomer")
	h.codeLogin(onTime.Codes["interview"])
	h.clock.Add(6 * time.Minute)
	a = h.do("POST", "/api/v1/candidate/login", "", map[string]string{"code": latecomer.Codes["interview"]})
	if a.status != 403 || a.errCode() != "too_late" {
		t.Fatalf("16 minutes after the start: %d %s", a.status, a.body)
	}
	if l := h.codeLogin(onTime.Codes["rest_room"]); l.Stage != "rest_room" {
		t.Fatalf("the on-time candidate may still move on: %+v", l)
	}
}

// Bad input gets a 4xx with a clear error, never a 500.
func TestBadInput(t *testing.T) {
	h := newHarness(t, func(o *ControlOptions) {})
	exam := itoa(h.exam())
	huge := `{"name":"` + strings.Repeat("x", 2<<20) + `"}`
	cases := []struct {
		name, method, path, body string
		status                   int
		code, says               string
	}{
		{"malformed", "POST", "/api/v1/exams", `{"name": "x",`, 400, "bad_json", "ends too early"},
		{"not an object", "POST", "/api/v1/exams", `[1,2]`, 400, "bad_json", "must be a JSON"},
		{"unknown field", "POST", "/api/v1/exams", `{"name":"x","starts_at":"2026-11-26T09:00:00Z","ends_at":"2026-11-26T10:00:00Z","room":1}`, 400, "bad_json", `unknown field "room"`},
		{"wrong type", "POST", "/api/v1/exams/" + exam + "/candidates", `{"name": 42}`, 400, "bad_json", `field "name" must be string`},
		{"trailing data", "POST", "/api/v1/exams/" + exam + "/candidates", `{"name": "a"} {"name": "b"}`, 400, "bad_json", "after the JSON object"},
		{"empty body", "POST", "/api/v1/exams", ``, 400, "bad_json", "needs a JSON body"},
		{"bad time", "POST", "/api/v1/exams", `{"name":"x","starts_at":"tomorrow","ends_at":"2026-11-26T10:00:00Z"}`, 400, "bad_json", "RFC 3339"},
		{"end before start", "POST", "/api/v1/exams", `{"name":"x","starts_at":"2026-11-26T10:00:00Z","ends_at":"2026-11-26T09:00:00Z"}`, 400, "bad_time", "after starts_at"},
		{"huge", "POST", "/api/v1/exams/" + exam + "/candidates", huge, 413, "body_too_large", "larger than"},
		{"bad id", "GET", "/api/v1/exams/abc", ``, 400, "bad_id", "not an id"},
		{"missing exam", "GET", "/api/v1/exams/424242", ``, 404, "not_found", "424242"},
		{"bad score", "PUT", "/api/v1/candidates/1/score", `{"score": 101}`, 400, "bad_score", "0 to 100"},
		{"bad policy", "PUT", "/api/v1/exams/" + exam + "/policies/rest_room", `{"yaw_limit_deg": "wide"}`, 400, "bad_policy", "yaw_limit_deg"},
		{"bad room", "PUT", "/api/v1/exams/" + exam + "/policies/kitchen", `{}`, 404, "bad_room", "kitchen"},
		{"csv without name", "POST", "/api/v1/exams/" + exam + "/candidates/import", "who\nx\n", 400, "bad_csv", `"name" column`},
		{"csv bad row", "POST", "/api/v1/exams/" + exam + "/candidates/import", "name,external_id\nok,1\n,2\n", 400, "bad_csv", "line 3"},
		{"no route", "GET", "/api/v1/nothing", ``, 404, "no_such_route", "openapi"},
		{"bad filter", "GET", "/api/v1/exams/" + exam + "/violations?status=maybe", ``, 400, "bad_filter", "pending"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var body any
			if c.body != "" {
				body = c.body
			}
			a := h.do(c.method, c.path, h.admin, body)
			var e struct {
				Error apiError `json:"error"`
			}
			_ = json.Unmarshal(a.body, &e)
			if a.status != c.status || a.errCode() != c.code || !strings.Contains(e.Error.Message, c.says) {
				t.Errorf("%d %s, want %d %s saying %q", a.status, a.body, c.status, c.code, c.says)
			}
		})
	}
	// Nothing was half-stored by the failed import.
	var cands []candidateView
	h.must(200, "GET", "/api/v1/exams/"+exam+"/candidates", h.admin, nil).decode(t, &cands)
	if len(cands) != 0 {
		t.Errorf("a failed import stored %d candidates", len(cands))
	}
}

// A page's cookie login must echo the CSRF token on state-changing
// requests; a bearer token needs none.
func TestCSRF(t *testing.T) {
	h := newHarness(t)
	body, _ := json.Marshal(map[string]string{"username": "admin", "password": adminPassword})
	resp, err := http.Post(h.base+"/api/v1/auth/login", "application/json", strings.NewReader(string(body)))
	if err != nil {
		t.Fatal(err)
	}
	var l loginAnswer
	if err := json.NewDecoder(resp.Body).Decode(&l); err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	var ck *http.Cookie
	for _, c := range resp.Cookies() {
		if c.Name == staffCookie {
			ck = c
		}
	}
	if ck == nil || !ck.HttpOnly || ck.SameSite != http.SameSiteStrictMode {
		t.Fatalf("login cookie %+v", ck)
	}
	send := func(method, path, csrf string, body string) int {
		req, _ := http.NewRequest(method, h.base+path, strings.NewReader(body))
		req.AddCookie(ck)
		req.Header.Set("Content-Type", "application/json")
		if csrf != "" {
			req.Header.Set(csrfHeader, csrf)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	exam := `{"name":"c","starts_at":"2026-11-26T09:00:00Z","ends_at":"2026-11-26T10:00:00Z"}`
	if s := send("GET", "/api/v1/exams", "", ""); s != 200 {
		t.Errorf("cookie GET: %d", s)
	}
	if s := send("POST", "/api/v1/exams", "", exam); s != 403 {
		t.Errorf("cookie POST without CSRF header: %d, want 403", s)
	}
	if s := send("POST", "/api/v1/exams", "wrong", exam); s != 403 {
		t.Errorf("cookie POST with a wrong CSRF header: %d, want 403", s)
	}
	if s := send("POST", "/api/v1/exams", l.CSRFToken, exam); s != 201 {
		t.Errorf("cookie POST with the CSRF header: %d, want 201", s)
	}
	h.must(201, "POST", "/api/v1/exams", l.Token, exam)
}

// The OpenAPI document lists every route the server answers, and the
// contract calls of DESIGN.md answer in the documented shapes.
func TestOpenAPIInStep(t *testing.T) {
	h := newHarness(t)
	var doc struct {
		Paths map[string]map[string]struct {
			Responses map[string]struct {
				Content map[string]struct {
					Schema map[string]any `json:"schema"`
				} `json:"content"`
			} `json:"responses"`
		} `json:"paths"`
	}
	h.must(200, "GET", "/api/v1/openapi.json", "", nil).decode(t, &doc)
	n := 0
	for _, rt := range h.srv.ctl.routes() {
		op, ok := doc.Paths[rt.path][strings.ToLower(rt.method)]
		if !ok {
			t.Errorf("%s %s missing from openapi.json", rt.method, rt.path)
			continue
		}
		n++
		// The route is really served (not 404 no_such_route / 405).
		a := h.do(rt.method, strings.NewReplacer("{exam}", "1", "{candidate}", "1", "{call}", "1", "{violation}", "1", "{user}", "1", "{room}", "waiting").Replace(rt.path), "", nil)
		if a.errCode() == "no_such_route" || a.status == 405 {
			t.Errorf("%s %s documented but not served", rt.method, rt.path)
		}
		_ = op
	}
	total := 0
	for _, ops := range doc.Paths {
		total += len(ops)
	}
	if total != n {
		t.Errorf("openapi.json has %d operations, the route table %d", total, n)
	}
	props := func(path, method string) map[string]any {
		op := doc.Paths[path][method]
		for status, r := range op.Responses {
			if c, ok := r.Content["application/json"]; ok && status != "default" {
				if p, ok := c.Schema["properties"].(map[string]any); ok {
					return p
				}
				if it, ok := c.Schema["items"].(map[string]any); ok {
					p, _ := it["properties"].(map[string]any)
					return p
				}
			}
		}
		return nil
	}
	for _, c := range []struct {
		path, method string
		fields       []string
	}{
		{"/api/v1/auth/login", "post", []string{"token"}},
		{"/api/v1/exams", "post", []string{"id"}},
		{"/api/v1/exams/{exam}/candidates", "post", []string{"id", "codes"}},
		{"/api/v1/candidate/login", "post", []string{"token", "candidate_id", "stage"}},
		{"/api/v1/exams/{exam}/violations", "get", []string{"id", "candidate_id", "type", "started_at", "ended_at",
			"confidence", "status", "evidence_url", "recording_url", "recording_offset_ms"}},
	} {
		p := props(c.path, c.method)
		for _, f := range c.fields {
			if _, ok := p[f]; !ok {
				t.Errorf("%s %s: answer lacks %q (DESIGN.md contract)", c.method, c.path, f)
			}
		}
	}
	// A violation's type is one of a known list, the listening rules and
	// the browser's reports included.
	typ, _ := props("/api/v1/exams/{exam}/violations", "get")["type"].(map[string]any)
	enum, _ := typ["enum"].([]any)
	known := map[string]bool{}
	for _, e := range enum {
		known[e.(string)] = true
	}
	for _, want := range []string{"face_off_screen", "hands_out_of_view", "talking", "microphone_off", "phone_call", "left_page", "second_screen", "headphones"} {
		if !known[want] {
			t.Errorf("openapi.json: violation type enum %v lacks %s", enum, want)
		}
	}
}

// scopeDay is exam A in the middle of an interview: a candidate in an
// accepted interview call with examiner ex2, a stored score, a violation
// with evidence, an audio clip and a recording. as2, ex2, ex3 and pr2 are on A's staff;
// as, ex and pr only on exam B.
type scopeDay struct {
	h            *harness
	examA, examB int64
	cand         candidateCodesAnswer
	call         callView
	violation    int64
	tok          map[string]string
}

func newScopeDay(t *testing.T) *scopeDay {
	h := newHarness(t)
	d := &scopeDay{h: h, examA: h.exam(), examB: h.exam(), tok: map[string]string{}}
	for name, role := range map[string]string{"as": "assistant", "ex": "examiner", "pr": "proctor",
		"as2": "assistant", "ex2": "examiner", "ex3": "examiner", "pr2": "proctor"} {
		d.tok[name] = h.staff(name, role)
	}
	h.assign(d.examB, "as", "ex", "pr")
	h.assign(d.examA, "as2", "ex2", "ex3", "pr2")
	d.cand = h.candidate(d.examA, "甲")
	cpath := "/api/v1/candidates/" + itoa(d.cand.ID)
	ctok := h.codeLogin(d.cand.Codes["interview"]).Token
	h.must(201, "POST", cpath+"/calls", d.tok["as2"], map[string]string{"kind": "device_check"}).decode(t, &d.call)
	h.must(200, "POST", "/api/v1/calls/"+itoa(d.call.ID)+"/accept", ctok, nil)
	h.must(200, "POST", "/api/v1/calls/"+itoa(d.call.ID)+"/end", d.tok["as2"], nil)
	ctok = h.codeLogin(d.cand.Codes["interview"]).Token
	h.must(201, "POST", cpath+"/calls", d.tok["ex2"], map[string]string{"kind": "interview"}).decode(t, &d.call)
	h.must(200, "POST", "/api/v1/calls/"+itoa(d.call.ID)+"/accept", ctok, nil)
	if err := os.MkdirAll(filepath.Join(h.dataDir, "recordings"), 0o750); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(h.dataDir, "recordings", "a.webm"), []byte("\x1a\x45\xdf\xa3 webm"), 0o640); err != nil {
		t.Fatal(err)
	}
	off := int64(0)
	if err := h.srv.ViolationOpened(t.Context(), ViolationReport{Key: "scope-1", Identity: "candidate-" + itoa(d.cand.ID),
		Type: "head_turn", Confidence: 0.9, StartedAt: h.clock.Now(), OpenedAt: h.clock.Now(),
		Evidence: []byte("\xff\xd8\xff\xe0 jpeg"), Clip: []byte("RIFF$\x00\x00\x00WAVE wav"),
		RecordingPath: "recordings/a.webm", RecordingOffsetMS: &off}); err != nil {
		t.Fatal(err)
	}
	var list []violationView
	h.must(200, "GET", "/api/v1/exams/"+itoa(d.examA)+"/violations", h.admin, nil).decode(t, &list)
	if len(list) != 1 {
		t.Fatalf("violations of A: %s", mustJSON(list))
	}
	d.violation = list[0].ID
	h.must(200, "PUT", cpath+"/score", d.tok["ex2"], map[string]any{"score": 80})
	return d
}

// path fills a route's path parameters with exam A's rows.
func (d *scopeDay) path(p string) string {
	return strings.NewReplacer("{exam}", itoa(d.examA), "{candidate}", itoa(d.cand.ID), "{call}", itoa(d.call.ID),
		"{violation}", itoa(d.violation), "{room}", "waiting").Replace(p)
}

// A valid body for each state-changing route, so that the membership check,
// not the input check, is what answers.
var scopeBodies = map[string]any{
	"POST /api/v1/candidates/{candidate}/calls":  map[string]string{"kind": "spot_check"},
	"PUT /api/v1/candidates/{candidate}/score":   map[string]any{"score": 10, "comment": "not mine"},
	"POST /api/v1/violations/{violation}/review": map[string]string{"decision": "dismissed"},
	"POST /api/v1/calls/{call}/end":              map[string]string{"outcome": "done"},
}

// Staff of another exam may not see or touch exam A: 403 not_exam_staff
// for a route naming the exam, and for a candidate, call or violation of A
// the very 404 a missing ID gets. Staff on A are let through (the control
// that shows the refusals are about the exam, not the role), and nothing
// of A changed.
func TestExamStaffScope(t *testing.T) {
	d := newScopeDay(t)
	h := d.h
	scoped := regexp.MustCompile(`\{(exam|candidate|call|violation)\}`)
	checked := 0
	for key, roles := range expectedAccess {
		method, p, _ := strings.Cut(key, " ")
		m := scoped.FindStringSubmatch(p)
		if m == nil || strings.HasSuffix(p, "/events") { // the stream: below, with a timeout
			continue
		}
		for _, name := range []string{"as", "ex", "pr"} {
			role := map[string]string{"as": "assistant", "ex": "examiner", "pr": "proctor"}[name]
			if !slices.Contains(roles, role) {
				continue
			}
			body := scopeBodies[key]
			if body == nil && method != "GET" {
				body = "{}"
			}
			a := h.do(method, d.path(p), d.tok[name], body)
			var e struct {
				Error apiError `json:"error"`
			}
			_ = json.Unmarshal(a.body, &e)
			if m[1] == "exam" {
				if a.status != 403 || e.Error.Code != "not_exam_staff" {
					t.Errorf("%s as %s of exam B: %d %s, want 403 not_exam_staff", key, role, a.status, a.body)
				}
			} else {
				id := map[string]int64{"candidate": d.cand.ID, "call": d.call.ID, "violation": d.violation}[m[1]]
				// Exactly what an ID that does not exist gets.
				missing := h.do(method, strings.Replace(d.path(p), "/"+itoa(id), "/987654", 1), d.tok[name], body)
				var me struct {
					Error apiError `json:"error"`
				}
				_ = json.Unmarshal(missing.body, &me)
				if a.status != 404 || e.Error.Code != "not_found" ||
					e.Error.Message != strings.Replace(me.Error.Message, "987654", itoa(id), 1) || missing.status != 404 {
					t.Errorf("%s as %s of exam B: %d %s, want the 404 of a missing id (%d %s)", key, role, a.status, a.body, missing.status, missing.body)
				}
			}
			checked++
		}
	}
	if checked < 40 {
		t.Errorf("only %d route×role pairs checked", checked)
	}
	// The event stream refuses before it streams (the stream's own headers
	// would come at once, so the timeout only bounds a broken check).
	req, _ := http.NewRequest("GET", h.base+"/api/v1/exams/"+itoa(d.examA)+"/events", nil)
	req.Header.Set("Authorization", "Bearer "+d.tok["pr"])
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 403 || resp.Header.Get("Content-Type") == "text/event-stream" {
		t.Errorf("events of A for a proctor of B: %d %s, want 403", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	// Staff media tokens are for one's own exams.
	for _, name := range []string{"as", "ex", "pr"} {
		a := h.do("POST", "/api/v1/media/token", d.tok[name], map[string]int64{"exam_id": d.examA})
		if a.status != 403 || a.errCode() != "not_exam_staff" {
			t.Errorf("media token for A as %s of B: %d %s", name, a.status, a.body)
		}
	}

	// Nothing of A changed.
	var detail candidateDetail
	h.must(200, "GET", "/api/v1/candidates/"+itoa(d.cand.ID), h.admin, nil).decode(t, &detail)
	var sc scoreView
	h.must(200, "GET", "/api/v1/candidates/"+itoa(d.cand.ID)+"/score", h.admin, nil).decode(t, &sc)
	var v violationView
	h.must(200, "GET", "/api/v1/violations/"+itoa(d.violation), h.admin, nil).decode(t, &v)
	if detail.Stage != "interview_call" || detail.Call == nil || detail.Call.ID != d.call.ID || detail.Call.State != "active" ||
		sc.Score != 80 || sc.Published || v.Status != "pending" {
		t.Errorf("staff of exam B changed exam A: stage %s call %+v score %+v violation %s", detail.Stage, detail.Call, sc, v.Status)
	}

	// Staff on A read all of it.
	for key, roles := range expectedAccess {
		method, p, _ := strings.Cut(key, " ")
		if method != "GET" || !scoped.MatchString(p) || strings.HasSuffix(p, "/events") {
			continue
		}
		for _, name := range []string{"as2", "ex2", "pr2"} {
			role := map[string]string{"as2": "assistant", "ex2": "examiner", "pr2": "proctor"}[name]
			if slices.Contains(roles, role) {
				if a := h.do("GET", d.path(p), d.tok[name], nil); a.status != 200 {
					t.Errorf("%s as %s of exam A: %d %s, want 200", key, role, a.status, a.body)
				}
			}
		}
	}
	h.must(200, "POST", "/api/v1/media/token", d.tok["pr2"], map[string]int64{"exam_id": d.examA})

	// The exam list is one's own; admins see every exam.
	examIDs := func(tok string) []int64 {
		var list []examView
		h.must(200, "GET", "/api/v1/exams", tok, nil).decode(t, &list)
		out := []int64{}
		for _, e := range list {
			out = append(out, e.ID)
		}
		return out
	}
	if got := examIDs(d.tok["pr"]); !slices.Equal(got, []int64{d.examB}) {
		t.Errorf("exams of a proctor of B: %v", got)
	}
	if got := examIDs(d.tok["ex2"]); !slices.Equal(got, []int64{d.examA}) {
		t.Errorf("exams of an examiner of A: %v", got)
	}
	if got := examIDs(h.admin); !slices.Equal(got, []int64{d.examA, d.examB}) {
		t.Errorf("exams of the admin: %v", got)
	}
}

// Only the examiner who held the candidate's interview call (or an admin)
// scores them; only an admin or the staff member on the current call ends
// their day.
func TestScoreAndLeaveBelongToTheCall(t *testing.T) {
	d := newScopeDay(t)
	h := d.h
	cpath := "/api/v1/candidates/" + itoa(d.cand.ID)
	// ex3 is on exam A and an examiner, but did not interview the candidate.
	if a := h.do("PUT", cpath+"/score", d.tok["ex3"], map[string]any{"score": 5}); a.status != 403 || a.errCode() != "not_your_interview" {
		t.Errorf("score by an examiner not on the call: %d %s", a.status, a.body)
	}
	if a := h.do("POST", cpath+"/score/publish", d.tok["ex3"], nil); a.status != 403 || a.errCode() != "not_your_interview" {
		t.Errorf("publish by an examiner not on the call: %d %s", a.status, a.body)
	}
	var sc scoreView
	h.must(200, "GET", cpath+"/score", d.tok["ex3"], nil).decode(t, &sc) // reading is fine
	if sc.Score != 80 || sc.Published {
		t.Fatalf("the other examiner changed the score: %+v", sc)
	}
	h.must(200, "POST", cpath+"/score/publish", d.tok["ex2"], nil).decode(t, &sc)
	if !sc.Published || sc.ExaminerID == 0 {
		t.Errorf("published by the interviewer: %+v", sc)
	}
	h.must(200, "PUT", cpath+"/score", h.admin, map[string]any{"score": 82, "comment": "复核"}).decode(t, &sc)
	if sc.Score != 82 {
		t.Errorf("an admin's correction: %+v", sc)
	}

	// Ending the day: not the assistant, proctor or other examiner of the
	// exam; the interviewer on the call may.
	for _, name := range []string{"as2", "pr2", "ex3"} {
		if a := h.do("POST", cpath+"/leave", d.tok[name], nil); a.status != 403 || a.errCode() != "not_on_call" {
			t.Errorf("leave by %s, not on the call: %d %s", name, a.status, a.body)
		}
	}
	var cv candidateView
	h.must(200, "POST", cpath+"/leave", d.tok["ex2"], nil).decode(t, &cv)
	if cv.Stage != "left" || cv.Call != nil {
		t.Errorf("after the interviewer ended the day: %+v", cv)
	}
	// An admin may end anyone's day, on a call or not.
	other := h.candidate(d.examA, "乙")
	h.codeLogin(other.Codes["rest_room"])
	h.must(200, "POST", "/api/v1/candidates/"+itoa(other.ID)+"/leave", h.admin, nil).decode(t, &cv)
	if cv.Stage != "left" {
		t.Errorf("after an admin ended the day: %+v", cv)
	}
}
