package api

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"net/http"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/argon2"

	"invigil/store"
)

// Cookie names: separate for staff and candidates so that one browser
// profile used for both (a demo, a test) keeps both logins apart.
const (
	staffCookie     = "invigil_staff"
	candidateCookie = "invigil_candidate"
	csrfHeader      = "X-CSRF-Token"
)

// argon2id parameters: OWASP's second recommended set (19 MiB, 2 passes),
// which keeps a login under ~50 ms on a small server.
const (
	argonTime    = 2
	argonMemory  = 19 * 1024
	argonThreads = 1
	argonKeyLen  = 32
)

// HashPassword returns an argon2id hash in the usual PHC string form.
func HashPassword(password string) (string, error) {
	if err := checkPassword(password); err != nil {
		return "", err
	}
	salt := make([]byte, 16)
	if _, err := rand.Read(salt); err != nil {
		return "", fmt.Errorf("hash password: %w", err)
	}
	key := argon2.IDKey([]byte(password), salt, argonTime, argonMemory, argonThreads, argonKeyLen)
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s", argon2.Version, argonMemory, argonTime, argonThreads,
		base64.RawStdEncoding.EncodeToString(salt), base64.RawStdEncoding.EncodeToString(key)), nil
}

// checkPassword is the password rule: long enough to resist guessing,
// short enough that hashing it is not a denial of service.
func checkPassword(p string) error {
	if len(p) < 8 {
		return errors.New("password too short: use at least 8 characters")
	}
	if len(p) > 256 {
		return errors.New("password too long: use at most 256 bytes")
	}
	return nil
}

// VerifyPassword reports whether password matches a HashPassword hash.
func VerifyPassword(hash, password string) bool {
	parts := strings.Split(hash, "$")
	if len(parts) != 6 || parts[1] != "argon2id" {
		return false
	}
	var version int
	var mem, iters uint32
	var threads uint8
	if _, err := fmt.Sscanf(parts[2], "v=%d", &version); err != nil || version != argon2.Version {
		return false
	}
	if _, err := fmt.Sscanf(parts[3], "m=%d,t=%d,p=%d", &mem, &iters, &threads); err != nil ||
		mem == 0 || mem > 1<<20 || iters == 0 || iters > 16 || threads == 0 {
		return false
	}
	salt, err1 := base64.RawStdEncoding.DecodeString(parts[4])
	want, err2 := base64.RawStdEncoding.DecodeString(parts[5])
	if err1 != nil || err2 != nil || len(want) == 0 {
		return false
	}
	got := argon2.IDKey([]byte(password), salt, iters, mem, threads, uint32(len(want)))
	return subtle.ConstantTimeCompare(got, want) == 1
}

// dummyHash is verified against when a username does not exist, so that a
// login takes as long for an unknown name as for a wrong password. It is
// made on first use, not at package init, so that every program importing
// the package (the CLI's other commands, tests) does not pay an argon2id
// hash to start.
var dummyHash = sync.OnceValue(func() string {
	h, err := HashPassword("not a real password, never matches")
	if err != nil {
		// Only a failing random source gets here; a hash that never
		// parses still makes VerifyPassword answer false.
		return "$argon2id$unusable"
	}
	return h
})

func randomSecret(n int) (string, error) {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("random secret: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}

func hashToken(secret string) string {
	sum := sha256.Sum256([]byte(secret))
	return hex.EncodeToString(sum[:])
}

// principal is who made a request.
type principal struct {
	token     store.Token
	user      store.User      // staff
	candidate store.Candidate // candidate
	viaCookie bool
}

func (p *principal) isCandidate() bool { return p.token.Kind == store.TokenCandidate }

// role is the staff role, or "candidate".
func (p *principal) role() string {
	if p.isCandidate() {
		return roleCandidate
	}
	return p.user.Role
}

// issueToken creates a login token and its CSRF secret.
func (c *handlers) issueToken(ctx context.Context, kind string, userID, candidateID int64, ttl time.Duration) (secret string, tok store.Token, err error) {
	secret, err = randomSecret(32)
	if err != nil {
		return "", store.Token{}, err
	}
	csrf, err := randomSecret(18)
	if err != nil {
		return "", store.Token{}, err
	}
	now := c.now().UTC()
	tok = store.Token{Hash: hashToken(secret), Kind: kind, UserID: userID, CandidateID: candidateID,
		CSRF: csrf, CreatedAt: now, ExpiresAt: now.Add(ttl)}
	if err := c.st.CreateToken(ctx, tok); err != nil {
		return "", store.Token{}, fmt.Errorf("store login token: %w", err)
	}
	return secret, tok, nil
}

// lookupToken resolves a bearer secret to its principal; nil when it is
// unknown, expired, revoked, or its user is disabled or candidate gone.
func (c *handlers) lookupToken(ctx context.Context, secret string) (*principal, error) {
	if secret == "" || len(secret) > 256 {
		return nil, nil
	}
	p, err := c.sessionOf(ctx, hashToken(secret))
	if errors.Is(err, errSessionEnded) {
		return nil, nil
	}
	return p, err
}

// authenticate finds the request's principal: the bearer token first (API
// clients), then the cookie of the kind the route accepts (pages).
func (c *handlers) authenticate(r *http.Request, wantStaff, wantCandidate bool) (*principal, error) {
	if h := r.Header.Get("Authorization"); h != "" {
		secret, ok := strings.CutPrefix(h, "Bearer ")
		if !ok {
			return nil, nil
		}
		p, err := c.lookupToken(r.Context(), strings.TrimSpace(secret))
		if p != nil && ((p.isCandidate() && !wantCandidate) || (!p.isCandidate() && !wantStaff)) {
			return p, nil // the role check refuses it with 403
		}
		return p, err
	}
	for _, name := range []string{staffCookie, candidateCookie} {
		if (name == staffCookie && !wantStaff) || (name == candidateCookie && !wantCandidate) {
			continue
		}
		ck, err := r.Cookie(name)
		if err != nil {
			continue
		}
		p, err := c.lookupToken(r.Context(), ck.Value)
		if err != nil {
			return nil, err
		}
		if p != nil {
			p.viaCookie = true
			return p, nil
		}
	}
	return nil, nil
}

// checkCSRF: a page's state-changing request must echo the login's CSRF
// secret in a header, which another site's form or fetch cannot read.
// Bearer requests carry no ambient credentials and need no check.
func checkCSRF(r *http.Request, p *principal) error {
	if p == nil || !p.viaCookie {
		return nil
	}
	switch r.Method {
	case http.MethodGet, http.MethodHead, http.MethodOptions:
		return nil
	}
	got := r.Header.Get(csrfHeader)
	if got == "" || subtle.ConstantTimeCompare([]byte(got), []byte(p.token.CSRF)) != 1 {
		return errCSRF
	}
	return nil
}

// secureCookies: Secure whenever the request came over TLS, and always with
// the secure_cookies setting, where a proxy terminates TLS and the server
// itself sees plain HTTP.
func (c *handlers) secureCookies(r *http.Request) bool { return c.opts.SecureCookies || r.TLS != nil }

func (c *handlers) setLoginCookie(w http.ResponseWriter, r *http.Request, name, secret string, expires time.Time) {
	http.SetCookie(w, &http.Cookie{
		Name: name, Value: secret, Path: "/", Expires: expires,
		HttpOnly: true, SameSite: http.SameSiteStrictMode, Secure: c.secureCookies(r),
	})
}

func (c *handlers) clearCookie(w http.ResponseWriter, r *http.Request, name string) {
	http.SetCookie(w, &http.Cookie{Name: name, Value: "", Path: "/", MaxAge: -1,
		HttpOnly: true, SameSite: http.SameSiteStrictMode, Secure: c.secureCookies(r)})
}

// --- staff login ---

type loginRequest struct {
	Username string `json:"username"`
	Password string `json:"password"`
}

type userView struct {
	ID       int64  `json:"id"`
	Username string `json:"username"`
	Role     string `json:"role"`
	Disabled bool   `json:"disabled"`
}

func viewUser(u store.User) userView {
	return userView{ID: u.ID, Username: u.Username, Role: u.Role, Disabled: u.Disabled}
}

type loginAnswer struct {
	Token     string    `json:"token"`
	CSRFToken string    `json:"csrf_token"`
	ExpiresAt time.Time `json:"expires_at"`
	User      userView  `json:"user"`
}

// staffLogin checks a username and password. Wrong ones are throttled per
// username and per client network and written to the audit log (never the
// password); hashing waits for a turn at the hash gate, so a burst of
// logins cannot take a GiB of memory.
func (c *handlers) staffLogin(w http.ResponseWriter, r *http.Request, _ *principal) error {
	var req loginRequest
	if err := decodeJSON(r, &req); err != nil {
		return err
	}
	bad := errorf(http.StatusUnauthorized, "bad_credentials", "wrong username or password")
	if req.Username == "" || len(req.Username) > 256 || len(req.Password) > 256 {
		c.m.logins.WithLabelValues("staff", "failed").Inc()
		return bad
	}
	now, network := c.now(), clientKey(r)
	att, wait := c.logins.admit(req.Username, network, now)
	if att == nil {
		c.m.logins.WithLabelValues("staff", "limited").Inc()
		return loginTooMany(wait)
	}
	// An attempt that ends without a verdict (busy, a store error) is
	// neither a failure nor a success.
	defer att.abort()
	u, err := c.st.UserByUsername(r.Context(), req.Username)
	found := err == nil
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return err
	}
	var match bool
	if err := c.hashes.do(r.Context(), func() {
		hash := u.PasswordHash
		if !found {
			hash = dummyHash()
		}
		match = VerifyPassword(hash, req.Password)
	}); err != nil {
		c.m.logins.WithLabelValues("staff", "busy").Inc()
		return err
	}
	if !found || !match || u.Disabled {
		c.m.logins.WithLabelValues("staff", "failed").Inc()
		wait := att.fail(now)
		reason := "wrong_password"
		switch {
		case !found:
			reason = "unknown_user"
		case match:
			reason = "disabled"
		}
		if err := c.st.Audit(r.Context(), 0, "login.failed", "user:"+req.Username,
			map[string]any{"reason": reason, "network": network}); err != nil {
			c.log.Warn("audit a failed login", "err", err)
		}
		if wait > 0 {
			return loginTooMany(wait)
		}
		return bad
	}
	att.succeed()
	secret, tok, err := c.issueToken(r.Context(), store.TokenStaff, u.ID, 0, c.opts.StaffSession)
	if err != nil {
		return err
	}
	c.m.logins.WithLabelValues("staff", "ok").Inc()
	// Logins are rare enough to carry the clean-up of expired tokens, which
	// spares a timer goroutine.
	if _, err := c.st.DeleteExpiredTokens(r.Context(), c.now().UTC()); err != nil {
		c.log.Warn("delete expired login tokens", "err", err)
	}
	if err := c.st.Audit(r.Context(), u.ID, "login", "user:"+u.Username, nil); err != nil {
		c.log.Warn("audit a login", "err", err)
	}
	c.setLoginCookie(w, r, staffCookie, secret, tok.ExpiresAt)
	writeJSON(w, http.StatusOK, loginAnswer{Token: secret, CSRFToken: tok.CSRF, ExpiresAt: tok.ExpiresAt, User: viewUser(u)})
	return nil
}

// loginTooMany is the answer while a username or network must wait.
func loginTooMany(wait time.Duration) *apiError {
	secs := int(math.Ceil(wait.Seconds()))
	e := errorf(http.StatusTooManyRequests, "too_many_attempts",
		"too many failed logins for this username or from your network: wait %d s and try again", secs)
	e.RetryAfter = secs
	return e
}

func (c *handlers) logout(w http.ResponseWriter, r *http.Request, p *principal) error {
	if err := c.st.RevokeToken(r.Context(), p.token.Hash, c.now().UTC()); err != nil {
		return err
	}
	if p.isCandidate() {
		c.clearCookie(w, r, candidateCookie)
	} else {
		c.clearCookie(w, r, staffCookie)
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

type meAnswer struct {
	User      userView  `json:"user"`
	CSRFToken string    `json:"csrf_token"`
	ExpiresAt time.Time `json:"expires_at"`
}

func (c *handlers) me(w http.ResponseWriter, _ *http.Request, p *principal) error {
	writeJSON(w, http.StatusOK, meAnswer{User: viewUser(p.user), CSRFToken: p.token.CSRF, ExpiresAt: p.token.ExpiresAt})
	return nil
}
