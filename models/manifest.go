package models

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"time"

	"invigil/models/convert"
)

const manifestFile = "manifest.json"

// converterVersion identifies the converter's output. It is recorded per
// model so that a converter change (a bump of convert.Version) re-converts
// models on the next fetch instead of leaving stale ONNX files behind.
const converterVersion = "invigil-convert " + convert.Version

// ConverterVersion is the converter version that Fetch records and that
// Verify expects in the manifest.
func ConverterVersion() string { return converterVersion }

// Manifest records what Fetch produced, so Verify can check the ONNX files,
// whose hashes cannot be pinned in advance because they depend on the
// converter.
type Manifest struct {
	UpdatedAt time.Time       `json:"updated_at"`
	Models    []ManifestEntry `json:"models"`
}

// ManifestEntry describes one provisioned model.
// Converted models fill the TFLite, ONNX and converter fields; files stored
// as shipped fill File, SHA256, Size and StoredAt instead.
type ManifestEntry struct {
	Name         string    `json:"name"`
	Source       string    `json:"source"` // PACKAGE@VERSION/FILE[range]
	InputSize    int       `json:"input_size,omitzero"`
	TFLiteSHA256 string    `json:"tflite_sha256,omitzero"`
	TFLiteSize   int64     `json:"tflite_size,omitzero"`
	ONNXSHA256   string    `json:"onnx_sha256,omitzero"`
	ONNXSize     int64     `json:"onnx_size,omitzero"`
	Converter    string    `json:"converter,omitzero"`
	ConvertedAt  time.Time `json:"converted_at,omitzero"`
	File         string    `json:"file,omitzero"`
	SHA256       string    `json:"sha256,omitzero"`
	Size         int64     `json:"size,omitzero"`
	StoredAt     time.Time `json:"stored_at,omitzero"`
}

// Entry returns the manifest's entry for a model name.
func (m *Manifest) Entry(name string) (ManifestEntry, bool) {
	for _, e := range m.Models {
		if e.Name == name {
			return e, true
		}
	}
	return ManifestEntry{}, false
}

// set replaces or adds an entry, keeping catalog order so the file diffs
// cleanly between fetches.
func (m *Manifest) set(e ManifestEntry) {
	byName := map[string]ManifestEntry{}
	for _, old := range m.Models {
		byName[old.Name] = old
	}
	byName[e.Name] = e
	m.Models = m.Models[:0]
	for _, c := range catalog {
		if entry, ok := byName[c.Name]; ok {
			m.Models = append(m.Models, entry)
		}
	}
}

// errNoManifest marks a models directory without a manifest.
var errNoManifest = errors.New("manifest.json missing")

// ReadManifest reads dir's manifest.json.
func ReadManifest(dir string) (*Manifest, error) {
	path := ManifestPath(dir)
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("read %s: %w", path, errNoManifest)
	}
	if err != nil {
		return nil, fmt.Errorf("read manifest: %w", err)
	}
	var m Manifest
	if err := json.Unmarshal(data, &m); err != nil {
		return nil, fmt.Errorf("parse %s: %w", path, err)
	}
	return &m, nil
}

func writeManifest(dir string, m *Manifest) error {
	m.UpdatedAt = time.Now().UTC()
	data, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return fmt.Errorf("encode manifest: %w", err)
	}
	return writeFileAtomic(ManifestPath(dir), append(data, '\n'))
}
