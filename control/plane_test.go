package control

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"invigil/contract"
	"invigil/stage"
	"invigil/store"
)

// The control plane called directly, over a real SQLite file: the rules
// and their errors without HTTP in between (api's tests check the same
// flows through the transport, with the statuses).

// testClock is the plane's clock, moved by the tests.
type testClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *testClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *testClock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// day is a plane with one exam that began an hour ago and runs two more.
type day struct {
	t     *testing.T
	p     *Plane
	st    *store.Store
	clock *testClock
	exam  store.Exam
	admin Actor
	// codes counts the invitation codes drawn, each one different.
	codes int
}

func newDay(t *testing.T) *day {
	t.Helper()
	dir := t.TempDir()
	st, err := store.Open(context.Background(), filepath.Join(dir, "invigil.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	clock := &testClock{t: time.Date(2026, 11, 26, 8, 0, 0, 0, time.UTC)}
	p, err := New(Options{Store: st, DataDir: dir, Now: clock.Now, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	now := clock.Now()
	exam, err := st.CreateExam(t.Context(), store.Exam{Name: "Interview day", StartsAt: now.Add(-time.Hour), EndsAt: now.Add(2 * time.Hour), CreatedAt: now})
	if err != nil {
		t.Fatal(err)
	}
	d := &day{t: t, p: p, st: st, clock: clock, exam: exam}
	d.admin = d.user("admin", store.RoleAdmin)
	return d
}

// user adds a staff user (the password is never checked here).
func (d *day) user(name, role string) Actor {
	d.t.Helper()
	u, err := d.st.CreateUser(d.t.Context(), name, "$argon2id$unused", role)
	if err != nil {
		d.t.Fatal(err)
	}
	return StaffActor(u)
}

// onStaff puts the actors on the exam's staff (replacing it).
func (d *day) onStaff(actors ...Actor) {
	d.t.Helper()
	ids := make([]int64, 0, len(actors))
	for _, a := range actors {
		ids = append(ids, a.ID)
	}
	if err := d.st.SetExamStaff(d.t.Context(), d.exam.ID, ids); err != nil {
		d.t.Fatal(err)
	}
}

// candidate adds a candidate and returns them with their codes by kind.
func (d *day) candidate(name string) (store.Candidate, map[string]string) {
	d.t.Helper()
	var cc store.CandidateCodes
	_, err := d.st.Update(d.t.Context(), func(ctx context.Context, tx *store.Tx) error {
		var err error
		cc, err = tx.CreateCandidate(ctx, d.exam.ID, store.NewCandidate{Name: name}, func() (string, error) {
			d.codes++
			return fmt.Sprintf("%06d", 100000+d.codes), nil
		})
		return err
	})
	if err != nil {
		d.t.Fatal(err)
	}
	return cc.Candidate, cc.Codes
}

// enter logs the candidate in with a code and wants stage want.
func (d *day) enter(code string, want stage.Stage) store.Candidate {
	d.t.Helper()
	cand, _, err := d.p.EnterWithCode(d.t.Context(), code)
	if err != nil {
		d.t.Fatalf("enter with a code: %v", err)
	}
	if cand.Stage != want {
		d.t.Fatalf("entered into %s, want %s", cand.Stage, want)
	}
	return cand
}

func (d *day) reload(cand store.Candidate) store.Candidate {
	d.t.Helper()
	c, err := d.st.Candidate(d.t.Context(), cand.ID)
	if err != nil {
		d.t.Fatal(err)
	}
	return c
}

// wantRefusal fails unless err is a control *Error of kind and code.
func wantRefusal(t *testing.T, what string, err error, kind Kind, code string) {
	t.Helper()
	var e *Error
	if !errors.As(err, &e) {
		t.Fatalf("%s: %v, want a %s refusal %s", what, err, kind, code)
	}
	if e.Kind != kind || e.Code != code {
		t.Fatalf("%s: %s refusal %s (%s), want %s %s", what, e.Kind, e.Code, e.Message, kind, code)
	}
}

// The whole day through the calls: a device check, then an interview, each
// moving the candidate's stage, with their events in the exam's log.
func TestCallsMoveTheCandidate(t *testing.T) {
	d := newDay(t)
	ctx := t.Context()
	assistant, examiner := d.user("as", store.RoleAssistant), d.user("ex", store.RoleExaminer)
	d.onStaff(assistant, examiner)
	_, codes := d.candidate("Li Lei")
	cand := d.enter(codes[store.CodeInterview], stage.DeviceCheckWaiting)

	call, err := d.p.PlaceCall(ctx, assistant, cand.ID, store.CallDeviceCheck)
	if err != nil {
		t.Fatal(err)
	}
	if call.State != store.CallRinging || call.StaffName != "as" {
		t.Fatalf("placed call %+v, want ringing by as", call)
	}
	if _, err := d.p.AcceptCall(ctx, cand, call.ID); err != nil {
		t.Fatal(err)
	}
	if got := d.reload(cand).Stage; got != stage.DeviceCheckCall {
		t.Fatalf("after accepting: %s, want %s", got, stage.DeviceCheckCall)
	}
	if _, err := d.p.EndCall(ctx, assistant, call.ID, ""); err != nil {
		t.Fatal(err)
	}
	if got := d.reload(cand).Stage; got != stage.DeviceChecked {
		t.Fatalf("after the device check: %s, want %s", got, stage.DeviceChecked)
	}

	cand = d.enter(codes[store.CodeInterview], stage.InterviewWaiting)
	interview, err := d.p.PlaceCall(ctx, examiner, cand.ID, store.CallInterview)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := d.p.AcceptCall(ctx, cand, interview.ID); err != nil {
		t.Fatal(err)
	}
	ended, err := d.p.EndCall(ctx, examiner, interview.ID, "done")
	if err != nil {
		t.Fatal(err)
	}
	if ended.State != store.CallEnded || ended.Outcome != "done" {
		t.Fatalf("ended call %+v, want ended, done", ended)
	}
	if got := d.reload(cand).Stage; got != stage.InterviewDone {
		t.Fatalf("after the interview: %s, want %s", got, stage.InterviewDone)
	}

	events, err := d.st.EventsSince(ctx, d.exam.ID, 0, 100)
	if err != nil {
		t.Fatal(err)
	}
	count := map[string]int{}
	for _, e := range events {
		count[e.Type]++
	}
	want := map[string]int{contract.EventCallRinging: 2, contract.EventCallStarted: 2, contract.EventCallEnded: 2,
		contract.EventStageChanged: 6} // two code entries, two accepts, two ends
	for typ, n := range want {
		if count[typ] != n {
			t.Errorf("%d %s events, want %d (all: %v)", count[typ], typ, n, count)
		}
	}
}

// Who may place which call on whom, and when.
func TestPlaceCallRefusals(t *testing.T) {
	d := newDay(t)
	ctx := t.Context()
	assistant, examiner := d.user("as", store.RoleAssistant), d.user("ex", store.RoleExaminer)
	outsider := d.user("other", store.RoleAssistant)
	d.onStaff(assistant, examiner)
	cand, codes := d.candidate("Han Meimei")

	_, err := d.p.PlaceCall(ctx, assistant, cand.ID, store.CallDeviceCheck)
	wantRefusal(t, "a device check before the candidate waits", err, Conflict, "not_waiting")

	cand = d.enter(codes[store.CodeInterview], stage.DeviceCheckWaiting)
	_, err = d.p.PlaceCall(ctx, examiner, cand.ID, store.CallDeviceCheck)
	wantRefusal(t, "an examiner's device check", err, Forbidden, "forbidden")
	_, err = d.p.PlaceCall(ctx, d.admin, cand.ID, store.CallDeviceCheck)
	wantRefusal(t, "an admin's device check", err, Forbidden, "forbidden")
	_, err = d.p.PlaceCall(ctx, assistant, cand.ID, "chat")
	wantRefusal(t, "an unknown kind", err, Invalid, "bad_kind")
	_, err = d.p.PlaceCall(ctx, examiner, cand.ID, store.CallInterview)
	wantRefusal(t, "an interview before the device check", err, Conflict, "not_waiting")

	// Someone off the exam learns not even that the candidate exists.
	if _, err := d.p.PlaceCall(ctx, outsider, cand.ID, store.CallDeviceCheck); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("a call by staff off the exam: %v, want store.ErrNotFound", err)
	}

	if _, err := d.p.PlaceCall(ctx, assistant, cand.ID, store.CallDeviceCheck); err != nil {
		t.Fatal(err)
	}
	// A busy candidate refuses a second call, a spot check included.
	_, err = d.p.PlaceCall(ctx, assistant, cand.ID, store.CallDeviceCheck)
	wantRefusal(t, "a second call", err, Conflict, "busy")
	_, err = d.p.PlaceCall(ctx, assistant, cand.ID, store.CallSpotCheck)
	wantRefusal(t, "a spot check during a call", err, Conflict, "busy")
}

// Accepting, declining and ending belong to the call's own people.
func TestCallOwnership(t *testing.T) {
	d := newDay(t)
	ctx := t.Context()
	assistant, colleague := d.user("as", store.RoleAssistant), d.user("as2", store.RoleAssistant)
	d.onStaff(assistant, colleague)
	_, codes := d.candidate("Wang Fang")
	_, otherCodes := d.candidate("Zhang Wei")
	cand := d.enter(codes[store.CodeInterview], stage.DeviceCheckWaiting)
	other := d.enter(otherCodes[store.CodeInterview], stage.DeviceCheckWaiting)
	call, err := d.p.PlaceCall(ctx, assistant, cand.ID, store.CallDeviceCheck)
	if err != nil {
		t.Fatal(err)
	}
	_, err = d.p.AcceptCall(ctx, other, call.ID)
	wantRefusal(t, "another candidate accepting", err, NotFound, "not_found")
	_, err = d.p.EndCall(ctx, colleague, call.ID, "done")
	wantRefusal(t, "a colleague ending the call", err, Forbidden, "forbidden")
	_, err = d.p.EndCall(ctx, assistant, call.ID, "later")
	wantRefusal(t, "an unknown outcome", err, Invalid, "bad_outcome")

	declined, err := d.p.DeclineCall(ctx, cand, call.ID)
	if err != nil {
		t.Fatal(err)
	}
	if declined.State != store.CallDeclined || d.reload(cand).Stage != stage.DeviceCheckWaiting {
		t.Fatalf("declined call %+v, candidate %s: want declined, still waiting", declined, d.reload(cand).Stage)
	}
	_, err = d.p.AcceptCall(ctx, cand, call.ID)
	wantRefusal(t, "accepting a declined call", err, Conflict, "not_ringing")
	_, err = d.p.EndCall(ctx, assistant, call.ID, "done")
	wantRefusal(t, "ending a declined call", err, Conflict, "call_over")

	// A ringing call ended before it connected is called off, and the
	// stage stays.
	again, err := d.p.PlaceCall(ctx, assistant, cand.ID, store.CallDeviceCheck)
	if err != nil {
		t.Fatal(err)
	}
	ended, err := d.p.EndCall(ctx, d.admin, again.ID, "done")
	if err != nil {
		t.Fatal(err)
	}
	if ended.Outcome != "cancelled" || d.reload(cand).Stage != stage.DeviceCheckWaiting {
		t.Fatalf("a ringing call ended by an admin: outcome %q, stage %s; want %q, still waiting", ended.Outcome, d.reload(cand).Stage, "cancelled")
	}
}

// interviewed takes a new candidate through the device check and an
// interview with examiner.
func (d *day) interviewed(name string, assistant, examiner Actor) store.Candidate {
	d.t.Helper()
	ctx := d.t.Context()
	_, codes := d.candidate(name)
	cand := d.enter(codes[store.CodeInterview], stage.DeviceCheckWaiting)
	for _, step := range []struct {
		by   Actor
		kind string
		then stage.Stage
	}{{assistant, store.CallDeviceCheck, stage.InterviewWaiting}, {examiner, store.CallInterview, ""}} {
		call, err := d.p.PlaceCall(ctx, step.by, cand.ID, step.kind)
		if err != nil {
			d.t.Fatal(err)
		}
		if _, err := d.p.AcceptCall(ctx, cand, call.ID); err != nil {
			d.t.Fatal(err)
		}
		if _, err := d.p.EndCall(ctx, step.by, call.ID, "done"); err != nil {
			d.t.Fatal(err)
		}
		if step.then != "" {
			cand = d.enter(codes[store.CodeInterview], step.then)
		}
	}
	return d.reload(cand)
}

// A score is the interviewer's: another examiner on the exam reads it but
// may not set it, and once published only an admin changes it.
func TestScoresAreTheInterviewers(t *testing.T) {
	d := newDay(t)
	ctx := t.Context()
	assistant, examiner, colleague := d.user("as", store.RoleAssistant), d.user("ex", store.RoleExaminer), d.user("ex2", store.RoleExaminer)
	d.onStaff(assistant, examiner, colleague)

	waiting, codes := d.candidate("Not yet")
	d.enter(codes[store.CodeInterview], stage.DeviceCheckWaiting)
	score := 80.0
	_, err := d.p.SaveScore(ctx, examiner, waiting.ID, &score, "")
	wantRefusal(t, "a score before the interview", err, Conflict, "not_interviewed")

	cand := d.interviewed("Chen Jing", assistant, examiner)
	_, err = d.p.SaveScore(ctx, colleague, cand.ID, &score, "fine")
	wantRefusal(t, "a score by an examiner who did not interview", err, Forbidden, "not_your_interview")
	_, err = d.p.PublishScore(ctx, colleague, cand.ID)
	wantRefusal(t, "publishing by an examiner who did not interview", err, Forbidden, "not_your_interview")
	_, err = d.p.PublishScore(ctx, examiner, cand.ID)
	wantRefusal(t, "publishing before a score", err, Conflict, "no_score")
	tooHigh := 101.0
	_, err = d.p.SaveScore(ctx, examiner, cand.ID, &tooHigh, "")
	wantRefusal(t, "a score above 100", err, Invalid, "bad_score")
	_, err = d.p.SaveScore(ctx, examiner, cand.ID, &score, "fine\u202e")
	wantRefusal(t, "a comment with a bidi override", err, Invalid, "bad_text")

	if _, err := d.p.SaveScore(ctx, examiner, cand.ID, &score, "  clear answers "); err != nil {
		t.Fatal(err)
	}
	sc, err := d.p.Score(ctx, colleague, cand.ID)
	if err != nil || sc.Score != 80 || sc.Comment != "clear answers" {
		t.Fatalf("the colleague reads %+v, %v; want 80, the trimmed comment", sc, err)
	}
	if _, err := d.p.PublishScore(ctx, examiner, cand.ID); err != nil {
		t.Fatal(err)
	}
	changed := 85.0
	_, err = d.p.SaveScore(ctx, examiner, cand.ID, &changed, "")
	wantRefusal(t, "changing a published score", err, Conflict, "published")
	if sc, err := d.p.SaveScore(ctx, d.admin, cand.ID, &changed, "corrected"); err != nil || sc.Score != 85 {
		t.Fatalf("an admin's correction: %+v, %v", sc, err)
	}
}

// The codes' stage machine and the exam's login window.
func TestEnterWithCode(t *testing.T) {
	d := newDay(t)
	ctx := t.Context()
	cand, codes := d.candidate("Liu Yang")

	_, _, err := d.p.EnterWithCode(ctx, "12345")
	wantRefusal(t, "five digits", err, Invalid, CodeBadCode)
	_, _, err = d.p.EnterWithCode(ctx, "999999")
	wantRefusal(t, "an unknown code", err, NotFound, CodeUnknownCode)
	var e *Error
	if !errors.As(err, &e) || e.Text == nil || e.Text.ZH == "" || e.Text.EN != e.Message {
		t.Fatalf("a candidate's refusal carries both languages: %+v", e)
	}

	d.enter(" "+codes[store.CodeMock]+" ", stage.Mock)
	d.enter(codes[store.CodeInterview], stage.DeviceCheckWaiting)
	_, _, err = d.p.EnterWithCode(ctx, codes[store.CodeMock])
	wantRefusal(t, "practice after the device check's waiting room", err, Conflict, "code_not_usable")
	d.enter(codes[store.CodeRestRoom], stage.RestRoom)
	// Parked in the rest room before the device check: the interview code
	// takes them back to its waiting room.
	d.enter(codes[store.CodeInterview], stage.DeviceCheckWaiting)

	if _, err := d.p.Leave(ctx, d.reload(cand)); err != nil {
		t.Fatal(err)
	}
	_, _, err = d.p.EnterWithCode(ctx, codes[store.CodeRestRoom])
	wantRefusal(t, "a code after leaving", err, Forbidden, "left")

	// Another exam, tomorrow: too early today.
	now := d.clock.Now()
	tomorrow, err := d.st.CreateExam(ctx, store.Exam{Name: "Tomorrow", StartsAt: now.Add(24 * time.Hour), EndsAt: now.Add(27 * time.Hour), CreatedAt: now})
	if err != nil {
		t.Fatal(err)
	}
	d.exam = tomorrow
	_, early := d.candidate("Early bird")
	_, _, err = d.p.EnterWithCode(ctx, early[store.CodeMock])
	wantRefusal(t, "a code a day early", err, Forbidden, "too_early")
}

// Sending a candidate away is an admin's, or the staff member's on their
// call; it ends the call and is final.
func TestSendAway(t *testing.T) {
	d := newDay(t)
	ctx := t.Context()
	assistant, colleague := d.user("as", store.RoleAssistant), d.user("as2", store.RoleAssistant)
	d.onStaff(assistant, colleague)
	_, codes := d.candidate("Zhao Lei")
	cand := d.enter(codes[store.CodeInterview], stage.DeviceCheckWaiting)
	call, err := d.p.PlaceCall(ctx, assistant, cand.ID, store.CallDeviceCheck)
	if err != nil {
		t.Fatal(err)
	}
	_, err = d.p.SendAway(ctx, colleague, cand.ID)
	wantRefusal(t, "a colleague not on the call", err, Forbidden, "not_on_call")
	left, err := d.p.SendAway(ctx, assistant, cand.ID)
	if err != nil {
		t.Fatal(err)
	}
	if left.Stage != stage.Left {
		t.Fatalf("sent away into %s, want left", left.Stage)
	}
	if c, err := d.st.Call(ctx, call.ID); err != nil || c.State != store.CallEnded || c.Outcome != "left" {
		t.Fatalf("the call after sending away: %+v, %v; want ended, left", c, err)
	}
	if again, err := d.p.SendAway(ctx, d.admin, cand.ID); err != nil || again.Stage != stage.Left {
		t.Fatalf("sending away again: %+v, %v; want no change", again, err)
	}
}

// A commit that adds events wakes the exam's watchers, and only theirs.
func TestCommitsWakeWatchers(t *testing.T) {
	d := newDay(t)
	ctx := t.Context()
	assistant := d.user("as", store.RoleAssistant)
	d.onStaff(assistant)
	cand, codes := d.candidate("Sun Li")
	wake, cancel := d.p.Watch(d.exam.ID)
	defer cancel()
	otherWake, otherCancel := d.p.Watch(d.exam.ID + 1)
	defer otherCancel()

	d.enter(codes[store.CodeInterview], stage.DeviceCheckWaiting)
	select {
	case <-wake:
	case <-time.After(5 * time.Second):
		t.Fatal("entering with a code did not wake the exam's watcher")
	}
	if err := d.p.AskForHelp(ctx, d.reload(cand), "my camera is black"); err != nil {
		t.Fatal(err)
	}
	select {
	case <-wake:
	case <-time.After(5 * time.Second):
		t.Fatal("a help request did not wake the exam's watcher")
	}
	select {
	case <-otherWake:
		t.Fatal("another exam's watcher woke")
	default:
	}
}

// Browser signals: stored once per key, only in stages that watch them.
func TestBrowserSignals(t *testing.T) {
	d := newDay(t)
	ctx := t.Context()
	cand, codes := d.candidate("Zhou Min")
	loginAt := d.clock.Now()
	sig := Signal{Type: SignalLeftPage, Key: "tab-1", StartedAt: d.clock.Now(), Reason: "hidden"}

	d.enter(codes[store.CodeMock], stage.Mock)
	_, _, err := d.p.BrowserSignal(ctx, cand.ID, loginAt, sig)
	wantRefusal(t, "a signal in practice", err, Conflict, "signal_not_watched")

	d.enter(codes[store.CodeInterview], stage.DeviceCheckWaiting)
	d.clock.Add(time.Second)
	v, stored, err := d.p.BrowserSignal(ctx, cand.ID, loginAt, sig)
	if err != nil || !stored || v.EndedAt != nil {
		t.Fatalf("the start: %+v, stored %v, %v; want an open violation", v, stored, err)
	}
	if _, stored, err := d.p.BrowserSignal(ctx, cand.ID, loginAt, sig); err != nil || stored {
		t.Fatalf("the start again: stored %v, %v; want nothing stored", stored, err)
	}
	d.clock.Add(3 * time.Second)
	ms := int64(3000)
	sig.DurationMS = &ms
	v, stored, err = d.p.BrowserSignal(ctx, cand.ID, loginAt, sig)
	if err != nil || !stored || v.EndedAt == nil {
		t.Fatalf("the end: %+v, stored %v, %v; want the violation closed", v, stored, err)
	}

	_, _, err = d.p.BrowserSignal(ctx, cand.ID, loginAt, Signal{Type: "webcam_cover", Key: "x", StartedAt: d.clock.Now()})
	wantRefusal(t, "an unknown type", err, Invalid, "bad_signal")
	_, _, err = d.p.BrowserSignal(ctx, cand.ID, loginAt, Signal{Type: SignalSecondScreen, Key: "s", StartedAt: loginAt.Add(-time.Hour)})
	wantRefusal(t, "a start before the login", err, Invalid, "bad_signal")
}

// Violations from the media plane: stored once per key and reviewed by
// staff on the exam.
func TestViolationsAndReview(t *testing.T) {
	d := newDay(t)
	ctx := t.Context()
	proctor, outsider := d.user("pr", store.RoleProctor), d.user("pr2", store.RoleProctor)
	d.onStaff(proctor)
	cand, codes := d.candidate("Wu Hao")
	d.enter(codes[store.CodeInterview], stage.DeviceCheckWaiting)
	rep := ViolationReport{Key: "k-1", Identity: contract.CandidateIdentity(cand.ID), Type: "head_turn", Confidence: 0.9,
		StartedAt: d.clock.Now(), OpenedAt: d.clock.Now(), Evidence: []byte("\xff\xd8 not really a jpeg")}
	for range 2 {
		if err := d.p.ViolationOpened(ctx, rep); err != nil {
			t.Fatal(err)
		}
	}
	if err := d.p.ViolationOpened(ctx, ViolationReport{Key: "k-2", Identity: "staff-1", Type: "head_turn"}); !errors.Is(err, ErrViolationRejected) {
		t.Fatalf("a staff identity's violation: %v, want ErrViolationRejected", err)
	}
	list, err := d.st.ListViolations(ctx, store.ViolationFilter{ExamID: d.exam.ID})
	if err != nil || len(list) != 1 || list[0].EvidencePath == "" {
		t.Fatalf("stored %+v, %v; want one violation with its evidence", list, err)
	}
	if _, err := d.p.Review(ctx, outsider, list[0].ID, store.StatusConfirmed, ""); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("a review by a proctor off the exam: %v, want store.ErrNotFound", err)
	}
	_, err = d.p.Review(ctx, proctor, list[0].ID, "maybe", "")
	wantRefusal(t, "an unknown decision", err, Invalid, "bad_decision")
	v, err := d.p.Review(ctx, proctor, list[0].ID, store.StatusConfirmed, "looked away twice")
	if err != nil || v.Status != store.StatusConfirmed || len(v.Reviews) != 1 {
		t.Fatalf("the review: %+v, %v", v, err)
	}
	if risk := d.p.Risk([]store.Violation{{Type: "head_turn", Confidence: 0.9, Status: store.StatusConfirmed}}); risk.Score != 9 || risk.Level != "low" {
		t.Fatalf("risk of one confirmed head turn: %+v, want 9, low", risk)
	}
	if err := d.p.ViolationClosed(ctx, ViolationReport{Key: "k-1", EndedAt: d.clock.Now().Add(-time.Hour)}); !errors.Is(err, ErrViolationRejected) {
		t.Fatalf("an end before the start: %v, want ErrViolationRejected", err)
	}
}

// Media grants: staff only for exams they are on; candidates only in a
// stage with media.
func TestMediaGrants(t *testing.T) {
	d := newDay(t)
	ctx := t.Context()
	examiner, proctor, outsider := d.user("ex", store.RoleExaminer), d.user("pr", store.RoleProctor), d.user("ex2", store.RoleExaminer)
	d.onStaff(examiner, proctor)
	exp := d.clock.Now().Add(time.Minute)

	g, err := d.p.StaffGrant(ctx, examiner, d.exam.ID, exp)
	if err != nil || !g.CanPublish || g.Hidden {
		t.Fatalf("an examiner's grant: %+v, %v; want to publish, visible", g, err)
	}
	g, err = d.p.StaffGrant(ctx, proctor, d.exam.ID, exp)
	if err != nil || g.CanPublish || !g.Hidden {
		t.Fatalf("a proctor's grant: %+v, %v; want hidden, not publishing", g, err)
	}
	_, err = d.p.StaffGrant(ctx, outsider, d.exam.ID, exp)
	wantRefusal(t, "a grant off the exam", err, Forbidden, "not_exam_staff")

	cand, codes := d.candidate("Xu Ming")
	if _, err := CandidateGrant(cand, exp); !errors.Is(err, ErrNoMedia) {
		t.Fatalf("an invited candidate's grant: %v, want ErrNoMedia", err)
	}
	cand = d.enter(codes[store.CodeMock], stage.Mock)
	if g, err := CandidateGrant(cand, exp); err != nil || !g.CanPublish || g.Identity != contract.CandidateIdentity(cand.ID) {
		t.Fatalf("a candidate's grant in practice: %+v, %v", g, err)
	}
}

// Staff see the exams they are on; admins see every exam; nobody else,
// even with no exam at all, sees any.
func TestExamsByStaff(t *testing.T) {
	d := newDay(t)
	ctx := t.Context()
	examiner, idle := d.user("ex", store.RoleExaminer), d.user("idle", store.RoleExaminer)
	d.onStaff(examiner)
	now := d.clock.Now()
	if _, err := d.st.CreateExam(ctx, store.Exam{Name: "Another day", StartsAt: now, EndsAt: now.Add(time.Hour), CreatedAt: now}); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		who  Actor
		want int
	}{{d.admin, 2}, {examiner, 1}, {idle, 0}, {Actor{}, 0}} {
		exams, err := d.p.Exams(ctx, c.who)
		if err != nil || len(exams) != c.want {
			t.Errorf("%q sees %d exams (%v), want %d", c.who.Username, len(exams), err, c.want)
		}
	}
	if _, err := d.p.Exam(ctx, idle, d.exam.ID); !IsCode(err, "not_exam_staff") {
		t.Errorf("an exam one is not on: %v, want not_exam_staff", err)
	}
}
