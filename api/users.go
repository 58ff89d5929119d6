package api

import (
	"context"
	"net/http"
	"regexp"
	"strconv"

	"invigil/store"
)

type newUserRequest struct {
	Username string `json:"username"`
	Password string `json:"password"`
	Role     string `json:"role"`
}

type userPatch struct {
	Disabled *bool   `json:"disabled,omitempty"`
	Role     *string `json:"role,omitempty"`
	Password *string `json:"password,omitempty"`
}

var usernamePattern = regexp.MustCompile(`^[A-Za-z0-9_.@-]{2,64}$`)

// CheckUsername is the username rule, shared with `invigil admin`.
func CheckUsername(name string) error {
	// The pattern refuses these too; this says which character it was.
	if err := checkText("username", name, false); err != nil {
		return err
	}
	if !usernamePattern.MatchString(name) {
		return errorf(http.StatusBadRequest, "bad_username", "username %q: use 2 to 64 letters, digits, _ . @ -", name)
	}
	return nil
}

// CheckRole is the role rule, shared with `invigil admin`.
func CheckRole(role string) error {
	if !contains(store.Roles, role) {
		return errorf(http.StatusBadRequest, "bad_role", "role %q: want admin, assistant, examiner or proctor", role)
	}
	return nil
}

func (c *handlers) listUsers(w http.ResponseWriter, r *http.Request, _ *principal) error {
	users, err := c.st.ListUsers(r.Context())
	if err != nil {
		return err
	}
	out := make([]userView, 0, len(users))
	for _, u := range users {
		out = append(out, viewUser(u))
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

func (c *handlers) createUser(w http.ResponseWriter, r *http.Request, p *principal) error {
	var req newUserRequest
	if err := decodeJSON(r, &req); err != nil {
		return err
	}
	if err := CheckUsername(req.Username); err != nil {
		return err
	}
	if err := CheckRole(req.Role); err != nil {
		return err
	}
	hash, err := HashPassword(req.Password)
	if err != nil {
		return errorf(http.StatusBadRequest, "bad_password", "%v", err)
	}
	var u store.User
	err = c.plane.Update(r.Context(), func(ctx context.Context, tx *store.Tx) error {
		var err error
		if u, err = tx.CreateUser(ctx, req.Username, hash, req.Role); err != nil {
			return err
		}
		return tx.Audit(ctx, p.user.ID, "user.create", "user:"+u.Username, map[string]any{"role": u.Role})
	})
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, viewUser(u))
	return nil
}

func (c *handlers) patchUser(w http.ResponseWriter, r *http.Request, p *principal) error {
	id, err := pathID(r, "user")
	if err != nil {
		return err
	}
	var req userPatch
	if err := decodeJSON(r, &req); err != nil {
		return err
	}
	upd := store.UserUpdate{Disabled: req.Disabled, Role: req.Role}
	if req.Role != nil {
		if err := CheckRole(*req.Role); err != nil {
			return err
		}
	}
	if req.Password != nil {
		hash, err := HashPassword(*req.Password)
		if err != nil {
			return errorf(http.StatusBadRequest, "bad_password", "%v", err)
		}
		upd.PasswordHash = &hash
	}
	if id == p.user.ID && ((req.Disabled != nil && *req.Disabled) || (req.Role != nil && *req.Role != store.RoleAdmin)) {
		// Locking oneself out leaves nobody to undo it.
		return errorf(http.StatusConflict, "self_lockout", "you cannot disable yourself or drop your own admin role")
	}
	var u store.User
	err = c.plane.Update(r.Context(), func(ctx context.Context, tx *store.Tx) error {
		var err error
		if u, err = tx.UpdateUser(ctx, id, upd); err != nil {
			return err
		}
		return tx.Audit(ctx, p.user.ID, "user.update", "user:"+strconv.FormatInt(id, 10),
			map[string]any{"disabled": req.Disabled, "role": req.Role, "password_changed": req.Password != nil})
	})
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, viewUser(u))
	return nil
}
