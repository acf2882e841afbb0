package console

import (
	"net/http"
	"net/url"
	"time"

	"github.com/keyvault-edge/kve/shared/kve"
	"github.com/keyvault-edge/kve/shared/manage"
)

type accountView struct {
	Name, Email string
	Orgs        []kve.Membership
	APITokens   []apiTokenRow
	Sessions    []sessionRow // signed-in browsers, this one included
	Others      int          // how many of them are not this one
	Form        *form        // the password form
}

// sessionRow is one browser the user is signed in on.
type sessionRow struct {
	CreatedAt, LastSeen, ExpiresAt time.Time
	Current                        bool
}

// apiTokenRow is one of the user's kvm_ API tokens: never its value, which
// kve does not keep.
type apiTokenRow struct {
	ID, Name                       string
	CreatedAt, LastSeen, ExpiresAt time.Time
}

// account shows who is signed in and where, their API tokens, and the
// password form.
func (s *server) account(w http.ResponseWriter, r *http.Request) error {
	return s.accountPage(w, r, http.StatusOK, newForm(url.Values{}))
}

func (s *server) accountPage(w http.ResponseWriter, r *http.Request, status int, f *form) error {
	p := principal(r)
	ms, err := s.orgs(r)
	if err != nil {
		return err
	}
	tokens, err := s.svc.APITokens(r.Context(), p)
	if err != nil {
		return err
	}
	sessions, err := s.svc.Sessions(r.Context(), p)
	if err != nil {
		return err
	}
	v := accountView{Name: p.Name, Email: p.Email, Orgs: ms, Form: f, APITokens: make([]apiTokenRow, 0, len(tokens))}
	for _, t := range tokens {
		v.APITokens = append(v.APITokens, apiTokenRow{ID: t.ID, Name: t.Name, CreatedAt: t.CreatedAt, LastSeen: t.LastSeen, ExpiresAt: t.ExpiresAt})
	}
	for _, ses := range sessions {
		row := sessionRow{CreatedAt: ses.CreatedAt, LastSeen: ses.LastSeen, ExpiresAt: ses.ExpiresAt, Current: ses.ID == p.SessionID}
		if !row.Current {
			v.Others++
		}
		v.Sessions = append(v.Sessions, row)
	}
	return s.render(w, r, status, "account", "Account", "", v)
}

// changeAccount handles the account page's forms, which all post to
// /account (the one path the deployment routes for it): "password" changes
// the password, which signs out every other session and API token (SECURITY
// T33); "revoke_api_token" ends one of the user's API tokens;
// "logout_others" signs every other browser out.
func (s *server) changeAccount(w http.ResponseWriter, r *http.Request) error {
	f, err := s.parseForm(w, r)
	if err != nil {
		return err
	}
	p := principal(r)
	switch f.Get("do") {
	case "password":
		in := manage.PasswordInput{Current: kve.Secret(f.Get("current_password")), New: kve.Secret(f.Get("new_password"))}
		f.Values.Del("current_password")
		f.Values.Del("new_password")
		if _, err := s.svc.ChangePassword(r.Context(), p, in); err != nil {
			status, ferr := f.refuse(err)
			if ferr != nil {
				return ferr
			}
			if msg, ok := f.Errors["password"]; ok { // the new one
				f.Errors["new_password"] = msg
				delete(f.Errors, "password")
			}
			if status == http.StatusTooManyRequests {
				setRetryAfter(w, err)
			}
			return s.accountPage(w, r, status, f)
		}
		return s.redirect(w, r, "/account?done=password_changed")
	case "revoke_api_token":
		if err := s.svc.DeleteAPIToken(r.Context(), p, f.Get("id")); err != nil {
			return err
		}
		return s.redirect(w, r, "/account?done=api_token_revoked")
	case "logout_others":
		if _, err := s.svc.LogoutOthers(r.Context(), p); err != nil {
			return err
		}
		return s.redirect(w, r, "/account?done=sessions_ended")
	}
	return kve.Errorf(kve.KindInvalid, "invalid_form", "The form could not be read.")
}
