package main

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"invigil/api"
	"invigil/sfu"
	"invigil/store"
)

// The promise: a token signed with sfu_token_key (load tests) only ever
// carries a load-test identity in a room of its own. The same key cannot
// mint a candidate or a staff member, nor enter an exam's room, so it can
// neither push a real candidate off the SFU nor watch real candidates.
func TestLoadTokensCannotPoseAsAnyoneReal(t *testing.T) {
	dir := t.TempDir()
	st, err := store.Open(context.Background(), filepath.Join(dir, "invigil.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	ctl, err := api.New(api.Options{Registry: prometheus.NewRegistry(), Logger: discardLogger(),
		Control: &api.ControlOptions{Store: st, DataDir: dir}})
	if err != nil {
		t.Fatal(err)
	}
	key := []byte("load-test-key-0123456789abcdef")
	tokens := &controlTokens{api: ctl, hmac: &sfu.HMACTokens{Key: key}}
	issue := func(identity, role, room string) string {
		tok, err := sfu.HMACTokens{Key: key}.Issue(sfu.Grants{Identity: identity, Role: role, Room: room,
			CanPublish: true, CanSubscribe: true, Subscribe: []string{"*"}, ExpiresAt: time.Now().Add(time.Hour)})
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	for _, c := range []struct {
		identity, role, room string
		want                 string // "" when accepted, else a part of the refusal
	}{
		{"load-1", "candidate", "sim", ""},
		{"load-17", "proctor", "load-room", ""},
		{"candidate-1", "candidate", "exam-1", `identity "candidate-1"`},
		{"candidate-1", "candidate", "sim", `identity "candidate-1"`},
		{"staff-1", "proctor", "exam-1", `identity "staff-1"`},
		{"sim-1", "candidate", "sim", `identity "sim-1"`},
		{"load-", "candidate", "sim", `identity "load-"`},
		{"load-1", "proctor", "exam-1", `room "exam-1"`},
	} {
		g, err := tokens.Verify(t.Context(), issue(c.identity, c.role, c.room))
		switch {
		case c.want == "" && err != nil:
			t.Errorf("%s in %s: refused: %v", c.identity, c.room, err)
		case c.want == "" && g.Identity != c.identity:
			t.Errorf("%s in %s: granted identity %q", c.identity, c.room, g.Identity)
		case c.want != "" && err == nil:
			t.Errorf("%s in %s: accepted, want refused", c.identity, c.room)
		case c.want != "" && (!errors.Is(err, sfu.ErrBadToken) || !strings.Contains(err.Error(), c.want)):
			t.Errorf("%s in %s: refused with %v, want sfu.ErrBadToken naming %s", c.identity, c.room, err, c.want)
		}
	}
	// Without a configured key no load token is accepted at all.
	none := &controlTokens{api: ctl}
	if _, err := none.Verify(t.Context(), issue("load-1", "candidate", "sim")); err == nil {
		t.Error("a load token accepted by a server without sfu_token_key")
	}
}
