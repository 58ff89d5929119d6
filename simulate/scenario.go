package simulate

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
)

// Clip is one entry of a scenario: what the camera shows, and for how long.
type Clip struct {
	// File is an image (shown steadily) or a video (played at its own
	// rate, looping if the clip is longer). A relative path in a scenario
	// file is relative to the scenario file's directory.
	File string `json:"file"`
	// Seconds is how long the clip lasts. Zero means a video's own length;
	// an image needs it unless it is the only clip (then it shows forever).
	Seconds float64 `json:"seconds"`
}

// maxClips bounds a scenario file (each clip may hold a decoded picture).
const maxClips = 1000

// ReadScenario reads a scenario file: a JSON list of clips, e.g.
//
//	[{"file": "face.jpg", "seconds": 5}, {"file": "empty.jpg", "seconds": 4}]
func ReadScenario(path string) ([]Clip, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read scenario: %w", err)
	}
	clips, err := ParseScenario(b)
	if err != nil {
		return nil, fmt.Errorf("scenario %s: %w", path, err)
	}
	dir := filepath.Dir(path)
	for i := range clips {
		if !filepath.IsAbs(clips[i].File) {
			clips[i].File = filepath.Join(dir, clips[i].File)
		}
	}
	return clips, nil
}

// ParseScenario parses and checks a scenario's JSON.
func ParseScenario(b []byte) ([]Clip, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var clips []Clip
	if err := dec.Decode(&clips); err != nil {
		return nil, fmt.Errorf(`want a JSON list such as [{"file": "face.jpg", "seconds": 5}]: %w`, err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, errors.New("unexpected data after the JSON list")
	}
	if err := validateClips(clips); err != nil {
		return nil, err
	}
	return clips, nil
}

func validateClips(clips []Clip) error {
	if len(clips) == 0 {
		return errors.New("no clips")
	}
	if len(clips) > maxClips {
		return fmt.Errorf("%d clips, at most %d", len(clips), maxClips)
	}
	for i, c := range clips {
		if c.File == "" {
			return fmt.Errorf("clip %d: no file", i+1)
		}
		if math.IsNaN(c.Seconds) || c.Seconds < 0 || c.Seconds > 24*3600 {
			return fmt.Errorf("clip %d (%s): seconds %v, want 0 to 86400", i+1, c.File, c.Seconds)
		}
	}
	return nil
}
