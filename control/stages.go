package control

import (
	"context"
	"time"

	"invigil/contract"
	"invigil/stage"
	"invigil/store"
)

// moveStage moves cand to `to` with its event, then tells the media plane.
func (p *Plane) moveStage(ctx context.Context, cand store.Candidate, to stage.Stage, actor int64, reason string) (store.Candidate, error) {
	err := p.Update(ctx, func(ctx context.Context, tx *store.Tx) error {
		return moveInTx(ctx, tx, cand, to, actor, reason, p.now())
	})
	if err != nil {
		return store.Candidate{}, err
	}
	updated, err := p.st.Candidate(ctx, cand.ID)
	if err != nil {
		return store.Candidate{}, err
	}
	p.ApplyStage(ctx, updated)
	return updated, nil
}

// moveInTx moves a candidate and logs the stage_changed event in tx.
func moveInTx(ctx context.Context, tx *store.Tx, cand store.Candidate, to stage.Stage, actor int64, reason string, now time.Time) error {
	ch, err := tx.MoveStage(ctx, cand.ID, to, actor, reason, now.UTC())
	if err != nil {
		return err
	}
	_, err = tx.AppendEvent(ctx, cand.ExamID, contract.EventStageChanged, cand.ID, map[string]any{
		"from": ch.From, "to": ch.To, "reason": reason, "actor_id": actor, "name": cand.Name,
	})
	return err
}
