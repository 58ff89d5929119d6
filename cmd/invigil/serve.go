package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"invigil/api"
	"invigil/config"
	"invigil/media"
	"invigil/models"
	"invigil/pipeline"
	"invigil/recording"
	"invigil/sfu"
	"invigil/simulate"
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
	mp, err := startMediaPlane(cfg, reg, log)
	if err != nil {
		return err
	}
	defer mp.Close()
	srv.Handle("GET "+sfuPath, mp.sfu)

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
		"sfu", "ws"+base[len("http"):]+sfuPath,
		"data", cfg.DataDir,
		"models", cfg.ModelsDir,
		"version", version)
	err = srv.Serve(ctx, ln, time.Duration(cfg.ShutdownTimeout))
	// Media stops after HTTP: the signalling sockets are hijacked
	// connections that http.Server.Shutdown does not wait for; closing the
	// SFU tells them "shutdown" and ends their handlers.
	if cerr := mp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	log.Info("invigil stopped")
	return nil
}

// sfuPath is where the SFU's signalling WebSocket is mounted; simulate
// derives it from the server's URL.
const sfuPath = simulate.SignallingPath

// mediaPlane is the SFU with its taps: the recorder under the data
// directory and the live analysis, whose violations go to the violation
// log until the control plane stores them.
type mediaPlane struct {
	sfu        *sfu.Server
	pipeline   *pipeline.Pipeline
	recorder   *recording.Recorder
	violations *violationLog
	closed     bool
}

func startMediaPlane(cfg config.Config, reg *prometheus.Registry, log *slog.Logger) (mp *mediaPlane, err error) {
	key := []byte(cfg.SFUTokenKey)
	if len(key) == 0 {
		b := make([]byte, 32)
		if _, err := rand.Read(b); err != nil {
			return nil, fmt.Errorf("make a token key: %w", err)
		}
		key = []byte(hex.EncodeToString(b))
		log.Warn("no sfu_token_key configured: SFU join tokens are signed with a random key and are valid only for this process; set INVIGIL_SFU_TOKEN_KEY (or --sfu-token-key) to keep them valid across restarts")
	}
	ips, err := cfg.PublicIPs()
	if err != nil {
		return nil, err
	}
	mp = &mediaPlane{}
	defer func() {
		if err != nil {
			mp.Close()
		}
	}()
	if mp.violations, err = openViolationLog(cfg.DataDir, log); err != nil {
		return nil, err
	}
	if mp.recorder, err = recording.New(recording.Config{DataDir: cfg.DataDir, Logger: log, Registerer: reg}); err != nil {
		return nil, err
	}
	if mp.pipeline, err = pipeline.New(pipeline.Config{ModelsDir: cfg.ModelsDir, Sink: mp.violations, Registry: reg, Logger: log}); err != nil {
		return nil, err
	}
	mp.sfu, err = sfu.New(sfu.Config{
		Tokens:   sfu.HMACTokens{Key: key},
		Taps:     []media.Tap{mp.recorder, mp.pipeline},
		Registry: reg,
		Logger:   log,
		ICE: sfu.ICEConfig{
			PublicIPs:       ips,
			UDPPort:         int(cfg.ICEUDPPort),
			TCPPort:         int(cfg.ICETCPPort),
			IncludeLoopback: cfg.ICELoopback,
		},
	})
	if err != nil {
		return nil, fmt.Errorf("start the SFU: %w", err)
	}
	return mp, nil
}

// Close stops the media plane in dependency order: the SFU ends every
// track (taps see Close), the pipeline closes the violations still open and
// hands them to the log, the recorder finalises its files. Safe to call
// twice.
func (mp *mediaPlane) Close() error {
	if mp.closed {
		return nil
	}
	mp.closed = true
	var errs []error
	if mp.sfu != nil {
		errs = append(errs, mp.sfu.Close())
	}
	if mp.pipeline != nil {
		errs = append(errs, mp.pipeline.Close())
	}
	if mp.recorder != nil {
		errs = append(errs, mp.recorder.Close())
	}
	if mp.violations != nil {
		errs = append(errs, mp.violations.Close())
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("stop media: %w", err)
	}
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
