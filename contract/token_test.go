package contract

import (
	"errors"
	"strings"
	"testing"
)

type claims struct {
	Sub string `json:"sub"`
	Exp int64  `json:"exp"`
}

var key = []byte("a key of at least sixteen bytes")

func TestTokenRoundTripAndRefusals(t *testing.T) {
	tok, err := SignToken(key, claims{"candidate-7", 1700000000})
	if err != nil {
		t.Fatal(err)
	}
	var got claims
	if err := OpenToken(key, tok, &got); err != nil || got.Sub != "candidate-7" || got.Exp != 1700000000 {
		t.Fatalf("round trip: %+v %v", got, err)
	}
	payload, sig, _ := strings.Cut(tok, ".")
	other, _ := SignToken([]byte("another key, sixteen bytes long"), claims{"candidate-7", 1700000000})
	for name, bad := range map[string]string{
		"empty":         "",
		"no dot":        payload,
		"other key":     other,
		"changed claim": strings.Replace(tok, payload[:4], "AAAA", 1),
		"bad base64":    payload + ".!!!",
		"cut signature": payload + "." + sig[:len(sig)-2],
		"junk payload":  "e30x" + "." + sig,
		"huge":          strings.Repeat("a", MaxTokenBytes+1),
	} {
		if err := OpenToken(key, bad, &got); !errors.Is(err, ErrToken) {
			t.Errorf("%s: %v, want ErrToken", name, err)
		}
	}
	if _, err := SignToken([]byte("short"), claims{}); err == nil {
		t.Error("signed with a short key")
	}
	if err := OpenToken([]byte("short"), tok, &got); !errors.Is(err, ErrToken) {
		t.Errorf("opened with a short key: %v", err)
	}
}

// Whatever arrives as a token is refused with ErrToken or opens to claims
// that sign back to a token that opens the same: never a panic.
func FuzzOpenToken(f *testing.F) {
	good, _ := SignToken(key, claims{"staff-1", 42})
	f.Add(good)
	f.Add("")
	f.Add("e30.")
	f.Add(".")
	f.Add(strings.Repeat(".", 100))
	f.Fuzz(func(t *testing.T, tok string) {
		var c claims
		err := OpenToken(key, tok, &c)
		if err != nil {
			if !errors.Is(err, ErrToken) {
				t.Fatalf("%q: %v is not ErrToken", tok, err)
			}
			return
		}
		again, err := SignToken(key, c)
		if err != nil {
			t.Fatal(err)
		}
		var d claims
		if err := OpenToken(key, again, &d); err != nil || d != c {
			t.Fatalf("re-signed %+v opens as %+v %v", c, d, err)
		}
	})
}
