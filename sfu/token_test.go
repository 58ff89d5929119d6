package sfu_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"invigil/sfu"
)

func TestHMACTokens(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	tokens := sfu.HMACTokens{Key: testKey, Now: func() time.Time { return now }}
	g := sfu.Grants{Identity: "cand-1", Name: "张三", Role: "candidate", Room: "exam-1", CanPublish: true,
		CanSubscribe: true, Hidden: true, Subscribe: []string{"examiner-1"}, ExpiresAt: now.Add(time.Minute)}
	tok, err := tokens.Issue(g)
	if err != nil {
		t.Fatal(err)
	}
	got, err := tokens.Verify(t.Context(), tok)
	if err != nil {
		t.Fatal(err)
	}
	if got.Identity != g.Identity || got.Name != g.Name || got.Role != g.Role || got.Room != g.Room ||
		!got.CanPublish || !got.CanSubscribe || !got.Hidden || len(got.Subscribe) != 1 || !got.ExpiresAt.Equal(g.ExpiresAt) {
		t.Errorf("round trip: got %+v, want %+v", got, g)
	}

	payload, sig, _ := strings.Cut(tok, ".")
	flip := func(s string) string {
		b := []byte(s)
		if b[len(b)/2] == 'A' {
			b[len(b)/2] = 'B'
		} else {
			b[len(b)/2] = 'A'
		}
		return string(b)
	}
	late := tokens
	late.Now = func() time.Time { return now.Add(time.Minute) }
	otherKey := sfu.HMACTokens{Key: []byte("a different key of enough length")}
	bad := map[string]struct {
		v   sfu.HMACTokens
		tok string
	}{
		"empty":             {tokens, ""},
		"no dot":            {tokens, payload},
		"tampered payload":  {tokens, flip(payload) + "." + sig},
		"tampered sig":      {tokens, payload + "." + flip(sig)},
		"sig not base64":    {tokens, payload + ".!!!"},
		"expired":           {late, tok},
		"other key":         {otherKey, tok},
		"short server key":  {sfu.HMACTokens{Key: []byte("short")}, tok},
		"huge":              {tokens, strings.Repeat("a", 10000) + "." + sig},
		"payload not JSON":  {tokens, signed(t, tokens, "bm90IGpzb24")},
		"no identity":       {tokens, signed(t, tokens, b64(`{"room":"r","exp":1900000000}`))},
		"no expiry":         {tokens, signed(t, tokens, b64(`{"sub":"a","room":"r"}`))},
		"no room":           {tokens, signed(t, tokens, b64(`{"sub":"a","exp":1900000000}`))},
		"expiry wrong type": {tokens, signed(t, tokens, b64(`{"sub":"a","room":"r","exp":"soon"}`))},
	}
	for name, tc := range bad {
		if _, err := tc.v.Verify(t.Context(), tc.tok); !errors.Is(err, sfu.ErrBadToken) {
			t.Errorf("%s: Verify = %v, want ErrBadToken", name, err)
		}
	}

	for name, g := range map[string]sfu.Grants{
		"no identity": {Room: "r", ExpiresAt: now.Add(time.Hour)},
		"no room":     {Identity: "a", ExpiresAt: now.Add(time.Hour)},
		"no expiry":   {Identity: "a", Room: "r"},
	} {
		if _, err := tokens.Issue(g); err == nil {
			t.Errorf("Issue with %s succeeded", name)
		}
	}
	if _, err := (sfu.HMACTokens{Key: []byte("short")}).Issue(g); err == nil {
		t.Error("Issue with a short key succeeded")
	}
}

func FuzzVerifyToken(f *testing.F) {
	tokens := sfu.HMACTokens{Key: testKey}
	good, _ := tokens.Issue(sfu.Grants{Identity: "a", Room: "r", ExpiresAt: time.Now().Add(time.Hour)})
	f.Add(good)
	f.Add("")
	f.Add("a.b")
	f.Fuzz(func(t *testing.T, tok string) {
		g, err := tokens.Verify(t.Context(), tok)
		if err == nil && (g.Identity == "" || g.Room == "") {
			t.Fatalf("accepted a token without identity or room: %q", tok)
		}
	})
}
