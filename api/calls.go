package api

import (
	"net/http"

	"invigil/control"
)

type callRequest struct {
	Kind string `json:"kind"`
}

type endCallRequest struct {
	Outcome string `json:"outcome,omitempty"`
}

type callView = control.CallView

var viewCall = control.ViewCall

func (c *handlers) placeCall(w http.ResponseWriter, r *http.Request, p *principal) error {
	id, err := pathID(r, "candidate")
	if err != nil {
		return err
	}
	var req callRequest
	if err := decodeJSON(r, &req); err != nil {
		return err
	}
	call, err := c.plane.PlaceCall(r.Context(), p.actor(), id, req.Kind)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, viewCall(call))
	return nil
}

func (c *handlers) acceptCall(w http.ResponseWriter, r *http.Request, p *principal) error {
	id, err := pathID(r, "call")
	if err != nil {
		return err
	}
	call, err := c.plane.AcceptCall(r.Context(), p.candidate, id)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, viewCall(call))
	return nil
}

func (c *handlers) declineCall(w http.ResponseWriter, r *http.Request, p *principal) error {
	id, err := pathID(r, "call")
	if err != nil {
		return err
	}
	call, err := c.plane.DeclineCall(r.Context(), p.candidate, id)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, viewCall(call))
	return nil
}

func (c *handlers) endCall(w http.ResponseWriter, r *http.Request, p *principal) error {
	id, err := pathID(r, "call")
	if err != nil {
		return err
	}
	var req endCallRequest
	if r.ContentLength != 0 {
		if err := decodeJSON(r, &req); err != nil {
			return err
		}
	}
	call, err := c.plane.EndCall(r.Context(), p.actor(), id, req.Outcome)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, viewCall(call))
	return nil
}

func (c *handlers) listCalls(w http.ResponseWriter, r *http.Request, p *principal) error {
	id, err := pathID(r, "exam")
	if err != nil {
		return err
	}
	calls, err := c.plane.Calls(r.Context(), p.actor(), id, r.URL.Query().Get("state"))
	if err != nil {
		return err
	}
	out := make([]callView, 0, len(calls))
	for _, call := range calls {
		out = append(out, viewCall(call))
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}
