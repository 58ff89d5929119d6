package web

import (
	"bytes"
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
)

// served is what the handler answered (a recorder's, so there is no body
// to close).
type served struct {
	StatusCode int
	Header     http.Header
	Body       *bytes.Buffer
}

func get(t *testing.T, h http.Handler, method, path string, hdr ...string) served {
	t.Helper()
	req := httptest.NewRequest(method, path, nil)
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return served{rec.Code, rec.Header(), rec.Body}
}

func TestPagesServed(t *testing.T) {
	h := Handler()
	for path, want := range map[string]string{
		"/":        `src="/assets/candidate.js"`,
		"/staff":   `src="/assets/staff.js"`,
		"/proctor": `src="/assets/proctor.js"`,
		"/admin":   `src="/assets/admin.js"`,
	} {
		res := get(t, h, http.MethodGet, path)
		body, _ := io.ReadAll(res.Body)
		if res.StatusCode != http.StatusOK {
			t.Errorf("GET %s: status %d", path, res.StatusCode)
			continue
		}
		if ct := res.Header.Get("Content-Type"); ct != "text/html; charset=utf-8" {
			t.Errorf("GET %s: Content-Type %q", path, ct)
		}
		if !strings.Contains(string(body), want) {
			t.Errorf("GET %s: body lacks %s", path, want)
		}
		if res.Header.Get("Cache-Control") != "no-cache" || res.Header.Get("ETag") == "" {
			t.Errorf("GET %s: Cache-Control %q ETag %q; want revalidation with an ETag", path,
				res.Header.Get("Cache-Control"), res.Header.Get("ETag"))
		}
	}
}

func TestAssetsContentTypes(t *testing.T) {
	h := Handler()
	for path, want := range map[string]string{
		"/assets/app.css":      "text/css; charset=utf-8",
		"/assets/candidate.js": "text/javascript; charset=utf-8",
		"/assets/sfu.js":       "text/javascript; charset=utf-8",
		"/assets/i18n.js":      "text/javascript; charset=utf-8",
	} {
		res := get(t, h, http.MethodGet, path)
		if res.StatusCode != http.StatusOK || res.Header.Get("Content-Type") != want {
			t.Errorf("GET %s: %d %q, want 200 %q", path, res.StatusCode, res.Header.Get("Content-Type"), want)
		}
		if res.Header.Get("X-Content-Type-Options") != "nosniff" {
			t.Errorf("GET %s: no nosniff", path)
		}
	}
}

func TestUnknownPaths404(t *testing.T) {
	h := Handler()
	for _, path := range []string{"/assets/nope.js", "/assets/", "/assets/../index.html", "/index.html", "/staff/", "/nothing",
		"/assets/./app.css", "/static/index.html"} {
		res := get(t, h, http.MethodGet, path)
		if res.StatusCode != http.StatusNotFound {
			t.Errorf("GET %s: status %d, want 404", path, res.StatusCode)
		}
		if res.Header.Get("Content-Security-Policy") == "" {
			t.Errorf("GET %s: no CSP on the 404", path)
		}
	}
	if res := get(t, h, http.MethodPost, "/"); res.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("POST /: status %d, want 405", res.StatusCode)
	}
}

func TestETagRevalidation(t *testing.T) {
	h := Handler()
	first := get(t, h, http.MethodGet, "/assets/app.css")
	etag := first.Header.Get("ETag")
	again := get(t, h, http.MethodGet, "/assets/app.css", "If-None-Match", etag)
	if again.StatusCode != http.StatusNotModified {
		t.Fatalf("revalidation with %s: status %d, want 304", etag, again.StatusCode)
	}
}

func TestCSPStrict(t *testing.T) {
	res := get(t, Handler(), http.MethodGet, "/")
	csp := res.Header.Get("Content-Security-Policy")
	for _, want := range []string{"default-src 'none'", "script-src 'self'", "style-src 'self'", "frame-ancestors 'none'", "object-src 'none'"} {
		if !strings.Contains(csp, want) {
			t.Errorf("CSP %q lacks %q", csp, want)
		}
	}
	if strings.Contains(csp, "unsafe-inline") || strings.Contains(csp, "unsafe-eval") {
		t.Errorf("CSP %q allows inline code", csp)
	}
}

// The CSP forbids inline scripts, inline event handlers and style
// attributes; this checks the pages do not rely on any of them (the browser
// tests would see a broken page, this says which file).
func TestPagesSatisfyCSP(t *testing.T) {
	inlineScript := regexp.MustCompile(`<script(?:\s[^>]*)?>\s*[^<\s]`)
	handlerAttr := regexp.MustCompile(`\son[a-z]+\s*=`)
	styleAttr := regexp.MustCompile(`\sstyle\s*=`)
	externalRef := regexp.MustCompile(`(?:src|href)="(?:https?:)?//`)
	err := fs.WalkDir(static, "static", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(p, ".html") {
			return err
		}
		b, _ := static.ReadFile(p)
		s := string(b)
		for name, re := range map[string]*regexp.Regexp{"inline script": inlineScript, "inline event handler": handlerAttr,
			"style attribute": styleAttr, "external reference": externalRef} {
			if m := re.FindString(s); m != "" {
				t.Errorf("%s has an %s: %q", p, name, m)
			}
		}
		if strings.Contains(s, "<style") {
			t.Errorf("%s has a <style> element", p)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// Every data-i18n key in the pages must exist in both languages. The
// browser tests catch keys used from JavaScript (a missing one logs a
// warning they fail on).
func TestStaticKeysTranslated(t *testing.T) {
	b, err := static.ReadFile("static/assets/strings.js")
	if err != nil {
		t.Fatal(err)
	}
	src := string(b)
	zhPart, enPart, ok := strings.Cut(src, "export const en")
	if !ok {
		t.Fatal("strings.js: no English table")
	}
	keyRe := regexp.MustCompile(`data-i18n(?:-placeholder|-title)?="([^"]+)"`)
	err = fs.WalkDir(static, "static", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(p, ".html") {
			return err
		}
		b, _ := static.ReadFile(p)
		for _, m := range keyRe.FindAllStringSubmatch(string(b), -1) {
			quoted := "'" + m[1] + "':"
			if !strings.Contains(zhPart, quoted) {
				t.Errorf("%s: key %s has no Chinese text", p, m[1])
			}
			if !strings.Contains(enPart, quoted) {
				t.Errorf("%s: key %s has no English text", p, m[1])
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// With several nodes the pages may open the media nodes' sockets, and
// nothing else: what is not a ws(s) origin is left out.
func TestCSPAllowsTheMediaNodes(t *testing.T) {
	h := HandlerWith(func() []string {
		return []string{"ws://10.0.0.5:8091/sfu/ws", "wss://media-2.example.org", "https://evil.example", "ws://a; script-src *", "javascript:x"}
	})
	csp := get(t, h, http.MethodGet, "/").Header.Get("Content-Security-Policy")
	if !strings.Contains(csp, "connect-src 'self' ws://10.0.0.5:8091 wss://media-2.example.org;") {
		t.Errorf("CSP %q does not let the pages reach the media nodes", csp)
	}
	if strings.Contains(csp, "evil") || strings.Contains(csp, "script-src *") || strings.Contains(csp, "javascript") {
		t.Errorf("CSP %q took what is no socket origin", csp)
	}
	if got := get(t, Handler(), http.MethodGet, "/").Header.Get("Content-Security-Policy"); got != ContentSecurityPolicy {
		t.Errorf("one node's CSP changed: %q", got)
	}
}
