package stage

import "testing"

func TestGuidePathIsAllowed(t *testing.T) {
	path := []Stage{Invited, DeviceCheckWaiting, DeviceCheckCall, DeviceChecked, InterviewWaiting,
		InterviewCall, InterviewDone, RestRoom, Left}
	for i := 1; i < len(path); i++ {
		if err := CheckMove(path[i-1], path[i]); err != nil {
			t.Errorf("guide step refused: %v", err)
		}
	}
}

func TestRefusedMoves(t *testing.T) {
	for _, m := range [][2]Stage{
		{Invited, InterviewWaiting},         // interview before the device check
		{DeviceCheckWaiting, InterviewCall}, // skipping the device check
		{InterviewDone, InterviewWaiting},   // a second interview
		{Left, RestRoom},                    // coming back after leaving
		{RestRoom, InterviewCall},           // a call straight from the rest room
		{"bogus", Left},
		{Invited, "bogus"},
	} {
		if err := CheckMove(m[0], m[1]); err == nil {
			t.Errorf("%s → %s allowed, want refused", m[0], m[1])
		}
	}
}

func TestEveryStageHasMessagesAndAnExit(t *testing.T) {
	for _, s := range All {
		m := Message(s)
		if m.ZH == "" || m.EN == "" || m.ZH == string(s) {
			t.Errorf("%s: no message", s)
		}
		if s != Left && !CanMove(s, Left) {
			t.Errorf("%s: cannot leave", s)
		}
	}
	if got := Message(DeviceChecked).ZH; got != "您已调试完毕，请再次输入邀请码进入面试等待室。" {
		t.Errorf("device-checked message %q is not the guide's", got)
	}
	if got := Message(InterviewDone).ZH; got != "您的面试已结束!" {
		t.Errorf("interview-done message %q is not the guide's", got)
	}
}
