package main

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"invigil/api"
	"invigil/config"
	"invigil/models"
)

func runServe(ctx context.Context, e env, args []string) error {
	fs := newFlagSet(e, "serve", "[--addr HOST:PORT] [--data DIR] [--models DIR] [--config FILE]")
	flags := config.Register(fs)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageError{fmt.Sprintf("unexpected argument %q", fs.Arg(0))}
	}
	cfg, err := flags.Resolve(e.getenv)
	if err != nil {
		return err
	}
	log := cfg.NewLogger(e.stderr)

	// No silent fallback to weaker detection: without its models the server
	// would accept candidates it cannot watch.
	if err := models.CheckPresent(cfg.ModelsDir); err != nil {
		return err
	}
	if err := os.MkdirAll(cfg.DataDir, 0o750); err != nil {
		return fmt.Errorf("create data directory: %w", err)
	}

	reg := prometheus.NewRegistry()
	reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{Namespace: "invigil"}),
	)
	srv, err := api.New(api.Options{
		Registry:     reg,
		Logger:       log,
		Version:      version,
		MaxBodyBytes: cfg.MaxBodyBytes,
		Ready:        func() error { return models.CheckPresent(cfg.ModelsDir) },
	})
	if err != nil {
		return err
	}

	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w (is another server running there? choose another with --addr)", cfg.Addr, err)
	}
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()

	base := baseURL(ln.Addr())
	log.Info("invigil serving",
		"url", base,
		"healthz", base+"/healthz",
		"metrics", base+"/metrics",
		"data", cfg.DataDir,
		"models", cfg.ModelsDir,
		"version", version)
	err = srv.Serve(ctx, ln, time.Duration(cfg.ShutdownTimeout))
	if err != nil {
		return err
	}
	log.Info("invigil stopped")
	return nil
}

// baseURL is the address a person on this machine can open: a wildcard
// listen address is not one, so it is shown as loopback.
func baseURL(addr net.Addr) string {
	tcp, ok := addr.(*net.TCPAddr)
	if !ok {
		return "http://" + addr.String()
	}
	host := tcp.IP
	if host == nil || host.IsUnspecified() {
		host = net.IPv4(127, 0, 0, 1)
	}
	return "http://" + net.JoinHostPort(host.String(), fmt.Sprint(tcp.Port))
}
