package api

import (
	"net/http"

	"github.com/keyvault-edge/kve/shared/manage"
)

func (s *server) members(w http.ResponseWriter, r *http.Request) error {
	ms, err := s.svc.Members(r.Context(), r.PathValue("org"), principal(r))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, list[memberView]{Items: items(ms, viewMember)})
	return nil
}

func (s *server) changeRole(w http.ResponseWriter, r *http.Request) error {
	var in manage.RoleInput
	if err := s.decode(w, r, &in); err != nil {
		return err
	}
	m, err := s.svc.ChangeRole(r.Context(), r.PathValue("org"), principal(r), r.PathValue("user"), in)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, viewMember(m))
	return nil
}

// removeMember answers what the removal took away and which shared tokens
// the member saw, for rotation.
func (s *server) removeMember(w http.ResponseWriter, r *http.Request) error {
	o, err := s.svc.RemoveMember(r.Context(), r.PathValue("org"), principal(r), r.PathValue("user"))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, viewOffboarding(o))
	return nil
}

func (s *server) renameOrg(w http.ResponseWriter, r *http.Request) error {
	var in manage.OrgInput
	if err := s.decode(w, r, &in); err != nil {
		return err
	}
	o, err := s.svc.RenameOrg(r.Context(), r.PathValue("org"), principal(r), in)
	if err != nil {
		return err
	}
	m, err := s.svc.Member(r.Context(), o.ID, principal(r))
	if err != nil {
		return err
	}
	m.Org = o
	writeJSON(w, http.StatusOK, viewOrg(m))
	return nil
}

func (s *server) deleteOrg(w http.ResponseWriter, r *http.Request) error {
	d, err := s.svc.DeleteOrg(r.Context(), r.PathValue("org"), principal(r))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, viewDeletion(d))
	return nil
}

// env answers a .env file: text, not JSON, so that curl -o .env works.
func (s *server) env(w http.ResponseWriter, r *http.Request) error {
	env := r.URL.Query().Get("env")
	if env == "" {
		env = "dev"
	}
	b, err := s.svc.Env(r.Context(), r.PathValue("org"), principal(r), env)
	if err != nil {
		return err
	}
	h := w.Header()
	h.Set("Content-Type", "text/plain; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	w.Write(b)
	return nil
}
