package main

// These tests guard the set-up contract: one install script
// (scripts/install.sh) is the only place that names Debian packages, the
// Makefile and the Dockerfile both go through it, and the package names it
// gives exist in Debian 12. No Docker engine is needed: the runtime stage's
// package list is checked against the libraries this very binary links.

import (
	"bufio"
	"debug/elf"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"invigil/internal/testassets"
)

var installGroups = []string{"build", "runtime", "test"}

func readRepoFile(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(testassets.RepoRoot(t), name))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// installScript runs scripts/install.sh with args and returns its combined
// output; it fails the test when the script fails.
func installScript(t *testing.T, args ...string) string {
	t.Helper()
	root := testassets.RepoRoot(t)
	cmd := exec.Command("bash", append([]string{filepath.Join(root, "scripts", "install.sh")}, args...)...)
	cmd.Dir = root
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("scripts/install.sh %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

func packageList(t *testing.T, groups ...string) []string {
	t.Helper()
	return strings.Fields(installScript(t, append([]string{"--list"}, groups...)...))
}

func TestInstallScriptSyntax(t *testing.T) {
	root := testassets.RepoRoot(t)
	if out, err := exec.Command("bash", "-n", filepath.Join(root, "scripts", "install.sh")).CombinedOutput(); err != nil {
		t.Fatalf("bash -n scripts/install.sh: %v\n%s", err, out)
	}
	fi, err := os.Stat(filepath.Join(root, "scripts", "install.sh"))
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode()&0o111 == 0 {
		t.Error("scripts/install.sh is not executable; the Makefile and Dockerfile run it directly")
	}
}

// Makefile and Dockerfile use the one script for every package they need and
// name no package themselves, so the lists cannot drift apart.
func TestOneInstallScript(t *testing.T) {
	files := map[string]string{
		"Makefile":   readRepoFile(t, "Makefile"),
		"Dockerfile": readRepoFile(t, "Dockerfile"),
	}
	uses := map[string][]string{
		"Makefile":   {"scripts/install.sh build", "scripts/install.sh build test"},
		"Dockerfile": {"scripts/install.sh build", "install.sh runtime"},
	}
	for name, calls := range uses {
		for _, call := range calls {
			if !strings.Contains(files[name], call) {
				t.Errorf("%s does not run %q", name, call)
			}
		}
	}

	aptCall := regexp.MustCompile(`\b(apt-get|apt|aptitude)\s+(-\S+\s+)*(install|update|upgrade)\b|\bdpkg\s+-i\b`)
	// Names distinctive enough that their mere mention means a second list.
	var distinctive []string
	for _, p := range packageList(t, installGroups...) {
		if strings.ContainsAny(p, "-0123456789") {
			distinctive = append(distinctive, p)
		}
	}
	for name, text := range files {
		if m := aptCall.FindString(text); m != "" {
			t.Errorf("%s calls %q itself; packages are installed only by scripts/install.sh", name, m)
		}
		for _, p := range distinctive {
			if regexp.MustCompile(`(^|[^\w.-])` + regexp.QuoteMeta(p) + `($|[^\w.-])`).MatchString(text) {
				t.Errorf("%s names package %s; list it only in scripts/install.sh", name, p)
			}
		}
	}

	// The build stage's Go must be the one go.mod asks for.
	goMod := readRepoFile(t, "go.mod")
	m := regexp.MustCompile(`(?m)^go (\d+\.\d+)`).FindStringSubmatch(goMod)
	if m == nil {
		t.Fatal("no go directive in go.mod")
	}
	wantFrom := "FROM golang:" + m[1] + "-bookworm"
	for _, want := range []string{wantFrom, "FROM debian:bookworm-slim", "USER invigil", "HEALTHCHECK", "invigil\", \"healthcheck\"", "EXPOSE 8080", "models fetch", "INVIGIL_MODELS=/models"} {
		if !strings.Contains(files["Dockerfile"], want) {
			t.Errorf("Dockerfile lacks %q", want)
		}
	}
}

func TestCIRunsMakeTest(t *testing.T) {
	root := testassets.RepoRoot(t)
	fi, err := os.Stat(filepath.Join(root, ".ci", "run"))
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode()&0o111 == 0 {
		t.Error(".ci/run is not executable")
	}
	text := readRepoFile(t, ".ci/run")
	if !strings.Contains(text, "set -euo pipefail") || !regexp.MustCompile(`(?m)^(exec )?make test\b`).MatchString(text) {
		t.Errorf(".ci/run must fail fast and run make test:\n%s", text)
	}
}

// A dry run installs nothing, needs no root, and names only packages from
// its groups.
func TestInstallDryRun(t *testing.T) {
	for _, group := range installGroups {
		t.Run(group, func(t *testing.T) {
			out := installScript(t, "--dry-run", group)
			listed := packageList(t, group)
			sc := bufio.NewScanner(strings.NewReader(out))
			for sc.Scan() {
				line := sc.Text()
				missing, ok := strings.CutPrefix(line, "install.sh: missing: ")
				if !ok {
					continue
				}
				for _, p := range strings.Fields(missing) {
					if !slices.Contains(listed, p) {
						t.Errorf("dry run names %s, which is not in group %s", p, group)
					}
				}
			}
			if !strings.Contains(out, "all present") && !strings.Contains(out, "would run: apt-get install") {
				t.Errorf("dry run says neither that all is present nor what it would install:\n%s", out)
			}
		})
	}
}

// Every package the script may install exists in this machine's Debian 12
// archive, the runtime stage's included, which no Docker build checks here.
func TestInstallPackagesExist(t *testing.T) {
	pkgs := packageList(t, installGroups...)
	if len(pkgs) == 0 {
		t.Fatal("scripts/install.sh --list printed no packages")
	}
	out, err := exec.Command("apt-cache", append([]string{"policy"}, pkgs...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("apt-cache policy: %v\n%s", err, out)
	}
	candidates := map[string]string{}
	var current string
	for _, line := range strings.Split(string(out), "\n") {
		if strings.HasSuffix(line, ":") && !strings.HasPrefix(line, " ") {
			current = strings.TrimSuffix(line, ":")
			continue
		}
		if c, ok := strings.CutPrefix(strings.TrimSpace(line), "Candidate: "); ok && current != "" {
			candidates[current] = c
		}
	}
	for _, p := range pkgs {
		c, ok := candidates[p]
		if !ok || c == "(none)" {
			t.Errorf("package %s has no install candidate in apt (apt-cache policy %s); wrong name, or run apt-get update", p, p)
		}
	}
}

// basePackages are in debian:bookworm-slim already (apt itself needs them).
var basePackages = []string{"libc6", "libgcc-s1", "libstdc++6", "zlib1g"}

// The runtime image installs only the runtime group. This test binary links
// the same packages as bin/invigil, so every shared library it needs must
// come from a runtime package or the base image: a library added by new code
// (another OpenCV module, say) fails here instead of in the container. A
// bin/invigil left by `make build` is checked too.
func TestRuntimePackagesCoverLinkedLibraries(t *testing.T) {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	binaries := []string{exe}
	built := filepath.Join(testassets.RepoRoot(t), "bin", "invigil")
	if _, err := os.Stat(built); err == nil {
		binaries = append(binaries, built)
	}
	runtimePkgs := packageList(t, "runtime")
	linked := map[string][]string{} // library -> binaries linking it
	var libs []string
	for _, bin := range binaries {
		for _, lib := range importedLibraries(t, bin) {
			if linked[lib] == nil {
				libs = append(libs, lib)
			}
			linked[lib] = append(linked[lib], filepath.Base(bin))
		}
	}
	owners := packagesOwning(t, libs)
	for _, lib := range libs {
		if len(owners[lib]) == 0 {
			t.Errorf("%s links %s, which no Debian package owns", strings.Join(linked[lib], ", "), lib)
			continue
		}
		covered := false
		for _, p := range owners[lib] {
			if slices.Contains(runtimePkgs, p) || slices.Contains(basePackages, p) {
				covered = true
			}
		}
		if !covered {
			t.Errorf("%s links %s from %s, which scripts/install.sh's runtime group lacks",
				strings.Join(linked[lib], ", "), lib, strings.Join(owners[lib], " or "))
		}
	}
	t.Logf("linked libraries: %s", strings.Join(libs, " "))
}

func importedLibraries(t *testing.T, bin string) []string {
	t.Helper()
	f, err := elf.Open(bin)
	if err != nil {
		t.Fatalf("read ELF %s: %v", bin, err)
	}
	defer f.Close()
	libs, err := f.ImportedLibraries()
	if err != nil {
		t.Fatalf("read ELF %s: %v", bin, err)
	}
	return libs
}

// packagesOwning asks dpkg, in one call since each search reads every
// package's file list, which packages ship a file named like each soname. A
// pattern with a leading */ matches both /lib and /usr/lib on merged-/usr
// systems.
func packagesOwning(t *testing.T, sonames []string) map[string][]string {
	t.Helper()
	args := []string{"-S"}
	for _, s := range sonames {
		args = append(args, "*/"+s)
	}
	// dpkg-query exits 1 when some pattern matches nothing; those libraries
	// are reported by the caller as owned by no package.
	out, _ := exec.Command("dpkg-query", args...).Output()
	owners := map[string][]string{}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		pkgs, path, ok := strings.Cut(line, ": ")
		if !ok {
			continue
		}
		soname := filepath.Base(path)
		if !slices.Contains(sonames, soname) {
			continue
		}
		for _, p := range strings.Split(pkgs, ", ") {
			p, _, _ = strings.Cut(p, ":") // drop the architecture
			if !slices.Contains(owners[soname], p) {
				owners[soname] = append(owners[soname], p)
			}
		}
	}
	return owners
}
