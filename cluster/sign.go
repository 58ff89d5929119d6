package cluster

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
)

// Key is the cluster's shared secret (--cluster-key). With one, every
// heartbeat, drain request and media command carries a signature of its
// subject and body with an expiry, and anything on those subjects without
// a valid one is refused: whoever can publish on the NATS server could
// otherwise announce a "media node" of their own, to which the control
// plane would send candidates' cameras, or kick candidates. Without a key
// (one node, or a test) nothing is signed or checked.
type Key []byte

// signatureHeader carries "EXPIRES.HMAC": the expiry in Unix seconds and
// the hex HMAC-SHA256 of the subject, the expiry and the body.
const signatureHeader = "Invigil-Signature"

// signatureLife is how long a signed message stays valid; node clocks
// must agree within it. Short, so that a recorded heartbeat cannot keep a
// dead node alive for long.
const signatureLife = 30 * time.Second

// ErrBadSignature: a message without a valid signature where one is due.
var ErrBadSignature = errors.New("not signed with the cluster key")

func (k Key) mac(subject string, exp int64, body []byte) string {
	m := hmac.New(sha256.New, k)
	fmt.Fprintf(m, "invigil-nats\n%s\n%d\n", subject, exp)
	m.Write(body)
	return hex.EncodeToString(m.Sum(nil))
}

// message is a message on subject with body, signed when there is a key.
func (k Key) message(subject string, body []byte) *nats.Msg {
	msg := nats.NewMsg(subject)
	msg.Data = body
	if len(k) > 0 {
		exp := time.Now().Add(signatureLife).Unix()
		msg.Header.Set(signatureHeader, strconv.FormatInt(exp, 10)+"."+k.mac(subject, exp, body))
	}
	return msg
}

// check verifies m's signature (nothing to verify without a key).
func (k Key) check(m *nats.Msg) error {
	if len(k) == 0 {
		return nil
	}
	var sig string
	if m.Header != nil {
		sig = m.Header.Get(signatureHeader)
	}
	expText, mac, ok := strings.Cut(sig, ".")
	exp, err := strconv.ParseInt(expText, 10, 64)
	if !ok || err != nil {
		return fmt.Errorf("message on %s: %w", m.Subject, ErrBadSignature)
	}
	now := time.Now()
	if now.Unix() > exp || time.Unix(exp, 0).After(now.Add(2*signatureLife)) {
		return fmt.Errorf("message on %s: signature expired or from too far ahead: %w", m.Subject, ErrBadSignature)
	}
	if !hmac.Equal([]byte(mac), []byte(k.mac(m.Subject, exp, m.Data))) {
		return fmt.Errorf("message on %s: %w", m.Subject, ErrBadSignature)
	}
	return nil
}
