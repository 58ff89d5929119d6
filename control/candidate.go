package control

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"invigil/contract"
	"invigil/stage"
	"invigil/store"
)

// Candidate-facing refusals, in the guide's tone.
var (
	textWrongCode   = stage.Text{ZH: "邀请码错误，请核对后重新输入。", EN: "Wrong invitation code. Please check it and try again."}
	textBadCode     = stage.Text{ZH: "邀请码为 6 位数字。", EN: "The invitation code is 6 digits."}
	textTooLate     = stage.Text{ZH: "已超过本场面试的登录时间，无法进入。请联系主办方。", EN: "The login window of this exam has closed. Please contact the organizers."}
	textLeft        = stage.Text{ZH: "您已离开本场面试，不能再次进入。", EN: "You have left this exam and cannot enter again."}
	textInCall      = stage.Text{ZH: "您正在通话中，请先结束通话。", EN: "You are in a call; please finish it first."}
	textMockLate    = stage.Text{ZH: "设备调试后不能再进入模拟练习。", EN: "Practice is not available after the device check."}
	textInterviewed = stage.Text{ZH: "您的面试已结束，请使用休息室码进入休息室。", EN: "Your interview has ended; use the rest-room code to enter the rest room."}
)

// The codes of FindCode's refusals: the code itself is wrong (a guess,
// for the rate limiter).
const (
	CodeBadCode     = "bad_code"
	CodeUnknownCode = "unknown_code"
)

// IsSixDigits reports whether s has the form of an invitation code.
func IsSixDigits(s string) bool {
	if len(s) != 6 {
		return false
	}
	for _, c := range s {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// FindCode is what an invitation code opens. Its refusals (CodeBadCode,
// CodeUnknownCode) say the code is wrong; whatever Enter refuses after it
// is not a guess. The two are apart so that a rate limiter settles the
// attempt as soon as the code is known to exist, before Enter's write
// transaction. Codes are never logged.
func (p *Plane) FindCode(ctx context.Context, code string) (store.CodeMatch, error) {
	code = strings.TrimSpace(code)
	if !IsSixDigits(code) {
		return store.CodeMatch{}, candidateError(Invalid, CodeBadCode, textBadCode)
	}
	match, err := p.st.LookupCode(ctx, code)
	if errors.Is(err, store.ErrNotFound) {
		return store.CodeMatch{}, candidateError(NotFound, CodeUnknownCode, textWrongCode)
	}
	return match, err
}

// Enter is a candidate entering with the code FindCode found: the code's
// kind and the candidate's stage decide where they go (the stage machine
// of the guide), inside the exam's login window. It answers the candidate
// as they are now and their exam.
func (p *Plane) Enter(ctx context.Context, match store.CodeMatch) (store.Candidate, store.Exam, error) {
	exam, err := p.st.Exam(ctx, match.ExamID)
	if err != nil {
		return store.Candidate{}, store.Exam{}, err
	}
	now := p.now()
	early := p.opts.EarlyLogin
	if exam.EarlyLoginMinutes > 0 {
		early = time.Duration(exam.EarlyLoginMinutes) * time.Minute
	}
	if opens := exam.StartsAt.Add(-early); now.Before(opens) {
		t := stage.Text{
			ZH: "面试尚未开放登录，请于 " + opens.Format("2006-01-02 15:04 MST") + " 之后再登录。",
			EN: "This exam is not open yet. Please log in after " + opens.Format("2006-01-02 15:04 MST") + ".",
		}
		return store.Candidate{}, store.Exam{}, candidateError(Forbidden, "too_early", t)
	}
	// The stage is decided and moved in one write transaction, so two
	// logins with the same code at once (a double click, two tabs) move
	// the candidate once and the second resumes.
	moved := false
	err = p.Update(ctx, func(ctx context.Context, tx *store.Tx) error {
		cur, err := tx.Candidate(ctx, match.CandidateID)
		if err != nil {
			return err
		}
		to, refusal := codeTarget(match.Kind, cur)
		if refusal != nil {
			return refusal
		}
		firstEntry := cur.Stage == stage.Invited || cur.Stage == stage.Mock
		lateFirst := exam.LateLoginMinutes > 0 && firstEntry && to != cur.Stage &&
			!now.Before(exam.StartsAt.Add(time.Duration(exam.LateLoginMinutes)*time.Minute))
		if lateFirst || (!now.Before(exam.EndsAt) && to != cur.Stage) {
			// Arriving after the start window, or moving on after the exam's
			// end, is refused; a code still resumes where the candidate is.
			return candidateError(Forbidden, "too_late", textTooLate)
		}
		if to == cur.Stage {
			return nil
		}
		moved = true
		return moveInTx(ctx, tx, cur, to, 0, "code:"+match.Kind, now)
	})
	if err != nil {
		return store.Candidate{}, store.Exam{}, err
	}
	cand, err := p.st.Candidate(ctx, match.CandidateID)
	if err != nil {
		return store.Candidate{}, store.Exam{}, err
	}
	if moved {
		p.ApplyStage(ctx, cand)
	}
	return cand, exam, nil
}

// codeTarget is the stage a code of kind opens for cand (its current stage
// when the code only resumes), or the refusal to show.
func codeTarget(kind string, cand store.Candidate) (stage.Stage, *Error) {
	cur := cand.Stage
	if cur == stage.Left {
		return "", candidateError(Forbidden, "left", textLeft)
	}
	switch kind {
	case store.CodeMock:
		if cur == stage.Invited || cur == stage.Mock {
			return stage.Mock, nil
		}
		return "", candidateError(Conflict, "code_not_usable", textMockLate)
	case store.CodeInterview:
		switch cur {
		case stage.Invited, stage.Mock:
			return stage.DeviceCheckWaiting, nil
		case stage.DeviceChecked:
			return stage.InterviewWaiting, nil
		case stage.RestRoom:
			switch {
			case !cand.InterviewedAt.IsZero():
				return "", candidateError(Conflict, "code_not_usable", textInterviewed)
			case !cand.DeviceCheckedAt.IsZero():
				return stage.InterviewWaiting, nil
			}
			return stage.DeviceCheckWaiting, nil
		}
		return cur, nil // waiting, in a call, done: resume
	case store.CodeRestRoom:
		if cur.InCall() {
			return "", candidateError(Conflict, "in_call", textInCall)
		}
		return stage.RestRoom, nil
	}
	return "", Errorf(Internal, "internal", "unknown code kind %q", kind)
}

// Leave is the candidate leaving for good: their call ends and they move
// to left. Leaving again changes nothing.
func (p *Plane) Leave(ctx context.Context, cand store.Candidate) (store.Candidate, error) {
	if cand.Stage == stage.Left {
		return cand, nil
	}
	return p.sendAway(ctx, cand, 0, "candidate left")
}

// SendAway ends candidate candidateID's day (moves them to left): an
// admin's decision, or that of the staff member on the candidate's current
// call, who sees why; nobody else on the exam may send a candidate away
// unseen.
func (p *Plane) SendAway(ctx context.Context, a Actor, candidateID int64) (store.Candidate, error) {
	cand, err := p.Candidate(ctx, a, candidateID)
	if err != nil {
		return store.Candidate{}, err
	}
	if !a.IsAdmin() {
		call, err := p.st.CurrentCall(ctx, cand.ID)
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			return store.Candidate{}, err
		}
		if err != nil || call.StaffID != a.ID {
			return store.Candidate{}, Errorf(Forbidden, "not_on_call", "only an admin or the staff member on candidate %d's current call may end their day", cand.ID)
		}
	}
	if cand.Stage == stage.Left {
		return cand, nil
	}
	return p.sendAway(ctx, cand, a.ID, "sent away by "+a.Username)
}

func (p *Plane) sendAway(ctx context.Context, cand store.Candidate, actor int64, reason string) (store.Candidate, error) {
	if err := p.endCallsOf(ctx, cand); err != nil {
		return store.Candidate{}, err
	}
	cand, err := p.st.Candidate(ctx, cand.ID)
	if err != nil {
		return store.Candidate{}, err
	}
	return p.moveStage(ctx, cand, stage.Left, actor, reason)
}

// AskForHelp tells the staff of cand's exam that cand asks for help.
func (p *Plane) AskForHelp(ctx context.Context, cand store.Candidate, message string) error {
	msg := strings.TrimSpace(message)
	if r, _, _, found := RefusedRune(msg, true); found {
		// Said to the candidate in both languages, as their page shows it.
		return candidateError(Invalid, "bad_text", stage.Text{
			ZH: fmt.Sprintf("求助内容含有不允许的字符 U+%04X，请删除后再发送。", r),
			EN: fmt.Sprintf("help message: the character U+%04X is not allowed; please remove it and send again.", r),
		})
	}
	if utf8.RuneCountInString(msg) > 500 {
		return Errorf(Invalid, "too_long", "a help message has at most 500 characters")
	}
	return p.Update(ctx, func(ctx context.Context, tx *store.Tx) error {
		_, err := tx.AppendEvent(ctx, cand.ExamID, contract.EventHelpRequested, cand.ID, map[string]any{
			"message": msg, "name": cand.Name, "stage": cand.Stage,
		})
		return err
	})
}

// LiveAnalysis is the newest analysis of cand's camera (the device
// check's feedback).
func (p *Plane) LiveAnalysis(cand store.Candidate) (AnalysisSnapshot, error) {
	if p.opts.Analysis == nil {
		return AnalysisSnapshot{}, errNoAnalysis
	}
	snap, ok := p.opts.Analysis.Latest(candidateIdentity(cand.ID))
	if !ok {
		return AnalysisSnapshot{}, Errorf(NotFound, "no_video", "no analyzed video from your camera yet")
	}
	return snap, nil
}

var errNoAnalysis = Errorf(Unavailable, "no_analysis", "this server runs without live analysis")

// calibrationWindow is how long the candidate holds still at 50 cm while
// the pipeline measures their head scale.
const calibrationWindow = 3 * time.Second

// Calibrate starts the distance calibration of candidate candidateID: they
// sit at 50 cm for the next seconds.
func (p *Plane) Calibrate(ctx context.Context, a Actor, candidateID int64) error {
	cand, err := p.Candidate(ctx, a, candidateID)
	if err != nil {
		return err
	}
	if p.opts.Analysis == nil {
		return errNoAnalysis
	}
	if err := p.opts.Analysis.Calibrate(candidateIdentity(cand.ID), p.now().Add(calibrationWindow)); err != nil {
		return fmt.Errorf("calibrate candidate %d: %w", cand.ID, err)
	}
	return p.st.Audit(ctx, a.ID, "candidate.calibrate", "candidate:"+strconv.FormatInt(cand.ID, 10), nil)
}

// EnterWithCode is FindCode then Enter, for callers with no rate limiter
// to settle in between.
func (p *Plane) EnterWithCode(ctx context.Context, code string) (store.Candidate, store.Exam, error) {
	match, err := p.FindCode(ctx, code)
	if err != nil {
		return store.Candidate{}, store.Exam{}, err
	}
	return p.Enter(ctx, match)
}
