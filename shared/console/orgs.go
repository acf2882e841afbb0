package console

import (
	"net/http"
	"net/url"
	"time"

	"github.com/keyvault-edge/kve/shared/kve"
	"github.com/keyvault-edge/kve/shared/manage"
)

// home sends a signed-in user to the tokens of their first organization, or
// to create one.
func (s *server) home(w http.ResponseWriter, r *http.Request) error {
	ms, err := s.orgs(r)
	if err != nil {
		return err
	}
	if len(ms) == 0 {
		return s.redirect(w, r, "/o/new")
	}
	return s.redirect(w, r, "/o/"+ms[0].Org.Slug+"/tokens")
}

func (s *server) orgHome(w http.ResponseWriter, r *http.Request) error {
	return s.redirect(w, r, "/o/"+membership(r).Org.Slug+"/tokens")
}

type newOrgView struct {
	Form  *form
	First bool // the user belongs to no organization yet
}

func (s *server) newOrgForm(w http.ResponseWriter, r *http.Request) error {
	ms, err := s.orgs(r)
	if err != nil {
		return err
	}
	v := newOrgView{Form: newForm(url.Values{}), First: len(ms) == 0}
	return s.render(w, r, http.StatusOK, "org_new", "New organization", "", v)
}

// createOrg creates an organization whose Owner is the caller.
func (s *server) createOrg(w http.ResponseWriter, r *http.Request) error {
	f, err := s.parseForm(w, r)
	if err != nil {
		return err
	}
	o, err := s.svc.CreateOrg(r.Context(), principal(r), manage.OrgInput{Name: f.Get("name")})
	if err != nil {
		status, ferr := f.refuse(err)
		if ferr != nil {
			return ferr
		}
		return s.render(w, r, status, "org_new", "New organization", "", newOrgView{Form: f})
	}
	return s.redirect(w, r, "/o/"+o.Slug+"/tokens?done=org_created")
}

type settingsView struct {
	Org       kve.Org
	Role      kve.Role
	CreatedAt time.Time
}

// settings shows the organization. Renaming and deleting it come with the
// teams issue; creating another is a link to /o/new.
func (s *server) settings(w http.ResponseWriter, r *http.Request) error {
	m := membership(r)
	v := settingsView{Org: m.Org, Role: m.Role, CreatedAt: m.Org.CreatedAt}
	return s.render(w, r, http.StatusOK, "settings", "Settings", "Settings", v)
}
