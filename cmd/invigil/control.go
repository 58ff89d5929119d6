package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"time"

	"invigil/api"
	"invigil/config"
	"invigil/contract"
	"invigil/control"
	"invigil/detectors/rules"
	"invigil/pipeline"
	"invigil/sfu"
	"invigil/store"
)

// databaseFile is the SQLite file under the data directory.
const databaseFile = "invigil.db"

// sfuControl adapts the SFU to the control plane's MediaControl.
type sfuControl struct{ sfu *sfu.Server }

func (c *sfuControl) Subscribe(subscriber, publisher string) error {
	return c.sfu.Subscribe(subscriber, publisher)
}

func (c *sfuControl) Unsubscribe(subscriber, publisher string) error {
	return c.sfu.Unsubscribe(subscriber, publisher)
}

func (c *sfuControl) Kick(identity string) error { return c.sfu.Kick(identity) }

// pipelineControl adapts the vision pipeline to the control plane's
// Analysis.
type pipelineControl struct{ p *pipeline.Pipeline }

func (c *pipelineControl) SetPolicy(identity string, pol rules.Policy) error {
	return c.p.SetPolicy(identity, pol)
}

func (c *pipelineControl) Calibrate(identity string, until time.Time) error {
	return c.p.Calibrate(identity, until)
}

func (c *pipelineControl) Forget(identity string) { c.p.Forget(identity) }

func (c *pipelineControl) Latest(identity string) (control.AnalysisSnapshot, bool) {
	s, ok := c.p.Latest(identity)
	if !ok {
		return control.AnalysisSnapshot{}, false
	}
	return control.AnalysisSnapshot{At: s.At, Width: s.Width, Height: s.Height, Faces: s.Faces, DistanceCM: s.DistanceCM,
		YawDeg: s.YawDeg, PitchDeg: s.PitchDeg, Hands: s.Hands, Brightness: s.Brightness, Sharpness: s.Sharpness,
		TargetDistanceCM: s.TargetDistanceCM, Calibrating: s.Calibrating,
		Checks: control.AnalysisChecks{Face: s.FaceInView, Distance: s.DistanceOK, Light: !s.TooDark && !s.Blocked, Alone: s.Alone}}, true
}

// controlTokens is the SFU's token verifier: the control plane decides
// every grant; tokens signed with the configured sfu_token_key (load tests)
// are accepted too when a key is set, but only for load-test identities
// in rooms of their own.
type controlTokens struct {
	api  *api.Server
	hmac *sfu.HMACTokens
}

func (t *controlTokens) Verify(ctx context.Context, token string) (sfu.Grants, error) {
	g, err := t.api.VerifyMediaToken(ctx, token)
	if err == nil {
		return g, nil
	}
	if t.hmac != nil && !strings.HasPrefix(token, "m1.") {
		if hg, herr := t.hmac.Verify(ctx, token); herr == nil {
			if lerr := checkLoadGrant(hg); lerr != nil {
				return sfu.Grants{}, fmt.Errorf("%w: %w", sfu.ErrBadToken, lerr)
			}
			return hg, nil
		}
	}
	return sfu.Grants{}, fmt.Errorf("%w: %w", sfu.ErrBadToken, err)
}

// checkLoadGrant keeps the load-test key from impersonating anyone real:
// whoever holds sfu_token_key could otherwise join as candidate-1 (and
// push the real candidate out, whose violations would then be stored under
// the load test's camera) or watch an exam's room as a hidden proctor.
func checkLoadGrant(g sfu.Grants) error {
	rest, ok := strings.CutPrefix(g.Identity, contract.LoadIdentityPrefix)
	if !ok || rest == "" {
		return fmt.Errorf("a token signed with sfu_token_key carries identity %q: load-test identities start with %q", g.Identity, contract.LoadIdentityPrefix)
	}
	if contract.IsExamRoom(g.Room) {
		return fmt.Errorf("a token signed with sfu_token_key names room %q: exam rooms are the control plane's", g.Room)
	}
	return nil
}

// mediaEventTimeout bounds the control plane's handling of one presence
// event (a few indexed writes and the re-applied subscriptions).
const mediaEventTimeout = 10 * time.Second

// presenceEvents tells the control plane who is connected to media.
func presenceEvents(ctl *api.Server) func(sfu.Event) {
	return func(ev sfu.Event) {
		switch ev.Kind {
		case sfu.EventJoined, sfu.EventResumed, sfu.EventDisconnected, sfu.EventLeft:
			// The SFU's event dispatcher has no request behind it: the
			// write gets a deadline of its own, so a stuck database cannot
			// hold the dispatcher (and every later event) for ever.
			ctx, cancel := context.WithTimeout(context.Background(), mediaEventTimeout)
			defer cancel()
			ctl.MediaEvent(ctx, ev.Identity, string(ev.Kind))
		}
	}
}

// mediaKey signs the control plane's SFU join tokens: the configured key,
// so tokens survive a restart, or a random one.
func mediaKey(cfg config.Config) []byte {
	if cfg.SFUTokenKey != "" {
		return []byte("media:" + cfg.SFUTokenKey)
	}
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return nil // api draws its own
	}
	return []byte(hex.EncodeToString(b))
}

// bootstrapAdmin creates the first admin when there are no users: with
// INVIGIL_ADMIN_PASSWORD if set, otherwise a random password printed once.
func bootstrapAdmin(ctx context.Context, st *store.Store, password string, stdout io.Writer, log *slog.Logger) error {
	n, err := st.CountUsers(ctx)
	if err != nil {
		return err
	}
	if n > 0 {
		return nil
	}
	generated := password == ""
	if generated {
		secret := make([]byte, 12)
		if _, err := rand.Read(secret); err != nil {
			return fmt.Errorf("make the first admin password: %w", err)
		}
		password = hex.EncodeToString(secret)
	}
	hash, err := api.HashPassword(password)
	if err != nil {
		return fmt.Errorf("INVIGIL_ADMIN_PASSWORD: %w", err)
	}
	if _, err := st.CreateUser(ctx, "admin", hash, store.RoleAdmin); err != nil {
		if errors.Is(err, store.ErrConflict) {
			return nil
		}
		return fmt.Errorf("create the first admin: %w", err)
	}
	if generated {
		fmt.Fprintf(stdout, "Created user admin with password %s (shown once; change it in the admin console or with `invigil admin users passwd admin`).\n", password)
	} else {
		log.Info("created user admin with the password from INVIGIL_ADMIN_PASSWORD")
	}
	return nil
}
