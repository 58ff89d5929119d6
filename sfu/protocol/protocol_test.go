package protocol_test

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"

	"github.com/pion/webrtc/v4"

	"invigil/sfu/protocol"
)

func TestParse(t *testing.T) {
	good := map[string]protocol.Message{
		`{"type":"join","token":"abc"}`:                             {Type: "join", Token: "abc"},
		` {"type":"join","token":"abc","resume_session":"S1"} `:     {Type: "join", Token: "abc", ResumeSession: "S1"},
		`{"type":"offer","sdp":"v=0"}`:                              {Type: "offer", SDP: "v=0"},
		`{"type":"subscribe","identity":"c1","extra":1}`:            {Type: "subscribe", Identity: "c1"},
		`{"type":"ping"}`:                                           {Type: "ping"},
		`{"type":"error","code":"limit","message":"full"}`:          {Type: "error", Code: "limit", Reason: "full"},
		`{"type":"candidate","target":"subscriber","candidate":{}}`: {Type: "candidate", Target: "subscriber", Candidate: &webrtc.ICECandidateInit{}},
	}
	for in, want := range good {
		got, err := protocol.Parse([]byte(in))
		if err != nil {
			t.Errorf("Parse(%s): %v", in, err)
			continue
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("Parse(%s) = %+v, want %+v", in, got, want)
		}
	}
	bad := map[string]string{
		``:                                    protocol.CodeBadJSON,
		`null`:                                protocol.CodeBadJSON,
		`"join"`:                              protocol.CodeBadJSON,
		`{"type":"join"`:                      protocol.CodeBadJSON,
		`{"type":1}`:                          protocol.CodeBadJSON,
		`{}`:                                  protocol.CodeUnknownType,
		`{"type":"JOIN","token":"x"}`:         protocol.CodeUnknownType,
		`{"type":"join"}`:                     protocol.CodeBadRequest,
		`{"type":"offer"}`:                    protocol.CodeBadRequest,
		`{"type":"candidate","candidate":{}}`: protocol.CodeBadRequest,
		`{"type":"candidate","target":"publisher"}`:    protocol.CodeBadRequest,
		`{"type":"subscribe"}`:                         protocol.CodeBadRequest,
		`{"type":"` + strings.Repeat("x", 1000) + `"}`: protocol.CodeUnknownType,
	}
	for in, code := range bad {
		_, err := protocol.Parse([]byte(in))
		if got := protocol.ErrorCode(err); got != code {
			t.Errorf("Parse(%.40s) error %v, want code %s", in, err, code)
		}
	}
}

func TestEncodeRefusesInvalid(t *testing.T) {
	if _, err := protocol.Encode(protocol.Message{Type: protocol.TypeOffer}); err == nil {
		t.Error("encoded an offer without SDP")
	}
	b, err := protocol.Encode(protocol.Message{Type: protocol.TypeJoined, SessionID: "S1", Connection: 2, Resumed: true})
	if err != nil {
		t.Fatal(err)
	}
	if string(b) != `{"type":"joined","session_id":"S1","resumed":true,"connection":2}` {
		t.Errorf("joined encodes as %s", b)
	}
}

// FuzzParse: Parse never panics, and whatever it accepts survives a round
// trip through Encode.
func FuzzParse(f *testing.F) {
	for _, s := range []string{
		`{"type":"join","token":"abc","resume_session":"S1"}`,
		`{"type":"offer","sdp":"v=0\r\n"}`,
		`{"type":"candidate","target":"publisher","candidate":{"candidate":"candidate:1 1 udp 1 127.0.0.1 5000 typ host","sdpMid":"0","sdpMLineIndex":0}}`,
		`{"type":"subscribe","identity":"c1"}`,
		`{"type":"joined","session_id":"S","participants":[{"identity":"a","tracks":[{"identity":"a","id":"t","stream_id":"a","kind":"video"}]}]}`,
		`{"type":"track_published","track":{"id":"x"}}`,
		`{"type":"error","code":"x"}`,
		`[]`, `{`, "\x00",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := protocol.Parse(data)
		if err != nil {
			if protocol.ErrorCode(err) == protocol.CodeInternal {
				t.Fatalf("parse error without a protocol code: %v", err)
			}
			return
		}
		b, err := protocol.Encode(m)
		if err != nil {
			t.Fatalf("accepted %q but cannot encode it: %v", data, err)
		}
		again, err := protocol.Parse(b)
		if err != nil {
			t.Fatalf("re-parse of %s: %v", b, err)
		}
		x, _ := json.Marshal(m)
		y, _ := json.Marshal(again)
		if string(x) != string(y) {
			t.Fatalf("round trip changed %s into %s", x, y)
		}
	})
}
