package store_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"invigil/store"
)

// A write transaction appends events; Update returns them only after the
// commit, with their per-exam sequence numbers, so a caller announces
// nothing a crash could take back. A failed transaction leaves no trace.
func ExampleStore_Update() {
	dir, err := os.MkdirTemp("", "invigil-example")
	if err != nil {
		panic(err)
	}
	defer os.RemoveAll(dir)
	ctx := context.Background()
	st, err := store.Open(ctx, filepath.Join(dir, "invigil.db"))
	if err != nil {
		panic(err)
	}
	defer st.Close()

	start := time.Date(2026, 12, 3, 9, 0, 0, 0, time.UTC)
	var exam store.Exam
	events, err := st.Update(ctx, func(ctx context.Context, tx *store.Tx) error {
		var err error
		if exam, err = tx.CreateExam(ctx, store.Exam{Name: "面试", StartsAt: start, EndsAt: start.Add(4 * time.Hour)}); err != nil {
			return err
		}
		for _, typ := range []string{"exam_created", "policy_changed"} {
			if _, err := tx.AppendEvent(ctx, exam.ID, typ, 0, nil); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		panic(err)
	}
	for _, e := range events {
		fmt.Println(e.Seq, e.Type)
	}

	_, err = st.Update(ctx, func(ctx context.Context, tx *store.Tx) error {
		if _, err := tx.AppendEvent(ctx, exam.ID, "rolled_back", 0, nil); err != nil {
			return err
		}
		return fmt.Errorf("changed my mind")
	})
	fmt.Println(err)
	stored, err := st.EventsSince(ctx, exam.ID, 0, 0)
	if err != nil {
		panic(err)
	}
	fmt.Println(len(stored), "events stored")
	// Output:
	// 1 exam_created
	// 2 policy_changed
	// changed my mind
	// 2 events stored
}
