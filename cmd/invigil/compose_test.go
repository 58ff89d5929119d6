package main

import (
	"encoding/json"
	"flag"
	"io"
	"regexp"
	"strings"
	"testing"

	"invigil/config"
)

// composeNode is one invigil service of docker-compose.yml: its command
// and its environment (the shared anchor merged in).
type composeNode struct {
	name    string
	command []string
	env     map[string]string
}

// readComposeNodes reads the invigil services of docker-compose.yml. No
// Docker engine runs here, so this reads the file the way it is written
// (two-space indentation, commands as flow sequences) rather than
// running it: enough to check every node's settings with serve's own
// configuration code.
func readComposeNodes(t *testing.T) []composeNode {
	t.Helper()
	text := readRepoFile(t, "docker-compose.yml")
	keyValue := regexp.MustCompile(`^\s+([A-Z_]+): "(.*)"$`)
	anchor := map[string]string{}
	var nodes []composeNode
	var cur *composeNode
	section := ""
	for _, line := range strings.Split(text, "\n") {
		switch {
		case strings.HasPrefix(line, "x-invigil-env:"):
			section, cur = "anchor", nil
		case strings.HasPrefix(line, "services:"), strings.HasPrefix(line, "volumes:"):
			section, cur = "", nil
		case strings.HasPrefix(line, "  ") && !strings.HasPrefix(line, "   ") && strings.HasSuffix(line, ":"):
			nodes = append(nodes, composeNode{name: strings.TrimSuffix(strings.TrimSpace(line), ":"), env: map[string]string{}})
			cur, section = &nodes[len(nodes)-1], "service"
		case cur != nil && strings.HasPrefix(strings.TrimSpace(line), "command: ["):
			list := strings.TrimPrefix(strings.TrimSpace(line), "command: ")
			if err := json.Unmarshal([]byte(list), &cur.command); err != nil {
				t.Fatalf("service %s: command %s: %v", cur.name, list, err)
			}
		case cur != nil && strings.TrimSpace(line) == "<<: *invigil-env":
			for k, v := range anchor {
				cur.env[k] = v
			}
		default:
			if m := keyValue.FindStringSubmatch(line); m != nil {
				if section == "anchor" {
					anchor[m[1]] = m[2]
				} else if cur != nil {
					cur.env[m[1]] = m[2]
				}
			}
		}
	}
	var out []composeNode
	for _, n := range nodes {
		if len(n.command) > 0 && n.command[0] == "invigil" {
			out = append(out, n)
		}
	}
	return out
}

// Every invigil node of docker-compose.yml runs `invigil serve` with flags
// and environment that serve's configuration accepts, one control node and
// two media nodes with distinct names, ports and advertised URLs, all on
// the same PostgreSQL and NATS.
func TestComposeFileCommands(t *testing.T) {
	nodes := readComposeNodes(t)
	roles := map[string]int{}
	names, adverts, udp := map[string]bool{}, map[string]bool{}, map[int64]bool{}
	for _, n := range nodes {
		if len(n.command) < 2 || n.command[1] != "serve" {
			t.Errorf("service %s runs %v, want invigil serve", n.name, n.command)
			continue
		}
		fs := flag.NewFlagSet("serve", flag.ContinueOnError)
		fs.SetOutput(io.Discard)
		flags := config.Register(fs)
		if err := fs.Parse(n.command[2:]); err != nil {
			t.Errorf("service %s: %v", n.name, err)
			continue
		}
		cfg, err := flags.Resolve(func(k string) string { return n.env[k] })
		if err != nil {
			t.Errorf("service %s: serve would refuse its settings: %v", n.name, err)
			continue
		}
		roles[cfg.NodeRole()]++
		if names[cfg.NodeName()] {
			t.Errorf("service %s: node name %s used twice", n.name, cfg.NodeName())
		}
		names[cfg.NodeName()] = true
		if cfg.NodeRole() == config.RoleMedia {
			if cfg.AdvertiseURL == "" || adverts[cfg.AdvertiseURL] || udp[cfg.ICEUDPPort] || cfg.ICEUDPPort == 0 {
				t.Errorf("service %s: advertise URL %q, UDP port %d: each media node needs its own", n.name, cfg.AdvertiseURL, cfg.ICEUDPPort)
			}
			adverts[cfg.AdvertiseURL], udp[cfg.ICEUDPPort] = true, true
		}
		if !strings.HasPrefix(cfg.DatabaseURL, "postgres://") || cfg.NATSURL == "" {
			t.Errorf("service %s: database %q, NATS %q", n.name, cfg.DatabaseURL, cfg.NATSURL)
		}
	}
	if roles[config.RoleControl] != 1 || roles[config.RoleMedia] != 2 {
		t.Errorf("roles %v, want one control node and two media nodes", roles)
	}
}
