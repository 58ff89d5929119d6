// Command invigil is the one Invigil binary. Each subcommand wires packages
// together; the work itself lives in those packages.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime"
	"sort"
	"strings"
)

// version is stamped by the Makefile (-ldflags "-X main.version=…").
var version = "dev"

// env is what a subcommand may touch of the process, so tests run commands
// in-process with their own output buffers and environment.
type env struct {
	stdin          io.Reader
	stdout, stderr io.Writer
	getenv         func(string) string
}

type command struct {
	summary string
	run     func(ctx context.Context, e env, args []string) error
}

// commands is filled in init because `help` lists the table it is part of.
var commands map[string]command

func init() {
	commands = map[string]command{
		"serve":       {"run the server (pages, API, /healthz, /metrics)", runServe},
		"models":      {"provision models: fetch | verify | list", runModels},
		"healthcheck": {"exit 0 when a server's /healthz answers 200 (for Docker)", runHealthcheck},
		"version":     {"print the version", runVersion},
		"help":        {"show help for a command", runHelp},
		"analyze":     {"analyze a video or image file and print violations as JSON Lines", runAnalyze},
		"simulate":    {"join as synthetic candidates and publish a video, image or scenario as the camera", runSimulate},
		"admin":       {"manage staff accounts: users list | add | disable | enable | passwd", runAdmin},
		"node":        {"media nodes on NATS: list | drain NODE", runNode},
	}
}

func main() {
	e := env{stdin: os.Stdin, stdout: os.Stdout, stderr: os.Stderr, getenv: os.Getenv}
	os.Exit(run(context.Background(), e, os.Args[1:]))
}

// usageError makes run exit 2, the conventional code for a wrong invocation.
type usageError struct{ msg string }

func (u usageError) Error() string { return u.msg }

// exitError carries an exit code for a failure already reported in full.
type exitError struct{ code int }

func (x exitError) Error() string { return fmt.Sprintf("exit %d", x.code) }

// run executes one command line and returns the process exit code: 0 on
// success, 1 when the command failed, 2 when it was called wrongly.
func run(ctx context.Context, e env, args []string) int {
	if len(args) == 0 {
		printUsage(e.stderr)
		return 2
	}
	name := args[0]
	switch name {
	case "-h", "-help", "--help":
		printUsage(e.stdout)
		return 0
	}
	cmd, ok := commands[name]
	if !ok {
		fmt.Fprintf(e.stderr, "invigil: unknown command %q\n\n", name)
		printUsage(e.stderr)
		return 2
	}
	err := cmd.run(ctx, e, args[1:])
	var usage usageError
	var exit exitError
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
		return 0
	case errors.As(err, &exit):
		return exit.code
	case errors.As(err, &usage):
		fmt.Fprintf(e.stderr, "invigil %s: %s\n", name, usage.msg)
		return 2
	default:
		// One line, saying what is wrong and (in the error) what to do.
		fmt.Fprintf(e.stderr, "invigil: %v\n", err)
		return 1
	}
}

func printUsage(w io.Writer) {
	names := make([]string, 0, len(commands))
	for n := range commands {
		names = append(names, n)
	}
	sort.Strings(names)
	var b strings.Builder
	b.WriteString("Invigil: real-time AI proctoring for online interviews and exams.\n\n")
	b.WriteString("Usage: invigil COMMAND [flags]\n\nCommands:\n")
	for _, n := range names {
		fmt.Fprintf(&b, "  %-12s %s\n", n, commands[n].summary)
	}
	b.WriteString("\nRun 'invigil COMMAND -h' for a command's flags.\n")
	b.WriteString("Settings come from flags, then INVIGIL_* variables, then --config FILE (JSON), then defaults.\n")
	io.WriteString(w, b.String())
}

// newFlagSet makes a subcommand's flag set. Errors come back to run, which
// turns them into exit code 2; the flag package has already printed why.
func newFlagSet(e env, name, usageLine string) *flag.FlagSet {
	fs := flag.NewFlagSet("invigil "+name, flag.ContinueOnError)
	fs.SetOutput(e.stderr)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: invigil %s %s\n\nFlags:\n", name, usageLine)
		fs.PrintDefaults()
	}
	return fs
}

// parseFlags parses args and reports flag errors as exit 2 without printing
// them twice.
func parseFlags(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return exitError{code: 2}
	}
	return nil
}

func runVersion(_ context.Context, e env, args []string) error {
	if len(args) > 0 {
		return usageError{"takes no arguments"}
	}
	fmt.Fprintf(e.stdout, "invigil %s (%s %s/%s)\n", version, runtime.Version(), runtime.GOOS, runtime.GOARCH)
	return nil
}

func runHelp(ctx context.Context, e env, args []string) error {
	if len(args) == 0 {
		printUsage(e.stdout)
		return nil
	}
	if _, ok := commands[args[0]]; !ok || args[0] == "help" {
		return usageError{fmt.Sprintf("no help for %q", args[0])}
	}
	// Each command prints its own flags on -h, to stdout since it was asked for.
	e.stderr = e.stdout
	return commands[args[0]].run(ctx, e, []string{"-h"})
}
