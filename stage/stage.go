// Package stage is the candidate's path through an interview day, as the
// organisers' candidate guide describes it: which stages exist, which moves
// between them are allowed, and what the candidate is told in each.
package stage

import "fmt"

// Stage is where a candidate is in the flow. The values are API names:
// stored, sent in events and shown by the pages; never rename one.
type Stage string

const (
	// Invited: codes issued, never logged in.
	Invited            Stage = "invited"
	Mock               Stage = "mock"
	DeviceCheckWaiting Stage = "device_check_waiting"
	DeviceCheckCall    Stage = "device_check_call"
	DeviceChecked      Stage = "device_checked"
	InterviewWaiting   Stage = "interview_waiting"
	InterviewCall      Stage = "interview_call"
	InterviewDone      Stage = "interview_done"
	RestRoom           Stage = "rest_room"
	Left               Stage = "left"
)

// All lists the stages in the guide's order.
var All = []Stage{Invited, Mock, DeviceCheckWaiting, DeviceCheckCall, DeviceChecked,
	InterviewWaiting, InterviewCall, InterviewDone, RestRoom, Left}

// Valid reports whether s is a known stage.
func (s Stage) Valid() bool {
	_, ok := moves[s]
	return ok
}

// moves is the state machine. Besides the guide's straight line it allows
// what real days need: practice again, a call that drops back to waiting,
// the rest room as a parking place before one's turn (organizers park
// candidates there) and leaving from anywhere.
var moves = map[Stage][]Stage{
	Invited:            {Mock, DeviceCheckWaiting, RestRoom, Left},
	Mock:               {Mock, DeviceCheckWaiting, RestRoom, Left},
	DeviceCheckWaiting: {DeviceCheckCall, RestRoom, Left},
	DeviceCheckCall:    {DeviceChecked, DeviceCheckWaiting, Left},
	DeviceChecked:      {InterviewWaiting, RestRoom, Left},
	InterviewWaiting:   {InterviewCall, RestRoom, Left},
	InterviewCall:      {InterviewDone, InterviewWaiting, Left},
	InterviewDone:      {RestRoom, Left},
	RestRoom:           {DeviceCheckWaiting, InterviewWaiting, Left},
	Left:               {},
}

// CanMove reports whether a candidate in from may move to to.
func CanMove(from, to Stage) bool {
	for _, s := range moves[from] {
		if s == to {
			return true
		}
	}
	return false
}

// CheckMove is CanMove with an error that says what was refused.
func CheckMove(from, to Stage) error {
	if !from.Valid() {
		return fmt.Errorf("unknown stage %q", from)
	}
	if !to.Valid() {
		return fmt.Errorf("unknown stage %q", to)
	}
	if !CanMove(from, to) {
		return fmt.Errorf("a candidate in %s cannot move to %s", from, to)
	}
	return nil
}

// Waiting reports whether s is a waiting room (a call may be placed).
func (s Stage) Waiting() bool { return s == DeviceCheckWaiting || s == InterviewWaiting }

// InCall reports whether s is a call with staff.
func (s Stage) InCall() bool { return s == DeviceCheckCall || s == InterviewCall }

// Room is the detection policy that applies in s: "waiting", "interview" or
// "rest_room"; "" where the candidate is not watched (not yet in, or gone).
func (s Stage) Room() string {
	switch s {
	case Mock, DeviceCheckWaiting, DeviceChecked, InterviewWaiting, InterviewDone:
		return "waiting"
	case DeviceCheckCall, InterviewCall:
		return "interview"
	case RestRoom:
		return "rest_room"
	}
	return ""
}

// Text is a message in both UI languages.
type Text struct {
	ZH string `json:"zh"`
	EN string `json:"en"`
}

// Message is what the candidate page says in s. The Chinese sentences of
// the device check's end and the interview's end are the guide's own words.
func Message(s Stage) Text {
	switch s {
	case Invited:
		return Text{"请输入 6 位邀请码。", "Enter your 6-digit invitation code."}
	case Mock:
		return Text{"这是模拟练习环境，可以熟悉设备与流程。", "This is a practice session to get to know the devices and the steps."}
	case DeviceCheckWaiting:
		return Text{"您已进入设备调试等待室，请保持摄像头和麦克风开启，等待面试助理呼叫。",
			"You are in the device-check waiting room. Keep your camera and microphone on and wait for the interview assistant to call you."}
	case DeviceCheckCall:
		return Text{"面试助理正在与您调试设备，请按提示调整。", "The interview assistant is checking your devices with you; please follow their instructions."}
	case DeviceChecked:
		return Text{"您已调试完毕，请再次输入邀请码进入面试等待室。", "Your device check is complete. Enter your invitation code again to enter the interview waiting room."}
	case InterviewWaiting:
		return Text{"您已进入面试等待室，请保持坐姿端正、面部在画面中，等待考官呼叫。",
			"You are in the interview waiting room. Sit upright with your face in view and wait for the examiner to call you."}
	case InterviewCall:
		return Text{"面试进行中。", "Your interview is in progress."}
	case InterviewDone:
		return Text{"您的面试已结束!", "Your interview has ended!"}
	case RestRoom:
		return Text{"您已进入休息室：请保持摄像头和麦克风开启，双手放在桌面上，不要离开画面。",
			"You are in the rest room: keep your camera and microphone on, your hands on the desk, and stay in view."}
	case Left:
		return Text{"您已离开。感谢参加！", "You have left. Thank you for taking part!"}
	}
	return Text{string(s), string(s)}
}
