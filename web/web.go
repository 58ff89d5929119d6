// Package web serves Invigil's pages: the candidate page (/), the staff
// interview room (/staff), the proctor's violation dashboard (/proctor) and
// the admin console (/admin). They are plain HTML, CSS and ES modules
// embedded in the binary, so a deployment is one file and there is no build
// step; the pages talk to the JSON API under /api/v1 and to the SFU at
// /sfu/ws.
package web

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"io/fs"
	"mime"
	"net/http"
	"net/url"
	"path"
	"strings"
	"time"
)

//go:embed static
var static embed.FS

// ContentSecurityPolicy is sent with every response. The pages load only
// their own scripts and styles (no inline code), media only from the
// server or from the browser's own blobs and streams; 'self' in
// connect-src also covers the same-origin ws:/wss: SFU socket (CSP level 3).
const ContentSecurityPolicy = "default-src 'none'; script-src 'self'; style-src 'self'; " +
	"img-src 'self' data: blob:; media-src 'self' blob:; connect-src 'self'; font-src 'self'; " +
	"manifest-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'; object-src 'none'"

// policyWith is ContentSecurityPolicy with connect-src widened to the
// socket origins connectTo gives (each checked, so that nothing it returns
// can add a directive).
func policyWith(connectTo func() []string) string {
	if connectTo == nil {
		return ContentSecurityPolicy
	}
	var extra []string
	for _, o := range connectTo() {
		u, err := url.Parse(o)
		if err != nil || (u.Scheme != "ws" && u.Scheme != "wss") || u.Host == "" || strings.ContainsAny(u.Host, " ;,'\"") {
			continue
		}
		extra = append(extra, u.Scheme+"://"+u.Host)
	}
	if len(extra) == 0 {
		return ContentSecurityPolicy
	}
	return strings.Replace(ContentSecurityPolicy, "connect-src 'self'", "connect-src 'self' "+strings.Join(extra, " "), 1)
}

// pages maps each page URL to its file under static.
var pages = map[string]string{
	"/":        "index.html",
	"/staff":   "staff.html",
	"/proctor": "proctor.html",
	"/admin":   "admin.html",
}

type file struct {
	body  []byte
	etag  string
	ctype string
}

// Handler serves the pages and their assets. Mount it for "GET /{$}",
// "GET /staff", "GET /proctor", "GET /admin" and "GET /assets/"; anything
// else it is given is a 404.
func Handler() http.Handler { return HandlerWith(nil) }

// HandlerWith is Handler whose pages may also connect to the origins
// connectTo returns, asked on every response: with several nodes, the
// media nodes' signaling sockets, which are other origins than the
// control node's pages. Only ws:// and wss:// origins are taken.
func HandlerWith(connectTo func() []string) http.Handler {
	files := map[string]file{}
	err := fs.WalkDir(static, "static", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := static.ReadFile(p)
		if err != nil {
			return err
		}
		sum := sha256.Sum256(b)
		files[strings.TrimPrefix(p, "static/")] = file{
			body:  b,
			etag:  `"` + hex.EncodeToString(sum[:8]) + `"`,
			ctype: contentType(p),
		}
		return nil
	})
	if err != nil {
		// The files are compiled in: failing to read them is a broken build.
		panic("web: read embedded files: " + err.Error())
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", policyWith(connectTo))
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "same-origin")
		h.Set("X-Frame-Options", "DENY")
		h.Set("Permissions-Policy", "camera=(self), microphone=(self), geolocation=(), payment=()")
		h.Set("Cross-Origin-Opener-Policy", "same-origin")
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			h.Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		name, ok := pages[r.URL.Path]
		if !ok {
			rest, isAsset := strings.CutPrefix(r.URL.Path, "/assets/")
			if isAsset && rest != "" && path.Clean("/"+rest) == "/"+rest {
				name = "assets/" + rest
			}
		}
		f, found := files[name]
		if name == "" || !found {
			http.NotFound(w, r)
			return
		}
		h.Set("Content-Type", f.ctype)
		// No build step means no content-hashed file names: browsers
		// revalidate every time and get a cheap 304 while the ETag holds,
		// so a new binary is picked up at the next page load.
		h.Set("Cache-Control", "no-cache")
		h.Set("ETag", f.etag)
		http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(f.body))
	})
}

func contentType(p string) string {
	switch path.Ext(p) {
	case ".html":
		return "text/html; charset=utf-8"
	case ".js", ".mjs":
		return "text/javascript; charset=utf-8"
	case ".css":
		return "text/css; charset=utf-8"
	case ".svg":
		return "image/svg+xml"
	}
	if t := mime.TypeByExtension(path.Ext(p)); t != "" {
		return t
	}
	return "application/octet-stream"
}
