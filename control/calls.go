package control

import (
	"context"
	"errors"
	"strconv"

	"invigil/contract"
	"invigil/stage"
	"invigil/store"
)

// callStages is the waiting stage a call kind is placed from, the call
// stage it leads to, and the stage its successful end moves on to.
func callStages(kind string) (waiting, inCall, done stage.Stage) {
	switch kind {
	case store.CallDeviceCheck:
		return stage.DeviceCheckWaiting, stage.DeviceCheckCall, stage.DeviceChecked
	case store.CallInterview:
		return stage.InterviewWaiting, stage.InterviewCall, stage.InterviewDone
	}
	return "", "", ""
}

// PlaceCall calls candidate candidateID: a device check or an interview
// from their waiting room, or a spot check (which needs no answer) from a
// waiting room or the rest room. A candidate has one call at a time.
func (p *Plane) PlaceCall(ctx context.Context, a Actor, candidateID int64, kind string) (store.Call, error) {
	cand, err := p.Candidate(ctx, a, candidateID)
	if err != nil {
		return store.Call{}, err
	}
	switch kind {
	// Admins watch but do not talk (their media grant is a hidden viewer's),
	// so calls are the assistants' and examiners' own.
	case store.CallDeviceCheck, store.CallSpotCheck:
		if a.Role != store.RoleAssistant {
			return store.Call{}, Errorf(Forbidden, "forbidden", "only an interview assistant places %s calls", kind)
		}
	case store.CallInterview:
		if a.Role != store.RoleExaminer {
			return store.Call{}, Errorf(Forbidden, "forbidden", "only an examiner places interview calls")
		}
	default:
		return store.Call{}, Errorf(Invalid, "bad_kind", "kind %q: want device_check, interview or spot_check", kind)
	}
	if kind == store.CallSpotCheck {
		if !cand.Stage.Waiting() && cand.Stage != stage.RestRoom && cand.Stage != stage.DeviceChecked {
			return store.Call{}, Errorf(Conflict, "not_waiting", "candidate %d is %s; spot checks are for waiting rooms and the rest room", cand.ID, cand.Stage)
		}
	} else if waiting, _, _ := callStages(kind); cand.Stage != waiting {
		return store.Call{}, Errorf(Conflict, "not_waiting", "candidate %d is %s, not %s", cand.ID, cand.Stage, waiting)
	}
	now := p.now().UTC()
	call := store.Call{ExamID: cand.ExamID, CandidateID: cand.ID, StaffID: a.ID, Kind: kind, State: store.CallRinging, CreatedAt: now}
	if kind == store.CallSpotCheck {
		// A spot check is a look, not a conversation: nothing to accept.
		call.State, call.AcceptedAt = store.CallActive, now
	}
	err = p.Update(ctx, func(ctx context.Context, tx *store.Tx) error {
		if cur, err := tx.CurrentCall(ctx, cand.ID); err == nil {
			return Errorf(Conflict, "busy", "candidate %d already has a %s call (%s)", cand.ID, cur.Kind, cur.State)
		} else if !errors.Is(err, store.ErrNotFound) {
			return err
		}
		var err error
		if call, err = tx.CreateCall(ctx, call); err != nil {
			return err
		}
		call.StaffName = a.Username
		typ := contract.EventCallRinging
		if call.State == store.CallActive {
			typ = contract.EventCallStarted
		}
		if _, err := tx.AppendEvent(ctx, cand.ExamID, typ, cand.ID, map[string]any{"call": ViewCall(call), "name": cand.Name}); err != nil {
			return err
		}
		return tx.Audit(ctx, a.ID, "call.place", "candidate:"+strconv.FormatInt(cand.ID, 10), map[string]any{"kind": call.Kind, "call": call.ID})
	})
	if err != nil {
		return store.Call{}, err
	}
	if call.State == store.CallActive {
		p.connect(call)
	}
	return call, nil
}

// ringingCallFor is call callID if it rings for cand.
func (p *Plane) ringingCallFor(ctx context.Context, cand store.Candidate, callID int64) (store.Call, error) {
	call, err := p.st.Call(ctx, callID)
	if err != nil {
		return call, err
	}
	if call.CandidateID != cand.ID {
		return call, Errorf(NotFound, "not_found", "call %d is not yours", call.ID)
	}
	if call.State != store.CallRinging {
		return call, Errorf(Conflict, "not_ringing", "call %d is %s", call.ID, call.State)
	}
	return call, nil
}

// AcceptCall is cand answering their ringing call: they move into the
// call's stage and the media connect.
func (p *Plane) AcceptCall(ctx context.Context, cand store.Candidate, callID int64) (store.Call, error) {
	call, err := p.ringingCallFor(ctx, cand, callID)
	if err != nil {
		return store.Call{}, err
	}
	_, inCall, _ := callStages(call.Kind)
	err = p.Update(ctx, func(ctx context.Context, tx *store.Tx) error {
		call.State, call.AcceptedAt = store.CallActive, p.now().UTC()
		if err := tx.UpdateCall(ctx, call); err != nil {
			return err
		}
		if err := moveInTx(ctx, tx, cand, inCall, 0, "call accepted", p.now()); err != nil {
			return err
		}
		_, err := tx.AppendEvent(ctx, cand.ExamID, contract.EventCallStarted, cand.ID, map[string]any{"call": ViewCall(call), "name": cand.Name})
		return err
	})
	if err != nil {
		return store.Call{}, err
	}
	p.connect(call)
	if cand, err = p.st.Candidate(ctx, cand.ID); err == nil {
		p.ApplyStage(ctx, cand)
	}
	return call, nil
}

// DeclineCall is cand refusing their ringing call; their stage stays.
func (p *Plane) DeclineCall(ctx context.Context, cand store.Candidate, callID int64) (store.Call, error) {
	call, err := p.ringingCallFor(ctx, cand, callID)
	if err != nil {
		return store.Call{}, err
	}
	err = p.Update(ctx, func(ctx context.Context, tx *store.Tx) error {
		call.State, call.Outcome, call.EndedAt = store.CallDeclined, "declined", p.now().UTC()
		if err := tx.UpdateCall(ctx, call); err != nil {
			return err
		}
		_, err := tx.AppendEvent(ctx, call.ExamID, contract.EventCallEnded, call.CandidateID, map[string]any{"call": ViewCall(call), "name": cand.Name})
		return err
	})
	if err != nil {
		return store.Call{}, err
	}
	return call, nil
}

// EndCall ends call callID, by the staff member who placed it or an admin.
// outcome "done" (or "") moves the candidate on from the call's stage,
// "retry" sends them back to wait; a call that never connected ends with
// outcome "cancelled".
func (p *Plane) EndCall(ctx context.Context, a Actor, callID int64, outcome string) (store.Call, error) {
	call, err := p.Call(ctx, a, callID)
	if err != nil {
		return store.Call{}, err
	}
	if outcome == "" {
		outcome = "done"
	}
	if outcome != "done" && outcome != "retry" {
		return store.Call{}, Errorf(Invalid, "bad_outcome", "outcome %q: want done or retry", outcome)
	}
	if call.StaffID != a.ID && !a.IsAdmin() {
		return store.Call{}, Errorf(Forbidden, "forbidden", "call %d belongs to another staff member", call.ID)
	}
	if call.State != store.CallRinging && call.State != store.CallActive {
		return store.Call{}, Errorf(Conflict, "call_over", "call %d is already %s", call.ID, call.State)
	}
	cand, err := p.st.Candidate(ctx, call.CandidateID)
	if err != nil {
		return store.Call{}, err
	}
	wasActive := call.State == store.CallActive
	var to stage.Stage
	if wasActive && call.Kind != store.CallSpotCheck {
		waiting, inCall, done := callStages(call.Kind)
		if cand.Stage == inCall {
			to = done
			if outcome == "retry" {
				to = waiting
			}
		}
	} else if !wasActive {
		outcome = "cancelled"
	}
	err = p.Update(ctx, func(ctx context.Context, tx *store.Tx) error {
		call.State, call.Outcome, call.EndedAt = store.CallEnded, outcome, p.now().UTC()
		if err := tx.UpdateCall(ctx, call); err != nil {
			return err
		}
		if to != "" {
			if err := moveInTx(ctx, tx, cand, to, a.ID, call.Kind+" call ended: "+outcome, p.now()); err != nil {
				return err
			}
		}
		if _, err := tx.AppendEvent(ctx, call.ExamID, contract.EventCallEnded, call.CandidateID, map[string]any{"call": ViewCall(call), "name": cand.Name}); err != nil {
			return err
		}
		return tx.Audit(ctx, a.ID, "call.end", "call:"+strconv.FormatInt(call.ID, 10), map[string]any{"outcome": outcome})
	})
	if err != nil {
		return store.Call{}, err
	}
	if wasActive {
		p.disconnect(call)
	}
	if to != "" {
		if cand, err = p.st.Candidate(ctx, cand.ID); err == nil {
			p.ApplyStage(ctx, cand)
		}
	}
	return call, nil
}

// endCallsOf ends a candidate's current call without moving their stage
// (they are leaving).
func (p *Plane) endCallsOf(ctx context.Context, cand store.Candidate) error {
	call, err := p.st.CurrentCall(ctx, cand.ID)
	if errors.Is(err, store.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	wasActive := call.State == store.CallActive
	err = p.Update(ctx, func(ctx context.Context, tx *store.Tx) error {
		call.State, call.Outcome, call.EndedAt = store.CallEnded, "left", p.now().UTC()
		if err := tx.UpdateCall(ctx, call); err != nil {
			return err
		}
		_, err := tx.AppendEvent(ctx, call.ExamID, contract.EventCallEnded, call.CandidateID, map[string]any{"call": ViewCall(call), "name": cand.Name})
		return err
	})
	if err == nil && wasActive {
		p.disconnect(call)
	}
	return err
}

// connect makes the SFU forward the call's media: both ways for a call,
// staff-only for a spot check. A side not connected yet is connected when
// it joins (MediaEvent).
func (p *Plane) connect(call store.Call) {
	if p.opts.Media == nil {
		return
	}
	cand, staff := candidateIdentity(call.CandidateID), staffIdentity(call.StaffID)
	if err := p.opts.Media.Subscribe(staff, cand); err != nil {
		p.log.Info("staff not connected to media yet; connecting when they join", "call", call.ID, "err", err)
	}
	if call.Kind != store.CallSpotCheck {
		if err := p.opts.Media.Subscribe(cand, staff); err != nil {
			p.log.Info("candidate not connected to media yet; connecting when they join", "call", call.ID, "err", err)
		}
	}
}

func (p *Plane) disconnect(call store.Call) {
	if p.opts.Media == nil {
		return
	}
	cand, staff := candidateIdentity(call.CandidateID), staffIdentity(call.StaffID)
	_ = p.opts.Media.Unsubscribe(staff, cand)
	if call.Kind != store.CallSpotCheck {
		_ = p.opts.Media.Unsubscribe(cand, staff)
	}
}

// Calls lists the calls of exam examID in state ("" for all), for a on
// its staff.
func (p *Plane) Calls(ctx context.Context, a Actor, examID int64, state string) ([]store.Call, error) {
	if _, err := p.Exam(ctx, a, examID); err != nil {
		return nil, err
	}
	switch state {
	case "", store.CallRinging, store.CallActive, store.CallEnded, store.CallDeclined:
	default:
		return nil, Errorf(Invalid, "bad_state", "state %q: want ringing, active, ended or declined", state)
	}
	return p.st.ListCalls(ctx, examID, state)
}
