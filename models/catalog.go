// Package models provisions Invigil's neural models: it fetches Google's
// MediaPipe models from their pinned npm packages, checks every byte against
// pinned hashes, converts them to ONNX for OpenCV's DNN module and keeps a
// manifest, so the server can refuse to start rather than run without eyes.
// The speech detector's model (Silero VAD, already ONNX) and the ONNX Runtime
// library that runs it come the same way but are stored as shipped.
// ../shared/MODELS.md and ../shared/AUDIO.md hold the facts behind the pins.
package models

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// Model names. They are also the file names (without extension) in the
// models directory, so other packages can find files with ONNXPath.
const (
	FaceShortRange   = "face_detection_short_range"
	FaceFullRange    = "face_detection_full_range"
	PalmLite         = "palm_detection_lite"
	PalmFull         = "palm_detection_full"
	HandLandmarkLite = "hand_landmark_lite"
	HandLandmarkFull = "hand_landmark_full"
	FaceLandmark     = "face_landmark"
	// SileroVAD is Silero VAD v5, the speech detector (package vad).
	SileroVAD = "silero_vad_v5"
	// ONNXRuntime is the ONNX Runtime shared library that runs SileroVAD:
	// OpenCV 4.6 cannot load the model (it aborts on its If node).
	ONNXRuntime = "onnxruntime"
)

// Kind says how a catalog entry is stored in the models directory.
type Kind int

const (
	// KindConverted is a TFLite model kept as NAME.tflite and converted to
	// NAME.onnx for OpenCV; the ONNX hash is recorded in the manifest.
	KindConverted Kind = iota
	// KindShipped is a file stored byte for byte as its package ships it
	// (FileName in the models directory), pinned by its sha256 alone.
	KindShipped
)

// Package is a pinned npm package that ships model files.
type Package struct {
	Name    string // e.g. "@mediapipe/hands"
	Version string
	// Integrity is npm's Subresource Integrity string of the tarball; it is
	// what makes `npm pack` reproducible, since a registry could otherwise
	// serve different bytes under the same version.
	Integrity string
	// TarballSize is the tarball's size in bytes, shown in progress lines
	// before the download starts (npm reports it only afterwards).
	TarballSize int64
}

// Spec is the package's npm spec, NAME@VERSION.
func (p Package) Spec() string { return p.Name + "@" + p.Version }

// Model is one model (or the runtime library a model needs) and where its
// bytes come from.
type Model struct {
	Name    string
	Kind    Kind
	Package Package
	// File is the path inside the package (below npm's "package/" folder).
	File string
	// FileName is the name in the models directory of a KindShipped entry.
	FileName string
	// Offset and Length select a byte range of File; Length 0 means the whole
	// file. The palm detectors exist only inside a packed assets file.
	Offset, Length int64
	// SHA256 is the pinned hex sha256 of the model's TFLite bytes, or of the
	// stored file of a KindShipped entry.
	SHA256 string
	// Size is the pinned size in bytes of a KindShipped file; the start
	// check compares it without hashing.
	Size int64
	// InputSize is the side of the square RGB input, in pixels; for the
	// speech model, the samples of one chunk; 0 for the library.
	InputSize int
	// RequiredAtStart means the server refuses to start without the model.
	// All are required: room policies choose between the lite and full
	// variants at run time, so both must be loadable when the server starts
	// rather than failing later in the middle of an exam.
	RequiredAtStart bool
}

// Source names the model's origin as PACKAGE@VERSION/FILE[range].
func (m Model) Source() string {
	s := m.Package.Spec() + "/" + m.File
	if m.Length > 0 {
		s += fmt.Sprintf("[%d:%d]", m.Offset, m.Offset+m.Length)
	}
	return s
}

var (
	faceDetectionPackage = Package{
		Name:        "@mediapipe/face_detection",
		Version:     "0.4.1657300184",
		Integrity:   "sha512-k5aYtTf7av7GwD3C9T4LJB/okHK/uJwFQSOmJ9OHZMlwg7SdYVMolRgDlA962OU7fIBKsrOA7f7BzD2gpzcAKw==",
		TarballSize: 5239212,
	}
	handsPackage = Package{
		Name:        "@mediapipe/hands",
		Version:     "0.4.1675469240",
		Integrity:   "sha512-GxoZvL1mmhJxFxjuyj7vnC++JIuInGznHBin5c7ZSq/RbcnGyfEcJrkM/bMu5K1Mz/2Ko+vEX6/+wewmEHPrHg==",
		TarballSize: 13207873,
	}
	faceMeshPackage = Package{
		Name:        "@mediapipe/face_mesh",
		Version:     "0.4.1633559619",
		Integrity:   "sha512-Vc8cdjxS5+O2gnjWH9KncYpUCVXT0h714KlWAsyqJvJbIgUJBqpppbIx8yWcAzBDxm/5cYSuBI5p5ySIPxzcEg==",
		TarballSize: 7319164,
	}
	// vad-web bundles snakers4/silero-vad's ONNX files for the browser; it is
	// the registry's copy of the model, pinned like the MediaPipe ones.
	vadWebPackage = Package{
		Name:        "@ricky0123/vad-web",
		Version:     "0.0.31",
		Integrity:   "sha512-ePVq8TvB21sdHSxVMZOEIf9JVa7MAYpaIaNXeGgsPOiMCN8xbPCdF2LS5aYj7VRR3ZxzutedgV9ZplV65IA1Fg==",
		TarballSize: 5471324,
	}
	// onnxruntime-node carries prebuilt ONNX Runtime libraries for every
	// platform (hence 114 MB); only the linux x64 library is taken, and the
	// package's install script, which would download more, never runs.
	onnxRuntimeNodePackage = Package{
		Name:        "onnxruntime-node",
		Version:     "1.30.0",
		Integrity:   "sha512-twhs1C2C/BFkz1yc5OY0KIU2GUq6DURO7hD4bx5Q2Qy3nAMJwRXW8xU3NVczE29VA9lolLOYepoD8fjTGOfIqw==",
		TarballSize: 113507888,
	}
)

// The palm detectors' byte ranges come from hands_solution_packed_assets_loader.js,
// the face landmark model's from face_mesh_solution_packed_assets_loader.js
// (the attention variant before it needs custom ops OpenCV lacks).
const (
	handsPackedAssets    = "hands_solution_packed_assets.data"
	faceMeshPackedAssets = "face_mesh_solution_packed_assets.data"
)

var catalog = []Model{
	{Name: FaceShortRange, Package: faceDetectionPackage, File: "face_detection_short_range.tflite",
		SHA256: "3bc182eb9f33925d9e58b5c8d59308a760f4adea8f282370e428c51212c26633", InputSize: 128, RequiredAtStart: true},
	{Name: FaceFullRange, Package: faceDetectionPackage, File: "face_detection_full_range.tflite",
		SHA256: "99bf9494d84f50acc6617d89873f71bf6635a841ea699c17cb3377f9507cfec3", InputSize: 192, RequiredAtStart: true},
	{Name: PalmLite, Package: handsPackage, File: handsPackedAssets, Offset: 2341291, Length: 4326731 - 2341291,
		SHA256: "e9a4aaddf90dda56a87235303cf00e4c2d3fb28725f68fd88772997dac905c18", InputSize: 192, RequiredAtStart: true},
	{Name: PalmFull, Package: handsPackage, File: handsPackedAssets, Offset: 11, Length: 2341291 - 11,
		SHA256: "2f25e740121983f68ffc05f99991d524dc0ea812134f6316a26125816941ee85", InputSize: 192, RequiredAtStart: true},
	{Name: HandLandmarkLite, Package: handsPackage, File: "hand_landmark_lite.tflite",
		SHA256: "d7fde8ac11f8ce03f8663775bfc323f4fc9f2a38062b4f4efa142874ef5b2a48", InputSize: 224, RequiredAtStart: true},
	{Name: HandLandmarkFull, Package: handsPackage, File: "hand_landmark_full.tflite",
		SHA256: "8c026882c9ec059ce0f8e75266bee5a9a23c341a40e0000df755374d3d1b9b68", InputSize: 224, RequiredAtStart: true},
	// 468 face landmarks with depth: the head pose comes from them.
	{Name: FaceLandmark, Package: faceMeshPackage, File: faceMeshPackedAssets, Offset: 2495952, Length: 3737848 - 2495952,
		SHA256: "c603fa6149219a3e9487dc9abd7a0c24474c77263273d24868378cdf40aa26d1", InputSize: 192, RequiredAtStart: true},
	// Speech detection: the rest room's talking rule cannot run without them,
	// so, like the vision models, the server refuses to start without them.
	{Name: SileroVAD, Kind: KindShipped, Package: vadWebPackage, File: "dist/silero_vad_v5.onnx", FileName: "silero_vad_v5.onnx",
		SHA256: "2623a2953f6ff3d2c1e61740c6cdb7168133479b267dfef114a4a3cc5bdd788f", Size: 2327524, InputSize: 512, RequiredAtStart: true},
	{Name: ONNXRuntime, Kind: KindShipped, Package: onnxRuntimeNodePackage, File: "bin/napi-v6/linux/x64/libonnxruntime.so.1", FileName: "libonnxruntime.so.1",
		SHA256: "ffb75a925ba05e47b235bb66e3e3911714a80b328a9c9425539feb204aa32a23", Size: 45828512, RequiredAtStart: true},
}

// Catalog returns every model Invigil uses, in a stable order.
func Catalog() []Model {
	return append([]Model(nil), catalog...)
}

// Packages returns the npm packages the catalog draws from, in a stable order.
func Packages() []Package {
	var pkgs []Package
	seen := map[string]bool{}
	for _, m := range catalog {
		if !seen[m.Package.Spec()] {
			seen[m.Package.Spec()] = true
			pkgs = append(pkgs, m.Package)
		}
	}
	return pkgs
}

// Lookup returns the catalog entry of a model name.
func Lookup(name string) (Model, bool) {
	for _, m := range catalog {
		if m.Name == name {
			return m, true
		}
	}
	return Model{}, false
}

// Path is the path of a model's file with the given extension ("tflite" or
// "onnx") in the models directory dir.
func Path(dir, name, ext string) string {
	return filepath.Join(dir, name+"."+ext)
}

// ONNXPath is the path of a model's converted ONNX file, the one GoCV loads.
func ONNXPath(dir, name string) string { return Path(dir, name, "onnx") }

// TFLitePath is the path of a model's original TFLite file, kept for the
// reference evaluator and for re-conversion without a download.
func TFLitePath(dir, name string) string { return Path(dir, name, "tflite") }

// ShippedPath is the path of a KindShipped entry's file in the models
// directory dir, e.g. ShippedPath(dir, SileroVAD) for the speech model. It is
// empty for names that are not KindShipped.
func ShippedPath(dir, name string) string {
	m, ok := Lookup(name)
	if !ok || m.Kind != KindShipped {
		return ""
	}
	return filepath.Join(dir, m.FileName)
}

// SileroVADPath is the path of the speech model, silero_vad_v5.onnx.
func SileroVADPath(dir string) string { return ShippedPath(dir, SileroVAD) }

// ONNXRuntimePath is the path of the ONNX Runtime library, libonnxruntime.so.1.
func ONNXRuntimePath(dir string) string { return ShippedPath(dir, ONNXRuntime) }

// ManifestPath is the path of the manifest in the models directory dir.
func ManifestPath(dir string) string { return filepath.Join(dir, manifestFile) }

// DefaultDir is the models directory: $INVIGIL_MODELS, else
// ~/.cache/invigil/models.
func DefaultDir() (string, error) {
	if d := os.Getenv("INVIGIL_MODELS"); d != "" {
		return d, nil
	}
	return userCacheSubdir("models")
}

// DefaultCacheDir is where downloaded npm tarballs are kept between fetches:
// ~/.cache/invigil/npm. Keeping them lets a repair or a re-conversion run
// without the network.
func DefaultCacheDir() (string, error) {
	return userCacheSubdir("npm")
}

func userCacheSubdir(name string) (string, error) {
	home, err := os.UserHomeDir()
	if err != nil {
		return "", fmt.Errorf("locate home directory for ~/.cache/invigil/%s: %w", name, err)
	}
	if home == "" {
		return "", errors.New("locate home directory: $HOME is empty; set INVIGIL_MODELS")
	}
	return filepath.Join(home, ".cache", "invigil", name), nil
}
