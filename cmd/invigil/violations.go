package main

import (
	"context"
	"errors"
	"log/slog"
	"path/filepath"

	"invigil/api"
	"invigil/pipeline"
	"invigil/recording"
)

// storeSink hands the pipeline's violations to the control plane, which
// stores them (evidence first) and then announces them. It adds where the
// recording shows the onset, which only the media side can find.
type storeSink struct {
	api     *api.Server
	dataDir string
	log     *slog.Logger
}

var _ pipeline.ViolationSink = (*storeSink)(nil)

func (s *storeSink) report(v pipeline.Violation) api.ViolationReport {
	r := api.ViolationReport{Key: v.Key, Identity: v.Identity, Type: string(v.Type), Policy: v.Policy, Reason: v.Reason,
		Confidence: v.Confidence, StartedAt: v.StartedAt, OpenedAt: v.OpenedAt, EndedAt: v.EndedAt, Evidence: v.Evidence}
	if len(v.Details) > 0 {
		r.Details = make(map[string]any, len(v.Details))
		for k, x := range v.Details {
			r.Details[k] = x
		}
	}
	return r
}

func (s *storeSink) ViolationOpened(ctx context.Context, v pipeline.Violation) error {
	r := s.report(v)
	seg, off, err := recording.Locate(s.dataDir, v.Room, v.Identity, v.StartedAt)
	if err == nil {
		if rel, err := filepath.Rel(s.dataDir, seg); err == nil {
			ms := off.Milliseconds()
			r.RecordingPath, r.RecordingOffsetMS = rel, &ms
		}
	} else if !errors.Is(err, recording.ErrNotRecorded) {
		s.log.Warn("cannot locate the recording of a violation", "key", v.Key, "err", err)
	}
	if err := s.api.ViolationOpened(ctx, r); err != nil {
		return s.drop(v, err)
	}
	s.log.Info("violation opened", "identity", v.Identity, "type", v.Type, "reason", v.Reason, "key", v.Key)
	return nil
}

func (s *storeSink) ViolationClosed(ctx context.Context, v pipeline.Violation) error {
	if err := s.api.ViolationClosed(ctx, s.report(v)); err != nil {
		return s.drop(v, err)
	}
	return nil
}

// drop explains a violation that cannot be stored. Load-test identities
// (simulate --token-key) are no candidates of any exam: their violations
// are only logged.
func (s *storeSink) drop(v pipeline.Violation, err error) error {
	if _, isCandidate := api.ParseCandidateIdentity(v.Identity); !isCandidate {
		s.log.Info("violation of a participant who is no candidate (a load test?) is not stored",
			"identity", v.Identity, "room", v.Room, "type", v.Type, "key", v.Key)
		return nil
	}
	return err
}
