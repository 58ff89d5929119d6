package store

import (
	"context"
	"fmt"
)

// EvidencePaths returns the set of evidence paths (images and audio clips,
// relative to the data directory) that violations reference, for the
// start-up sweep that removes evidence files no row points to.
func (q queries) EvidencePaths(ctx context.Context) (map[string]bool, error) {
	rows, err := q.db.QueryContext(ctx, `SELECT evidence_path FROM violations WHERE evidence_path != ''
		UNION SELECT clip_path FROM violations WHERE clip_path != ''`)
	if err != nil {
		return nil, fmt.Errorf("list evidence paths: %w", err)
	}
	defer rows.Close()
	paths := map[string]bool{}
	for rows.Next() {
		var p string
		if err := rows.Scan(&p); err != nil {
			return nil, fmt.Errorf("list evidence paths: %w", err)
		}
		paths[p] = true
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list evidence paths: %w", err)
	}
	return paths, nil
}

// EvidenceReferenced reports whether any violation references the evidence
// file (image or clip) at path (relative to the data directory).
func (q queries) EvidenceReferenced(ctx context.Context, path string) (bool, error) {
	var found bool
	if err := q.db.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM violations WHERE evidence_path = ?1 OR clip_path = ?1)`, path).Scan(&found); err != nil {
		return false, fmt.Errorf("is evidence %s referenced: %w", path, err)
	}
	return found, nil
}
