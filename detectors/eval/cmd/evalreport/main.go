// Command evalreport builds the labelled evaluation set, runs the
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
	fmt.Fprintf(os.Stderr, "eval: wrote %s\n", *out)
	if *strict && len(short) > 0 {
		return fmt.Errorf("%d type(s) below %.1f precision or recall", len(short), eval.Threshold)
	}
	return nil
}
