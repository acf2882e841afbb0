package console

import (
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/keyvault-edge/kve/shared/kve"
	"github.com/keyvault-edge/kve/shared/manage"
)

// home sends a signed-in user to the tokens of their first organization, or
// to create one, passing on a confirmation to show (after an organization
// was deleted, say).
func (s *server) home(w http.ResponseWriter, r *http.Request) error {
	ms, err := s.orgs(r)
	if err != nil {
		return err
	}
	to := "/o/new"
	if len(ms) > 0 {
		to = "/o/" + ms[0].Org.Slug + "/tokens"
	}
	if done := r.URL.Query().Get("done"); notices[done] != "" {
		to += "?done=" + done
	}
	return s.redirect(w, r, to)
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
	Owner     bool  // may rename and delete
	Form      *form // the rename form
}

// settings shows the organization and, to its Owners, the forms that
// rename and delete it.
func (s *server) settings(w http.ResponseWriter, r *http.Request) error {
	m := membership(r)
	return s.settingsPage(w, r, http.StatusOK, newForm(url.Values{"name": {m.Org.Name}}))
}

func (s *server) settingsPage(w http.ResponseWriter, r *http.Request, status int, f *form) error {
	m := membership(r)
	v := settingsView{Org: m.Org, Role: m.Role, CreatedAt: m.Org.CreatedAt, Owner: m.Role == kve.RoleOwner, Form: f}
	return s.render(w, r, status, "settings", "Settings", "Settings", v)
}

// renameOrg changes the organization's name (Owner); its slug, and so every
// link, stays.
func (s *server) renameOrg(w http.ResponseWriter, r *http.Request) error {
	f, err := s.parseForm(w, r)
	if err != nil {
		return err
	}
	if _, err := s.svc.RenameOrg(r.Context(), orgRef(r), principal(r), manage.OrgInput{Name: f.Get("name")}); err != nil {
		status, ferr := f.refuse(err)
		if ferr != nil {
			return ferr
		}
		return s.settingsPage(w, r, status, f)
	}
	return s.redirect(w, r, "/o/"+membership(r).Org.Slug+"/settings?done=org_renamed")
}

type deleteOrgView struct {
	Org  kve.Org
	Form *form
}

// deleteOrgForm asks an Owner to confirm by typing the organization's name:
// a deletion stops every token at once and cannot be undone, so a click
// alone must not do it.
func (s *server) deleteOrgForm(w http.ResponseWriter, r *http.Request) error {
	m, err := s.svc.Authorize(r.Context(), orgRef(r), principal(r), kve.RoleOwner)
	if err != nil {
		return err
	}
	return s.render(w, r, http.StatusOK, "org_delete", "Delete "+m.Org.Name, "Settings", deleteOrgView{Org: m.Org, Form: newForm(url.Values{})})
}

func (s *server) deleteOrg(w http.ResponseWriter, r *http.Request) error {
	f, err := s.parseForm(w, r)
	if err != nil {
		return err
	}
	m, err := s.svc.Authorize(r.Context(), orgRef(r), principal(r), kve.RoleOwner)
	if err != nil {
		return err
	}
	if strings.TrimSpace(f.Get("confirm")) != m.Org.Name {
		f.Errors["confirm"] = "Type the organization's name exactly as shown to delete it."
		return s.render(w, r, http.StatusUnprocessableEntity, "org_delete", "Delete "+m.Org.Name, "Settings", deleteOrgView{Org: m.Org, Form: f})
	}
	if _, err := s.svc.DeleteOrg(r.Context(), orgRef(r), principal(r)); err != nil {
		return err
	}
	return s.redirect(w, r, "/?done=org_deleted")
}
