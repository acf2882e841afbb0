package api

import (
	"net/http"

	"github.com/keyvault-edge/kve/shared/kve"
	"github.com/keyvault-edge/kve/shared/manage"
)

func (s *server) createOrg(w http.ResponseWriter, r *http.Request) error {
	var in manage.OrgInput
	if err := s.decode(w, r, &in); err != nil {
		return err
	}
	o, err := s.svc.CreateOrg(r.Context(), principal(r), in)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, viewOrg(kve.Membership{Org: o, Role: kve.RoleOwner}))
	return nil
}

func (s *server) orgs(w http.ResponseWriter, r *http.Request) error {
	ms, err := s.svc.Orgs(r.Context(), principal(r))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, list[orgView]{Items: items(ms, viewOrg)})
	return nil
}
