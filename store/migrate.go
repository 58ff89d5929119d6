package store

import (
	"context"
	"embed"
	"fmt"
	"io/fs"
	"path"
	"sort"
	"strconv"
	"strings"
	"time"
)

// The schema's history, one directory per engine and one file per step,
// named NNNN_what.sql. A step is never edited once released: a change is a
// new file in both directories, with the same version number, so that a
// database of either engine at version N has the same tables and columns
// (TestMigrationsMatchAcrossEngines checks the numbers).
//
//go:embed migrations/sqlite/*.sql migrations/postgres/*.sql
var migrationFiles embed.FS

type migration struct {
	version int64
	name    string
	sql     string
}

// loadMigrations reads the embedded steps of d's engine in version order.
func loadMigrations(d *dialect) ([]migration, error) {
	names, err := fs.Glob(migrationFiles, d.migrations+"/*.sql")
	if err != nil {
		return nil, fmt.Errorf("list migrations: %w", err)
	}
	var ms []migration
	for _, name := range names {
		base := path.Base(name)
		prefix, _, ok := strings.Cut(base, "_")
		if !ok {
			return nil, fmt.Errorf("migration %s: name must be NNNN_what.sql", base)
		}
		v, err := strconv.ParseInt(prefix, 10, 64)
		if err != nil || v <= 0 {
			return nil, fmt.Errorf("migration %s: name must start with a positive version number", base)
		}
		text, err := migrationFiles.ReadFile(name)
		if err != nil {
			return nil, fmt.Errorf("read migration %s: %w", base, err)
		}
		ms = append(ms, migration{version: v, name: base, sql: string(text)})
	}
	sort.Slice(ms, func(i, j int) bool { return ms[i].version < ms[j].version })
	for i := 1; i < len(ms); i++ {
		if ms[i].version == ms[i-1].version {
			return nil, fmt.Errorf("migrations %s and %s have the same version", ms[i-1].name, ms[i].name)
		}
	}
	return ms, nil
}

// migrate applies the steps the database has not seen yet, each in its own
// transaction so that a failed step leaves it at the one before. Every
// step runs in a write transaction (on PostgreSQL under the writer lock),
// so nodes that start together apply each step once.
func (s *Store) migrate(ctx context.Context, ms []migration) error {
	if len(ms) == 0 {
		return fmt.Errorf("no migrations embedded")
	}
	if err := s.createMigrationsTable(ctx); err != nil {
		return err
	}
	current, err := schemaVersion(ctx, s.db)
	if err != nil {
		return err
	}
	if known := ms[len(ms)-1].version; current > known {
		return fmt.Errorf("the database has schema version %d but this build of invigil knows only up to %d: run a newer invigil, or restore a backup made for this one", current, known)
	}
	for _, m := range ms {
		if m.version <= current {
			continue
		}
		if err := s.apply(ctx, m); err != nil {
			return err
		}
	}
	return nil
}

// createMigrationsTable makes the table that records the applied steps.
// The statement is the same on both engines; on PostgreSQL two nodes
// creating it at once would collide in the catalog, hence the writer
// lock of a write transaction.
func (s *Store) createMigrationsTable(ctx context.Context) error {
	tx, err := s.d.beginWrite(ctx, s.db)
	if err != nil {
		return fmt.Errorf("create schema_migrations: %w", err)
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		version    INTEGER PRIMARY KEY,
		applied_at TEXT    NOT NULL
	)`); err != nil {
		return fmt.Errorf("create schema_migrations: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("create schema_migrations: %w", err)
	}
	return nil
}

func schemaVersion(ctx context.Context, db dbtx) (int64, error) {
	var v int64
	if err := db.QueryRowContext(ctx, "SELECT COALESCE(MAX(version), 0) FROM schema_migrations").Scan(&v); err != nil {
		return 0, fmt.Errorf("read schema version: %w", err)
	}
	return v, nil
}

func (s *Store) apply(ctx context.Context, m migration) error {
	sqlTx, err := s.d.beginWrite(ctx, s.db)
	if err != nil {
		return fmt.Errorf("migration %s: begin: %w", m.name, err)
	}
	defer sqlTx.Rollback()
	tx := conn{dbtx: sqlTx, d: s.d}
	// Another process may have applied it while this one waited for the
	// write lock.
	var done int
	if err := tx.QueryRowContext(ctx, "SELECT COUNT(*) FROM schema_migrations WHERE version = ?", m.version).Scan(&done); err != nil {
		return fmt.Errorf("migration %s: %w", m.name, err)
	}
	if done > 0 {
		return nil
	}
	if _, err := sqlTx.ExecContext(ctx, m.sql); err != nil {
		return fmt.Errorf("migration %s: %w", m.name, err)
	}
	if _, err := tx.ExecContext(ctx, "INSERT INTO schema_migrations (version, applied_at) VALUES (?, ?)",
		m.version, dbTime(time.Now())); err != nil {
		return fmt.Errorf("migration %s: record it: %w", m.name, err)
	}
	if err := sqlTx.Commit(); err != nil {
		return fmt.Errorf("migration %s: commit: %w", m.name, err)
	}
	return nil
}
