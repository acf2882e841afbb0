package api

import (
	"net/http"

	"github.com/keyvault-edge/kve/shared/kve"
	"github.com/keyvault-edge/kve/shared/manage"
)

func (s *server) createInvite(w http.ResponseWriter, r *http.Request) error {
	var in manage.InviteInput
	if err := s.decode(w, r, &in); err != nil {
		return err
	}
	inv, err := s.svc.CreateInvite(r.Context(), r.PathValue("org"), principal(r), in)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, viewIssuedInvite(inv))
	return nil
}

func (s *server) invites(w http.ResponseWriter, r *http.Request) error {
	invites, err := s.svc.Invites(r.Context(), r.PathValue("org"), principal(r))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, list[inviteView]{Items: items(invites, viewInvite)})
	return nil
}

func (s *server) revokeInvite(w http.ResponseWriter, r *http.Request) error {
	if err := s.svc.RevokeInvite(r.Context(), r.PathValue("org"), principal(r), r.PathValue("id")); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (s *server) resendInvite(w http.ResponseWriter, r *http.Request) error {
	inv, err := s.svc.ResendInvite(r.Context(), r.PathValue("org"), principal(r), r.PathValue("id"))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, viewIssuedInvite(inv))
	return nil
}

// inviteInfo tells what an invite is for; it changes nothing.
func (s *server) inviteInfo(w http.ResponseWriter, r *http.Request) error {
	info, err := s.svc.InviteInfo(r.Context(), kve.Secret(r.PathValue("code")), s.clientIP(r))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, viewInviteInfo(info))
	return nil
}

func (s *server) acceptInvite(w http.ResponseWriter, r *http.Request) error {
	var in manage.AcceptInput
	if err := s.decode(w, r, &in); err != nil {
		return err
	}
	a, err := s.svc.AcceptInvite(r.Context(), in, signedInCaller(r), s.clientIP(r), kve.SessionAPI)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, viewAccepted(a))
	return nil
}
