package api

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"invigil/contract"
	"invigil/control"
	"invigil/store"
)

// MediaGrant is what a media token allows; cmd turns it into the SFU's
// grants (api and sfu never import each other).
type MediaGrant = control.MediaGrant

// ErrMediaToken wraps every refused media token.
var ErrMediaToken = errors.New("invalid media token")

// mediaTokenTTL bounds when a media token may be used to join or resume.
// Short, because a token copied out of a page must not outlive its use:
// the pages and sfu.js ask for a fresh one before every join and resume,
// so a minute is plenty. A session already joined is not cut off when it
// expires; ending the login (logout, revocation) refuses the next join.
const mediaTokenTTL = 60 * time.Second

const mediaTokenPrefix = "m1."

type mediaClaims struct {
	Kind string `json:"k"` // staff or candidate
	ID   int64  `json:"id"`
	Exam int64  `json:"exam"`
	Exp  int64  `json:"exp"`
	// Session is the hash of the login token the media token was minted
	// from (what the store keeps, not the secret): the token is refused
	// once that login ends.
	Session string `json:"s"`
}

func (c *handlers) signMedia(cl mediaClaims) (string, error) {
	tok, err := contract.SignToken(c.opts.MediaKey, cl)
	if err != nil {
		return "", fmt.Errorf("sign a media token: %w", err)
	}
	return mediaTokenPrefix + tok, nil
}

func (c *handlers) verifyMedia(tok string) (mediaClaims, error) {
	var cl mediaClaims
	if err := contract.OpenToken(c.opts.MediaKey, strings.TrimPrefix(tok, mediaTokenPrefix), &cl); err != nil {
		return mediaClaims{}, fmt.Errorf("%w: %w", ErrMediaToken, err)
	}
	if !c.now().Before(time.Unix(cl.Exp, 0)) {
		return mediaClaims{}, fmt.Errorf("%w: expired", ErrMediaToken)
	}
	return cl, nil
}

// VerifyMediaToken is the SFU's token check: a media token from
// POST /media/token, or a candidate's own login token. Either way the grant
// is decided now from the store, so a disabled user or a candidate who left
// cannot join with a token issued before.
func (s *Server) VerifyMediaToken(ctx context.Context, tok string) (MediaGrant, error) {
	c := s.ctl
	if c == nil {
		return MediaGrant{}, fmt.Errorf("%w: no control plane", ErrMediaToken)
	}
	if strings.HasPrefix(tok, mediaTokenPrefix) {
		cl, err := c.verifyMedia(tok)
		if err != nil {
			return MediaGrant{}, err
		}
		exp := time.Unix(cl.Exp, 0)
		// The login it came from must still be alive, and still be the
		// same person's: logging out ends the media tokens minted from it.
		p, err := c.sessionOf(ctx, cl.Session)
		if err != nil {
			return MediaGrant{}, fmt.Errorf("%w: its login session %w", ErrMediaToken, err)
		}
		switch cl.Kind {
		case store.TokenStaff:
			if p.isCandidate() || p.user.ID != cl.ID {
				return MediaGrant{}, fmt.Errorf("%w: session of someone else", ErrMediaToken)
			}
			// Checked again at join: one taken off the exam since cannot
			// join with a token minted before.
			g, err := c.plane.StaffGrant(ctx, p.actor(), cl.Exam, exp)
			if errors.Is(err, store.ErrNotFound) {
				return MediaGrant{}, fmt.Errorf("%w: no such exam", ErrMediaToken)
			}
			if err != nil {
				return MediaGrant{}, fmt.Errorf("%w: user %d is not on the staff of exam %d: %w", ErrMediaToken, cl.ID, cl.Exam, err)
			}
			return g, nil
		case store.TokenCandidate:
			if !p.isCandidate() || p.candidate.ID != cl.ID {
				return MediaGrant{}, fmt.Errorf("%w: session of someone else", ErrMediaToken)
			}
			return candidateGrant(p.candidate, exp)
		}
		return MediaGrant{}, fmt.Errorf("%w: unknown kind", ErrMediaToken)
	}
	p, err := c.lookupToken(ctx, tok)
	if err != nil {
		return MediaGrant{}, fmt.Errorf("%w: %w", ErrMediaToken, err)
	}
	if p == nil || !p.isCandidate() {
		return MediaGrant{}, fmt.Errorf("%w: unknown or expired", ErrMediaToken)
	}
	return candidateGrant(p.candidate, p.token.ExpiresAt)
}

// candidateGrant is the candidate's grant, refused with ErrMediaToken in
// a stage without media.
func candidateGrant(cand store.Candidate, exp time.Time) (MediaGrant, error) {
	g, err := control.CandidateGrant(cand, exp)
	if err != nil {
		return MediaGrant{}, fmt.Errorf("%w: %w", ErrMediaToken, err)
	}
	return g, nil
}

type mediaTokenRequest struct {
	ExamID int64 `json:"exam_id,omitempty"`
}

type mediaTokenAnswer struct {
	Token     string    `json:"token"`
	URL       string    `json:"url"`
	Identity  string    `json:"identity"`
	Room      string    `json:"room"`
	ExpiresAt time.Time `json:"expires_at"`
}

// SignallingPath is where cmd mounts the SFU's WebSocket.
const SignallingPath = contract.SignallingPath

func (c *handlers) mediaToken(w http.ResponseWriter, r *http.Request, p *principal) error {
	var req mediaTokenRequest
	if r.ContentLength != 0 {
		if err := decodeJSON(r, &req); err != nil {
			return err
		}
	}
	exp := c.now().Add(mediaTokenTTL)
	cl := mediaClaims{Exp: exp.Unix(), Session: p.token.Hash}
	var g MediaGrant
	if p.isCandidate() {
		var err error
		if g, err = candidateGrant(p.candidate, exp); err != nil {
			return errorf(http.StatusConflict, "not_in_exam", "candidate is %s: no media now", p.candidate.Stage)
		}
		cl.Kind, cl.ID, cl.Exam = store.TokenCandidate, p.candidate.ID, p.candidate.ExamID
	} else {
		if req.ExamID <= 0 {
			return errorf(http.StatusBadRequest, "bad_exam", "staff name the exam: {\"exam_id\": …}")
		}
		var err error
		if g, err = c.plane.StaffGrant(r.Context(), p.actor(), req.ExamID, exp); err != nil {
			return err
		}
		cl.Kind, cl.ID, cl.Exam = store.TokenStaff, p.user.ID, req.ExamID
	}
	signalURL, err := c.plane.SignallingURL(r.Context(), cl.Exam, SignallingPath)
	if err != nil {
		return err
	}
	tok, err := c.signMedia(cl)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, mediaTokenAnswer{Token: tok, URL: signalURL, Identity: g.Identity,
		Room: g.Room, ExpiresAt: exp.UTC()})
	return nil
}

// errSessionEnded: the login session is unknown, expired or revoked, or
// its user is disabled or its candidate gone.
var errSessionEnded = errors.New("has ended")

// sessionOf is the principal of the login session whose token hashes to
// hash, decided now from the store: for each request (lookupToken) and for
// what outlives the request that checked the token (media tokens, event
// streams), so all of them refuse the same sessions.
func (c *handlers) sessionOf(ctx context.Context, hash string) (*principal, error) {
	if hash == "" {
		return nil, errSessionEnded
	}
	tok, err := c.st.TokenByHash(ctx, hash)
	if errors.Is(err, store.ErrNotFound) {
		return nil, errSessionEnded
	}
	if err != nil {
		return nil, err
	}
	if !tok.RevokedAt.IsZero() || !c.now().Before(tok.ExpiresAt) {
		return nil, errSessionEnded
	}
	p := &principal{token: tok}
	switch tok.Kind {
	case store.TokenStaff:
		u, err := c.st.UserByID(ctx, tok.UserID)
		if errors.Is(err, store.ErrNotFound) || (err == nil && u.Disabled) {
			return nil, errSessionEnded
		}
		if err != nil {
			return nil, err
		}
		p.user = u
	case store.TokenCandidate:
		cand, err := c.st.Candidate(ctx, tok.CandidateID)
		if errors.Is(err, store.ErrNotFound) {
			return nil, errSessionEnded
		}
		if err != nil {
			return nil, err
		}
		p.candidate = cand
	default:
		return nil, errSessionEnded
	}
	return p, nil
}
