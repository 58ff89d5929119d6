package main

import (
	"context"
	"fmt"
	"log/slog"
	"runtime"
	"strings"

	"invigil/bus"
	"invigil/cluster"
	"invigil/config"
	"invigil/contract"
	"invigil/store"
)

// registryPlacement is the control plane's control.MediaPlacement with
// several nodes: the exam's node from the registry of announcing media
// nodes (placing it first if it has none), as a signaling URL.
type registryPlacement struct {
	r  *cluster.Registry
	st *store.Store
}

func (p registryPlacement) SignallingURL(ctx context.Context, examID int64) (string, error) {
	n, _, err := p.r.Place(ctx, p.st, examID)
	if err != nil {
		return "", err
	}
	return signallingURL(n.URL), nil
}

// signallingURL turns a node's base URL (http(s)://host:port) into its
// SFU's WebSocket URL.
func signallingURL(base string) string {
	base = strings.TrimSuffix(base, "/")
	switch {
	case strings.HasPrefix(base, "https://"):
		base = "wss://" + strings.TrimPrefix(base, "https://")
	case strings.HasPrefix(base, "http://"):
		base = "ws://" + strings.TrimPrefix(base, "http://")
	}
	return base + contract.SignallingPath
}

// mediaOrigins are the signaling socket origins of the live media nodes,
// which the control node's pages may connect to.
func mediaOrigins(r *cluster.Registry) []string {
	var out []string
	for _, n := range r.Nodes() {
		if n.Alive {
			out = append(out, signallingURL(n.URL))
		}
	}
	return out
}

// defaultCapacityPerCore is what a media node takes without --capacity:
// BenchmarkCandidates sustains 6 to 10 candidates a core on moving
// footage (README, Benchmarks), so 8 is the middle of what was measured.
const defaultCapacityPerCore = 8

// announceMediaNode makes a media node known to the control nodes (its
// heartbeat: name, URL, capacity, candidates) and answers their commands
// on its SFU and pipeline. The returned function says goodbye and stops.
func announceMediaNode(cfg config.Config, nb *bus.Conn, node, base string, mp *mediaPlane, cmds cluster.MediaCommands, log *slog.Logger) (func(), error) {
	advertise := cfg.AdvertiseURL
	if advertise == "" {
		advertise = base
	}
	capacity := int(cfg.Capacity)
	if capacity == 0 {
		capacity = defaultCapacityPerCore * runtime.GOMAXPROCS(0)
	}
	cs, err := cluster.ServeCommands(nb.NATS(), node, cmds, cluster.Key(cfg.ClusterKey), log)
	if err != nil {
		return nil, err
	}
	ann, err := cluster.Announce(nb.NATS(), cluster.AnnounceOptions{Node: node, URL: advertise, Capacity: capacity,
		Load: func() int { return mp.sfu.CountRole(contract.RoleCandidate) }, Logger: log, Key: cluster.Key(cfg.ClusterKey)})
	if err != nil {
		_ = cs.Close()
		return nil, fmt.Errorf("announce this media node: %w", err)
	}
	log.Info("media node announced", "advertise_url", advertise, "capacity", capacity)
	return func() {
		if err := ann.Close(); err != nil {
			log.Warn("media node goodbye", "err", err)
		}
		if err := cs.Close(); err != nil {
			log.Warn("stop answering media commands", "err", err)
		}
	}, nil
}
