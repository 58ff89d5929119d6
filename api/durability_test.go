package api

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	_ "github.com/mattn/go-sqlite3"
	"github.com/prometheus/client_golang/prometheus"

	"invigil/store"
)

func candidateCSV(prefix string, from, to int) []byte {
	var b bytes.Buffer
	b.WriteString("name,external_id\n")
	for i := from; i <= to; i++ {
		fmt.Fprintf(&b, "%s %d,%s-%d\n", prefix, i, prefix, i)
	}
	return b.Bytes()
}

func (h *harness) violation(cand int64, key string) ViolationReport {
	t := h.clock.Now()
	return ViolationReport{Key: key, Identity: fmt.Sprintf("candidate-%d", cand), Type: "face_off_screen", Policy: "rest_room",
		Reason: "no face", Confidence: 0.9, StartedAt: t, OpenedAt: t.Add(time.Second),
		Details: map[string]any{"faces": 0}, Evidence: append([]byte{0xff, 0xd8}, []byte(key)...)}
}

func evidenceFiles(t *testing.T, dataDir string) []string {
	t.Helper()
	des, err := os.ReadDir(filepath.Join(dataDir, "evidence"))
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, de := range des {
		out = append(out, de.Name())
	}
	sort.Strings(out)
	return out
}

// A bulk import does not hold the write lock for its whole length: a
// violation stored while it runs lands between its candidates (in one
// transaction every candidate_added event would come before or after it).
func TestImportLetsViolationsIn(t *testing.T) {
	h := newHarness(t)
	exam := h.exam()
	cand := h.candidate(exam, "考生").ID
	const rows = 3000
	done := make(chan answer, 1)
	go func() {
		done <- h.do("POST", "/api/v1/exams/"+itoa(exam)+"/candidates/import", h.admin, candidateCSV("bulk", 1, rows))
	}()
	var a answer
	var stored []string
	for i := 0; ; i++ {
		key := fmt.Sprintf("during-import-%d", i)
		if err := h.srv.ViolationOpened(context.Background(), h.violation(cand, key)); err != nil {
			t.Fatalf("a violation during an import: %v", err)
		}
		stored = append(stored, key)
		select {
		case a = <-done:
		default:
			continue
		}
		break
	}
	if a.status != 201 {
		t.Fatalf("import: %d %s", a.status, a.body)
	}
	var imp importAnswer
	a.decode(t, &imp)
	if len(imp.Created) != rows {
		t.Fatalf("the answer lists %d created candidates, want %d", len(imp.Created), rows)
	}
	events, err := h.st.EventsSince(context.Background(), exam, 0, 100000)
	if err != nil {
		t.Fatal(err)
	}
	added, addedBefore := 0, -1
	for _, e := range events {
		switch e.Type {
		case "candidate_added":
			if e.CandidateID != cand {
				added++
			}
		case "violation_opened":
			if addedBefore < 0 && added > 0 {
				addedBefore = added
			}
		}
	}
	if added != rows {
		t.Fatalf("%d candidate_added events for %d rows", added, rows)
	}
	if addedBefore <= 0 || addedBefore >= rows {
		t.Fatalf("no violation was stored while the import ran (first one after %d of %d candidates; %d violations tried): "+
			"the import held the write lock throughout", addedBefore, rows, len(stored))
	}
	t.Logf("first violation stored after %d of %d imported candidates; %d violations stored during the import", addedBefore, rows, len(stored))
	audit, err := h.st.AuditLog(context.Background(), 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(audit) == 0 || audit[0].Action != "candidates.add" || !strings.Contains(string(audit[0].Details), fmt.Sprintf(`"count":%d`, rows)) {
		t.Errorf("audit %+v", audit)
	}
}

// When a batch after the first fails, the batches before it stay; the
// error says how many were imported and from which row to import again,
// and importing those rows again completes the list.
func TestImportStoppedPartWaySaysWhere(t *testing.T) {
	h := newHarness(t)
	exam := h.exam()
	// A real failure inside SQLite at row 120 (batch 3): a trigger.
	db, err := sql.Open("sqlite3", filepath.Join(h.dataDir, "invigil.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec(`CREATE TRIGGER boom BEFORE INSERT ON candidates WHEN NEW.name = 'part 120'
		BEGIN SELECT RAISE(ABORT, 'injected failure'); END`); err != nil {
		t.Fatal(err)
	}
	a := h.do("POST", "/api/v1/exams/"+itoa(exam)+"/candidates/import", h.admin, candidateCSV("part", 1, 200))
	if a.status != 500 || a.errCode() != "import_incomplete" {
		t.Fatalf("import with a failing row: %d %s", a.status, a.body)
	}
	var e struct{ Error apiError }
	a.decode(t, &e)
	for _, want := range []string{"imported rows 1 to 100 of 200", `row 101 ("part 101")`, "import rows 101 to 200 again"} {
		if !strings.Contains(e.Error.Message, want) {
			t.Errorf("the error does not say %q: %s", want, a.body)
		}
	}
	cands, err := h.st.ListCandidates(context.Background(), exam)
	if err != nil {
		t.Fatal(err)
	}
	if len(cands) != 100 {
		t.Fatalf("%d candidates stored, want the first two batches (100)", len(cands))
	}
	audit, _ := h.st.AuditLog(context.Background(), 1)
	if len(audit) != 1 || !strings.Contains(string(audit[0].Details), `"count":100`) {
		t.Errorf("the partial import is not audited: %+v", audit)
	}
	// Importing everything again is refused before any write: the first
	// 100 external IDs are taken.
	if a := h.do("POST", "/api/v1/exams/"+itoa(exam)+"/candidates/import", h.admin, candidateCSV("part", 1, 200)); a.status != 409 ||
		!strings.Contains(string(a.body), "nothing was imported") {
		t.Errorf("re-import of the whole list: %d %s", a.status, a.body)
	}
	if _, err := db.Exec("DROP TRIGGER boom"); err != nil {
		t.Fatal(err)
	}
	h.must(201, "POST", "/api/v1/exams/"+itoa(exam)+"/candidates/import", h.admin, candidateCSV("part", 101, 200))
	if cands, _ = h.st.ListCandidates(context.Background(), exam); len(cands) != 200 {
		t.Fatalf("%d candidates after importing the rest", len(cands))
	}
}

// A violation whose row cannot be stored leaves no evidence file behind,
// while the evidence of stored rows stays; what can never be stored says
// so (ErrViolationRejected), so the outbox does not retry it for ever.
func TestUnstoredViolationLeavesNoEvidence(t *testing.T) {
	h := newHarness(t)
	exam := h.exam()
	a, b := h.candidate(exam, "甲").ID, h.candidate(exam, "乙").ID
	ctx := context.Background()
	first := h.violation(a, "seg-owner")
	first.RecordingPath = "recordings/a/1.webm"
	if err := h.srv.ViolationOpened(ctx, first); err != nil {
		t.Fatal(err)
	}
	// The same recording path for another candidate: the transaction fails
	// after the evidence was written.
	second := h.violation(b, "seg-thief")
	second.RecordingPath = first.RecordingPath
	err := h.srv.ViolationOpened(ctx, second)
	if !errors.Is(err, ErrViolationRejected) || !errors.Is(err, store.ErrConflict) {
		t.Fatalf("conflicting recording: %v", err)
	}
	if got := evidenceFiles(t, h.dataDir); strings.Join(got, " ") != "seg-owner.jpg" {
		t.Fatalf("evidence files %v, want only the stored violation's", got)
	}
	for _, v := range []ViolationReport{
		{Key: "k-nobody", Identity: "load-7", Type: "face_off_screen"},
		{Key: "k-missing", Identity: "candidate-99999", Type: "face_off_screen"},
	} {
		if err := h.srv.ViolationOpened(ctx, v); !errors.Is(err, ErrViolationRejected) {
			t.Errorf("%s: %v, want ErrViolationRejected", v.Identity, err)
		}
	}
	if err := h.srv.ViolationClosed(ctx, ViolationReport{Key: "never-opened", EndedAt: h.clock.Now()}); !errors.Is(err, ErrViolationRejected) {
		t.Errorf("closing an unknown violation: %v", err)
	}
}

// Reporting a violation again (a retry after a lost answer, a replay after
// a crash) stores and announces it once, and a repeated close is a no-op.
func TestRepeatedReportsStoreOnce(t *testing.T) {
	h := newHarness(t)
	exam := h.exam()
	cand := h.candidate(exam, "丙").ID
	ctx := context.Background()
	v := h.violation(cand, "again")
	for range 3 {
		if err := h.srv.ViolationOpened(ctx, v); err != nil {
			t.Fatal(err)
		}
	}
	v.EndedAt = v.OpenedAt.Add(time.Second)
	for range 3 {
		if err := h.srv.ViolationClosed(ctx, v); err != nil {
			t.Fatal(err)
		}
	}
	events, _ := h.st.EventsSince(ctx, exam, 0, 1000)
	count := map[string]int{}
	for _, e := range events {
		count[e.Type]++
	}
	if count["violation_opened"] != 1 || count["violation_closed"] != 1 {
		t.Errorf("events %v", count)
	}
	list, _ := h.st.ListViolations(ctx, store.ViolationFilter{ExamID: exam})
	if len(list) != 1 || list[0].EndedAt.IsZero() {
		t.Errorf("violations %+v", list)
	}
}

// The start-up sweep removes evidence no row refers to and unfinished
// temporary files, and keeps the evidence of stored rows and of violations
// still waiting in the outbox.
func TestRemoveOrphanEvidence(t *testing.T) {
	h := newHarness(t)
	exam := h.exam()
	cand := h.candidate(exam, "丁").ID
	ctx := context.Background()
	if err := h.srv.ViolationOpened(ctx, h.violation(cand, "stored")); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(h.dataDir, "evidence")
	for _, name := range []string{"orphan.jpg", "queued_key.jpg", ".tmp-12345", "README.txt"} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte("x"), 0o640); err != nil {
			t.Fatal(err)
		}
	}
	n, err := h.srv.RemoveOrphanEvidence(ctx, []string{"queued/key"})
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(evidenceFiles(t, h.dataDir), " "); n != 2 || got != "README.txt queued_key.jpg stored.jpg" {
		t.Fatalf("removed %d, left %s", n, got)
	}
	list, _ := h.st.ListViolations(ctx, store.ViolationFilter{ExamID: exam})
	if len(list) != 1 || list[0].EvidencePath != filepath.Join("evidence", "stored.jpg") {
		t.Fatalf("violations %+v", list)
	}
}

// How long one import batch holds the write lock: one transaction of
// importBatch candidates (each with its codes and event), committed with
// synchronous=FULL. The lock is held from BEGIN IMMEDIATE to COMMIT, so the
// time per op bounds how long a violation can wait behind an import.
func BenchmarkImportBatch(b *testing.B) {
	dir := b.TempDir()
	st, err := store.Open(context.Background(), filepath.Join(dir, "invigil.db"))
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	srv, err := New(Options{Registry: prometheus.NewRegistry(), Logger: slog.New(slog.DiscardHandler),
		Control: &ControlOptions{Store: st, DataDir: dir}})
	if err != nil {
		b.Fatal(err)
	}
	now := time.Now()
	exam, err := st.CreateExam(context.Background(), store.Exam{Name: "bench", StartsAt: now.Add(-time.Hour), EndsAt: now.Add(24 * time.Hour)})
	if err != nil {
		b.Fatal(err)
	}
	list := make([]store.NewCandidate, importBatch)
	n := 0
	for b.Loop() {
		for i := range list {
			n++
			list[i] = store.NewCandidate{Name: fmt.Sprintf("bench %d", n)}
		}
		if _, err := srv.ctl.addCandidates(context.Background(), 0, exam, list); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Microseconds())/1000/float64(b.N), "ms/batch")
}
