package api

import (
	"net/http"

	"github.com/keyvault-edge/kve/shared/kve"
	"github.com/keyvault-edge/kve/shared/manage"
)

func (s *server) setup(w http.ResponseWriter, r *http.Request) error {
	var in manage.SetupInput
	if err := s.decode(w, r, &in); err != nil {
		return err
	}
	_, c, err := s.svc.Setup(r.Context(), in, s.clientIP(r))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, viewCredential(c))
	return nil
}

func (s *server) login(w http.ResponseWriter, r *http.Request) error {
	var in manage.LoginInput
	if err := s.decode(w, r, &in); err != nil {
		return err
	}
	c, err := s.svc.Login(r.Context(), in, s.clientIP(r), kve.SessionAPI)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, viewCredential(c))
	return nil
}
