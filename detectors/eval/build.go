package eval

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
)

// generatorVersion changes whenever rendering changes in a way the
// scenario definitions do not show (masks, jitter, encoding), so a cached
// set is rebuilt.
const generatorVersion = "eval-generator 1"

// TruthFile is the ground truth written next to each video
// (NAME.truth.json).
type TruthFile struct {
	Scenario    string     `json:"scenario"`
	Description string     `json:"description"`
	Video       string     `json:"video"`
	Policy      string     `json:"policy"`
	CalibrateMS int64      `json:"calibrate_ms"`
	DurationMS  int64      `json:"duration_ms"`
	FPS         int        `json:"fps"`
	Truth       []Interval `json:"truth"`
}

// BuiltVideo is one video of a built set.
type BuiltVideo struct {
	Scenario Scenario
	Path     string
	Truth    TruthFile
}

// BuiltSet is the evaluation set on disk.
type BuiltSet struct {
	Dir    string
	Hash   string
	Reused bool
	Videos []BuiltVideo
}

// SetHash identifies the set's content: generator version, every scenario
// and face label, and the pinned sources. Identical hashes mean identical
// videos and labels, so a cached build can be reused.
func SetHash() (string, error) {
	h := sha256.New()
	fmt.Fprintln(h, generatorVersion, FrameWidth, FrameHeight, FPS)
	sourcesDigest(h)
	enc := json.NewEncoder(h)
	if err := enc.Encode(Faces); err != nil {
		return "", err
	}
	fmt.Fprintf(h, "%v\n", liftGeometries) // how lifted hands are drawn
	if err := enc.Encode(Set()); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// Build makes the evaluation set under cacheDir (sources in
// cacheDir/sources, videos in cacheDir/set-HASH), reusing a complete
// earlier build of the same content. testdataDir, if it holds some of the
// sources already (scripts/testdata.sh), saves a download.
func Build(ctx context.Context, cacheDir, testdataDir string, log io.Writer) (*BuiltSet, error) {
	sourcesDir := filepath.Join(cacheDir, "sources")
	if testdataDir != "" {
		seedFromTestdata(sourcesDir, testdataDir)
	}
	if err := ProvisionSources(ctx, sourcesDir, log); err != nil {
		return nil, err
	}
	hash, err := SetHash()
	if err != nil {
		return nil, err
	}
	set := &BuiltSet{Dir: filepath.Join(cacheDir, "set-"+hash[:16]), Hash: hash}
	scenarios := Set()
	complete := filepath.Join(set.Dir, "COMPLETE")
	if _, err := os.Stat(complete); err == nil {
		set.Reused = true
		for _, s := range scenarios {
			v, err := reuseBuilt(set.Dir, s)
			if err != nil {
				set.Reused = false
				break
			}
			set.Videos = append(set.Videos, v)
		}
		if set.Reused {
			return set, nil
		}
		set.Videos = nil
	}
	if err := os.RemoveAll(set.Dir); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(set.Dir, 0o755); err != nil {
		return nil, err
	}
	r := newRenderer(sourcesDir)
	defer r.Close()
	for i := range scenarios {
		s := &scenarios[i]
		if log != nil {
			fmt.Fprintf(log, "eval: building %s (%d s)\n", s.Name, s.DurationMS()/1000)
		}
		path := filepath.Join(set.Dir, s.Name+".avi")
		if err := r.writeScenario(ctx, s, path); err != nil {
			return nil, err
		}
		tf, err := writeTruth(set.Dir, s, path)
		if err != nil {
			return nil, err
		}
		set.Videos = append(set.Videos, BuiltVideo{Scenario: *s, Path: path, Truth: tf})
	}
	if err := os.WriteFile(complete, []byte(hash+"\n"), 0o644); err != nil {
		return nil, err
	}
	removeOtherSets(cacheDir, set.Dir)
	return set, nil
}

func truthPath(dir, name string) string { return filepath.Join(dir, name+".truth.json") }

// reuseBuilt takes a video of an earlier build and writes its truth
// afresh: the truth is cheap to derive, and deriving it again means a
// change in how labels follow the policies never leaves stale files.
func reuseBuilt(dir string, s Scenario) (BuiltVideo, error) {
	path := filepath.Join(dir, s.Name+".avi")
	if _, err := os.Stat(path); err != nil {
		return BuiltVideo{}, err
	}
	tf, err := writeTruth(dir, &s, path)
	if err != nil {
		return BuiltVideo{}, err
	}
	return BuiltVideo{Scenario: s, Path: path, Truth: tf}, nil
}

func writeTruth(dir string, s *Scenario, video string) (TruthFile, error) {
	truth, err := s.Truth()
	if err != nil {
		return TruthFile{}, err
	}
	tf := TruthFile{Scenario: s.Name, Description: s.Description, Video: filepath.Base(video), Policy: s.Policy,
		CalibrateMS: s.CalibrateMS, DurationMS: s.DurationMS(), FPS: FPS, Truth: truth}
	data, err := json.MarshalIndent(tf, "", "  ")
	if err != nil {
		return TruthFile{}, err
	}
	if err := os.WriteFile(truthPath(dir, s.Name), append(data, '\n'), 0o644); err != nil {
		return TruthFile{}, err
	}
	return tf, nil
}

// removeOtherSets deletes builds of older set versions.
func removeOtherSets(cacheDir, keep string) {
	entries, _ := os.ReadDir(cacheDir)
	for _, e := range entries {
		p := filepath.Join(cacheDir, e.Name())
		if e.IsDir() && strings.HasPrefix(e.Name(), "set-") && p != keep {
			os.RemoveAll(p)
		}
	}
}

// seedFromTestdata copies sources that scripts/testdata.sh already
// fetched (hash-checked later by ProvisionSources).
func seedFromTestdata(sourcesDir, testdataDir string) {
	if err := os.MkdirAll(sourcesDir, 0o755); err != nil {
		return
	}
	for _, s := range Sources {
		dst := SourcePath(sourcesDir, s.Name)
		if ok, _ := hasHash(dst, s.SHA256); ok {
			continue
		}
		data, err := os.ReadFile(filepath.Join(testdataDir, s.Name))
		if err != nil {
			continue
		}
		_ = writeVerified(dst, data, s)
	}
}
