package main

import (
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"invigil/bus/natstest"
	"invigil/cluster"
)

// `invigil node list` shows the media nodes announcing themselves on a
// real nats-server; `invigil node drain NODE --wait` drains one and waits
// for its candidates to leave.
func TestNodeListAndDrain(t *testing.T) {
	srv := natstest.Own(t)
	nc, err := nats.Connect(srv.URL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	var load atomic.Int64
	load.Store(2)
	a, err := cluster.Announce(nc, cluster.AnnounceOptions{Node: "media-1", URL: "https://media-1.example:8443", Capacity: 10,
		Load: func() int { return int(load.Load()) }, Key: cluster.Key(testClusterKey)})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()

	vars := map[string]string{"INVIGIL_NATS_URL": srv.URL(), "INVIGIL_CLUSTER_KEY": testClusterKey}
	// Without the cluster key the node refuses to drain and list shows
	// none of the signed nodes.
	if code, _, errOut := invoke(t, map[string]string{"INVIGIL_NATS_URL": srv.URL()}, "node", "drain", "media-1"); code != 1 || a.Draining() {
		t.Errorf("drain without the cluster key: exit %d, draining %v: %s", code, a.Draining(), errOut)
	}
	if code, out, _ := invoke(t, map[string]string{"INVIGIL_NATS_URL": srv.URL()}, "node", "list", "--cluster-key", "some-other-key-0123456789"); code != 0 || strings.Contains(out, "media-1") {
		t.Errorf("list with another key: exit %d\n%s", code, out)
	}
	code, out, errOut := invoke(t, vars, "node", "list")
	if code != 0 || !strings.Contains(out, "media-1") || !strings.Contains(out, "2/10") || !strings.Contains(out, "up") ||
		!strings.Contains(out, "https://media-1.example:8443") {
		t.Fatalf("node list: exit %d\n%s%s", code, out, errOut)
	}
	// The candidates leave while drain waits.
	go func() {
		for !a.Draining() {
			time.Sleep(10 * time.Millisecond)
		}
		load.Store(1)
		time.Sleep(1500 * time.Millisecond)
		load.Store(0)
	}()
	code, out, errOut = invoke(t, vars, "node", "drain", "media-1", "--wait", "30s")
	if code != 0 || !strings.Contains(out, "media-1 drains") || !strings.Contains(out, "media-1 is empty") {
		t.Fatalf("node drain --wait: exit %d\n%s%s", code, out, errOut)
	}
	if code, out, _ := invoke(t, vars, "node", "list"); code != 0 || !strings.Contains(out, "draining") {
		t.Errorf("node list after the drain: exit %d\n%s", code, out)
	}
	if code, _, errOut := invoke(t, vars, "node", "drain", "media-9"); code != 1 || !strings.Contains(errOut, "no such node") {
		t.Errorf("draining a node that is not there: exit %d, %s", code, errOut)
	}
	if code, _, errOut := invoke(t, nil, "node", "list"); code != 2 || !strings.Contains(errOut, "--nats-url") {
		t.Errorf("node list without NATS: exit %d, %s", code, errOut)
	}
	// The URL as a flag, before or after the action (as the README has it).
	for _, args := range [][]string{{"node", "list", "--nats-url", srv.URL(), "--cluster-key", testClusterKey}, {"node", "--nats-url", srv.URL(), "--cluster-key", testClusterKey, "list"}} {
		if code, out, errOut := invoke(t, nil, args...); code != 0 || !strings.Contains(out, "media-1") {
			t.Errorf("%v: exit %d\n%s%s", args, code, out, errOut)
		}
	}
	if code, out, errOut := invoke(t, nil, "node", "drain", "media-1", "--nats-url", srv.URL(), "--cluster-key", testClusterKey); code != 0 || !strings.Contains(out, "media-1 drains") {
		t.Errorf("node drain NODE --nats-url: exit %d\n%s%s", code, out, errOut)
	}
	if code, _, errOut := invoke(t, vars, "node", "list", "extra"); code != 2 || !strings.Contains(errOut, "unexpected") {
		t.Errorf("node list extra: exit %d, %s", code, errOut)
	}
}
