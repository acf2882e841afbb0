package console

import (
	"net/http"
	"net/url"
	"strings"

	"github.com/keyvault-edge/kve/shared/kve"
	"github.com/keyvault-edge/kve/shared/manage"
)

// Session cookie names. Over TLS the __Host- prefix makes browsers insist on
// Secure, Path=/ and no Domain (SECURITY T31); the JSON API accepts the same
// cookie (api.DefaultSessionCookie, which a test holds equal). Local mode on
// plain HTTP cannot set a Secure cookie, so it uses the bare name.
const (
	SecureCookie = "__Host-kve_session"
	PlainCookie  = "kve_session"
)

// CookieName returns the session cookie's name for a request.
func CookieName(r *http.Request) string {
	if r.TLS != nil {
		return SecureCookie
	}
	return PlainCookie
}

var errSignedOut = kve.Errorf(kve.KindUnauthenticated, "unauthenticated", "Sign in first.")

// authenticate finds the signed-in user from the session cookie; manage
// enforces the idle and absolute limits.
func (s *server) authenticate(r *http.Request) (manage.Principal, error) {
	c, err := r.Cookie(CookieName(r))
	if err != nil {
		return manage.Principal{}, errSignedOut
	}
	return s.svc.Authenticate(r.Context(), kve.SessionBrowser, kve.Secret(c.Value), s.clientIP(r))
}

func setSession(w http.ResponseWriter, r *http.Request, value kve.Secret) {
	http.SetCookie(w, &http.Cookie{
		Name: CookieName(r), Value: value.Reveal(), Path: "/",
		Secure: r.TLS != nil, HttpOnly: true, SameSite: http.SameSiteLaxMode,
	})
}

func clearSession(w http.ResponseWriter, r *http.Request) {
	http.SetCookie(w, &http.Cookie{
		Name: CookieName(r), Value: "", Path: "/", MaxAge: -1,
		Secure: r.TLS != nil, HttpOnly: true, SameSite: http.SameSiteLaxMode,
	})
}

// toLogin sends a signed-out visitor to the login page, and back to the
// page they asked for after signing in. A cookie that no longer works is
// removed.
func (s *server) toLogin(w http.ResponseWriter, r *http.Request) {
	if _, err := r.Cookie(CookieName(r)); err == nil {
		clearSession(w, r)
	}
	to := "/login"
	if r.Method == http.MethodGet && r.URL.Path != "/" {
		to += "?next=" + url.QueryEscape(r.URL.RequestURI())
	}
	s.redirect(w, r, to)
}

// safeNext returns where to go after signing in: a path on this site, never
// another host ("//evil.example", "/\evil.example"), else "/".
func safeNext(next string) string {
	if len(next) > 1024 || !strings.HasPrefix(next, "/") || strings.HasPrefix(next, "//") ||
		strings.ContainsAny(next, "\\\r\n\t") {
		return "/"
	}
	u, err := url.Parse(next)
	if err != nil || u.Scheme != "" || u.Host != "" || u.User != nil {
		return "/"
	}
	return next
}

type loginView struct {
	Form *form
	Next string
}

func (s *server) loginForm(w http.ResponseWriter, r *http.Request) error {
	if _, err := s.authenticate(r); err == nil {
		return s.redirect(w, r, safeNext(r.URL.Query().Get("next")))
	}
	v := loginView{Form: newForm(url.Values{}), Next: safeNext(r.URL.Query().Get("next"))}
	return s.render(w, r, http.StatusOK, "login", "Sign in", "", v)
}

// login signs a user in with a fresh session: a new id on every login, and
// the session the browser held before, if any, ends.
func (s *server) login(w http.ResponseWriter, r *http.Request) error {
	f, err := s.parseForm(w, r)
	if err != nil {
		return err
	}
	next := safeNext(f.Get("next"))
	in := manage.LoginInput{Email: f.Get("email"), Password: kve.Secret(f.Get("password"))}
	f.Values.Del("password")
	c, err := s.svc.Login(r.Context(), in, s.clientIP(r), kve.SessionBrowser)
	if err != nil {
		status, ferr := f.refuse(err)
		if ferr != nil {
			return ferr
		}
		if status == http.StatusTooManyRequests {
			setRetryAfter(w, err)
		}
		return s.render(w, r, status, "login", "Sign in", "", loginView{Form: f, Next: next})
	}
	if old, err := s.authenticate(r); err == nil {
		s.end(r, old)
	}
	setSession(w, r, c.Value)
	return s.redirect(w, r, next)
}

// end ends a credential that the browser no longer uses; a failure is
// logged, never shown: the user's new state does not depend on it.
func (s *server) end(r *http.Request, p manage.Principal) {
	if err := s.svc.Logout(r.Context(), p); err != nil {
		s.log.ErrorContext(r.Context(), "end_session_failed", "request_id", requestID(r.Context()),
			"user_id", p.UserID, "session_id", p.SessionID, "err", err)
	}
}

func (s *server) logoutForm(w http.ResponseWriter, r *http.Request) error {
	return s.render(w, r, http.StatusOK, "logout", "Sign out", "", nil)
}

// logout ends the session server-side, so a copied cookie stops working
// too (SECURITY T33), and removes the cookie. The form may say where to go
// next (an invite page, to accept it as someone else); else the login page.
func (s *server) logout(w http.ResponseWriter, r *http.Request) error {
	f, err := s.parseForm(w, r)
	if err != nil {
		return err
	}
	if p, err := s.authenticate(r); err == nil {
		if err := s.svc.Logout(r.Context(), p); err != nil {
			return err
		}
	}
	clearSession(w, r)
	to := "/login"
	if next := safeNext(f.Get("next")); next != "/" {
		to = next
	}
	return s.redirect(w, r, to)
}

type setupView struct {
	Form *form
}

func (s *server) setupForm(w http.ResponseWriter, r *http.Request) error {
	return s.render(w, r, http.StatusOK, "setup", "Set up kve", "", setupView{Form: newForm(url.Values{})})
}

// setup creates the first Owner with the one-time code and signs them in.
// manage answers setup with an API token, which the dashboard has no use
// for: it ends at once, and the browser gets a session like any login.
func (s *server) setup(w http.ResponseWriter, r *http.Request) error {
	f, err := s.parseForm(w, r)
	if err != nil {
		return err
	}
	in := manage.SetupInput{
		Code: kve.Secret(strings.TrimSpace(f.Get("code"))), Email: f.Get("email"), Name: f.Get("name"),
		Password: kve.Secret(f.Get("password")),
	}
	f.Values.Del("password")
	f.Values.Del("code")
	ip := s.clientIP(r)
	_, cred, err := s.svc.Setup(r.Context(), in, ip)
	if err != nil {
		status, ferr := f.refuse(err)
		if ferr != nil {
			return ferr
		}
		if status == http.StatusTooManyRequests {
			setRetryAfter(w, err)
		}
		return s.render(w, r, status, "setup", "Set up kve", "", setupView{Form: f})
	}
	if api, err := s.svc.Authenticate(r.Context(), kve.SessionAPI, cred.Value, ip); err == nil {
		s.end(r, api)
	} else {
		s.log.ErrorContext(r.Context(), "end_session_failed", "request_id", requestID(r.Context()), "err", err)
	}
	c, err := s.svc.Login(r.Context(), manage.LoginInput{Email: in.Email, Password: in.Password}, ip, kve.SessionBrowser)
	if err != nil {
		return err
	}
	setSession(w, r, c.Value)
	return s.redirect(w, r, "/o/new")
}
