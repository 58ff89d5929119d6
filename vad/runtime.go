package vad

import (
	"errors"
	"fmt"
	"os"
	"sync"

	ort "github.com/yalue/onnxruntime_go"
)

// fetchHint ends the errors that `invigil models fetch` repairs.
const fetchHint = "run: bin/invigil models fetch"

// ONNX Runtime's environment belongs to the whole process: the binding keeps
// one, and the library, once loaded, stays loaded. So it is set up once, by
// the first detector, and never torn down while the process lives (detectors
// of later streams reuse it). Unlike a sync.Once, a failed attempt is not
// remembered: a missing library that `models fetch` then provides can be
// loaded by the next attempt without restarting the process.
var runtimeState struct {
	mu   sync.Mutex
	path string // the library loaded, "" until one is
}

// InitRuntime loads the ONNX Runtime shared library at libPath (the
// provisioned libonnxruntime.so.1, models.ONNXRuntimePath) and creates the
// process's ONNX Runtime environment. It is safe to call many times and from
// many goroutines; after the first success it only checks that libPath is the
// library already loaded, because a process cannot hold two.
func InitRuntime(libPath string) error {
	runtimeState.mu.Lock()
	defer runtimeState.mu.Unlock()
	if runtimeState.path != "" {
		if libPath != runtimeState.path {
			return fmt.Errorf("ONNX Runtime already loaded from %s; cannot load %s as well", runtimeState.path, libPath)
		}
		return nil
	}
	if libPath == "" {
		return errors.New("ONNX Runtime library path is empty; " + fetchHint)
	}
	// Checked here because dlopen's own message for a missing file is
	// cryptic and names no remedy.
	fi, err := os.Stat(libPath)
	if err != nil {
		return fmt.Errorf("ONNX Runtime library %s: %w; %s", libPath, err, fetchHint)
	}
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("ONNX Runtime library %s is not a regular file; %s", libPath, fetchHint)
	}
	ort.SetSharedLibraryPath(libPath)
	if err := ort.InitializeEnvironment(); err != nil {
		return fmt.Errorf("load ONNX Runtime library %s (damaged or not for this machine?): %w; %s", libPath, err, fetchHint)
	}
	runtimeState.path = libPath
	return nil
}

// RuntimeVersion is the version of the loaded ONNX Runtime, "" before
// InitRuntime succeeded.
func RuntimeVersion() string {
	runtimeState.mu.Lock()
	defer runtimeState.mu.Unlock()
	if runtimeState.path == "" {
		return ""
	}
	return ort.GetVersion()
}
