package main

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"

	"invigil/api"
	"invigil/cluster"
)

// Several nodes keep their files where they wrote them: a media node its
// recordings, a control node the evidence images and clips of the
// violations it stored. Every node serves those files to the other nodes
// at internalFilesPath, and a control node asked for one that another node
// holds fetches it from there (remoteFiles, api.RemoteFiles) and streams it
// on.
//
// A request carries an HMAC-SHA256 of the file's path and an expiry a
// minute ahead, keyed with the cluster key, rather than the key itself: the
// nodes may talk plain HTTP on their private network, and whoever reads
// one request there learns one file for one minute (which they just saw
// anyway), not the secret that opens every file of every node for good.
// The price is that node clocks must agree within a minute (NTP).

// internalFilesPath is where every node serves its data directory's
// recordings and evidence to the others: GET ?path=REL, Range requests
// included.
const internalFilesPath = "/internal/v1/file"

// fileAuthScheme names the Authorization scheme of internal file requests:
// "Invigil-Node EXPIRES.SIGNATURE" (Unix seconds, hex HMAC).
const fileAuthScheme = "Invigil-Node"

const (
	// fileSignatureLife is how long a signed request stays good.
	fileSignatureLife = time.Minute
	// fileSignatureMaxAhead caps how far in the future an expiry may lie:
	// the signer's clock may run ahead of ours by up to this less the
	// life, and no signature lasts longer than this.
	fileSignatureMaxAhead = 5 * time.Minute
)

// subjectFilesWhere + node asks that node (over NATS) for the base URL the
// other nodes reach its internal endpoint at. Asking the node itself finds
// control nodes too (the media registry knows only media nodes), and no
// answer at all means at once that the node is gone.
const subjectFilesWhere = "invigil.files.where."

// fileSigner signs and checks internal file requests with the cluster key.
type fileSigner struct{ key []byte }

func (s fileSigner) mac(rel string, expires int64) []byte {
	m := hmac.New(sha256.New, s.key)
	// The purpose first, so that this MAC can never be mistaken for one
	// the key might sign for something else.
	fmt.Fprintf(m, "invigil internal file\x00%s\x00%d", rel, expires)
	return m.Sum(nil)
}

// authorization is the Authorization header for fetching rel.
func (s fileSigner) authorization(rel string, now time.Time) string {
	exp := now.Add(fileSignatureLife).Unix()
	return fmt.Sprintf("%s %d.%s", fileAuthScheme, exp, hex.EncodeToString(s.mac(rel, exp)))
}

// check verifies an Authorization header for rel at now.
func (s fileSigner) check(rel, header string, now time.Time) error {
	cred, ok := strings.CutPrefix(header, fileAuthScheme+" ")
	if !ok {
		return fmt.Errorf("want Authorization: %s EXPIRES.SIGNATURE", fileAuthScheme)
	}
	expText, sigText, ok := strings.Cut(strings.TrimSpace(cred), ".")
	exp, err := strconv.ParseInt(expText, 10, 64)
	if !ok || err != nil {
		return errors.New("malformed credentials: want EXPIRES.SIGNATURE")
	}
	sig, err := hex.DecodeString(sigText)
	if err != nil || !hmac.Equal(sig, s.mac(rel, exp)) {
		return errors.New("wrong signature (is the cluster key the same on every node?)")
	}
	// Checked after the signature, so that only a holder of the key learns
	// that their clock is off.
	at := time.Unix(exp, 0)
	if now.After(at) {
		return fmt.Errorf("signature expired %s ago (are the nodes' clocks in step?)", now.Sub(at).Round(time.Second))
	}
	if at.Sub(now) > fileSignatureMaxAhead {
		return fmt.Errorf("signature expires %s from now, more than %s (are the nodes' clocks in step?)", at.Sub(now).Round(time.Second), fileSignatureMaxAhead)
	}
	return nil
}

// servableTypes are the files the internal endpoint serves, by the top
// directory under the data directory and the extension: recording segments,
// evidence images, audio clips. Never the database, the outbox or a
// recording's manifest.
var servableTypes = map[string]map[string]string{
	"recordings": {".webm": "video/webm"},
	"evidence":   {".jpg": "image/jpeg", ".wav": "audio/wav"},
}

// servablePath checks a requested path as it is stored (relative, clean,
// slash-separated) and returns its content type.
func servablePath(rel string) (string, error) {
	if rel == "" {
		return "", errors.New("no path")
	}
	if !filepath.IsLocal(rel) || filepath.Clean(rel) != rel || strings.ContainsAny(rel, "\\\x00") {
		return "", fmt.Errorf("path %q: want a clean path relative to the data directory", rel)
	}
	top, _, _ := strings.Cut(rel, "/")
	types, ok := servableTypes[top]
	if !ok {
		return "", fmt.Errorf("path %q: only recordings and evidence are served", rel)
	}
	ct, ok := types[filepath.Ext(rel)]
	if !ok {
		return "", fmt.Errorf("path %q: not a recording, evidence image or clip", rel)
	}
	return ct, nil
}

// nodeFiles is a node's internal endpoint: the recordings and evidence of
// its data directory, to signed requests of the other nodes.
type nodeFiles struct {
	// root confines every open to the data directory: os.Root refuses
	// ".." and symbolic links that lead out of it.
	root   *os.Root
	signer fileSigner
	now    func() time.Time
	log    *slog.Logger
}

func newNodeFiles(dataDir, key string, log *slog.Logger) (*nodeFiles, error) {
	if len(key) < 16 {
		return nil, errors.New("serve files to other nodes: the cluster key needs at least 16 characters")
	}
	root, err := os.OpenRoot(dataDir)
	if err != nil {
		return nil, fmt.Errorf("serve files to other nodes: %w", err)
	}
	return &nodeFiles{root: root, signer: fileSigner{key: []byte(key)}, now: time.Now, log: log}, nil
}

// Close releases the data directory.
func (f *nodeFiles) Close() error { return f.root.Close() }

func (f *nodeFiles) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	rel := r.URL.Query().Get("path")
	// Authentication before anything else: without the key a caller
	// learns nothing, not even whether a path would be served.
	if err := f.signer.check(rel, r.Header.Get("Authorization"), f.now()); err != nil {
		w.Header().Set("WWW-Authenticate", fileAuthScheme)
		writeFileError(w, http.StatusUnauthorized, "unauthenticated", "internal file requests must be signed with the cluster key: "+err.Error())
		return
	}
	ct, err := servablePath(rel)
	if err != nil {
		f.log.Warn("refused an internal file request", "path", rel, "remote", r.RemoteAddr, "err", err)
		writeFileError(w, http.StatusBadRequest, "bad_path", err.Error())
		return
	}
	file, err := f.root.Open(rel)
	if errors.Is(err, os.ErrNotExist) {
		writeFileError(w, http.StatusNotFound, "file_gone", fmt.Sprintf("%s is not in this node's data directory", rel))
		return
	}
	if err != nil {
		// A link out of the data directory lands here, as does a file
		// this process may not read.
		f.log.Warn("refused an internal file request", "path", rel, "remote", r.RemoteAddr, "err", err)
		writeFileError(w, http.StatusForbidden, "not_servable", fmt.Sprintf("%s cannot be served from this node's data directory", rel))
		return
	}
	defer file.Close()
	st, err := file.Stat()
	if err != nil || !st.Mode().IsRegular() {
		writeFileError(w, http.StatusForbidden, "not_servable", fmt.Sprintf("%s is not a regular file", rel))
		return
	}
	w.Header().Set("Content-Type", ct)
	w.Header().Set("Cache-Control", "no-store")
	http.ServeContent(w, r, "", st.ModTime(), file)
}

// writeFileError answers in the API's error shape.
func writeFileError(w http.ResponseWriter, status int, code, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]any{"error": map[string]string{"code": code, "message": msg}})
}

// nodeWhere is a node's answer on subjectFilesWhere.
type nodeWhere struct {
	Node string `json:"node"`
	URL  string `json:"url"`
}

// answerWhere makes the node tell the others, when they ask, the base URL
// its internal endpoint is at.
func answerWhere(nc *nats.Conn, node, base string, log *slog.Logger) (*nats.Subscription, error) {
	if !cluster.ValidNode(node) {
		return nil, fmt.Errorf("serve files to other nodes: node name %q is not valid", node)
	}
	answer, err := json.Marshal(nodeWhere{Node: node, URL: strings.TrimSuffix(base, "/")})
	if err != nil {
		return nil, fmt.Errorf("serve files to other nodes: %w", err)
	}
	sub, err := nc.Subscribe(subjectFilesWhere+node, func(m *nats.Msg) {
		if err := m.Respond(answer); err != nil {
			log.Warn("cannot tell another node where this node's files are", "err", err)
		}
	})
	if err != nil {
		return nil, fmt.Errorf("serve files to other nodes: %w", err)
	}
	return sub, nil
}

// remoteFiles is api.RemoteFiles over the nodes' internal endpoints: it
// asks the holding node over NATS where it is, then fetches the file from
// it with a signed request.
type remoteFiles struct {
	nc     *nats.Conn
	signer fileSigner
	client *http.Client
	// lookup bounds the NATS question; the transfer itself lasts as long
	// as the caller's request.
	lookup time.Duration
	// fetches counts the fetches by result: ok (the node answered the
	// file or its range), unavailable (503 to the caller), missing (404),
	// failed (502), so that an operator sees a node that cannot be had.
	fetches *prometheus.CounterVec
}

var _ api.RemoteFiles = (*remoteFiles)(nil)

func newRemoteFiles(nc *nats.Conn, key string, reg prometheus.Registerer) (*remoteFiles, error) {
	fetches := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "invigil_remote_file_fetches_total",
		Help: "Recordings, evidence images and clips fetched from the node holding them, by result (ok, unavailable, missing, failed)."},
		[]string{"result"})
	for _, r := range []string{"ok", "unavailable", "missing", "failed"} {
		fetches.WithLabelValues(r)
	}
	if reg != nil {
		if err := reg.Register(fetches); err != nil {
			return nil, fmt.Errorf("register the remote file metrics: %w", err)
		}
	}
	return &remoteFiles{nc: nc, signer: fileSigner{key: []byte(key)}, lookup: 2 * time.Second, fetches: fetches,
		client: &http.Client{
			Transport: &http.Transport{
				Proxy:                 nil, // node to node on the private network, never through a proxy
				DialContext:           (&net.Dialer{Timeout: 3 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
				ResponseHeaderTimeout: 10 * time.Second,
				IdleConnTimeout:       90 * time.Second,
				MaxIdleConnsPerHost:   8,
			},
			// Redirects would carry the signature somewhere else.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		}}, nil
}

// where asks node for its base URL.
func (f *remoteFiles) where(ctx context.Context, node string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, f.lookup)
	defer cancel()
	m, err := f.nc.RequestWithContext(ctx, subjectFilesWhere+node, nil)
	if errors.Is(err, nats.ErrNoResponders) || errors.Is(err, context.DeadlineExceeded) || errors.Is(err, nats.ErrTimeout) {
		return "", fmt.Errorf("node %s does not answer on NATS: %w: %w", node, api.ErrNodeUnavailable, err)
	}
	if err != nil {
		return "", fmt.Errorf("ask node %s where its files are: %w", node, err)
	}
	var w nodeWhere
	if err := json.Unmarshal(m.Data, &w); err != nil {
		return "", fmt.Errorf("node %s's answer where its files are: %w", node, err)
	}
	if u, err := url.Parse(w.URL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return "", fmt.Errorf("node %s says its files are at %q, which is no http(s) base URL", node, w.URL)
	}
	return w.URL, nil
}

// Open fetches rel from node.
func (f *remoteFiles) Open(ctx context.Context, node, rel, rangeHeader string) (*api.RemoteFile, error) {
	rf, err := f.open(ctx, node, rel, rangeHeader)
	result := "ok"
	switch {
	case errors.Is(err, api.ErrNodeUnavailable):
		result = "unavailable"
	case errors.Is(err, api.ErrRemoteFileMissing):
		result = "missing"
	case err != nil:
		result = "failed"
	}
	f.fetches.WithLabelValues(result).Inc()
	return rf, err
}

func (f *remoteFiles) open(ctx context.Context, node, rel, rangeHeader string) (*api.RemoteFile, error) {
	if !cluster.ValidNode(node) {
		return nil, fmt.Errorf("fetch %s: the stored node name %q is not valid", rel, node)
	}
	base, err := f.where(ctx, node)
	if err != nil {
		return nil, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+internalFilesPath+"?path="+url.QueryEscape(rel), nil)
	if err != nil {
		return nil, fmt.Errorf("fetch %s from node %s: %w", rel, node, err)
	}
	req.Header.Set("Authorization", f.signer.authorization(rel, time.Now()))
	if rangeHeader != "" {
		req.Header.Set("Range", rangeHeader)
	}
	resp, err := f.client.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return nil, fmt.Errorf("fetch %s from node %s: %w", rel, node, ctx.Err())
		}
		// It answered on NATS but not on HTTP: gone since, or its URL does
		// not reach it from here.
		return nil, fmt.Errorf("fetch %s from node %s at %s: %w: %w", rel, node, base, api.ErrNodeUnavailable, err)
	}
	switch resp.StatusCode {
	case http.StatusOK, http.StatusPartialContent, http.StatusRequestedRangeNotSatisfiable:
		return &api.RemoteFile{Status: resp.StatusCode, Header: resp.Header, Body: resp.Body}, nil
	}
	defer resp.Body.Close()
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
	if resp.StatusCode == http.StatusNotFound {
		return nil, fmt.Errorf("fetch %s from node %s: %w", rel, node, api.ErrRemoteFileMissing)
	}
	return nil, fmt.Errorf("fetch %s from node %s: it answered %s: %s", rel, node, resp.Status, strings.TrimSpace(string(msg)))
}
