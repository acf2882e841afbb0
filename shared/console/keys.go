package console

import (
	"net/http"
	"net/url"
	"strings"

	"github.com/keyvault-edge/kve/shared/kve"
	"github.com/keyvault-edge/kve/shared/manage"
)

type keysView struct {
	Slug      string
	Rows      []keyRow
	Form      *form
	Providers []string // builtin providers, suggested in the form
}

// keys lists the organization's key references and the form to add one
// (Owner only: manage refuses everyone else, and the navigation hides the
// page from them).
func (s *server) keys(w http.ResponseWriter, r *http.Request) error {
	return s.keysPage(w, r, http.StatusOK, newForm(url.Values{"provider": {"openai"}}))
}

func (s *server) keysPage(w http.ResponseWriter, r *http.Request, status int, f *form) error {
	p := principal(r)
	keys, err := s.svc.Keys(r.Context(), orgRef(r), p)
	if err != nil {
		return err
	}
	team, err := s.team(r)
	if err != nil {
		return err
	}
	names := peopleOf(team)
	v := keysView{Slug: membership(r).Org.Slug, Form: f, Providers: kve.BuiltinProviders(), Rows: make([]keyRow, 0, len(keys))}
	for _, k := range keys {
		v.Rows = append(v.Rows, keyRowOf(k, p, names))
	}
	return s.render(w, r, status, "keys", "Keys", "Keys", v)
}

// createKey stores a real key. The value field is write-only: it is never
// rendered back, not even into a refused form.
func (s *server) createKey(w http.ResponseWriter, r *http.Request) error {
	f, err := s.parseForm(w, r)
	if err != nil {
		return err
	}
	in := manage.KeyInput{
		Name: strings.TrimSpace(f.Get("name")), Provider: strings.TrimSpace(f.Get("provider")),
		Upstream: strings.TrimSpace(f.Get("upstream")), Secret: kve.Secret(f.Get("secret")),
	}
	f.Values.Del("secret")
	if mode := f.Get("auth_mode"); mode != "" {
		in.Auth = &kve.Auth{Mode: kve.AuthMode(mode), Name: strings.TrimSpace(f.Get("auth_name")), Prefix: f.Get("auth_prefix")}
	}
	if _, err := s.svc.CreateKey(r.Context(), orgRef(r), principal(r), in); err != nil {
		status, ferr := f.refuse(err)
		if ferr != nil {
			return ferr
		}
		return s.keysPage(w, r, status, f)
	}
	return s.redirect(w, r, "/o/"+membership(r).Org.Slug+"/keys?done=key_added")
}

type keyFormView struct {
	Slug, Name string
	Form       *form
}

// rotateForm asks for a key's new value. Only Owners may open it, as only
// they may rotate.
func (s *server) rotateForm(w http.ResponseWriter, r *http.Request) error {
	if _, err := s.svc.Authorize(r.Context(), orgRef(r), principal(r), kve.RoleOwner); err != nil {
		return err
	}
	v := keyFormView{Slug: membership(r).Org.Slug, Name: r.PathValue("name"), Form: newForm(url.Values{})}
	return s.render(w, r, http.StatusOK, "key_rotate", "Rotate key", "Keys", v)
}

func (s *server) rotateKey(w http.ResponseWriter, r *http.Request) error {
	f, err := s.parseForm(w, r)
	if err != nil {
		return err
	}
	in := manage.RotateInput{Secret: kve.Secret(f.Get("secret"))}
	f.Values.Del("secret")
	name := r.PathValue("name")
	if _, err := s.svc.RotateKey(r.Context(), orgRef(r), principal(r), name, in); err != nil {
		status, ferr := f.refuse(err)
		if ferr != nil {
			return ferr
		}
		v := keyFormView{Slug: membership(r).Org.Slug, Name: name, Form: f}
		return s.render(w, r, status, "key_rotate", "Rotate key", "Keys", v)
	}
	return s.redirect(w, r, "/o/"+membership(r).Org.Slug+"/keys?done=key_rotated")
}

// deleteKeyForm is the confirmation step when the dialog's script is not
// running.
func (s *server) deleteKeyForm(w http.ResponseWriter, r *http.Request) error {
	if _, err := s.svc.Authorize(r.Context(), orgRef(r), principal(r), kve.RoleOwner); err != nil {
		return err
	}
	v := keyFormView{Slug: membership(r).Org.Slug, Name: r.PathValue("name"), Form: newForm(url.Values{})}
	return s.render(w, r, http.StatusOK, "key_delete", "Delete key", "Keys", v)
}

func (s *server) deleteKey(w http.ResponseWriter, r *http.Request) error {
	if err := s.svc.DeleteKey(r.Context(), orgRef(r), principal(r), r.PathValue("name")); err != nil {
		return err
	}
	return s.redirect(w, r, "/o/"+membership(r).Org.Slug+"/keys?done=key_deleted")
}
