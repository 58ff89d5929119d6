// @ts-check
// Generated from Go package invigil/contract (contract.JavaScript); do not
// edit. `go test ./web -run TestContractModule -update` writes it again.

// Where the SFU's signaling WebSocket is mounted.
export const SIGNALING_PATH = "/sfu/ws";

// The roles a staff account can have.
export const STAFF_ROLES = Object.freeze(["admin","assistant","examiner","proctor"]);

// Every violation type, in the server's order.
export const VIOLATION_TYPES = Object.freeze(["face_off_screen","extra_person","head_turn","hands_out_of_view","distance","camera_blocked","talking","microphone_off","phone_call","left_page","second_screen","headphones"]);

// The types a room's policy turns on and off (the camera's and the microphone's).
export const POLICY_TYPES = Object.freeze(["face_off_screen","extra_person","head_turn","hands_out_of_view","distance","camera_blocked","talking","microphone_off","phone_call"]);

// The types the candidate's page reports itself.
export const BROWSER_TYPES = Object.freeze(["left_page","second_screen","headphones"]);

// What notices each type: camera, microphone or browser.
export const VIOLATION_SOURCES = Object.freeze({"camera_blocked":"camera","distance":"camera","extra_person":"camera","face_off_screen":"camera","hands_out_of_view":"camera","head_turn":"camera","headphones":"browser","left_page":"browser","microphone_off":"microphone","phone_call":"camera","second_screen":"browser","talking":"microphone"});

// Every live event type an event stream carries.
export const EVENT_TYPES = Object.freeze(["candidate_added","stage_changed","call_ringing","call_started","call_ended","violation_opened","violation_closed","violation_reviewed","score_published","help_requested","presence"]);
