package store

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
)

// Store is the database. Its methods may be called from many goroutines.
type Store struct {
	queries
	db *sql.DB
	d  *dialect
	// where names the database in messages: the file's path, or the URL
	// without its password.
	where string
}

// Tx is one write transaction, handed to the function given to
// Store.Update. It must not be used after that function returns.
type Tx struct {
	queries
	events []Event
}

// dbtx is what the queries need from a connection: *sql.DB runs each
// statement on its own, *sql.Tx inside the caller's transaction.
type dbtx interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// queries holds every read and write, written once and promoted to both
// *Store and *Tx.
type queries struct {
	db conn
}

// sqliteHeader starts every SQLite 3 database file.
var sqliteHeader = []byte("SQLite format 3\x00")

// Open opens the database and brings its schema up to date. A
// postgres:// or postgresql:// URL opens that PostgreSQL database (see
// openPostgres); anything else is the path of an SQLite file, created (mode
// 0600) with its directory if missing.
func Open(ctx context.Context, path string) (*Store, error) {
	if path == "" {
		return nil, errors.New("open store: no database path given")
	}
	if IsPostgresURL(path) {
		return openPostgres(ctx, path)
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("open store %s: %w", path, err)
	}
	// 0700: the directory also holds the WAL and shared-memory files.
	if err := os.MkdirAll(filepath.Dir(abs), 0o700); err != nil {
		return nil, fmt.Errorf("open store: create directory: %w", err)
	}
	if err := prepareFile(abs); err != nil {
		return nil, err
	}
	db, err := sql.Open("sqlite3", dsn(abs))
	if err != nil {
		return nil, fmt.Errorf("open store %s: %w", abs, err)
	}
	// The driver applies the pragmas when it connects, so a file that is
	// not a database fails here, before any write.
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return nil, openError(abs, err)
	}
	s := newStore(db, sqliteDialect, abs)
	ms, err := loadMigrations(s.d)
	if err != nil {
		db.Close()
		return nil, err
	}
	if err := s.migrate(ctx, ms); err != nil {
		db.Close()
		return nil, openError(abs, err)
	}
	return s, nil
}

func newStore(db *sql.DB, d *dialect, where string) *Store {
	return &Store{queries: queries{db: conn{dbtx: db, d: d}}, db: db, d: d, where: where}
}

// dsn names the file as an SQLite URI (so that any character in the path is
// safe) with the settings every connection of the pool needs.
func dsn(path string) string {
	q := url.Values{}
	// WAL: readers never wait for the writer, and a commit is one append.
	q.Set("_journal_mode", "WAL")
	// FULL: a commit is on disk when it returns (the driver's WAL default,
	// NORMAL, may lose the last commits on power loss).
	q.Set("_synchronous", "FULL")
	q.Set("_foreign_keys", "on")
	q.Set("_busy_timeout", "5000")
	// Write transactions take the write lock at BEGIN, so two of them
	// queue instead of failing with SQLITE_BUSY on a lock upgrade.
	q.Set("_txlock", "immediate")
	u := url.URL{Scheme: "file", Path: path, RawQuery: q.Encode()}
	return u.String()
}

// prepareFile creates the database file with mode 0600 if it is missing,
// so that SQLite (which would use 0644) never makes it readable by others,
// and refuses a file that is not an SQLite database before SQLite touches
// it.
func prepareFile(path string) error {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("open store %s: %w", path, err)
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return fmt.Errorf("open store %s: %w", path, err)
	}
	if info.Mode().Perm()&0o077 != 0 {
		if err := f.Chmod(0o600); err != nil {
			return fmt.Errorf("open store %s: restrict permissions: %w", path, err)
		}
	}
	if info.Size() == 0 {
		return nil
	}
	head := make([]byte, len(sqliteHeader))
	if _, err := io.ReadFull(f, head); err != nil && !errors.Is(err, io.ErrUnexpectedEOF) {
		return fmt.Errorf("open store %s: %w", path, err)
	}
	if !bytes.Equal(head, sqliteHeader) {
		return fmt.Errorf("open store %s: the file is not an SQLite database; it was left untouched: move it away or restore it from a backup", path)
	}
	return nil
}

// openError turns an engine's codes for a damaged database into a sentence
// that says what to do.
func openError(where string, err error) error {
	if classify(err) == errDamaged {
		return fmt.Errorf("open store %s: the database is damaged (%w): restore it from a backup", where, err)
	}
	return fmt.Errorf("open store %s: %w", where, err)
}

// Close closes the database. SQLite checkpoints the WAL into the main file
// when the last connection closes.
func (s *Store) Close() error {
	if err := s.db.Close(); err != nil {
		return fmt.Errorf("close store %s: %w", s.where, err)
	}
	return nil
}

// Engine names the database engine: "SQLite" or "PostgreSQL".
func (s *Store) Engine() string { return s.d.name }

// Ping checks that the database answers a query, on a connection of the
// pool (a new one when the server restarted), for /readyz. /healthz checks
// nothing, so an orchestrator does not restart a server whose disk or
// database server is slow; /readyz takes it out of rotation instead.
func (s *Store) Ping(ctx context.Context) error {
	var one int
	if err := s.db.QueryRowContext(ctx, "SELECT 1").Scan(&one); err != nil {
		return fmt.Errorf("ping store %s: %w", s.where, err)
	}
	return nil
}

// Update runs fn in one write transaction and commits it. It returns the
// events fn appended, in order, only once they are committed, so the caller
// broadcasts nothing that a crash could take back. An error from fn rolls
// everything back and is returned as it is.
//
// Inside fn use tx, never s, for writes: s would wait for the write lock
// that fn's own transaction holds, and fail after the busy timeout.
//
// On PostgreSQL, write transactions of every node sharing the database run
// one after another too (see dialect.beginWrite), and a statement that
// fails aborts the whole transaction: a caller that ignores an error inside
// fn gets the next statement's error instead, and nothing is committed.
func (s *Store) Update(ctx context.Context, fn func(ctx context.Context, tx *Tx) error) ([]Event, error) {
	sqlTx, err := s.d.beginWrite(ctx, s.db)
	if err != nil {
		return nil, fmt.Errorf("begin write transaction: %w", err)
	}
	committed := false
	defer func() {
		// Also runs when fn panics, so the write lock is never left held.
		// A failed rollback needs no report: the transaction is over either
		// way, and SQLite discards uncommitted WAL frames.
		if !committed {
			_ = sqlTx.Rollback()
		}
	}()
	tx := &Tx{queries: queries{db: conn{dbtx: sqlTx, d: s.d}}}
	if err := fn(ctx, tx); err != nil {
		return nil, err
	}
	if err := sqlTx.Commit(); err != nil {
		return nil, fmt.Errorf("commit write transaction: %w", err)
	}
	committed = true
	return tx.events, nil
}

// atomic runs fn so that its statements apply all together or not at all:
// in a new transaction when q is the Store, and under a savepoint inside
// the caller's transaction, so that a failed call leaves nothing behind
// even if the caller goes on and commits.
func (q queries) atomic(ctx context.Context, fn func(q queries) error) error {
	if db, ok := q.db.dbtx.(*sql.DB); ok {
		tx, err := q.db.d.beginWrite(ctx, db)
		if err != nil {
			return fmt.Errorf("begin transaction: %w", err)
		}
		if err := fn(queries{db: conn{dbtx: tx, d: q.db.d}}); err != nil {
			_ = tx.Rollback()
			return err
		}
		if err := tx.Commit(); err != nil {
			return fmt.Errorf("commit: %w", err)
		}
		return nil
	}
	if _, err := q.db.ExecContext(ctx, "SAVEPOINT store_op"); err != nil {
		return fmt.Errorf("savepoint: %w", err)
	}
	if err := fn(q); err != nil {
		if _, rbErr := q.db.ExecContext(ctx, "ROLLBACK TO store_op; RELEASE store_op"); rbErr != nil {
			return errors.Join(err, fmt.Errorf("roll back to savepoint: %w", rbErr))
		}
		return err
	}
	if _, err := q.db.ExecContext(ctx, "RELEASE store_op"); err != nil {
		return fmt.Errorf("release savepoint: %w", err)
	}
	return nil
}

// notFound maps sql.ErrNoRows to ErrNotFound with what was looked for.
func notFound(err error, format string, args ...any) error {
	what := fmt.Sprintf(format, args...)
	if errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("%s: %w", what, ErrNotFound)
	}
	return fmt.Errorf("%s: %w", what, err)
}
