package control

import (
	"context"
	"errors"
	"fmt"
	"time"

	"invigil/contract"
	"invigil/stage"
	"invigil/store"
)

// MediaGrant is what a media token allows; cmd turns it into the SFU's
// grants (the control plane and sfu never import each other).
type MediaGrant = contract.Grants

// ErrNoMedia: the candidate is in no stage with media (not entered yet,
// or left).
var ErrNoMedia = errors.New("no media in this stage")

// CandidateGrant: a candidate publishes and sees only the staff a call
// connects them to (the control plane subscribes them). Before entering
// and after leaving there is none (ErrNoMedia).
func CandidateGrant(cand store.Candidate, exp time.Time) (MediaGrant, error) {
	if cand.Stage == stage.Left || cand.Stage == stage.Invited {
		return MediaGrant{}, fmt.Errorf("candidate is %s: %w", cand.Stage, ErrNoMedia)
	}
	return MediaGrant{Identity: candidateIdentity(cand.ID), Name: cand.Name, Role: contract.RoleCandidate,
		Room: contract.ExamRoom(cand.ExamID), CanPublish: true, CanSubscribe: true, ExpiresAt: exp}, nil
}

// StaffGrant is a's grant in exam examID, who must be on its staff:
// assistants and examiners talk (publish) and see whom their calls connect
// them to; proctors and admins watch everyone, hidden.
func (p *Plane) StaffGrant(ctx context.Context, a Actor, examID int64, exp time.Time) (MediaGrant, error) {
	if _, err := p.st.Exam(ctx, examID); err != nil {
		return MediaGrant{}, err
	}
	if err := p.RequireExam(ctx, a, examID); err != nil {
		return MediaGrant{}, err
	}
	g := MediaGrant{Identity: staffIdentity(a.ID), Name: a.Username, Role: a.Role, Room: contract.ExamRoom(examID),
		CanSubscribe: true, ExpiresAt: exp}
	switch a.Role {
	case store.RoleAssistant, store.RoleExaminer:
		g.CanPublish = true
	default:
		g.Hidden = true
		g.Subscribe = []string{"*"}
	}
	return g, nil
}

// SignallingURL is where the exam's media are: the media node Placement
// names, or local (the caller's own SFU) when the plane has no placement.
func (p *Plane) SignallingURL(ctx context.Context, examID int64, local string) (string, error) {
	if p.opts.Placement == nil {
		return local, nil
	}
	u, err := p.opts.Placement.SignallingURL(ctx, examID)
	if err != nil {
		p.log.Warn("no media node for an exam", "exam", examID, "err", err)
		return "", Errorf(Unavailable, "no_media_node", "no media node can take exam %d now: try again shortly", examID)
	}
	return u, nil
}

// MediaEvent tells the control plane that identity's media session changed
// (kind: joined, resumed, disconnected, left). Joining re-applies what the
// control plane wants of the session (its calls' subscriptions, the
// candidate's policy), since a new session starts with none of it.
func (p *Plane) MediaEvent(ctx context.Context, identity, kind string) {
	online := kind == "joined" || kind == "resumed"
	was, _ := p.online.Load(identity)
	if online {
		p.online.Store(identity, true)
	} else {
		p.online.Delete(identity)
	}
	if kind == "joined" {
		p.reconnect(ctx, identity)
	}
	if cid, ok := contract.ParseCandidateIdentity(identity); ok && (was == true) != online {
		cand, err := p.st.Candidate(ctx, cid)
		if err != nil {
			return
		}
		err = p.Update(ctx, func(ctx context.Context, tx *store.Tx) error {
			_, err := tx.AppendEvent(ctx, cand.ExamID, contract.EventPresence, cid, map[string]any{"online": online, "name": cand.Name})
			return err
		})
		if err != nil {
			p.log.Warn("log a presence event", "candidate", cid, "err", err)
		}
	}
}

// Online reports whether candidate id's media session is connected to
// this node.
func (p *Plane) Online(candidateID int64) bool {
	_, ok := p.online.Load(candidateIdentity(candidateID))
	return ok
}

// reconnect re-applies the calls and policy that concern a new session.
func (p *Plane) reconnect(ctx context.Context, identity string) {
	if cid, ok := contract.ParseCandidateIdentity(identity); ok {
		cand, err := p.st.Candidate(ctx, cid)
		if err != nil {
			return
		}
		p.ApplyStage(ctx, cand)
		if call, err := p.st.CurrentCall(ctx, cid); err == nil && call.State == store.CallActive {
			p.connect(call)
		}
		return
	}
	if sid, ok := contract.ParseStaffIdentity(identity); ok {
		exams, err := p.st.ListExams(ctx)
		if err != nil {
			return
		}
		for _, e := range exams {
			calls, err := p.st.ListCalls(ctx, e.ID, store.CallActive)
			if err != nil {
				continue
			}
			for _, call := range calls {
				if call.StaffID == sid {
					p.connect(call)
				}
			}
		}
	}
}
