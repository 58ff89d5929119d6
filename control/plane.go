// Package control is the control plane's logic: who may do what to whom,
// the candidate's stage machine, calls, scores, violations and the media
// grants, each decision with its events and audit entries in one store
// transaction. It speaks Go, not HTTP: operations take an Actor and IDs
// and answer rows or an *Error whose Kind the transport (package api) maps
// to its own answers. The media plane reaches it through the interfaces
// here, which cmd adapts: control imports neither net/http nor api nor
// sfu.
package control

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"invigil/contract"
	"invigil/detectors/rules"
	"invigil/stage"
	"invigil/store"
)

// MediaPlacement finds the media node of an exam.
type MediaPlacement interface {
	// SignallingURL is the absolute ws:// or wss:// URL of the SFU the
	// exam's rooms live on, placing the exam on a node first if it has
	// none. An error means no node can take it now.
	SignallingURL(ctx context.Context, examID int64) (string, error)
}

// MediaControl is what the control plane asks of the SFU: connect staff and
// candidates for calls and remove those who leave. cmd adapts the SFU to it
// (the control plane and sfu never import each other).
type MediaControl interface {
	// Subscribe makes subscriber receive publisher's tracks; subscriber
	// must be connected.
	Subscribe(subscriber, publisher string) error
	Unsubscribe(subscriber, publisher string) error
	// Kick ends identity's media session.
	Kick(identity string) error
}

// Analysis is what the control plane asks of the vision pipeline.
type Analysis interface {
	SetPolicy(identity string, pol rules.Policy) error
	Calibrate(identity string, until time.Time) error
	Forget(identity string)
	// Latest is the newest analyzed frame of identity's camera.
	Latest(identity string) (AnalysisSnapshot, bool)
}

// AnalysisSnapshot is the live analysis the device check shows the
// candidate.
type AnalysisSnapshot struct {
	At         time.Time `json:"at"`
	Width      int       `json:"width"`
	Height     int       `json:"height"`
	Faces      int       `json:"faces"`
	DistanceCM float64   `json:"distance_cm"`
	YawDeg     float64   `json:"yaw_deg"`
	PitchDeg   float64   `json:"pitch_deg"`
	Hands      int       `json:"hands"`
	Brightness float64   `json:"brightness"`
	Sharpness  float64   `json:"sharpness"`
	// TargetDistanceCM is the distance the rules want (the guide's 50 cm);
	// Calibrating is true while the device-check calibration collects.
	TargetDistanceCM float64 `json:"target_distance_cm"`
	Calibrating      bool    `json:"calibrating"`
	// Checks are the pipeline's own judgements under the candidate's policy,
	// so the device check and the violations never disagree.
	Checks AnalysisChecks `json:"checks"`
}

// AnalysisChecks is what the device check shows as passed or not.
type AnalysisChecks struct {
	Face     bool `json:"face"`
	Distance bool `json:"distance"`
	Light    bool `json:"light"`
	Alone    bool `json:"alone"`
}

// EventNotifier carries "an exam's event log grew" to the other control
// nodes. Only the nudge travels: every node's streams read the events
// themselves from the shared store, so each client gets each event once
// and in order, whichever node wrote it, and a lost nudge only delays a
// stream until its next keep-alive read.
type EventNotifier interface {
	// EventsCommitted is called after a commit, on the caller's
	// goroutine, so it must not block: seq is the exam's newest event
	// sequence number, or 0 for "no new event, but check again who may
	// watch" (staff taken off the exam).
	EventsCommitted(exam, seq int64)
}

// Options configures the control plane.
type Options struct {
	Store *store.Store
	// DataDir is where evidence images and recordings live; stored paths
	// are relative to it.
	DataDir string
	// Node is this node's name among several: a violation's evidence
	// written here is stored as this node's. Empty: one process.
	Node string
	// Media and Analysis may be nil (a server without media, tests of the
	// flow): calls then connect nobody and policies go nowhere.
	Media    MediaControl
	Analysis Analysis
	// Placement, if set, says which media node an exam's rooms live on;
	// nil: this process's own SFU.
	Placement MediaPlacement
	// Events, when set, hears of every commit that added events, so that
	// other control nodes sharing the store wake their event streams too.
	Events EventNotifier
	// EarlyLogin is how long before an exam's start candidates may log in
	// when the exam does not say (default 45 minutes).
	EarlyLogin time.Duration
	// RiskWeights are the points per violation type (default: see
	// defaultRiskWeights); a type not listed weighs 10.
	RiskWeights map[string]float64
	// Now is the clock (default time.Now); tests move it.
	Now func() time.Time
	// Logger defaults to slog.Default().
	Logger *slog.Logger
	// ViolationStored, if set, hears of each violation stored (by type),
	// from the media plane or the browser: the transport's metrics count
	// them, so the plane needs no metrics library of its own.
	ViolationStored func(typ string)
}

// defaultRiskWeights are config.DefaultRiskWeights' values, for a plane
// built without configuration (tests, tools).
func defaultRiskWeights() map[string]float64 {
	return map[string]float64{"extra_person": 40, "camera_blocked": 30, "face_off_screen": 25,
		"head_turn": 10, "hands_out_of_view": 10, "distance": 5, "talking": 30, "microphone_off": 20, "phone_call": 35,
		"left_page": 15, "second_screen": 20, "headphones": 20}
}

// Plane is the control plane: its rules over the store, and what it tells
// the media plane.
type Plane struct {
	opts       Options
	st         *store.Store
	log        *slog.Logger
	now        func() time.Time
	watchers   *watchers
	online     sync.Map // SFU identity → true while connected
}

// New builds a plane.
func New(opts Options) (*Plane, error) {
	if opts.Store == nil {
		return nil, errors.New("control: Options.Store is nil")
	}
	if opts.DataDir == "" {
		return nil, errors.New("control: Options.DataDir is empty")
	}
	if opts.EarlyLogin == 0 {
		opts.EarlyLogin = 45 * time.Minute
	}
	if opts.RiskWeights == nil {
		opts.RiskWeights = defaultRiskWeights()
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.ViolationStored == nil {
		opts.ViolationStored = func(string) {}
	}
	return &Plane{opts: opts, st: opts.Store, log: opts.Logger, now: opts.Now, watchers: newWatchers()}, nil
}

// SFU identities. The SFU sees only these strings; the control
// plane maps them back.
func candidateIdentity(id int64) string { return contract.CandidateIdentity(id) }
func staffIdentity(id int64) string     { return contract.StaffIdentity(id) }

// PolicyFor is the detection policy of room in exam: the defaults with the
// admin's override on top.
func PolicyFor(exam store.Exam, room string) (rules.Policy, error) {
	if o := exam.Policies[room]; len(o) > 0 {
		return rules.ParsePolicyOverride(room, o)
	}
	return rules.DefaultPolicy(room)
}

// ApplyStage tells the media plane what a candidate's stage means: the
// room's detection policy, or the end of their media session.
func (p *Plane) ApplyStage(ctx context.Context, cand store.Candidate) {
	identity := candidateIdentity(cand.ID)
	if cand.Stage == stage.Left {
		if p.opts.Media != nil {
			if err := p.opts.Media.Kick(identity); err != nil {
				p.log.Debug("kick a candidate who left", "candidate", cand.ID, "err", err)
			}
		}
		if p.opts.Analysis != nil {
			p.opts.Analysis.Forget(identity)
		}
		return
	}
	room := cand.Stage.Room()
	if room == "" || p.opts.Analysis == nil {
		return
	}
	exam, err := p.st.Exam(ctx, cand.ExamID)
	if err != nil {
		p.log.Error("load exam for a candidate's policy", "candidate", cand.ID, "err", err)
		return
	}
	pol, err := PolicyFor(exam, room)
	if err != nil {
		p.log.Error("exam policy override no longer parses; keeping the previous policy", "exam", exam.ID, "room", room, "err", err)
		return
	}
	if cand.Stage == stage.Mock {
		// The device check asks the candidate to speak to see the
		// microphone's level ("请说话查看音量"): talking there is what is
		// asked for, not a violation. (PolicyFor made pol's rules afresh.)
		if r, ok := pol.Rules[rules.Talking]; ok {
			r.Enabled = false
			pol.Rules[rules.Talking] = r
		}
	}
	if err := p.opts.Analysis.SetPolicy(identity, pol); err != nil {
		p.log.Error("set a candidate's policy", "candidate", cand.ID, "room", room, "err", err)
	}
}

// Update runs fn in a write transaction and, after the commit, wakes the
// event streams of the exams whose logs grew, here and on the other
// nodes. Every write that appends events goes through it.
func (p *Plane) Update(ctx context.Context, fn func(ctx context.Context, tx *store.Tx) error) error {
	events, err := p.st.Update(ctx, fn)
	if err != nil {
		return err
	}
	p.publish(events)
	return nil
}

func (p *Plane) publish(events []store.Event) {
	if len(events) == 1 { // the usual commit: no map
		p.Nudge(events[0].ExamID, events[0].Seq)
		return
	}
	newest := map[int64]int64{}
	for _, e := range events {
		newest[e.ExamID] = max(newest[e.ExamID], e.Seq)
	}
	for exam, seq := range newest {
		p.Nudge(exam, seq)
	}
}

// Nudge wakes this node's watchers of an exam and tells the other nodes
// (seq 0: no new event, but who may watch changed).
func (p *Plane) Nudge(exam, seq int64) {
	p.watchers.notify(exam)
	if p.opts.Events != nil {
		p.opts.Events.EventsCommitted(exam, seq)
	}
}

// WakeWatchers wakes this node's watchers of an exam, which then read
// what is new from the store: another node committed events there (or
// changed who may watch).
func (p *Plane) WakeWatchers(exam int64) { p.watchers.notify(exam) }

// WakeAllWatchers wakes every watcher of this node, for when nudges from
// other nodes may have been lost.
func (p *Plane) WakeAllWatchers() { p.watchers.notifyAll() }

// Watch subscribes to an exam's commits: wake receives (coalesced) after
// each commit that added events to the exam or changed who may watch it.
// Events themselves live in the store, so a watcher only needs the nudge
// to read what is new. cancel ends the subscription.
func (p *Plane) Watch(exam int64) (wake <-chan struct{}, cancel func()) {
	return p.watchers.subscribe(exam)
}

// watchers wakes the event streams of an exam after a commit.
type watchers struct {
	mu   sync.Mutex
	subs map[int64]map[chan struct{}]struct{}
}

func newWatchers() *watchers { return &watchers{subs: map[int64]map[chan struct{}]struct{}{}} }

func (h *watchers) subscribe(exam int64) (<-chan struct{}, func()) {
	ch := make(chan struct{}, 1)
	h.mu.Lock()
	if h.subs[exam] == nil {
		h.subs[exam] = map[chan struct{}]struct{}{}
	}
	h.subs[exam][ch] = struct{}{}
	h.mu.Unlock()
	return ch, func() {
		h.mu.Lock()
		delete(h.subs[exam], ch)
		if len(h.subs[exam]) == 0 {
			delete(h.subs, exam)
		}
		h.mu.Unlock()
	}
}

func (h *watchers) notify(exam int64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for ch := range h.subs[exam] {
		select {
		case ch <- struct{}{}:
		default: // already nudged; it will read everything new
		}
	}
}

func (h *watchers) notifyAll() {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, subs := range h.subs {
		for ch := range subs {
			select {
			case ch <- struct{}{}:
			default:
			}
		}
	}
}
