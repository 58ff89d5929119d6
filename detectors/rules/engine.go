package rules

import (
	"fmt"
	"math"
)

// Violation is one interval during which a rule's condition held.
type Violation struct {
	ID   int  `json:"id"`
	Type Type `json:"type"`
	// StartMS is when the condition began (not when the minimum duration
	// elapsed); EndMS is when it became clear, 0 while Open.
	StartMS int64 `json:"start_ms"`
	EndMS   int64 `json:"end_ms"`
	Open    bool  `json:"open"`
	// OpenedMS is the frame at which the violation opened: the evidence
	// frame.
	OpenedMS int64 `json:"opened_ms"`
	// Confidence is the peak confidence over the interval, in [0, 1].
	Confidence float64 `json:"confidence"`
	// Reason says in English why it opened ("2 faces in view"); pages
	// translate by Type.
	Reason string `json:"reason"`
	// Details are the numbers behind the onset (face_count, yaw_deg, …).
	Details map[string]float64 `json:"details"`
}

// EventKind says whether a violation opened or closed.
type EventKind string

const (
	Opened EventKind = "opened"
	Closed EventKind = "closed"
)

// Event reports a change of one violation.
type Event struct {
	Kind      EventKind
	Violation Violation
}

// Engine applies a policy's rules to one candidate's observations, in
// time order. It is not safe for concurrent use: each candidate has one.
type Engine struct {
	policy Policy
	rules  []rule
	nextID int
	turns  turnCounter
	lastT  int64
	// The audio rules run on their own clock (the microphone's chunks),
	// which interleaves with the frames' rather than following it.
	audioT int64
	// speech holds the speech heard within speechHorizon of the newest
	// chunk: the talking window, and the hand-at-ear span phone_call asks
	// about.
	speech []speechSpan
	// lastSound is the end of the last chunk above the silence floor
	// (math.MinInt64: none yet).
	lastSound int64
}

// silenceGrace is how long the microphone must be digitally silent before
// it counts as off: the pauses between words of a clean recording are
// silent too, and must neither open nor hold microphone_off.
const silenceGrace = 1000

// AudioChunk is the speech detector's verdict on one stretch of the
// microphone's audio, on the candidate's stream clock.
type AudioChunk struct {
	TMS        int64 // start, milliseconds of stream time
	DurationMS int64
	Speech     bool
	RMS        float64 // full-scale root mean square level
}

type speechSpan struct{ start, end int64 }

type rule struct {
	typ          Type
	timing       Timing
	pendingSince int64 // -1 when the condition is not holding
	clearSince   int64 // -1 while the condition holds or nothing is open
	open         *Violation
	// need, when set, is the minimum duration of a condition that began
	// at since, as known at t (phone_call: shorter with speech heard).
	need func(since, t int64) int64
}

// verdict is one rule's reading of one observation.
type verdict struct {
	active     bool
	confidence float64
	reason     string
	details    map[string]float64
}

// NewEngine builds an engine for a validated policy.
func NewEngine(p Policy) (*Engine, error) {
	if err := p.Validate(); err != nil {
		return nil, err
	}
	e := &Engine{policy: p, nextID: 1, lastT: math.MinInt64, audioT: math.MinInt64, lastSound: math.MinInt64}
	for _, t := range p.EnabledTypes() {
		r := rule{typ: t, timing: p.Rules[t], pendingSince: -1, clearSince: -1}
		if t == PhoneCall {
			r.need = e.phoneNeed
		}
		e.rules = append(e.rules, r)
	}
	e.turns = turnCounter{window: p.TurnWindowMS, threshold: p.TurnDeg}
	return e, nil
}

// Policy returns the engine's policy.
func (e *Engine) Policy() Policy { return e.policy }

// Observe feeds one observation and returns the violations that opened or
// closed with it. Observations older than the last one are ignored, so a
// reordered frame cannot make a violation flap.
func (e *Engine) Observe(o *Observation) []Event {
	if o.TMS < e.lastT {
		return nil
	}
	e.lastT = o.TMS
	if f, ok := o.MainFace(); ok {
		e.turns.observe(o.TMS, f.YawDeg)
	} else {
		// A lost face is no evidence of the head turning back: a profile
		// that flickers in and out must not count as many turns.
		e.turns.expire(o.TMS)
	}
	blocked := e.blocked(o)
	var events []Event
	for i := range e.rules {
		r := &e.rules[i]
		if IsAudio(r.typ) {
			continue // ObserveAudio and AudioMissing step them
		}
		v := e.evaluate(r.typ, o, blocked)
		ev, ok := e.step(r, o.TMS, v)
		if !ok {
			continue
		}
		if r.typ == PhoneCall && ev.Kind == Opened {
			e.describeCall(r, &ev, o.TMS)
		}
		events = append(events, ev)
	}
	return events
}

// Finish closes every open violation at tMS (end of stream or session).
func (e *Engine) Finish(tMS int64) []Event {
	var events []Event
	for i := range e.rules {
		r := &e.rules[i]
		if r.open == nil {
			continue
		}
		end := tMS
		if r.clearSince >= 0 {
			end = r.clearSince
		}
		// An audio violation may have opened on the microphone's clock
		// after the last frame that tMS names.
		end = max(end, r.open.OpenedMS)
		events = append(events, e.close(r, end))
	}
	return events
}

// NextDeadline is the earliest stream time at which a rule changes state
// if every condition stays as last observed: a pending condition opening
// after its minimum duration, or a clearing one closing after its clear
// duration. ok is false when no rule is pending or clearing. The pipeline
// analyses a still picture at a low rate and looks again at this time, so
// the rules' timings hold without analyzing every frame in between.
func (e *Engine) NextDeadline() (tMS int64, ok bool) {
	for _, r := range e.rules {
		var at int64
		switch {
		case r.open == nil && r.pendingSince >= 0:
			at = r.pendingSince + r.minMS(r.pendingSince, e.lastT)
		case r.open != nil && r.clearSince >= 0:
			at = r.clearSince + r.timing.ClearMS
		default:
			continue
		}
		if !ok || at < tMS {
			tMS, ok = at, true
		}
	}
	return tMS, ok
}

// OpenViolations lists the currently open violations.
func (e *Engine) OpenViolations() []Violation {
	var out []Violation
	for _, r := range e.rules {
		if r.open != nil {
			out = append(out, *r.open)
		}
	}
	return out
}

func (e *Engine) step(r *rule, t int64, v verdict) (Event, bool) { return e.stepSince(r, t, v, -1) }

// stepSince is step for a condition that began at since (when ≥ 0) rather
// than at t: a windowed or absence condition is found true only after it
// began.
func (e *Engine) stepSince(r *rule, t int64, v verdict, since int64) (Event, bool) {
	if v.active {
		r.clearSince = -1
		if r.open != nil {
			r.open.Confidence = math.Max(r.open.Confidence, v.confidence)
			return Event{}, false
		}
		if r.pendingSince < 0 {
			r.pendingSince = t
			if since >= 0 && since < t {
				r.pendingSince = since
			}
		}
		if t-r.pendingSince < r.minMS(r.pendingSince, t) {
			return Event{}, false
		}
		r.open = &Violation{
			ID: e.nextID, Type: r.typ, StartMS: r.pendingSince, OpenedMS: t, Open: true,
			Confidence: v.confidence, Reason: v.reason, Details: v.details,
		}
		e.nextID++
		return Event{Kind: Opened, Violation: *r.open}, true
	}
	r.pendingSince = -1
	if r.open == nil {
		return Event{}, false
	}
	if r.clearSince < 0 {
		r.clearSince = t
	}
	if t-r.clearSince < r.timing.ClearMS {
		return Event{}, false
	}
	return e.close(r, r.clearSince), true
}

// minMS is how long the rule's condition must hold, having begun at since.
func (r *rule) minMS(since, t int64) int64 {
	if r.need != nil {
		return r.need(since, t)
	}
	return r.timing.MinMS
}

func (e *Engine) close(r *rule, end int64) Event {
	v := *r.open
	v.Open = false
	v.EndMS = end
	r.open = nil
	r.clearSince = -1
	return Event{Kind: Closed, Violation: v}
}

// ObserveAudio feeds the microphone's chunks, in time order, to the audio
// rules and returns the violations that opened or closed. Chunks older
// than the last one seen are ignored.
func (e *Engine) ObserveAudio(chunks []AudioChunk) []Event {
	var events []Event
	for _, c := range chunks {
		if c.TMS < e.audioT {
			continue
		}
		e.audioT = c.TMS
		end := c.TMS + max(c.DurationMS, 0)
		if c.RMS >= e.policy.SilenceRMS {
			e.lastSound = end
		} else if e.lastSound == math.MinInt64 {
			e.lastSound = c.TMS // silent from the track's first chunk
		}
		if c.Speech {
			if n := len(e.speech); n > 0 && e.speech[n-1].end >= c.TMS {
				e.speech[n-1].end = max(e.speech[n-1].end, end)
			} else {
				e.speech = append(e.speech, speechSpan{c.TMS, end})
			}
		}
		e.forgetSpeech(end)
		for i := range e.rules {
			r := &e.rules[i]
			var v verdict
			var since int64
			switch r.typ {
			case Talking:
				v, since = e.talking(end)
			case MicrophoneOff:
				v = e.silent(c, end)
				since = e.lastSound
			default:
				continue
			}
			if ev, ok := e.stepSince(r, end, v, since); ok {
				events = append(events, ev)
			}
		}
	}
	return events
}

// AudioMissing tells the audio rules at stream time tMS (a frame's) that
// the candidate publishes no microphone track, or that it ended, since
// sinceMS: microphone_off holds and nobody is heard talking.
func (e *Engine) AudioMissing(tMS, sinceMS int64) []Event {
	if tMS < e.audioT {
		return nil
	}
	e.audioT = tMS
	var events []Event
	for i := range e.rules {
		r := &e.rules[i]
		var v verdict
		var since int64
		switch r.typ {
		case Talking:
			v, since = e.talking(tMS)
		case MicrophoneOff:
			v = verdict{active: true, confidence: 1, reason: "no microphone track",
				details: map[string]float64{"audio_track": 0}}
			since = max(sinceMS, 0)
		default:
			continue
		}
		if ev, ok := e.stepSince(r, tMS, v, since); ok {
			events = append(events, ev)
		}
	}
	return events
}

// talking sums the speech heard within the window ending at t.
func (e *Engine) talking(t int64) (verdict, int64) {
	p := &e.policy
	from := t - p.TalkWindowMS
	var sum int64
	first := int64(-1)
	for _, s := range e.speech {
		if s.end <= from || s.start >= t {
			continue
		}
		start := max(s.start, from)
		sum += min(s.end, t) - start
		if first < 0 {
			first = start
		}
	}
	need := p.Rules[Talking].MinMS
	if sum <= 0 || sum < need {
		return verdict{}, -1
	}
	return verdict{active: true, confidence: clamp01(0.5 + 0.5*float64(sum)/float64(p.TalkWindowMS)),
		reason:  fmt.Sprintf("speech for %.1f s within %d s", float64(sum)/1000, p.TalkWindowMS/1000),
		details: map[string]float64{"speech_ms": float64(sum), "window_ms": float64(p.TalkWindowMS)}}, first
}

// speechHorizon is how far back speech is remembered: the talking window,
// or the longest a hand can be at the ear before phone_call opens without
// speech, whichever is longer.
func (e *Engine) speechHorizon() int64 {
	return max(e.policy.TalkWindowMS, e.policy.PhoneSilentMS) + 1000
}

// forgetSpeech drops the speech that ended beyond the horizon before t.
func (e *Engine) forgetSpeech(t int64) {
	cut := 0
	for cut < len(e.speech) && e.speech[cut].end <= t-e.speechHorizon() {
		cut++
	}
	if cut > 0 {
		e.speech = append(e.speech[:0], e.speech[cut:]...)
	}
}

// speechBetween sums the speech heard in [from, to).
func (e *Engine) speechBetween(from, to int64) int64 {
	var sum int64
	for _, s := range e.speech {
		if a, b := max(s.start, from), min(s.end, to); b > a {
			sum += b - a
		}
	}
	return sum
}

// phoneNeed is phone_call's minimum duration for a hand at the ear since
// since, as known at t: the rule's min_ms once PhoneSpeechMS of speech was
// heard in that time, PhoneSilentMS otherwise. Speech is read from the
// microphone's chunks received so far, which may trail the frames a
// little: a call then opens on a later frame.
func (e *Engine) phoneNeed(since, t int64) int64 {
	p := &e.policy
	if e.speechBetween(since, t) >= max(p.PhoneSpeechMS, 1) {
		return p.Rules[PhoneCall].MinMS
	}
	return p.PhoneSilentMS
}

// describeCall completes an opened phone_call with the speech heard.
func (e *Engine) describeCall(r *rule, ev *Event, t int64) {
	sp := e.speechBetween(r.open.StartMS, t)
	r.open.Details["speech_ms"] = float64(sp)
	if sp >= max(e.policy.PhoneSpeechMS, 1) {
		r.open.Reason += " while speaking"
	}
	ev.Violation = *r.open
}

// silent reads microphone_off at chunk c ending at t: digital silence
// since lastSound, for longer than silenceGrace.
func (e *Engine) silent(c AudioChunk, t int64) verdict {
	if t-e.lastSound < silenceGrace {
		return verdict{}
	}
	return verdict{active: true, confidence: 1, reason: "microphone silent (muted or dead)",
		details: map[string]float64{"audio_track": 1, "rms": c.RMS}}
}

func (e *Engine) blocked(o *Observation) bool { return e.policy.Blocked(o) }

func clamp01(x float64) float64 { return math.Max(0, math.Min(1, x)) }

// evaluate reads one rule's condition. Conditions that another violation
// already explains stay silent: a blocked camera hides the face and the
// hands, and a candidate who left takes the hands along, so those count
// as one event rather than three.
func (e *Engine) evaluate(t Type, o *Observation, blocked bool) verdict {
	p := &e.policy
	face, hasFace := o.MainFace()
	switch t {
	case CameraBlocked:
		if !blocked {
			return verdict{}
		}
		dark := clamp01(1 - o.Brightness/math.Max(p.DarkBrightness, 1))
		flat := clamp01(1 - o.Contrast/math.Max(p.UniformContrast, 1))
		blur := clamp01(1 - o.Sharpness/math.Max(p.BlurSharpness, 0.1))
		reason := "camera blocked or dark"
		switch {
		case o.Brightness >= p.DarkBrightness && o.Contrast >= p.UniformContrast:
			reason = "camera covered or out of focus"
		case o.Brightness >= p.DarkBrightness:
			reason = "camera shows a uniform picture"
		}
		return verdict{true, math.Max(0.5, math.Max(dark, math.Max(flat, blur))), reason,
			map[string]float64{"brightness": round1(o.Brightness), "contrast": round1(o.Contrast), "sharpness": round1(o.Sharpness)}}

	case FaceOffScreen:
		if blocked {
			return verdict{}
		}
		if !hasFace {
			return verdict{true, 1, "no face in view", map[string]float64{"face_count": 0}}
		}
		frac := o.VisibleFraction(face)
		if frac < p.MinVisibleFraction {
			return verdict{true, clamp01(1 - frac), fmt.Sprintf("face %.0f%% outside the frame", 100*(1-frac)),
				map[string]float64{"face_count": float64(len(o.Faces)), "visible_fraction": round2(frac)}}
		}
		return verdict{}

	case ExtraPerson:
		extra, peak := p.ExtraFaces(o)
		if extra == 0 {
			return verdict{}
		}
		return verdict{true, peak, fmt.Sprintf("%d faces in view", extra+1),
			map[string]float64{"face_count": float64(extra + 1)}}

	case HeadTurn:
		if !hasFace {
			return verdict{}
		}
		d := map[string]float64{"yaw_deg": round1(face.YawDeg), "pitch_deg": round1(face.PitchDeg)}
		yawOver := math.Abs(face.YawDeg) - p.YawLimitDeg
		pitchOver := math.Abs(face.PitchDeg) - p.PitchLimitDeg
		if yawOver > 0 || pitchOver > 0 {
			over := math.Max(yawOver/p.YawLimitDeg, pitchOver/p.PitchLimitDeg)
			reason := fmt.Sprintf("head turned %.0f°", face.YawDeg)
			if pitchOver > yawOver*p.PitchLimitDeg/p.YawLimitDeg {
				reason = fmt.Sprintf("head tilted %.0f°", face.PitchDeg)
			}
			return verdict{true, clamp01(0.6 + over), reason, d}
		}
		if n := e.turns.count(); n >= p.TurnCount {
			d["turns"] = float64(n)
			return verdict{true, clamp01(0.5 + 0.1*float64(n-p.TurnCount+1)),
				fmt.Sprintf("looked around %d times in %ds", n, p.TurnWindowMS/1000), d}
		}
		return verdict{}

	case HandsOutOfView:
		if !o.HandsChecked || !hasFace || blocked || p.RequiredHands == 0 {
			return verdict{}
		}
		visible := p.VisibleHands(o)
		if visible >= p.RequiredHands {
			return verdict{}
		}
		return verdict{true, clamp01(0.5 + 0.5*float64(p.RequiredHands-visible)/float64(p.RequiredHands)),
			fmt.Sprintf("%d of %d hands visible", visible, p.RequiredHands),
			map[string]float64{"hands_visible": float64(visible), "hands_required": float64(p.RequiredHands)}}

	case Distance:
		if !hasFace || face.DistanceCM <= 0 {
			return verdict{}
		}
		off := math.Abs(face.DistanceCM-p.DistanceCM) - p.DistanceToleranceCM
		if off <= 0 {
			return verdict{}
		}
		reason := fmt.Sprintf("too close to the camera (%.0f cm)", face.DistanceCM)
		if face.DistanceCM > p.DistanceCM {
			reason = fmt.Sprintf("too far from the camera (%.0f cm)", face.DistanceCM)
		}
		return verdict{true, clamp01(0.5 + off/p.DistanceCM), reason,
			map[string]float64{"distance_cm": round1(face.DistanceCM), "target_cm": p.DistanceCM}}

	case PhoneCall:
		if blocked {
			return verdict{}
		}
		n, ok := p.HandAtEar(o)
		if !ok {
			return verdict{}
		}
		return verdict{true, clamp01(0.5 + 0.5*float64(n)/21), "hand held at the ear",
			map[string]float64{"hand_points_at_face": float64(n)}}
	}
	return verdict{}
}

func round1(x float64) float64 { return math.Round(x*10) / 10 }
func round2(x float64) float64 { return math.Round(x*100) / 100 }

// turnCounter counts head turns: each time |yaw| rises past the threshold
// after having been back within threshold−5° (so jitter around the
// threshold is not counted twice).
type turnCounter struct {
	window    int64
	threshold float64
	turned    bool
	times     []int64
}

func (c *turnCounter) observe(t int64, yaw float64) {
	a := math.Abs(yaw)
	switch {
	case !c.turned && a > c.threshold:
		c.turned = true
		c.times = append(c.times, t)
	case c.turned && a < c.threshold-5:
		c.turned = false
	}
	c.expire(t)
}

// expire forgets turns older than the window.
func (c *turnCounter) expire(t int64) {
	cut := 0
	for cut < len(c.times) && t-c.times[cut] > c.window {
		cut++
	}
	c.times = c.times[cut:]
}

func (c *turnCounter) count() int { return len(c.times) }
