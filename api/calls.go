package api

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"time"

	"invigil/contract"
	"invigil/stage"
	"invigil/store"
)

type callRequest struct {
	Kind string `json:"kind"`
}

type endCallRequest struct {
	Outcome string `json:"outcome,omitempty"`
}

type callView struct {
	ID                int64     `json:"id"`
	ExamID            int64     `json:"exam_id"`
	CandidateID       int64     `json:"candidate_id"`
	CandidateIdentity string    `json:"candidate_identity"`
	StaffID           int64     `json:"staff_id"`
	StaffName         string    `json:"staff_name"`
	StaffIdentity     string    `json:"staff_identity"`
	Kind              string    `json:"kind"`
	State             string    `json:"state"`
	Outcome           string    `json:"outcome,omitempty"`
	CreatedAt         time.Time `json:"created_at"`
	AcceptedAt        time.Time `json:"accepted_at,omitzero"`
	EndedAt           time.Time `json:"ended_at,omitzero"`
}

func viewCall(c store.Call) callView {
	return callView{ID: c.ID, ExamID: c.ExamID, CandidateID: c.CandidateID, CandidateIdentity: candidateIdentity(c.CandidateID),
		StaffID: c.StaffID, StaffName: c.StaffName, StaffIdentity: staffIdentity(c.StaffID), Kind: c.Kind, State: c.State,
		Outcome: c.Outcome, CreatedAt: c.CreatedAt, AcceptedAt: c.AcceptedAt, EndedAt: c.EndedAt}
}

// callStage is the waiting stage a call kind is placed from and the call
// stage it leads to.
func callStages(kind string) (waiting, inCall, done stage.Stage) {
	switch kind {
	case store.CallDeviceCheck:
		return stage.DeviceCheckWaiting, stage.DeviceCheckCall, stage.DeviceChecked
	case store.CallInterview:
		return stage.InterviewWaiting, stage.InterviewCall, stage.InterviewDone
	}
	return "", "", ""
}

func (c *control) placeCall(w http.ResponseWriter, r *http.Request, p *principal) error {
	cand, err := c.candidateFor(r, p)
	if err != nil {
		return err
	}
	var req callRequest
	if err := decodeJSON(r, &req); err != nil {
		return err
	}
	role := p.user.Role
	switch req.Kind {
	// Admins watch but do not talk (their media grant is a hidden viewer's),
	// so calls are the assistants' and examiners' own.
	case store.CallDeviceCheck, store.CallSpotCheck:
		if role != "assistant" {
			return errorf(http.StatusForbidden, "forbidden", "only an interview assistant places %s calls", req.Kind)
		}
	case store.CallInterview:
		if role != "examiner" {
			return errorf(http.StatusForbidden, "forbidden", "only an examiner places interview calls")
		}
	default:
		return errorf(http.StatusBadRequest, "bad_kind", "kind %q: want device_check, interview or spot_check", req.Kind)
	}
	if req.Kind == store.CallSpotCheck {
		if !cand.Stage.Waiting() && cand.Stage != stage.RestRoom && cand.Stage != stage.DeviceChecked {
			return errorf(http.StatusConflict, "not_waiting", "candidate %d is %s; spot checks are for waiting rooms and the rest room", cand.ID, cand.Stage)
		}
	} else if waiting, _, _ := callStages(req.Kind); cand.Stage != waiting {
		return errorf(http.StatusConflict, "not_waiting", "candidate %d is %s, not %s", cand.ID, cand.Stage, waiting)
	}
	now := c.now().UTC()
	call := store.Call{ExamID: cand.ExamID, CandidateID: cand.ID, StaffID: p.user.ID, Kind: req.Kind, State: store.CallRinging, CreatedAt: now}
	if req.Kind == store.CallSpotCheck {
		// A spot check is a look, not a conversation: nothing to accept.
		call.State, call.AcceptedAt = store.CallActive, now
	}
	err = c.update(r.Context(), func(ctx context.Context, tx *store.Tx) error {
		if cur, err := tx.CurrentCall(ctx, cand.ID); err == nil {
			return errorf(http.StatusConflict, "busy", "candidate %d already has a %s call (%s)", cand.ID, cur.Kind, cur.State)
		} else if !errors.Is(err, store.ErrNotFound) {
			return err
		}
		var err error
		if call, err = tx.CreateCall(ctx, call); err != nil {
			return err
		}
		call.StaffName = p.user.Username
		typ := contract.EventCallRinging
		if call.State == store.CallActive {
			typ = contract.EventCallStarted
		}
		if _, err := tx.AppendEvent(ctx, cand.ExamID, typ, cand.ID, map[string]any{"call": viewCall(call), "name": cand.Name}); err != nil {
			return err
		}
		return tx.Audit(ctx, p.user.ID, "call.place", "candidate:"+strconv.FormatInt(cand.ID, 10), map[string]any{"kind": call.Kind, "call": call.ID})
	})
	if err != nil {
		return err
	}
	if call.State == store.CallActive {
		c.connect(call)
	}
	writeJSON(w, http.StatusCreated, viewCall(call))
	return nil
}

func (c *control) callFromPath(r *http.Request) (store.Call, error) {
	return byPathID(r, "call", c.st.Call)
}

// ringingCallFor is the call in the path if it rings for the candidate.
func (c *control) ringingCallFor(r *http.Request, p *principal) (store.Call, error) {
	call, err := c.callFromPath(r)
	if err != nil {
		return call, err
	}
	if call.CandidateID != p.candidate.ID {
		return call, errorf(http.StatusNotFound, "not_found", "call %d is not yours", call.ID)
	}
	if call.State != store.CallRinging {
		return call, errorf(http.StatusConflict, "not_ringing", "call %d is %s", call.ID, call.State)
	}
	return call, nil
}

func (c *control) acceptCall(w http.ResponseWriter, r *http.Request, p *principal) error {
	call, err := c.ringingCallFor(r, p)
	if err != nil {
		return err
	}
	_, inCall, _ := callStages(call.Kind)
	cand := p.candidate
	err = c.update(r.Context(), func(ctx context.Context, tx *store.Tx) error {
		call.State, call.AcceptedAt = store.CallActive, c.now().UTC()
		if err := tx.UpdateCall(ctx, call); err != nil {
			return err
		}
		if err := moveInTx(ctx, tx, cand, inCall, 0, "call accepted", c.now()); err != nil {
			return err
		}
		_, err := tx.AppendEvent(ctx, cand.ExamID, contract.EventCallStarted, cand.ID, map[string]any{"call": viewCall(call), "name": cand.Name})
		return err
	})
	if err != nil {
		return err
	}
	c.connect(call)
	if cand, err = c.st.Candidate(r.Context(), cand.ID); err == nil {
		c.applyStage(r.Context(), cand)
	}
	writeJSON(w, http.StatusOK, viewCall(call))
	return nil
}

func (c *control) declineCall(w http.ResponseWriter, r *http.Request, p *principal) error {
	call, err := c.ringingCallFor(r, p)
	if err != nil {
		return err
	}
	err = c.update(r.Context(), func(ctx context.Context, tx *store.Tx) error {
		call.State, call.Outcome, call.EndedAt = store.CallDeclined, "declined", c.now().UTC()
		if err := tx.UpdateCall(ctx, call); err != nil {
			return err
		}
		_, err := tx.AppendEvent(ctx, call.ExamID, contract.EventCallEnded, call.CandidateID, map[string]any{"call": viewCall(call), "name": p.candidate.Name})
		return err
	})
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, viewCall(call))
	return nil
}

func (c *control) endCall(w http.ResponseWriter, r *http.Request, p *principal) error {
	call, err := c.callFor(r, p)
	if err != nil {
		return err
	}
	var req endCallRequest
	if r.ContentLength != 0 {
		if err := decodeJSON(r, &req); err != nil {
			return err
		}
	}
	if req.Outcome == "" {
		req.Outcome = "done"
	}
	if req.Outcome != "done" && req.Outcome != "retry" {
		return errorf(http.StatusBadRequest, "bad_outcome", "outcome %q: want done or retry", req.Outcome)
	}
	if call.StaffID != p.user.ID && p.user.Role != "admin" {
		return errorf(http.StatusForbidden, "forbidden", "call %d belongs to another staff member", call.ID)
	}
	if call.State != store.CallRinging && call.State != store.CallActive {
		return errorf(http.StatusConflict, "call_over", "call %d is already %s", call.ID, call.State)
	}
	cand, err := c.st.Candidate(r.Context(), call.CandidateID)
	if err != nil {
		return err
	}
	wasActive := call.State == store.CallActive
	var to stage.Stage
	if wasActive && call.Kind != store.CallSpotCheck {
		waiting, inCall, done := callStages(call.Kind)
		if cand.Stage == inCall {
			to = done
			if req.Outcome == "retry" {
				to = waiting
			}
		}
	} else if !wasActive {
		req.Outcome = "cancelled"
	}
	err = c.update(r.Context(), func(ctx context.Context, tx *store.Tx) error {
		call.State, call.Outcome, call.EndedAt = store.CallEnded, req.Outcome, c.now().UTC()
		if err := tx.UpdateCall(ctx, call); err != nil {
			return err
		}
		if to != "" {
			if err := moveInTx(ctx, tx, cand, to, p.user.ID, call.Kind+" call ended: "+req.Outcome, c.now()); err != nil {
				return err
			}
		}
		if _, err := tx.AppendEvent(ctx, call.ExamID, contract.EventCallEnded, call.CandidateID, map[string]any{"call": viewCall(call), "name": cand.Name}); err != nil {
			return err
		}
		return tx.Audit(ctx, p.user.ID, "call.end", "call:"+strconv.FormatInt(call.ID, 10), map[string]any{"outcome": req.Outcome})
	})
	if err != nil {
		return err
	}
	if wasActive {
		c.disconnect(call)
	}
	if to != "" {
		if cand, err = c.st.Candidate(r.Context(), cand.ID); err == nil {
			c.applyStage(r.Context(), cand)
		}
	}
	writeJSON(w, http.StatusOK, viewCall(call))
	return nil
}

// endCallsOf ends a candidate's current call without moving their stage
// (they are leaving).
func (c *control) endCallsOf(ctx context.Context, cand store.Candidate, actor int64) error {
	call, err := c.st.CurrentCall(ctx, cand.ID)
	if errors.Is(err, store.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	wasActive := call.State == store.CallActive
	err = c.update(ctx, func(ctx context.Context, tx *store.Tx) error {
		call.State, call.Outcome, call.EndedAt = store.CallEnded, "left", c.now().UTC()
		if err := tx.UpdateCall(ctx, call); err != nil {
			return err
		}
		_, err := tx.AppendEvent(ctx, call.ExamID, contract.EventCallEnded, call.CandidateID, map[string]any{"call": viewCall(call), "name": cand.Name})
		return err
	})
	if err == nil && wasActive {
		c.disconnect(call)
	}
	return err
}

// connect makes the SFU forward the call's media: both ways for a call,
// staff-only for a spot check. A side not connected yet is connected when
// it joins (mediaJoined).
func (c *control) connect(call store.Call) {
	if c.opts.Media == nil {
		return
	}
	cand, staff := candidateIdentity(call.CandidateID), staffIdentity(call.StaffID)
	if err := c.opts.Media.Subscribe(staff, cand); err != nil {
		c.log.Info("staff not connected to media yet; connecting when they join", "call", call.ID, "err", err)
	}
	if call.Kind != store.CallSpotCheck {
		if err := c.opts.Media.Subscribe(cand, staff); err != nil {
			c.log.Info("candidate not connected to media yet; connecting when they join", "call", call.ID, "err", err)
		}
	}
}

func (c *control) disconnect(call store.Call) {
	if c.opts.Media == nil {
		return
	}
	cand, staff := candidateIdentity(call.CandidateID), staffIdentity(call.StaffID)
	_ = c.opts.Media.Unsubscribe(staff, cand)
	if call.Kind != store.CallSpotCheck {
		_ = c.opts.Media.Unsubscribe(cand, staff)
	}
}

func (c *control) listCalls(w http.ResponseWriter, r *http.Request, p *principal) error {
	e, err := c.examFor(r, p)
	if err != nil {
		return err
	}
	state := r.URL.Query().Get("state")
	if state != "" && !contains([]string{store.CallRinging, store.CallActive, store.CallEnded, store.CallDeclined}, state) {
		return errorf(http.StatusBadRequest, "bad_state", "state %q: want ringing, active, ended or declined", state)
	}
	calls, err := c.st.ListCalls(r.Context(), e.ID, state)
	if err != nil {
		return err
	}
	out := make([]callView, 0, len(calls))
	for _, call := range calls {
		out = append(out, viewCall(call))
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}
