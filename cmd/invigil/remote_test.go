package main

import (
	"context"
	"errors"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"

	"invigil/api"
	"invigil/bus/natstest"
	"invigil/cluster"
	"invigil/config"
	"invigil/contract"
	"invigil/detectors/rules"
	"invigil/internal/testassets"
	"invigil/pipeline"
	"invigil/store"
)

type discardViolations struct{}

func (discardViolations) ViolationOpened(context.Context, pipeline.Violation) error { return nil }
func (discardViolations) ViolationClosed(context.Context, pipeline.Violation) error { return nil }

// The control plane's commands reach a media node's real SFU and pipeline
// over a real nats-server and come back with what those said: the same
// outcome as the single process's direct calls, for the node the
// candidate's exam is placed on.
func TestMediaCommandsOverNATS(t *testing.T) {
	srv := natstest.Own(t)
	nc, err := nats.Connect(srv.URL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()

	cfg := config.Defaults("")
	cfg.DataDir, cfg.ModelsDir = t.TempDir(), testassets.ModelsDir(t)
	reg := prometheus.NewRegistry()
	ctl, err := api.New(api.Options{Registry: reg, Logger: discardLogger()})
	if err != nil {
		t.Fatal(err)
	}
	mp, err := startMediaPlane(cfg, reg, discardLogger(), ctl, discardViolations{})
	if err != nil {
		t.Fatal(err)
	}
	defer mp.Close()
	local := mediaCommands{media: &sfuControl{mp.sfu}, analysis: &pipelineControl{mp.pipeline}}
	cs, err := cluster.ServeCommands(nc, "media-1", local, cluster.Key(testClusterKey), discardLogger())
	if err != nil {
		t.Fatal(err)
	}

	st, err := store.Open(t.Context(), filepath.Join(t.TempDir(), "invigil.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	now := time.Now().UTC()
	placed, err := st.CreateExam(t.Context(), store.Exam{Name: "placed", StartsAt: now, EndsAt: now.Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	unplaced, err := st.CreateExam(t.Context(), store.Exam{Name: "unplaced", StartsAt: now, EndsAt: now.Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	if err := st.PlaceExam(t.Context(), placed.ID, "media-1", now); err != nil {
		t.Fatal(err)
	}
	code := 100000
	newCode := func() (string, error) { code++; return strconv.Itoa(code), nil }
	c1, err := st.CreateCandidate(t.Context(), placed.ID, store.NewCandidate{Name: "甲"}, newCode)
	if err != nil {
		t.Fatal(err)
	}
	c2, err := st.CreateCandidate(t.Context(), unplaced.ID, store.NewCandidate{Name: "乙"}, newCode)
	if err != nil {
		t.Fatal(err)
	}
	cand, other := contract.CandidateIdentity(c1.ID), contract.CandidateIdentity(c2.ID)
	remote := &remoteControl{nc: nc, st: st, timeout: 5 * time.Second, key: cluster.Key(testClusterKey)}

	// Each command, directly and over NATS: the same outcome.
	same := func(what string, direct, over error) {
		t.Helper()
		switch {
		case (direct == nil) != (over == nil):
			t.Errorf("%s: directly %v, over NATS %v", what, direct, over)
		case direct != nil && !strings.HasPrefix(over.Error(), direct.Error()):
			t.Errorf("%s: directly %q, over NATS %q", what, direct, over)
		}
	}
	pol, err := rules.DefaultPolicy(rules.PolicyRestRoom)
	if err != nil {
		t.Fatal(err)
	}
	same("set policy", local.analysis.SetPolicy(cand, pol), remote.SetPolicy(cand, pol))
	bad := pol
	bad.HandsEvery = -1
	if err := remote.SetPolicy(cand, bad); err == nil || !strings.Contains(err.Error(), "hands_every") {
		t.Errorf("an invalid policy over NATS: %v", err)
	}
	same("calibrate", local.Calibrate(cand, now.Add(time.Minute)), remote.Calibrate(cand, now.Add(time.Minute)))
	direct := local.Kick(cand)
	if direct == nil {
		t.Fatal("kicking someone not connected succeeded: the comparison below would prove nothing")
	}
	same("kick someone not connected", direct, remote.Kick(cand))
	same("subscribe someone not connected", local.Subscribe("staff-1", cand), remote.Subscribe("staff-1", cand))
	same("unsubscribe", local.Unsubscribe("staff-1", cand), remote.Unsubscribe("staff-1", cand))
	_, okDirect := local.analysis.Latest(cand)
	if _, ok := remote.Latest(cand); ok != okDirect {
		t.Errorf("latest: directly %v, over NATS %v", okDirect, ok)
	}
	remote.Forget(cand)

	if err := remote.Kick(other); err == nil || !errors.Is(err, store.ErrNotFound) {
		t.Errorf("a candidate whose exam is on no node: %v, want ErrNotFound", err)
	}
	if err := remote.Kick("staff-1"); !errors.Is(err, errNoCandidate) {
		t.Errorf("a command naming no candidate: %v", err)
	}
	// The node goes away: commands fail at once, saying so.
	if err := cs.Close(); err != nil {
		t.Fatal(err)
	}
	if err := remote.Kick(cand); !errors.Is(err, cluster.ErrNodeUnreachable) {
		t.Errorf("a command to a node that is gone: %v, want ErrNodeUnreachable", err)
	}
}
