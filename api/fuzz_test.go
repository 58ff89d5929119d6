package api

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"unicode/utf8"
)

// The candidate import never panics and accepts only rows with a name
// free of control, bidi and zero-width characters.
func FuzzCandidateCSV(f *testing.F) {
	for _, seed := range []string{"name\nA\n", "\ufeffname,external_id\n张三,001\n李四,002\n", "name\n\"unterminated\n",
		"who\nx\n", "name,name\n,\n", "a,b,c\n1,2\n3\n", "",
		"name\n李\u202e娜\n", "name,x\nok,\"a\nb\"\n", "name\n\x00\n", "name\nA\u200bB\n", "name\n\"\ufeffA\"\n"} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		list, err := parseCandidateCSV(body)
		if err != nil {
			var ae *apiError
			if !errors.As(err, &ae) || ae.Status != http.StatusBadRequest || ae.Message == "" {
				t.Fatalf("error %v is not a clear 400", err)
			}
			return
		}
		if len(list) == 0 {
			t.Fatal("accepted an import with no rows")
		}
		for _, c := range list {
			if c.Name == "" || !utf8.ValidString(c.Name) || c.Name != strings.TrimSpace(c.Name) {
				t.Fatalf("accepted a bad name %q", c.Name)
			}
			if p := textProblem(c.Name, false) + textProblem(c.ExternalID, false); p != "" {
				t.Fatalf("accepted %q / %q: %s", c.Name, c.ExternalID, p)
			}
		}
	})
}

// Strict JSON decoding never panics and answers every bad body with a 4xx.
func FuzzDecodeJSON(f *testing.F) {
	for _, seed := range []string{`{"name":"x","starts_at":"2026-11-26T09:00:00Z","ends_at":"2026-11-26T10:00:00Z"}`,
		`{"name":1}`, `{`, `[]`, `null`, `{"a":1}`, `{"name":"x"} x`, `{"starts_at":"tomorrow"}`} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		r := httptest.NewRequest("POST", "/", strings.NewReader(string(body)))
		r.Header.Set("Content-Type", "application/json")
		var v examRequest
		err := decodeJSON(r, &v)
		if err == nil {
			return
		}
		var ae *apiError
		if !errors.As(err, &ae) || ae.Status < 400 || ae.Status > 499 || ae.Message == "" {
			t.Fatalf("error %v is not a clear 4xx", err)
		}
	})
}
