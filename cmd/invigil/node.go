package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/nats-io/nats.go"

	"invigil/cluster"
	"invigil/config"
)

const nodeUsage = "[--nats-url URL] [--cluster-key KEY] list | drain NODE [--wait DURATION]"

// runNode shows the media nodes that announce themselves on NATS and
// drains one: `invigil node list` listens for a few heartbeat intervals,
// `invigil node drain NODE` asks it to take no new exams and, with --wait,
// waits until its candidates have left.
func runNode(ctx context.Context, e env, args []string) error {
	fs := newFlagSet(e, "node", nodeUsage)
	top := config.Register(fs, "nats-url", "cluster-key")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	rest := fs.Args()
	if len(rest) == 0 || (rest[0] != "list" && rest[0] != "drain") {
		return usageError{"want: invigil node list | drain NODE [--wait DURATION] (see invigil node -h)"}
	}
	action, rest := rest[0], rest[1:]
	// The settings may come before the action or after it (as the README
	// writes them: node list --nats-url URL).
	sub := newFlagSet(e, "node "+action, map[string]string{"list": "[--nats-url URL]", "drain": "NODE [--wait DURATION] [--nats-url URL]"}[action])
	flags := config.Register(sub, "nats-url", "cluster-key")
	wait := time.Duration(0)
	var name string
	if action == "drain" {
		sub.DurationVar(&wait, "wait", 0, "wait up to DURATION for the node's candidates to leave (0: do not wait)")
		if len(rest) == 0 || strings.HasPrefix(rest[0], "-") {
			return usageError{"node drain takes the node's name"}
		}
		name, rest = rest[0], rest[1:]
	}
	if err := parseFlags(sub, rest); err != nil {
		return err
	}
	if len(sub.Args()) != 0 {
		return usageError{fmt.Sprintf("node %s: unexpected %q", action, sub.Args()[0])}
	}
	if !visited(sub, "nats-url") && !visited(sub, "cluster-key") {
		flags = top
	}
	cfg, err := flags.Resolve(e.getenv)
	if err != nil {
		return err
	}
	if cfg.NATSURL == "" {
		return usageError{"no NATS server: give --nats-url (or INVIGIL_NATS_URL, or nats_url in the config file); one node without NATS is its own only node"}
	}
	nc, err := nats.Connect(cfg.NATSURL, nats.Name("invigil node"), nats.Timeout(5*time.Second))
	if err != nil {
		return fmt.Errorf("connect to NATS: %w", err)
	}
	defer nc.Close()
	// With the cluster key, list shows only nodes that sign with it and
	// drain signs its request (nodes with a key refuse unsigned ones).
	key := cluster.Key(cfg.ClusterKey)
	if action == "list" {
		return nodeList(ctx, e, nc, key)
	}
	return nodeDrain(ctx, e, nc, name, wait, key)
}

// visited reports whether the flag name was given on fs's command line.
func visited(fs *flag.FlagSet, name string) bool {
	seen := false
	fs.Visit(func(f *flag.Flag) { seen = seen || f.Name == name })
	return seen
}

// listenFor is how long `node list` listens: long enough to hear every
// live node at least twice.
const listenFor = 2*cluster.DefaultInterval + 200*time.Millisecond

func nodeList(ctx context.Context, e env, nc *nats.Conn, key cluster.Key) error {
	r, err := cluster.Watch(nc, cluster.WatchOptions{Key: key})
	if err != nil {
		return err
	}
	defer r.Close()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(listenFor):
	}
	nodes := r.Nodes()
	if len(nodes) == 0 {
		fmt.Fprintln(e.stdout, "no media node announced itself (nodes announce themselves when serve runs with --nats-url)")
		return nil
	}
	tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NODE\tURL\tCANDIDATES\tSTATE")
	for _, n := range nodes {
		state := "up"
		switch {
		case !n.Alive:
			state = "gone"
		case n.Draining:
			state = "draining"
		}
		fmt.Fprintf(tw, "%s\t%s\t%d/%d\t%s\n", n.Node, n.URL, n.Load, n.Capacity, state)
	}
	return tw.Flush()
}

func nodeDrain(ctx context.Context, e env, nc *nats.Conn, name string, wait time.Duration, key cluster.Key) error {
	h, err := cluster.Drain(nc, name, 5*time.Second, key)
	if err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "%s drains: no new exams are placed there; %d candidate(s) on it\n", h.Node, h.Load)
	if wait <= 0 || h.Load == 0 {
		return nil
	}
	r, err := cluster.Watch(nc, cluster.WatchOptions{Key: key})
	if err != nil {
		return err
	}
	defer r.Close()
	ctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	tick := time.NewTicker(cluster.DefaultInterval)
	defer tick.Stop()
	last := h.Load
	for {
		select {
		case <-ctx.Done():
			if errors.Is(ctx.Err(), context.DeadlineExceeded) {
				return fmt.Errorf("%s still has %d candidate(s) after %v", name, last, wait)
			}
			return ctx.Err()
		case <-tick.C:
		}
		n, ok := r.Node(name)
		if !ok {
			continue
		}
		if !n.Alive {
			fmt.Fprintf(e.stdout, "%s is gone\n", name)
			return nil
		}
		if n.Load != last {
			last = n.Load
			fmt.Fprintf(e.stdout, "%s: %d candidate(s) left\n", name, last)
		}
		if last == 0 {
			fmt.Fprintf(e.stdout, "%s is empty\n", name)
			return nil
		}
	}
}
