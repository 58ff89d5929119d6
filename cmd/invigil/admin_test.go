package main

import (
	"context"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"invigil/store"
)

// `invigil admin exams staff` lists and replaces an exam's staff by
// username on the database file, all or nothing.
func TestAdminExamStaff(t *testing.T) {
	data := t.TempDir()
	vars := map[string]string{"INVIGIL_DATA": data}
	for _, u := range [][2]string{{"zhang", "assistant"}, {"li", "examiner"}, {"wang", "proctor"}} {
		if code, _, errOut := invoke(t, vars, "admin", "users", "add", u[0], u[1]); code != 0 {
			t.Fatalf("add %s: %d %s", u[0], code, errOut)
		}
	}
	st, err := store.Open(context.Background(), filepath.Join(data, databaseFile))
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC()
	exam, err := st.CreateExam(context.Background(), store.Exam{Name: "面试日", StartsAt: now, EndsAt: now.Add(time.Hour)})
	st.Close()
	if err != nil {
		t.Fatal(err)
	}
	id := strconv.FormatInt(exam.ID, 10)

	code, out, errOut := invoke(t, vars, "admin", "exams", "staff", id, "--set", "zhang", "li")
	if code != 0 || !strings.Contains(out, "staff of exam "+id+" (面试日): 2") ||
		!regexp.MustCompile(`zhang\s+assistant\s+active`).MatchString(out) || !regexp.MustCompile(`li\s+examiner\s+active`).MatchString(out) {
		t.Fatalf("set: %d %q %q", code, out, errOut)
	}
	if code, out, _ := invoke(t, vars, "admin", "exams", "staff", id); code != 0 || !strings.Contains(out, ": 2") || strings.Contains(out, "wang") {
		t.Errorf("list: %d %q", code, out)
	}
	// An unknown or disabled user changes nothing.
	if code, _, errOut := invoke(t, vars, "admin", "exams", "staff", id, "--set", "wang", "nobody"); code != 1 || !strings.Contains(errOut, `no user "nobody"`) {
		t.Errorf("unknown user: %d %q", code, errOut)
	}
	invoke(t, vars, "admin", "users", "disable", "wang")
	if code, _, errOut := invoke(t, vars, "admin", "exams", "staff", id, "--set", "wang"); code != 1 || !strings.Contains(errOut, "disabled") {
		t.Errorf("disabled user: %d %q", code, errOut)
	}
	if _, out, _ := invoke(t, vars, "admin", "exams", "staff", id); !strings.Contains(out, ": 2") {
		t.Errorf("a refused set changed the staff: %q", out)
	}
	if code, out, _ := invoke(t, vars, "admin", "exams", "staff", id, "--set"); code != 0 || !strings.Contains(out, ": 0") {
		t.Errorf("clear: %d %q", code, out)
	}
	for _, c := range []struct {
		args []string
		code int
		says string
	}{
		{[]string{"admin", "exams", "staff", "424242"}, 1, "no exam 424242"},
		{[]string{"admin", "exams", "staff", "x"}, 2, "exam's id"},
		{[]string{"admin", "exams", "staff", id, "zhang"}, 2, "--set"},
		{[]string{"admin", "exams", "list"}, 2, "exams staff EXAM"},
	} {
		if code, _, errOut := invoke(t, vars, c.args...); code != c.code || !strings.Contains(errOut, c.says) {
			t.Errorf("%v: %d %q, want %d saying %q", c.args, code, errOut, c.code, c.says)
		}
	}
	if code, out, errOut := invoke(t, nil, "admin", "-h"); code != 0 || !strings.Contains(out+errOut, "exams staff EXAM [--set USER…]") {
		t.Errorf("usage: %d %q %q", code, out, errOut)
	}
}
