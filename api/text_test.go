package api

import (
	"encoding/json"
	"strings"
	"testing"
)

func TestTextProblem(t *testing.T) {
	for _, c := range []struct {
		in        string
		multiline bool
		says      string // "" for accepted
	}{
		{"张伟", false, ""},
		{"Zoë O'Brien-Smith", false, ""},
		{"محمد", false, ""},      // right-to-left script itself is fine
		{"👩‍🔬", false, "U+200D"}, // a ZWJ emoji sequence is not a name
		{"a\x00b", false, "character 2 is U+0000 (NUL)"},
		{"a\x1bb", false, "U+001B (ESCAPE)"},
		{"a\x7f", false, "U+007F (DELETE)"},
		{"a\u0085", false, "U+0085"},
		{"line\nbreak", false, "U+000A (LINE FEED)"},
		{"tab\there", false, "U+0009 (TAB)"},
		{"line\nbreak\tand\r\ntab", true, ""},
		{"note\x00", true, "U+0000"},
		{"exe\u202Etxt.js", false, "character 4 is U+202E (RIGHT-TO-LEFT OVERRIDE)"},
		{"\u202A", false, "U+202A"},
		{"\u202B", false, "U+202B"},
		{"\u202C", false, "U+202C"},
		{"\u202D", false, "U+202D"},
		{"\u2066x\u2069", false, "U+2066 (LEFT-TO-RIGHT ISOLATE)"},
		{"\u2067", false, "U+2067"},
		{"\u2068", false, "U+2068"},
		{"\u2069", false, "U+2069"},
		{"a\u200Eb", false, "U+200E (LEFT-TO-RIGHT MARK)"},
		{"a\u200Fb", true, "U+200F"},
		{"a\u061Cb", false, "U+061C (ARABIC LETTER MARK)"},
		{"张\u200B伟", false, "character 2 is U+200B (ZERO WIDTH SPACE)"},
		{"a\u200Cb", false, "U+200C"},
		{"a\u2060b", false, "U+2060 (WORD JOINER)"},
		{"a\uFEFFb", false, "U+FEFF"},
		{"a\u2028b", true, "U+2028 (LINE SEPARATOR)"},
		{"bad \xff byte", false, "not valid UTF-8"},
		{"a\uFFFDb", false, "U+FFFD"},
	} {
		got := textProblem(c.in, c.multiline)
		if (c.says == "") != (got == "") || !strings.Contains(got, c.says) {
			t.Errorf("textProblem(%q, multiline %v) = %q, want %q", c.in, c.multiline, got, c.says)
		}
	}
}

// Every name and free-text field refuses them with a 400 that names the
// field and the character; CSV imports name the line and column.
func TestTextRefusedEverywhere(t *testing.T) {
	h := newHarness(t)
	exam := h.exam()
	examiner := h.staff("li", "examiner")
	proctor := h.staff("wang", "proctor")
	h.assign(exam, "li", "wang")
	cand := h.candidate(exam, "甲")
	ctok := h.codeLogin(cand.Codes["interview"]).Token
	if err := h.srv.ViolationOpened(t.Context(), ViolationReport{Key: "t-1", Identity: "candidate-" + itoa(cand.ID),
		Type: "head_turn", Confidence: 0.5, StartedAt: h.clock.Now(), OpenedAt: h.clock.Now()}); err != nil {
		t.Fatal(err)
	}
	var viols []violationView
	h.must(200, "GET", "/api/v1/exams/"+itoa(exam)+"/violations", proctor, nil).decode(t, &viols)
	if len(viols) != 1 {
		t.Fatalf("violations: %s", mustJSON(viols))
	}
	examPath := "/api/v1/exams/" + itoa(exam)
	cases := []struct {
		name, method, path, token string
		body                      any
		code, says                string
	}{
		{"exam name", "POST", "/api/v1/exams", h.admin, map[string]any{"name": "Day\u202E1", "starts_at": "2026-11-26T09:00:00Z", "ends_at": "2026-11-26T10:00:00Z"}, "bad_text", "exam name: character 4 is U+202E"},
		{"candidate name", "POST", examPath + "/candidates", h.admin, map[string]string{"name": "张\x00伟"}, "bad_text", "candidate name: character 2 is U+0000"},
		{"external id", "POST", examPath + "/candidates", h.admin, map[string]string{"name": "张伟", "external_id": "A\u200B1"}, "bad_text", "candidate external_id: character 2 is U+200B"},
		{"username", "POST", "/api/v1/users", h.admin, map[string]string{"username": "adm\u2066in", "password": "long enough pw", "role": "proctor"}, "bad_text", "username: character 4 is U+2066"},
		{"invalid UTF-8 in JSON", "POST", examPath + "/candidates", h.admin, "{\"name\": \"a\xffb\"}", "bad_text", "U+FFFD"},
		{"csv name", "POST", examPath + "/candidates/import", h.admin, []byte("name,external_id\n张伟,A1\n李\u202E娜,A2\n"), "bad_csv", "CSV line 3, column 1: character 2 is U+202E"},
		{"csv unused column", "POST", examPath + "/candidates/import", h.admin, []byte("name,note\n张伟,ok\n李娜,\"two\nlines\"\n"), "bad_csv", "CSV line 3, column 2: character 4 is U+000A"},
		{"csv header", "POST", examPath + "/candidates/import", h.admin, []byte("name\u200B\nx\n"), "bad_csv", "CSV line 1, column 1"},
		{"csv bad UTF-8", "POST", examPath + "/candidates/import", h.admin, []byte("name\nok\nok2\nbad\xff\n"), "bad_csv", "CSV line 4"},
		{"review note", "POST", "/api/v1/violations/" + itoa(viols[0].ID) + "/review", proctor, map[string]string{"decision": "confirmed", "note": "see\u2067"}, "bad_text", "review note: character 4 is U+2067"},
		{"score comment", "PUT", "/api/v1/candidates/" + itoa(cand.ID) + "/score", examiner, map[string]any{"score": 50, "comment": "ok\nfine\x07"}, "bad_text", "score comment: character 8 is U+0007"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			a := h.do(c.method, c.path, c.token, c.body)
			var e struct {
				Error apiError `json:"error"`
			}
			_ = json.Unmarshal(a.body, &e)
			if a.status != 400 || e.Error.Code != c.code || !strings.Contains(e.Error.Message, c.says) {
				t.Errorf("%d %s, want 400 %s saying %q", a.status, a.body, c.code, c.says)
			}
		})
	}
	// The candidate's help message: refused in both languages, as their
	// page shows errors; newlines are fine.
	a := h.do("POST", "/api/v1/candidate/help", ctok, map[string]string{"message": "听不到\u200D声音"})
	var e struct {
		Error apiError `json:"error"`
	}
	_ = json.Unmarshal(a.body, &e)
	if a.status != 400 || e.Error.Code != "bad_text" || !strings.Contains(e.Error.ZH, "U+200D") || !strings.Contains(e.Error.EN, "U+200D") {
		t.Errorf("help message with a ZWJ: %d %s", a.status, a.body)
	}
	h.must(204, "POST", "/api/v1/candidate/help", ctok, map[string]string{"message": "听不到\n声音"})
	// Nothing refused was stored.
	var cands []candidateView
	h.must(200, "GET", examPath+"/candidates", h.admin, nil).decode(t, &cands)
	if len(cands) != 1 {
		t.Errorf("refused candidates were stored: %s", mustJSON(cands))
	}
}
