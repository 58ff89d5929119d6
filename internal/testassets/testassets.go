// Package testassets locates the real models and photos that tests use.
// They are never committed: `make test` provisions them (models into
// $INVIGIL_MODELS, photos into $INVIGIL_TESTDATA via scripts/testdata.sh).
// A missing asset fails the test with the command that provides it; it never
// skips, so a green run always means the real thing was tested.
package testassets

import (
	"os"
	"path/filepath"
	"testing"
)

// RepoRoot walks up from the working directory to the directory holding go.mod.
func RepoRoot(t testing.TB) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatalf("testassets: working directory: %v", err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatalf("testassets: no go.mod above the working directory")
		}
		dir = parent
	}
}

// DataDir is the folder of test photos.
func DataDir(t testing.TB) string {
	t.Helper()
	if d := os.Getenv("INVIGIL_TESTDATA"); d != "" {
		return d
	}
	return filepath.Join(RepoRoot(t), ".cache", "testdata")
}

// Photo returns the path of a test photo, failing the test when it is absent.
func Photo(t testing.TB, name string) string {
	t.Helper()
	p := filepath.Join(DataDir(t), name)
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("testassets: photo %s missing (%v); run scripts/testdata.sh or make test", name, err)
	}
	return p
}

// ModelsDir is the folder of provisioned models.
func ModelsDir(t testing.TB) string {
	t.Helper()
	if d := os.Getenv("INVIGIL_MODELS"); d != "" {
		return d
	}
	home, err := os.UserHomeDir()
	if err != nil {
		t.Fatalf("testassets: home directory: %v", err)
	}
	return filepath.Join(home, ".cache", "invigil", "models")
}

// Model returns the path of a provisioned model file (e.g.
// "face_detection_full_range.onnx" or "palm_detection_lite.tflite"),
// failing the test when it is absent.
func Model(t testing.TB, file string) string {
	t.Helper()
	p := filepath.Join(ModelsDir(t), file)
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("testassets: model %s missing (%v); run `bin/invigil models fetch` or make test", file, err)
	}
	return p
}
