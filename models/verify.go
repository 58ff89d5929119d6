package models

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// fetchHint ends every error that a fetch repairs.
const fetchHint = "run: bin/invigil models fetch"

// Status is the state of one provisioned model.
type Status string

const (
	StatusOK      Status = "ok"
	StatusMissing Status = "missing" // a file is absent
	StatusCorrupt Status = "corrupt" // a file differs from its pin or the manifest
	StatusStale   Status = "stale"   // converted by another converter version
)

// ModelStatus describes one catalog model as found in a models directory.
type ModelStatus struct {
	Name      string
	Source    string // PACKAGE@VERSION/FILE[range]
	Status    Status
	Required  bool // needed for the server to start
	Kind      Kind
	InputSize int
	// Sizes of the files on disk in bytes, 0 when absent: TFLite and ONNX
	// for converted models, FileSize for files stored as shipped.
	TFLiteSize, ONNXSize, FileSize int64
	// Problems says what is wrong, one short phrase per file; empty when ok.
	Problems []string
}

// Report is the result of Verify.
type Report struct {
	Dir    string
	Models []ModelStatus
}

// OK reports whether every model verified.
func (r Report) OK() bool {
	for _, m := range r.Models {
		if m.Status != StatusOK {
			return false
		}
	}
	return true
}

// Verify hashes every model's TFLite and ONNX file in dir and checks them
// against the pins and the manifest. The error, when any model fails, is one
// line naming each problem and saying to run `invigil models fetch`.
func Verify(dir string) (Report, error) {
	r := inspect(dir)
	if r.OK() {
		return r, nil
	}
	var problems []string
	for _, m := range r.Models {
		problems = append(problems, m.Problems...)
	}
	return r, fmt.Errorf("models in %s fail verification: %s; %s", dir, strings.Join(problems, "; "), fetchHint)
}

// List reports each catalog model's status, file sizes and source in dir.
// It hashes every file, like Verify, so "corrupt" means what it says.
func List(dir string) []ModelStatus {
	return inspect(dir).Models
}

// CheckPresent is the server's start check. It is cheap (file existence and
// sizes against the manifest, no hashing), because it runs on every start;
// Verify does the full check. The error is one line:
// "models missing in DIR: a, b; run: bin/invigil models fetch".
func CheckPresent(dir string) error {
	manifest, err := ReadManifest(dir)
	if err != nil && !errors.Is(err, errNoManifest) {
		return fmt.Errorf("models manifest in %s unreadable (%w); %s", dir, err, fetchHint)
	}
	if manifest == nil {
		manifest = &Manifest{}
	}
	var bad []string
	for _, m := range catalog {
		if !m.RequiredAtStart {
			continue
		}
		if m.Kind == KindShipped {
			// The pinned size stands in for the hash here; no manifest needed.
			fi, err := os.Stat(filepath.Join(dir, m.FileName))
			switch {
			case err != nil:
				bad = append(bad, m.Name)
			case fi.Size() != m.Size:
				bad = append(bad, m.Name+" (incomplete)")
			}
			continue
		}
		e, inManifest := manifest.Entry(m.Name)
		fi, err := os.Stat(ONNXPath(dir, m.Name))
		switch {
		case err != nil || !inManifest:
			bad = append(bad, m.Name)
		case fi.Size() != e.ONNXSize:
			bad = append(bad, m.Name+" (incomplete)")
		case e.Converter != converterVersion:
			bad = append(bad, m.Name+" (stale)")
		}
	}
	if len(bad) > 0 {
		return fmt.Errorf("models missing in %s: %s; %s", dir, strings.Join(bad, ", "), fetchHint)
	}
	return nil
}

// inspect checks every catalog model in dir. It reports problems per model
// instead of failing, so that List can show a partly provisioned directory.
func inspect(dir string) Report {
	manifest, manifestErr := ReadManifest(dir)
	r := Report{Dir: dir}
	for _, m := range catalog {
		s := ModelStatus{Name: m.Name, Source: m.Source(), Required: m.RequiredAtStart, Kind: m.Kind, InputSize: m.InputSize}
		var missing, corrupt, stale bool
		problem := func(flag *bool, format string, args ...any) {
			*flag = true
			s.Problems = append(s.Problems, fmt.Sprintf(format, args...))
		}

		if m.Kind == KindShipped {
			// Pinned by its own sha256, so the manifest has nothing to add.
			if sum, size, err := fileSHA256(filepath.Join(dir, m.FileName)); errors.Is(err, os.ErrNotExist) {
				problem(&missing, "%s missing", m.FileName)
			} else if err != nil {
				problem(&corrupt, "%s unreadable (%v)", m.FileName, err)
			} else {
				s.FileSize = size
				if sum != m.SHA256 {
					problem(&corrupt, "%s corrupt (sha256 %s, pinned %s)", m.FileName, short(sum), short(m.SHA256))
				}
			}
			s.Status = worstStatus(missing, corrupt, false)
			r.Models = append(r.Models, s)
			continue
		}

		tflite := m.Name + ".tflite"
		if sum, size, err := fileSHA256(TFLitePath(dir, m.Name)); errors.Is(err, os.ErrNotExist) {
			problem(&missing, "%s missing", tflite)
		} else if err != nil {
			problem(&corrupt, "%s unreadable (%v)", tflite, err)
		} else {
			s.TFLiteSize = size
			if sum != m.SHA256 {
				problem(&corrupt, "%s corrupt (sha256 %s, pinned %s)", tflite, short(sum), short(m.SHA256))
			}
		}

		onnx := m.Name + ".onnx"
		sum, size, err := fileSHA256(ONNXPath(dir, m.Name))
		var entry ManifestEntry
		inManifest := false
		if manifest != nil {
			entry, inManifest = manifest.Entry(m.Name)
		}
		switch {
		case errors.Is(err, os.ErrNotExist):
			problem(&missing, "%s missing", onnx)
		case err != nil:
			problem(&corrupt, "%s unreadable (%v)", onnx, err)
		case manifestErr != nil:
			s.ONNXSize = size
			problem(&corrupt, "%s unverifiable (%v)", onnx, manifestErr)
		case !inManifest:
			s.ONNXSize = size
			problem(&corrupt, "%s not in manifest.json", onnx)
		default:
			s.ONNXSize = size
			if sum != entry.ONNXSHA256 {
				problem(&corrupt, "%s corrupt (sha256 %s, manifest %s)", onnx, short(sum), short(entry.ONNXSHA256))
			} else if entry.Converter != converterVersion {
				problem(&stale, "%s stale (converted by %q, current converter %q)", onnx, entry.Converter, converterVersion)
			}
		}

		s.Status = worstStatus(missing, corrupt, stale)
		r.Models = append(r.Models, s)
	}
	return r
}

// worstStatus names the worst of a model's problems.
func worstStatus(missing, corrupt, stale bool) Status {
	switch {
	case missing:
		return StatusMissing
	case corrupt:
		return StatusCorrupt
	case stale:
		return StatusStale
	default:
		return StatusOK
	}
}

// short abbreviates a hex hash for messages meant for a person.
func short(hexSum string) string {
	if len(hexSum) > 12 {
		return hexSum[:12] + "…"
	}
	return hexSum
}
