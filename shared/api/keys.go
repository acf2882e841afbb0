package api

import (
	"net/http"

	"github.com/keyvault-edge/kve/shared/manage"
)

func (s *server) createKey(w http.ResponseWriter, r *http.Request) error {
	var in manage.KeyInput
	if err := s.decode(w, r, &in); err != nil {
		return err
	}
	k, err := s.svc.CreateKey(r.Context(), r.PathValue("org"), principal(r), in)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, viewKey(k))
	return nil
}

func (s *server) keys(w http.ResponseWriter, r *http.Request) error {
	ks, err := s.svc.Keys(r.Context(), r.PathValue("org"), principal(r))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, list[keyView]{Items: items(ks, viewKey)})
	return nil
}

func (s *server) rotateKey(w http.ResponseWriter, r *http.Request) error {
	var in manage.RotateInput
	if err := s.decode(w, r, &in); err != nil {
		return err
	}
	k, err := s.svc.RotateKey(r.Context(), r.PathValue("org"), principal(r), r.PathValue("name"), in)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, viewKey(k))
	return nil
}

func (s *server) deleteKey(w http.ResponseWriter, r *http.Request) error {
	if err := s.svc.DeleteKey(r.Context(), r.PathValue("org"), principal(r), r.PathValue("name")); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}
