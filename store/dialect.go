package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/mattn/go-sqlite3"
)

// dialect is what differs between the two engines once the schema is in
// place. Queries are written once, in SQLite's syntax with ? placeholders,
// and the few that cannot be (JSON editing) ask which engine they run on.
type dialect struct {
	// name is what messages call the engine.
	name string
	// postgres: placeholders are rebound to $n, and write transactions
	// take the writer lock (see beginWrite).
	postgres bool
	// migrations is the directory of the embedded schema history.
	migrations string
}

var (
	sqliteDialect   = &dialect{name: "SQLite", migrations: "migrations/sqlite"}
	postgresDialect = &dialect{name: "PostgreSQL", postgres: true, migrations: "migrations/postgres"}
)

// writerLockKey names the transaction-scoped advisory lock that every
// PostgreSQL write transaction takes first ("invigl" in ASCII), so that no
// other application's lock on the same database collides with it.
const writerLockKey int64 = 0x696e7669676c

// beginWrite starts a write transaction on db.
//
// SQLite takes its single write lock at BEGIN (the DSN's _txlock=immediate),
// so write transactions run one after another and each sees everything
// committed before it. On PostgreSQL several nodes write at once, and at
// READ COMMITTED two transactions appending to one exam's event log would
// both read the same MAX(seq) and one would fail on the primary key — or,
// worse for readers, commit seq N+1 before N is visible. So each write
// transaction first takes one advisory lock, held until COMMIT or ROLLBACK:
// write transactions of every node run one after another exactly as on
// SQLite, and because each statement at READ COMMITTED reads the latest
// committed state, every statement after the lock sees all earlier
// writers' commits. That makes per-exam sequence numbers gapless (a
// rollback gives its numbers back before the next writer reads MAX) and
// committed in order (N+1 cannot be taken before N's writer has committed),
// and it keeps every read-then-write decision inside a transaction (a
// candidate's stage, a violation's key) as safe as it is on SQLite. The
// cost is the same one writer at a time that SQLite has; reads never wait.
//
// One difference remains: a single write statement on the Store (outside
// Update, and not one of the methods that use atomic) does not take the
// lock, so on PostgreSQL it can commit between two statements of a locked
// transaction, where SQLite would have made it wait. Such a statement is
// atomic by itself, and at READ COMMITTED an UPDATE re-checks its WHERE on
// the newest row; what must not interleave (event numbers, stage moves,
// violation keys) is written inside a transaction.
func (d *dialect) beginWrite(ctx context.Context, db *sql.DB) (*sql.Tx, error) {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return nil, err
	}
	if d.postgres {
		if _, err := tx.ExecContext(ctx, "SELECT pg_advisory_xact_lock($1)", writerLockKey); err != nil {
			_ = tx.Rollback()
			return nil, fmt.Errorf("take the writer lock: %w", err)
		}
	}
	return tx, nil
}

// conn runs statements on a pool or a transaction, rebinding ? to $n for
// PostgreSQL.
type conn struct {
	dbtx
	d *dialect
}

func (c conn) ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error) {
	return c.dbtx.ExecContext(ctx, c.d.rebind(query), args...)
}

func (c conn) QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	return c.dbtx.QueryContext(ctx, c.d.rebind(query), args...)
}

func (c conn) QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row {
	return c.dbtx.QueryRowContext(ctx, c.d.rebind(query), args...)
}

// rebind turns SQLite's placeholders into PostgreSQL's: ?N becomes $N, and
// a bare ? takes the next number after the largest used so far (SQLite's
// own rule, so a query means the same on both). Question marks inside
// quoted literals, quoted identifiers and -- comments are left alone.
func (d *dialect) rebind(query string) string {
	if !d.postgres || !strings.Contains(query, "?") {
		return query
	}
	var b strings.Builder
	b.Grow(len(query) + 8)
	highest := 0
	for i := 0; i < len(query); i++ {
		ch := query[i]
		switch ch {
		case '\'', '"':
			end := strings.IndexByte(query[i+1:], ch)
			if end < 0 {
				b.WriteString(query[i:])
				return b.String()
			}
			b.WriteString(query[i : i+end+2])
			i += end + 1
		case '-':
			if i+1 < len(query) && query[i+1] == '-' {
				end := strings.IndexByte(query[i:], '\n')
				if end < 0 {
					b.WriteString(query[i:])
					return b.String()
				}
				b.WriteString(query[i : i+end])
				i += end - 1
				continue
			}
			b.WriteByte(ch)
		case '?':
			j := i + 1
			n := 0
			for j < len(query) && query[j] >= '0' && query[j] <= '9' {
				n = n*10 + int(query[j]-'0')
				j++
			}
			if j == i+1 {
				highest++
				n = highest
			} else {
				highest = max(highest, n)
			}
			fmt.Fprintf(&b, "$%d", n)
			i = j - 1
		default:
			b.WriteByte(ch)
		}
	}
	return b.String()
}

// The error classes the store tells apart, one classifying function per
// engine below.
type errorClass int

const (
	errOther errorClass = iota
	errUnique
	errForeignKey
	errDamaged
)

// sqliteClass classifies an error of mattn/go-sqlite3.
func sqliteClass(err error) errorClass {
	var se sqlite3.Error
	if !errors.As(err, &se) {
		return errOther
	}
	switch {
	case se.ExtendedCode == sqlite3.ErrConstraintUnique || se.ExtendedCode == sqlite3.ErrConstraintPrimaryKey:
		return errUnique
	case se.ExtendedCode == sqlite3.ErrConstraintForeignKey:
		return errForeignKey
	case se.Code == sqlite3.ErrNotADB || se.Code == sqlite3.ErrCorrupt:
		return errDamaged
	}
	return errOther
}

// postgresClass classifies an error of PostgreSQL by its SQLSTATE
// (https://www.postgresql.org/docs/15/errcodes-appendix.html).
func postgresClass(err error) errorClass {
	var pe *pgconn.PgError
	if !errors.As(err, &pe) {
		return errOther
	}
	switch pe.Code {
	case "23505": // unique_violation, primary keys included
		return errUnique
	case "23503": // foreign_key_violation
		return errForeignKey
	case "XX001", "XX002": // data_corrupted, index_corrupted
		return errDamaged
	}
	return errOther
}

// classify asks both engines: an error carries the type of the driver that
// made it, so at most one of them recognizes it, and the queries need not
// know which engine they ran on.
func classify(err error) errorClass {
	if err == nil {
		return errOther
	}
	if c := sqliteClass(err); c != errOther {
		return c
	}
	return postgresClass(err)
}

// isUnique reports whether err is a UNIQUE or PRIMARY KEY violation.
func isUnique(err error) bool { return classify(err) == errUnique }

// isForeignKey reports whether err is a foreign key violation: the row
// names another that does not exist.
func isForeignKey(err error) bool { return classify(err) == errForeignKey }
