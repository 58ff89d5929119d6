package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"invigil/api"
	"invigil/bus"
	"invigil/cluster"
	"invigil/config"
	"invigil/contract"
	"invigil/control"
	"invigil/media"
	"invigil/models"
	"invigil/pipeline"
	"invigil/recording"
	"invigil/sfu"
	"invigil/store"
	"invigil/web"
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

	st, err := store.Open(ctx, storeTarget(cfg))
	if err != nil {
		return err
	}
	defer st.Close()
	log.Info("store open", "engine", st.Engine())
	if err := bootstrapAdmin(ctx, st, e.getenv("INVIGIL_ADMIN_PASSWORD"), e.stdout, log); err != nil {
		return err
	}
	weights, err := cfg.ParseRiskWeights()
	if err != nil {
		return err
	}

	// Every series carries the node's name, so that one Prometheus can
	// scrape several nodes (and their sums still add up per node).
	node := cfg.NodeName()
	log = log.With("node", node)
	gather := prometheus.NewRegistry()
	reg := prometheus.WrapRegistererWith(prometheus.Labels{"node": node}, gather)
	reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{Namespace: "invigil"}),
	)
	// With NATS, this node tells the others of the events it commits and
	// hands its violations over through JetStream (bus); without it both
	// stay inside the process.
	var nb *bus.Conn
	var events control.EventNotifier // nil, not a nil *bus.Conn, without NATS
	if cfg.NATSURL != "" {
		if nb, err = bus.Connect(ctx, cfg.NATSURL, bus.Options{Name: node, Logger: log, Registry: reg}); err != nil {
			return err
		}
		defer nb.Close()
		events = nb
	}
	// Several nodes: a control node sends the media commands over NATS to
	// the node each exam is placed on, which it chooses among the media
	// nodes announcing themselves; a media node runs them (below).
	role := cfg.NodeRole()
	media, analysis := &sfuControl{}, &pipelineControl{}
	var apiMedia control.MediaControl = media
	var apiAnalysis control.Analysis = analysis
	var placement control.MediaPlacement
	var registry *cluster.Registry
	if role == config.RoleControl {
		remote := &remoteControl{nc: nb.NATS(), st: st, timeout: cluster.DefaultCommandTimeout, key: cluster.Key(cfg.ClusterKey)}
		apiMedia, apiAnalysis = remote, remote
		if registry, err = cluster.Watch(nb.NATS(), cluster.WatchOptions{Logger: log, Key: cluster.Key(cfg.ClusterKey)}); err != nil {
			return err
		}
		defer registry.Close()
		placement = registryPlacement{r: registry, st: st}
	}
	// With several nodes, files stay where they were written (files.go):
	// violations name the node holding them, this node serves its own to
	// the other nodes and fetches theirs, signing with the cluster key.
	var fileNode string
	var remote api.RemoteFiles // nil, not a nil *remoteFiles, without one
	var ownFiles *nodeFiles
	if nb != nil {
		fileNode = node
		if cfg.ClusterKey != "" {
			rf, err := newRemoteFiles(nb.NATS(), cfg.ClusterKey, reg)
			if err != nil {
				return err
			}
			remote = rf
			if ownFiles, err = newNodeFiles(cfg.DataDir, cfg.ClusterKey, log); err != nil {
				return err
			}
			defer ownFiles.Close()
		} else {
			log.Warn("no cluster_key: this node cannot fetch the recordings and evidence other nodes hold, nor they this node's")
		}
	}
	// The API and the media plane need each other (tokens and violations
	// one way, calls and policies the other); the adapters are filled in
	// once the media plane runs, before anything is served.
	srv, err := api.New(api.Options{
		Registry:           reg,
		Gatherer:           gather,
		Logger:             log,
		Version:            version,
		MaxBodyBytes:       cfg.MaxBodyBytes,
		BodyTimeout:        time.Duration(cfg.BodyTimeout),
		MaxConnsPerNetwork: int(cfg.MaxConnsPerNetwork),
		MetricsToken:       cfg.MetricsToken,
		MediaOnly:          role == config.RoleMedia,
		Ready: func(ctx context.Context) error {
			if err := models.CheckPresent(cfg.ModelsDir); err != nil {
				return err
			}
			if nb != nil {
				if err := nb.Ping(ctx); err != nil {
					return err
				}
			}
			return st.Ping(ctx)
		},
		Control: &api.ControlOptions{
			Store:              st,
			DataDir:            cfg.DataDir,
			Media:              apiMedia,
			Analysis:           apiAnalysis,
			Placement:          placement,
			MediaKey:           mediaKey(cfg),
			EarlyLogin:         time.Duration(cfg.EarlyLoginMinutes) * time.Minute,
			CodeAttempts:       int(cfg.CodeAttempts),
			CodeAlertAddresses: int(cfg.CodeAlertAddresses),
			StaffSession:       time.Duration(cfg.StaffSession),
			RiskWeights:        weights,

			// The guessing defenses of api/ratelimit.go, and cookies for a
			// TLS-terminating proxy.
			CodeFailuresPerMinute: int(cfg.CodeFailuresPerMinute),
			LoginAttempts:         int(cfg.LoginAttempts),
			LoginNetworkAttempts:  int(cfg.LoginNetworkAttempts),
			SecureCookies:         cfg.SecureCookies,

			Events: events,
			Node:   fileNode,
			Files:  remote,
		},
	})
	if err != nil {
		return err
	}
	if nb != nil {
		// Other nodes' commits wake this node's streams; after an outage
		// of NATS every stream reads again, for the nudges it may have
		// missed.
		unsubscribe, err := nb.SubscribeEvents(srv.NudgeEvents)
		if err != nil {
			return err
		}
		defer func() { _ = unsubscribe() }()
		nb.SetOnReconnect(srv.NudgeAllEvents)
	}
	// A media node hands its violations to the control nodes and stores
	// none itself: the evidence files belong with the control plane.
	violations, err := openViolationOutbox(ctx, cfg.DataDir, srv, nb, role != config.RoleMedia, reg, log)
	if err != nil {
		return err
	}
	violations.sink.node = fileNode
	// Deferred before mp.Close, so it runs after it: the pipeline's last
	// closes are queued, delivered, and only then the store closes.
	defer violations.Shutdown(time.Duration(cfg.ShutdownTimeout)) //nolint:contextcheck // stopping runs after ctx has ended, on its own deadline
	var mp *mediaPlane
	if role != config.RoleControl {
		mp, err = startMediaPlane(cfg, reg, log, srv, violations.sink) //nolint:contextcheck // stopping runs after ctx has ended, on its own deadline
		if err != nil {
			return err
		}
		defer mp.Close() //nolint:contextcheck // stopping runs after ctx has ended, on its own deadline
		media.sfu, analysis.p = mp.sfu, mp.pipeline
		srv.Handle("GET "+sfuPath, mp.sfu)
	}
	switch role {
	case config.RoleControl:
		// The pages open the media nodes' sockets, other origins.
		srv.Handle("/", web.HandlerWith(func() []string { return mediaOrigins(registry) }))
	case config.RoleAll:
		srv.Handle("/", web.Handler())
	}
	if ownFiles != nil {
		srv.Handle("GET "+internalFilesPath, ownFiles)
	}

	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w (is another server running there? choose another with --addr)", cfg.Addr, err)
	}
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()

	base := baseURL(ln.Addr())
	if ownFiles != nil {
		// The other nodes reach this one at its internal URL, else where
		// browsers do (a media node's advertised URL), else at its
		// listening address (one machine only, when that is a wildcard).
		at := base
		if cfg.InternalURL != "" {
			at = cfg.InternalURL
		} else if cfg.AdvertiseURL != "" {
			at = cfg.AdvertiseURL
		}
		sub, err := answerWhere(nb.NATS(), node, at, log)
		if err != nil {
			return err
		}
		defer func() { _ = sub.Unsubscribe() }()
	}
	if role == config.RoleMedia {
		stopAnnouncing, err := announceMediaNode(cfg, nb, node, base, mp, mediaCommands{media: media, analysis: analysis}, log)
		if err != nil {
			return err
		}
		defer stopAnnouncing()
	}
	log.Info("invigil serving",
		"url", base,
		"healthz", base+"/healthz",
		"metrics", base+"/metrics",
		"sfu", "ws"+base[len("http"):]+sfuPath,
		"data", cfg.DataDir,
		"models", cfg.ModelsDir,
		"version", version)
	fmt.Fprintf(e.stdout, "Invigil is running:\n  candidate page    %s/\n  staff room        %s/staff\n  proctor dashboard %s/proctor\n  admin console     %s/admin\n  API               %s/api/v1/openapi.json\n  metrics           %s/metrics\nStaff log in with their username and password (first start: user admin, see above); candidates with their 6-digit invitation code.\n",
		base, base, base, base, base, base)
	err = srv.Serve(ctx, ln, time.Duration(cfg.ShutdownTimeout))
	// Media stops after HTTP: the signaling sockets are hijacked
	// connections that http.Server.Shutdown does not wait for; closing the
	// SFU tells them "shutdown" and ends their handlers.
	if mp != nil {
		if cerr := mp.Close(); err == nil { //nolint:contextcheck // stopping runs after ctx has ended, on its own deadline
			err = cerr
		}
	}
	if err != nil {
		return err
	}
	log.Info("invigil stopped")
	return nil
}

// sfuPath is where the SFU's signaling WebSocket is mounted; simulate
// derives it from the server's URL.
const sfuPath = contract.SignallingPath

// mediaPlane is the SFU with its taps: the recorder under the data
// directory and the live analysis, whose violations the control plane
// stores.
type mediaPlane struct {
	sfu      *sfu.Server
	pipeline *pipeline.Pipeline
	recorder *recording.Recorder
	closed   bool
}

func startMediaPlane(cfg config.Config, reg prometheus.Registerer, log *slog.Logger, ctl *api.Server, sink pipeline.ViolationSink) (mp *mediaPlane, err error) {
	tokens := &controlTokens{api: ctl}
	if cfg.SFUTokenKey != "" {
		// Load tests (simulate --token-key) mint their own tokens with the
		// shared key; everyone else gets theirs from the control plane.
		tokens.hmac = &sfu.HMACTokens{Key: []byte(cfg.SFUTokenKey)}
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
	if mp.recorder, err = recording.New(recording.Config{DataDir: cfg.DataDir, Logger: log, Registerer: reg}); err != nil {
		return nil, err
	}
	if mp.pipeline, err = pipeline.New(pipeline.Config{ModelsDir: cfg.ModelsDir, Sink: sink,
		Registry: reg, Logger: log, CalmInterval: time.Duration(cfg.CalmInterval)}); err != nil {
		return nil, err
	}
	mp.sfu, err = sfu.New(sfu.Config{
		Tokens:         tokens,
		OnEvent:        presenceEvents(ctl),
		Taps:           []media.Tap{mp.recorder, mp.pipeline},
		Registry:       reg,
		Logger:         log,
		OriginPatterns: cfg.OriginPatterns(),
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
// hands them to the store, the recorder finalizes its files. Safe to call
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

// storeTarget is what store.Open opens for cfg: the PostgreSQL database of
// --database-url when it is set (several nodes share it), else the SQLite
// file in the data directory.
func storeTarget(cfg config.Config) string {
	if cfg.DatabaseURL != "" {
		return cfg.DatabaseURL
	}
	return filepath.Join(cfg.DataDir, databaseFile)
}
