// Package store keeps Invigil's state in one SQLite file (the embedded
// default) or in a PostgreSQL database that several nodes share: staff
// accounts and login tokens, exams and their per-room detection policies,
// candidates with their invitation codes and stage history, calls, scores,
// violations with their reviews, recording segments, the per-exam live
// event log and the audit log.
//
// The promise the rest of the server relies on is "write a violation before
// announcing it; nothing acknowledged is ever lost on a crash". So:
//
//   - Every write transaction commits before its events are handed back
//     (Store.Update returns them only after COMMIT), and callers broadcast
//     only what Update returned.
//   - The journal is a write-ahead log (WAL) with synchronous=FULL: a commit
//     returns only after the log is flushed to disk, so a crash or power cut
//     right after an acknowledgement keeps the row. WAL also lets the
//     dashboards read while the pipeline writes.
//   - Write transactions begin IMMEDIATE, taking the write lock up front, so
//     two writers never deadlock on a read lock that one of them would have
//     to upgrade; the other waits up to the 5 s busy timeout instead.
//   - Foreign keys and CHECK constraints are on, so a bug in a caller fails
//     loudly instead of leaving rows that point nowhere.
//
// The schema is created and upgraded by numbered migrations in migrations/,
// each in its own transaction; a file written by a newer build is refused
// rather than guessed at. The file is created with mode 0600: it holds
// password hashes and token hashes.
//
// On PostgreSQL (Open with a postgres:// URL) the same queries run, their ?
// placeholders rebound to $n; the schema has its own migrations in
// migrations/postgres with the same version numbers; every write
// transaction first takes one advisory lock, so writers on all nodes run
// one after another as SQLite's do, which keeps each exam's event numbers
// gapless and committed in order (see dialect.beginWrite). Durability there
// is the server's: its fsync and synchronous_commit settings.
//
// Every read and write method is available on both *Store (each call on its
// own) and *Tx (inside Store.Update, all or nothing); AppendEvent exists only
// on *Tx because an event must commit together with the change it reports.
package store
