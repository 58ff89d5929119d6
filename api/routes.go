package api

import (
	"context"
	"net/http"
	"slices"
	"strconv"

	"invigil/contract"
	"invigil/control"
)

// Who may call a route besides the staff roles of store.Roles.
const (
	rolePublic    = "public"               // no login
	roleCandidate = contract.RoleCandidate // a token from an invitation code
)

// staff is every staff role; admin may call every staff route anyway.
var staffRoles = contract.StaffRoles

// route is one API endpoint. The table below is the single source of the
// mux, the role checks and the OpenAPI document, so they cannot disagree.
type route struct {
	method, path string
	allow        []string
	summary      string
	// in and out are zero values of the request and answer bodies, for the
	// OpenAPI document; nil for none. produces overrides the answer's
	// media type (CSV, images, video, event streams).
	in, out  any
	produces string
	query    []string
	handle   func(w http.ResponseWriter, r *http.Request, p *principal) error
}

func (c *handlers) routes() []route {
	anyone := []string{"admin", "assistant", "examiner", "proctor", roleCandidate}
	staff := staffRoles
	admin := []string{"admin"}
	callers := []string{"admin", "assistant", "examiner"}
	examiner := []string{"admin", "examiner"}
	reviewers := []string{"admin", "proctor"}
	cand := []string{roleCandidate}
	pub := []string{rolePublic}
	return []route{
		{"GET", "/api/v1/openapi.json", pub, "This document.", nil, map[string]any{}, "", nil, c.openapiHandler},

		{"POST", "/api/v1/auth/login", pub, "Staff login: a bearer token, and the page cookie.", loginRequest{}, loginAnswer{}, "", nil, c.staffLogin},
		{"POST", "/api/v1/auth/logout", anyone, "Revoke the caller's token and clear its cookie.", nil, nil, "", nil, c.logout},
		{"GET", "/api/v1/auth/me", staff, "The logged-in staff user and the CSRF token for cookie requests.", nil, meAnswer{}, "", nil, c.me},

		{"POST", "/api/v1/candidate/login", pub, "Candidate login with a 6-digit invitation code; the code's kind decides the stage.", codeRequest{}, candidateLoginAnswer{}, "", nil, c.candidateLogin},
		{"GET", "/api/v1/candidate/me", cand, "The candidate's stage, message, current call, score and rest-room code.", nil, candidateMe{}, "", nil, c.candidateMe},
		{"POST", "/api/v1/candidate/leave", cand, "The candidate leaves for good.", nil, candidateMe{}, "", nil, c.candidateLeave},
		{"POST", "/api/v1/candidate/help", cand, "Ask the staff for help.", helpRequest{}, nil, "", nil, c.candidateHelp},
		{"GET", "/api/v1/candidate/analysis", cand, "The server's live analysis of the candidate's camera (device check feedback).", nil, control.AnalysisSnapshot{}, "", nil, c.candidateAnalysis},
		{"GET", "/api/v1/candidate/events", cand, "Server-Sent Events for this candidate (calls, stages, score).", nil, nil, "text/event-stream", []string{"since"}, c.candidateEvents},
		{"POST", "/api/v1/candidate/signals", cand, "Report what the candidate's browser noticed (left_page, second_screen, headphones); stored as a violation with details.source browser. Without duration_ms it opens, with it it ends (or is stored whole); the same key again stores nothing more. 400 bad_signal, 409 signal_not_watched (stage), 429 too_many_signals.", signalRequest{}, signalAnswer{}, "", nil, c.candidateSignal},
		{"POST", "/api/v1/calls/{call}/accept", cand, "Accept an incoming call.", nil, callView{}, "", nil, c.acceptCall},
		{"POST", "/api/v1/calls/{call}/decline", cand, "Decline an incoming call.", nil, callView{}, "", nil, c.declineCall},

		{"POST", "/api/v1/media/token", anyone, "An SFU join token for the caller (staff name the exam).", mediaTokenRequest{}, mediaTokenAnswer{}, "", nil, c.mediaToken},

		{"POST", "/api/v1/exams", admin, "Create an exam.", examRequest{}, idAnswer{}, "", nil, c.createExam},
		{"GET", "/api/v1/exams", staff, "List exams: all for admins, the caller's own for other staff.", nil, []examView{}, "", nil, c.listExams},
		{"GET", "/api/v1/exams/{exam}", staff, "One exam with its effective policies.", nil, examView{}, "", nil, c.getExam},
		{"GET", "/api/v1/exams/{exam}/staff", admin, "The exam's staff: the users who may see and act on it (admins act on every exam).", nil, examStaffAnswer{}, "", nil, c.getExamStaff},
		{"PUT", "/api/v1/exams/{exam}/staff", admin, "Replace the exam's staff with user_ids (unknown or disabled users: 400).", examStaffRequest{}, examStaffAnswer{}, "", nil, c.setExamStaff},
		{"PUT", "/api/v1/exams/{exam}/policies/{room}", admin, "Override a room's detection policy (waiting, interview, rest_room).", map[string]any{}, map[string]any{}, "", nil, c.setPolicy},
		{"POST", "/api/v1/exams/{exam}/candidates", admin, "Add a candidate; answers with their three invitation codes.", newCandidateRequest{}, candidateCodesAnswer{}, "", nil, c.addCandidate},
		{"POST", "/api/v1/exams/{exam}/candidates/import", admin, "Import candidates from CSV (header name[,external_id]).", nil, importAnswer{}, "", nil, c.importCandidates},
		{"GET", "/api/v1/exams/{exam}/codes.csv", admin, "Every candidate's invitation codes as CSV.", nil, nil, "text/csv", nil, c.exportCodes},
		{"GET", "/api/v1/exams/{exam}/candidates", staff, "Candidates with stage, presence, open violations, risk and call.", nil, []candidateView{}, "", nil, c.listCandidates},
		{"GET", "/api/v1/candidates/{candidate}", staff, "One candidate with their stage history.", nil, candidateDetail{}, "", nil, c.getCandidate},
		{"POST", "/api/v1/candidates/{candidate}/leave", staff, "End a candidate's day (moves them to left): admins, or the staff member on the candidate's current call.", nil, candidateView{}, "", nil, c.staffLeave},
		{"POST", "/api/v1/candidates/{candidate}/calibrate", callers, "Calibrate distance: the candidate sits at 50 cm for the next seconds.", nil, nil, "", nil, c.calibrate},

		{"POST", "/api/v1/candidates/{candidate}/calls", callers, "Call a waiting candidate (device_check, interview) or spot-check one.", callRequest{}, callView{}, "", nil, c.placeCall},
		{"POST", "/api/v1/calls/{call}/end", callers, "End a call; outcome done moves the candidate on, retry sends them back to wait.", endCallRequest{}, callView{}, "", nil, c.endCall},
		{"GET", "/api/v1/exams/{exam}/calls", staff, "Calls of an exam.", nil, []callView{}, "", []string{"state"}, c.listCalls},

		{"PUT", "/api/v1/candidates/{candidate}/score", examiner, "Enter or change a candidate's score: the examiner who held their interview call, or an admin.", scoreRequest{}, scoreView{}, "", nil, c.saveScore},
		{"POST", "/api/v1/candidates/{candidate}/score/publish", examiner, "Publish the score to the candidate: the examiner who held their interview call, or an admin.", nil, scoreView{}, "", nil, c.publishScore},
		{"GET", "/api/v1/candidates/{candidate}/score", staff, "A candidate's score.", nil, scoreView{}, "", nil, c.getScore},

		{"GET", "/api/v1/exams/{exam}/violations", staff, "Violations, filtered.", nil, []violationView{}, "", []string{"candidate", "type", "status", "from", "to"}, c.listViolations},
		{"GET", "/api/v1/violations/{violation}", staff, "One violation.", nil, violationView{}, "", nil, c.getViolation},
		{"GET", "/api/v1/violations/{violation}/evidence", staff, "The evidence image taken at the onset.", nil, nil, "image/jpeg", nil, c.evidence},
		{"GET", "/api/v1/violations/{violation}/clip", staff, "The microphone's audio clip up to the opening, WAV 16 kHz mono (Range requests); only for violations opened while the microphone was live.", nil, nil, "audio/wav", nil, c.clip},
		{"GET", "/api/v1/violations/{violation}/recording", staff, "The recording segment holding the violation (Range requests).", nil, nil, "video/webm", nil, c.recording},
		{"POST", "/api/v1/violations/{violation}/review", reviewers, "Confirm or dismiss a violation with a note.", reviewRequest{}, violationView{}, "", nil, c.review},
		{"GET", "/api/v1/candidates/{candidate}/timeline", staff, "A candidate's stages, calls, violations and risk score.", nil, timelineView{}, "", nil, c.timeline},
		{"GET", "/api/v1/exams/{exam}/report.csv", reviewers, "The exam's violations report as CSV.", nil, nil, "text/csv", nil, c.report},

		{"GET", "/api/v1/exams/{exam}/events", staff, "Server-Sent Events of an exam; reconnect with Last-Event-ID or ?since=.", nil, nil, "text/event-stream", []string{"since"}, c.examEvents},

		{"GET", "/api/v1/users", admin, "Staff users.", nil, []userView{}, "", nil, c.listUsers},
		{"POST", "/api/v1/users", admin, "Add a staff user.", newUserRequest{}, userView{}, "", nil, c.createUser},
		{"PATCH", "/api/v1/users/{user}", admin, "Disable, re-enable, change role or password.", userPatch{}, userView{}, "", nil, c.patchUser},
	}
}

// mountRoutes registers the route table behind authentication, the role
// check and the CSRF check.
func (s *Server) mountRoutes() {
	for _, rt := range s.ctl.routes() {
		s.mux.Handle(rt.method+" "+rt.path, s.ctl.guard(s, rt))
	}
	s.mux.HandleFunc("/api/", func(w http.ResponseWriter, r *http.Request) {
		s.writeError(w, r, errorf(http.StatusNotFound, "no_such_route", "no API route %s %s (see /api/v1/openapi.json)", r.Method, r.URL.Path))
	})
}

func (c *handlers) guard(s *Server, rt route) http.Handler {
	public := slices.Contains(rt.allow, rolePublic)
	wantCandidate := slices.Contains(rt.allow, roleCandidate)
	wantStaff := false
	for _, r := range staffRoles {
		wantStaff = wantStaff || slices.Contains(rt.allow, r)
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var p *principal
		if !public {
			var err error
			p, err = c.authenticate(r, wantStaff, wantCandidate)
			if err != nil {
				s.writeError(w, r, err)
				return
			}
			if p == nil {
				s.writeError(w, r, errUnauthenticated)
				return
			}
			role := p.role()
			if !slices.Contains(rt.allow, role) && !(role == "admin" && wantStaff) {
				s.writeError(w, r, errForbidden)
				return
			}
			if err := checkCSRF(r, p); err != nil {
				s.writeError(w, r, err)
				return
			}
		}
		if err := rt.handle(w, r, p); err != nil {
			s.writeError(w, r, err)
		}
	})
}

// byPathID loads the row whose ID is the path parameter name.
func byPathID[T any](r *http.Request, name string, load func(context.Context, int64) (T, error)) (T, error) {
	id, err := pathID(r, name)
	if err != nil {
		var zero T
		return zero, err
	}
	return load(r.Context(), id)
}

// pathID parses a numeric path parameter.
func pathID(r *http.Request, name string) (int64, error) {
	v := r.PathValue(name)
	id, err := strconv.ParseInt(v, 10, 64)
	if err != nil || id <= 0 {
		return 0, errorf(http.StatusBadRequest, "bad_id", "%s %q is not an id (a positive integer)", name, v)
	}
	return id, nil
}
