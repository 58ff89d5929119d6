package main

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"

	"invigil/api"
	"invigil/config"
	"invigil/store"
)

const adminUsage = `[--data DIR | --database-url URL] users ACTION … | exams staff EXAM [--set USER…]

Actions:
  users list                          list staff users
  users add [--password-stdin] NAME ROLE
                                      add a user (ROLE: admin, assistant, examiner, proctor);
                                      without --password-stdin a random password is printed once
  users disable NAME                  block a user's logins and end their sessions' use
  users enable NAME                   allow a disabled user again
  users passwd [--password-stdin] NAME
                                      set a new password (random, printed once, without --password-stdin)
  exams staff EXAM                    list the staff of exam EXAM (its id): the users who may see
                                      and act on it (admins act on every exam)
  exams staff EXAM --set USER…        make USER… (usernames) the exam's whole staff; --set alone
                                      clears it. Open pages notice within seconds.

It works on the server's database directly, also while the server runs: the SQLite file
DATA/invigil.db, or the PostgreSQL database of --database-url (or INVIGIL_DATABASE_URL, or
database_url in the --config file) when the server uses one.`

// runAdmin manages staff accounts from the command line, e.g. to recover
// when the last admin password is lost.
func runAdmin(ctx context.Context, e env, args []string) error {
	fs := newFlagSet(e, "admin", adminUsage)
	flags := config.Register(fs, "data", "database-url")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	cfg, err := flags.Resolve(e.getenv)
	if err != nil {
		return err
	}
	rest := fs.Args()
	if len(rest) >= 2 && rest[0] == "exams" {
		return runAdminExams(ctx, e, storeTarget(cfg), rest[1:])
	}
	if len(rest) < 2 || rest[0] != "users" {
		return usageError{"want: invigil admin users list|add|disable|enable|passwd … or invigil admin exams staff EXAM [--set USER…] (see invigil admin -h)"}
	}
	action, rest := rest[1], rest[2:]
	sub := newFlagSet(e, "admin users "+action, "[--password-stdin] ARGS")
	fromStdin := false
	if action == "add" || action == "passwd" {
		sub.BoolVar(&fromStdin, "password-stdin", false, "read the password from the first line of standard input")
	}
	if err := parseFlags(sub, rest); err != nil {
		return err
	}
	rest = sub.Args()
	need := map[string]int{"list": 0, "add": 2, "disable": 1, "enable": 1, "passwd": 1}
	n, ok := need[action]
	if !ok {
		return usageError{fmt.Sprintf("unknown action %q: want list, add, disable, enable or passwd", action)}
	}
	if len(rest) != n {
		return usageError{fmt.Sprintf("users %s takes %d argument(s), got %d", action, n, len(rest))}
	}
	st, err := store.Open(ctx, storeTarget(cfg))
	if err != nil {
		return err
	}
	defer st.Close()

	password := func() (string, bool, error) {
		if !fromStdin {
			b := make([]byte, 12)
			if _, err := rand.Read(b); err != nil {
				return "", false, err
			}
			return hex.EncodeToString(b), true, nil
		}
		if e.stdin == nil {
			return "", false, errors.New("--password-stdin: no standard input")
		}
		line, err := bufio.NewReader(e.stdin).ReadString('\n')
		if err != nil && !errors.Is(err, io.EOF) {
			return "", false, fmt.Errorf("read the password: %w", err)
		}
		return strings.TrimRight(line, "\r\n"), false, nil
	}
	find := func(name string) (store.User, error) {
		u, err := st.UserByUsername(ctx, name)
		if errors.Is(err, store.ErrNotFound) {
			return u, fmt.Errorf("no user %q (see invigil admin users list)", name)
		}
		return u, err
	}

	switch action {
	case "list":
		users, err := st.ListUsers(ctx)
		if err != nil {
			return err
		}
		return printUsers(e.stdout, users)
	case "add":
		name, role := rest[0], rest[1]
		if err := api.CheckUsername(name); err != nil {
			return usageError{err.Error()}
		}
		if err := api.CheckRole(role); err != nil {
			return usageError{err.Error()}
		}
		pw, generated, err := password()
		if err != nil {
			return err
		}
		hash, err := api.HashPassword(pw)
		if err != nil {
			return err
		}
		u, err := st.CreateUser(ctx, name, hash, role)
		if errors.Is(err, store.ErrConflict) {
			return fmt.Errorf("user %q exists already", name)
		}
		if err != nil {
			return err
		}
		_ = st.Audit(ctx, 0, "user.create", "user:"+u.Username, map[string]any{"role": role, "via": "cli"})
		fmt.Fprintf(e.stdout, "added %s (%s, id %d)\n", u.Username, u.Role, u.ID)
		if generated {
			fmt.Fprintf(e.stdout, "password: %s (shown once)\n", pw)
		}
		return nil
	case "disable", "enable":
		u, err := find(rest[0])
		if err != nil {
			return err
		}
		disabled := action == "disable"
		if _, err := st.UpdateUser(ctx, u.ID, store.UserUpdate{Disabled: &disabled}); err != nil {
			return err
		}
		_ = st.Audit(ctx, 0, "user."+action, "user:"+u.Username, map[string]any{"via": "cli"})
		fmt.Fprintf(e.stdout, "%sd %s\n", action, u.Username)
		return nil
	case "passwd":
		u, err := find(rest[0])
		if err != nil {
			return err
		}
		pw, generated, err := password()
		if err != nil {
			return err
		}
		hash, err := api.HashPassword(pw)
		if err != nil {
			return err
		}
		if _, err := st.UpdateUser(ctx, u.ID, store.UserUpdate{PasswordHash: &hash}); err != nil {
			return err
		}
		_ = st.Audit(ctx, 0, "user.passwd", "user:"+u.Username, map[string]any{"via": "cli"})
		fmt.Fprintf(e.stdout, "new password set for %s\n", u.Username)
		if generated {
			fmt.Fprintf(e.stdout, "password: %s (shown once)\n", pw)
		}
		return nil
	}
	return nil
}

// runAdminExams lists or replaces an exam's staff by username, the CLI's
// way to what the admin console and PUT /api/v1/exams/{exam}/staff do.
func runAdminExams(ctx context.Context, e env, database string, args []string) error {
	if args[0] != "staff" || len(args) < 2 {
		return usageError{"want: invigil admin exams staff EXAM [--set USER…]"}
	}
	examID, err := strconv.ParseInt(args[1], 10, 64)
	if err != nil || examID <= 0 {
		return usageError{fmt.Sprintf("exam %q: want the exam's id (a positive integer)", args[1])}
	}
	set, names := false, args[2:]
	if len(names) > 0 {
		if names[0] != "--set" && names[0] != "-set" {
			return usageError{fmt.Sprintf("unexpected %q: want --set USER… to set the staff, or nothing to list it", names[0])}
		}
		set, names = true, names[1:]
	}
	st, err := store.Open(ctx, database)
	if err != nil {
		return err
	}
	defer st.Close()
	exam, err := st.Exam(ctx, examID)
	if errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("no exam %d", examID)
	}
	if err != nil {
		return err
	}
	if set {
		ids := make([]int64, 0, len(names))
		for _, name := range names {
			u, err := st.UserByUsername(ctx, name)
			if errors.Is(err, store.ErrNotFound) {
				return fmt.Errorf("no user %q (see invigil admin users list); the staff is unchanged", name)
			}
			if err != nil {
				return err
			}
			if u.Disabled {
				return fmt.Errorf("user %q is disabled: enable them first (invigil admin users enable %s); the staff is unchanged", name, name)
			}
			ids = append(ids, u.ID)
		}
		_, err := st.Update(ctx, func(ctx context.Context, tx *store.Tx) error {
			if err := tx.SetExamStaff(ctx, exam.ID, ids); err != nil {
				return err
			}
			return tx.Audit(ctx, 0, "exam.staff", "exam:"+strconv.FormatInt(exam.ID, 10), map[string]any{"user_ids": ids, "via": "cli"})
		})
		if err != nil {
			return err
		}
	}
	users, err := st.ExamStaff(ctx, exam.ID)
	if err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "staff of exam %d (%s): %d\n", exam.ID, exam.Name, len(users))
	return printUsers(e.stdout, users)
}

// printUsers writes users as an aligned table.
func printUsers(w io.Writer, users []store.User) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tUSERNAME\tROLE\tSTATUS")
	for _, u := range users {
		status := "active"
		if u.Disabled {
			status = "disabled"
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\n", u.ID, u.Username, u.Role, status)
	}
	return tw.Flush()
}
