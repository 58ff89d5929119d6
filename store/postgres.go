package store

import (
	"context"
	"fmt"
	"net/url"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"
)

// postgresMaxConns bounds one node's connections: a PostgreSQL server has a
// fixed max_connections (100 by default) shared by every node, and writers
// queue for the writer lock anyway, so more connections would only wait.
const postgresMaxConns = 16

// IsPostgresURL reports whether target names a PostgreSQL database
// (postgres:// or postgresql://, the two schemes libpq accepts) rather than
// an SQLite file.
func IsPostgresURL(target string) bool {
	return strings.HasPrefix(target, "postgres://") || strings.HasPrefix(target, "postgresql://")
}

// RedactURL is a database URL fit for logs and messages: the password, if
// any, is replaced by xxxxx.
func RedactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "the database URL (unparsable)"
	}
	return u.Redacted()
}

// openPostgres opens the PostgreSQL database at rawURL (any libpq URL:
// postgres://user:password@host:5432/db?sslmode=require) and brings its
// schema up to date. The database must exist and the user own it, or be
// allowed to create tables in its public schema.
func openPostgres(ctx context.Context, rawURL string) (*Store, error) {
	where := RedactURL(rawURL)
	cfg, err := pgx.ParseConfig(rawURL)
	if err != nil {
		// pgconn's parse errors redact the password themselves.
		return nil, fmt.Errorf("open store %s: %w", where, err)
	}
	// SQLite gives up waiting for the write lock after its 5 s busy timeout;
	// the same bound here turns a stuck writer on another node (or a write
	// on the Store made inside Update, which waits for Update's own lock)
	// into an error instead of a hang. A lock_timeout in the URL wins.
	if _, ok := cfg.RuntimeParams["lock_timeout"]; !ok {
		cfg.RuntimeParams["lock_timeout"] = "5s"
	}
	db := stdlib.OpenDB(*cfg)
	db.SetMaxOpenConns(postgresMaxConns)
	db.SetMaxIdleConns(postgresMaxConns)
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("open store %s: %w", where, err)
	}
	s := newStore(db, postgresDialect, where)
	ms, err := loadMigrations(s.d)
	if err != nil {
		db.Close()
		return nil, err
	}
	if err := s.migrate(ctx, ms); err != nil {
		db.Close()
		return nil, openError(where, err)
	}
	return s, nil
}
