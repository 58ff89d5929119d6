// Command evalreport builds the labeled evaluation set, runs the
// detectors on every video, prints the per-type scores and writes
// docs/EVAL.md. `make eval` runs it.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"time"

	"invigil/detectors/eval"
	"invigil/models"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "evalreport:", err)
		os.Exit(1)
	}
}

func run() error {
	cache := flag.String("cache", ".cache/eval", "where the sources and the built set are kept")
	testdata := flag.String("testdata", os.Getenv("INVIGIL_TESTDATA"), "folder of test photos already fetched (saves downloads)")
	modelsDir := flag.String("models", "", "models folder (default $INVIGIL_MODELS or ~/.cache/invigil/models)")
	out := flag.String("out", "docs/EVAL.md", "report to write")
	strict := flag.Bool("strict", false, "exit 1 when a type falls below the threshold")
	stills := flag.String("stills", "", "also write a PNG of every scenario segment into this folder, and stop")
	audioOnly := flag.Bool("audio-only", false, "only score the audio set, replacing the listening section of -out")
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if *modelsDir == "" {
		d, err := models.DefaultDir()
		if err != nil {
			return err
		}
		*modelsDir = d
	}
	// The audio set first: it takes seconds, the video set minutes.
	audioMD, audioShort, err := audioReport(ctx, *cache, *modelsDir)
	if err != nil {
		return err
	}
	if *audioOnly {
		old, err := os.ReadFile(*out)
		if err != nil {
			return fmt.Errorf("-audio-only replaces the listening section of an existing report: %w", err)
		}
		md := string(old)
		if i := strings.Index(md, audioHeading); i >= 0 {
			md = md[:i]
		}
		if err := os.WriteFile(*out, []byte(strings.TrimRight(md, "\n")+"\n\n"+audioMD), 0o644); err != nil {
			return err
		}
		fmt.Fprintf(os.Stderr, "eval: wrote %s\n", *out)
		if *strict && len(audioShort) > 0 {
			return fmt.Errorf("audio: %s", strings.Join(audioShort, "; "))
		}
		return nil
	}
	set, err := eval.Build(ctx, *cache, *testdata, os.Stderr)
	if err != nil {
		return err
	}
	if *stills != "" {
		return eval.WriteStills(filepath.Join(*cache, "sources"), *stills)
	}
	if set.Reused {
		fmt.Fprintf(os.Stderr, "eval: reusing the set in %s\n", set.Dir)
	}
	start := time.Now()
	results, err := eval.Analyze(ctx, set, *modelsDir, os.Stderr)
	if err != nil {
		return err
	}
	elapsed := time.Since(start)
	scores := eval.Score(results, eval.PolicyMinMS)
	if data, err := json.MarshalIndent(results, "", "  "); err == nil {
		// The raw truth and detections, for a closer look than EVAL.md's.
		_ = os.WriteFile(filepath.Join(*cache, "results.json"), append(data, '\n'), 0o644)
	}
	manifest, _ := models.ReadManifest(*modelsDir)
	md := eval.Markdown(eval.ReportInfo{Date: time.Now(), SetHash: set.Hash, Manifest: manifest, Elapsed: elapsed}, eval.Set(), results, scores)
	md = strings.TrimRight(md, "\n") + "\n\n" + audioMD
	if err := os.MkdirAll(filepath.Dir(*out), 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(*out, []byte(md), 0o644); err != nil {
		return err
	}
	fmt.Print(eval.Table(scores))
	short := eval.Shortfalls(scores)
	for _, s := range short {
		fmt.Println("below threshold:", s)
	}
	for _, s := range audioShort {
		fmt.Println("below target:", s)
	}
	fmt.Fprintf(os.Stderr, "eval: wrote %s\n", *out)
	if *strict && len(audioShort) > 0 {
		return fmt.Errorf("audio: %s", strings.Join(audioShort, "; "))
	}
	if *strict && len(short) > 0 {
		return fmt.Errorf("%d type(s) below %.1f precision or recall", len(short), eval.Threshold)
	}
	return nil
}

// audioHeading starts the listening section of the report (AudioMarkdown).
const audioHeading = "## Listening (talking)"

// audioReport builds and scores the audio set, prints its table and
// returns the report's listening section and what misses the targets.
func audioReport(ctx context.Context, cache, modelsDir string) (string, []string, error) {
	set, err := eval.BuildAudio(ctx, cache, os.Stderr)
	if err != nil {
		return "", nil, err
	}
	if set.Reused {
		fmt.Fprintf(os.Stderr, "eval: reusing the audio set in %s\n", set.Dir)
	}
	results, err := eval.AnalyzeAudio(ctx, set, modelsDir, os.Stderr)
	if err != nil {
		return "", nil, err
	}
	if data, err := json.MarshalIndent(results, "", "  "); err == nil {
		_ = os.WriteFile(filepath.Join(cache, "audio-results.json"), append(data, '\n'), 0o644)
	}
	score := eval.ScoreAudio(results)
	fmt.Print(eval.AudioTable(score, results))
	md := eval.AudioMarkdown(set, score, results)
	if !strings.HasPrefix(md, audioHeading) {
		return "", nil, fmt.Errorf("audio report starts %q, want %q", md[:min(len(md), 40)], audioHeading)
	}
	return md, eval.AudioShortfalls(score), nil
}
