package control

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"

	"invigil/detectors/rules"
	"invigil/store"
)

// PolicyRooms are the rooms whose detection policy an admin may override.
var PolicyRooms = []string{"waiting", "interview", "rest_room"}

// SetRoomPolicy stores override (a JSON object over the room's default
// policy) as room's policy in exam examID once it parses into a valid
// policy, then applies it to every candidate now in that room.
func (p *Plane) SetRoomPolicy(ctx context.Context, a Actor, examID int64, room string, override json.RawMessage) (rules.Policy, error) {
	e, err := p.Exam(ctx, a, examID)
	if err != nil {
		return rules.Policy{}, err
	}
	if !slices.Contains(PolicyRooms, room) {
		return rules.Policy{}, Errorf(NotFound, "bad_room", "room %q: want waiting, interview or rest_room", room)
	}
	pol, err := rules.ParsePolicyOverride(room, override)
	if err != nil {
		return rules.Policy{}, Errorf(Invalid, "bad_policy", "%v", err)
	}
	err = p.Update(ctx, func(ctx context.Context, tx *store.Tx) error {
		if err := tx.SetExamPolicy(ctx, e.ID, room, override); err != nil {
			return err
		}
		return tx.Audit(ctx, a.ID, "exam.policy", fmt.Sprintf("exam:%d/%s", e.ID, room), override)
	})
	if err != nil {
		return rules.Policy{}, err
	}
	cands, err := p.st.ListCandidates(ctx, e.ID)
	if err != nil {
		// Stored: each candidate gets it at their next stage move or
		// media join instead.
		p.log.Warn("list candidates to apply a changed policy", "exam", e.ID, "room", room, "err", err)
		return pol, nil
	}
	for _, cand := range cands {
		if cand.Stage.Room() == room {
			p.ApplyStage(ctx, cand)
		}
	}
	return pol, nil
}
