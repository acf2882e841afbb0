package console

import (
	"context"
	"net/http"

	"github.com/keyvault-edge/kve/shared/kve"
	"github.com/keyvault-edge/kve/shared/manage"
)

// Paths lists the path patterns (http.ServeMux syntax) the dashboard serves,
// for a server that shares its URL space with the proxy, as local mode does:
// every other path is the proxy's. infra/ routes the same paths to the
// console function.
func Paths() []string {
	return []string{"/{$}", "/setup", "/login", "/logout", "/account", "/invite/", "/o/", "/static/"}
}

// handlerFunc is a page's handler: it writes a success, or returns an error
// that fail renders.
type handlerFunc func(w http.ResponseWriter, r *http.Request) error

// routes registers every page. Organization pages live under /o/<slug>/
// (and in nav). Every POST passes cross-origin protection (ServeHTTP);
// every GET only reads.
func (s *server) routes() {
	s.mux.HandleFunc("GET /static/{hash}/{name}", s.static)

	s.handle("GET /{$}", s.firstRun(s.signedIn(s.home)))
	s.handle("GET /setup", s.setupForm)
	s.handle("POST /setup", s.setup)
	s.handle("GET /login", s.firstRun(s.loginForm))
	s.handle("POST /login", s.login)
	s.handle("GET /logout", s.signedIn(s.logoutForm))
	s.handle("POST /logout", s.logout)
	s.handle("GET /account", s.signedIn(s.account))
	s.handle("POST /account", s.signedIn(s.changeAccount))

	// An invite link: anyone may open it (a GET only shows what it is
	// for); a POST accepts it.
	s.handle("GET /invite/{code}", s.perhapsSignedIn(s.invite))
	s.handle("POST /invite/{code}", s.perhapsSignedIn(s.acceptInvite))

	s.handle("GET /o/new", s.signedIn(s.newOrgForm))
	s.handle("POST /o/new", s.signedIn(s.createOrg))
	s.handle("GET /o/{org}", s.inOrg(s.orgHome))
	s.handle("GET /o/{org}/settings", s.inOrg(s.settings))
	s.handle("POST /o/{org}/settings/rename", s.inOrg(s.renameOrg))
	s.handle("GET /o/{org}/settings/delete", s.inOrg(s.deleteOrgForm))
	s.handle("POST /o/{org}/settings/delete", s.inOrg(s.deleteOrg))

	s.handle("GET /o/{org}/tokens", s.inOrg(s.tokens))
	s.handle("POST /o/{org}/tokens", s.inOrg(s.createToken))
	s.handle("POST /o/{org}/tokens/{id}/reveal", s.inOrg(s.revealToken))
	s.handle("POST /o/{org}/tokens/{id}/policy", s.inOrg(s.updateToken))
	s.handle("GET /o/{org}/tokens/{id}/revoke", s.inOrg(s.revokeForm))
	s.handle("POST /o/{org}/tokens/{id}/revoke", s.inOrg(s.revokeToken))
	s.handle("POST /o/{org}/env", s.inOrg(s.env))
	s.handle("GET /o/{org}/tokens/{id}", s.inOrg(s.token))
	s.handle("POST /o/{org}/tokens/{id}/alerting", s.inOrg(s.setAlerting))
	s.handle("POST /o/{org}/tokens/{id}/suspend", s.inOrg(s.setSuspended(true)))
	s.handle("POST /o/{org}/tokens/{id}/resume", s.inOrg(s.setSuspended(false)))

	s.handle("GET /o/{org}/keys", s.inOrg(s.keys))
	s.handle("POST /o/{org}/keys", s.inOrg(s.createKey))
	s.handle("GET /o/{org}/keys/{name}/rotate", s.inOrg(s.rotateForm))
	s.handle("POST /o/{org}/keys/{name}/rotate", s.inOrg(s.rotateKey))
	s.handle("GET /o/{org}/keys/{name}/delete", s.inOrg(s.deleteKeyForm))
	s.handle("POST /o/{org}/keys/{name}/delete", s.inOrg(s.deleteKey))

	s.handle("GET /o/{org}/members", s.inOrg(s.members))
	s.handle("POST /o/{org}/members/{user}/role", s.inOrg(s.changeRole))
	s.handle("GET /o/{org}/members/{user}/remove", s.inOrg(s.removeForm))
	s.handle("POST /o/{org}/members/{user}/remove", s.inOrg(s.removeMember))
	s.handle("POST /o/{org}/invites", s.inOrg(s.createInvite))
	s.handle("POST /o/{org}/invites/{id}/resend", s.inOrg(s.resendInvite))
	s.handle("GET /o/{org}/invites/{id}/revoke", s.inOrg(s.revokeInviteForm))
	s.handle("POST /o/{org}/invites/{id}/revoke", s.inOrg(s.revokeInvite))

	s.handle("GET /o/{org}/usage", s.inOrg(s.usage))
	s.handle("POST /o/{org}/usage/unused/revoke", s.inOrg(s.revokeUnused))

	s.handle("GET /o/{org}/alerts", s.inOrg(s.alerts))
	s.handle("POST /o/{org}/alerts/{id}/ack", s.inOrg(s.ackIncident))
	s.handle("POST /o/{org}/alerts/subscriptions", s.inOrg(s.subscribe))
	s.handle("GET /o/{org}/alerts/subscriptions/{id}/delete", s.inOrg(s.unsubscribeForm))
	s.handle("POST /o/{org}/alerts/subscriptions/{id}/delete", s.inOrg(s.unsubscribe))
	s.handle("POST /o/{org}/alerts/test", s.inOrg(s.testAlert))

	s.handle("GET /o/{org}/billing", s.inOrg(s.billing))
	s.handle("POST /o/{org}/billing", s.inOrg(s.updateBilling))
	s.handle("POST /o/{org}/billing/prices", s.inOrg(s.setPrices))

	s.handle("GET /o/{org}/audit", s.inOrg(s.audit))
}

func (s *server) handle(pattern string, h handlerFunc) {
	s.mux.Handle(pattern, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := h(w, r); err != nil {
			s.fail(w, r, err)
		}
	}))
}

// caller is who a page serves: the signed-in user and, on an organization's
// pages, their membership there.
type caller struct {
	p manage.Principal
	m kve.Membership // zero outside an organization

	orgs   []kve.Membership // every organization of p, once read
	loaded bool

	members []kve.Member // of the organization m, once read
}

// orgs lists the caller's organizations, read once per request: the page
// and the organization switcher both show them.
func (s *server) orgs(r *http.Request) ([]kve.Membership, error) {
	c, _ := callerOf(r)
	if !c.loaded {
		ms, err := s.svc.Orgs(r.Context(), c.p)
		if err != nil {
			return nil, err
		}
		c.orgs, c.loaded = ms, true
	}
	return c.orgs, nil
}

// team lists the members of the page's organization, read once per
// request: the members page lists them, and the token and key lists name
// who created what.
func (s *server) team(r *http.Request) ([]kve.Member, error) {
	c, _ := callerOf(r)
	if c.members == nil {
		ms, err := s.svc.Members(r.Context(), orgRef(r), c.p)
		if err != nil {
			return nil, err
		}
		c.members = ms
	}
	return c.members, nil
}

type callerKey struct{}

func callerOf(r *http.Request) (*caller, bool) {
	c, ok := r.Context().Value(callerKey{}).(*caller)
	return c, ok
}

// signedIn runs h for a signed-in user; anyone else goes to the login page.
func (s *server) signedIn(h handlerFunc) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		p, err := s.authenticate(r)
		if err != nil {
			return err
		}
		ctx := context.WithValue(r.Context(), callerKey{}, &caller{p: p})
		return h(w, r.WithContext(ctx))
	}
}

// perhapsSignedIn runs h with the signed-in user if there is one, and for
// anyone else too: an invite link works signed in or not.
func (s *server) perhapsSignedIn(h handlerFunc) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		p, err := s.authenticate(r)
		switch {
		case err == nil:
			r = r.WithContext(context.WithValue(r.Context(), callerKey{}, &caller{p: p}))
		case kve.KindOf(err) != kve.KindUnauthenticated:
			return err
		}
		return h(w, r)
	}
}

// firstRun sends every visitor of a kve that nobody has set up yet to the
// setup page: before setup there is no one to sign in as.
func (s *server) firstRun(h handlerFunc) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		done, err := s.svc.SetupDone(r.Context())
		if err != nil {
			return err
		}
		if !done {
			return s.redirect(w, r, "/setup")
		}
		return h(w, r)
	}
}

// inOrg runs h for a member of the organization the path names. Outside it
// the page is not found, whether the organization exists or not (DESIGN §8).
func (s *server) inOrg(h handlerFunc) handlerFunc {
	return s.signedIn(func(w http.ResponseWriter, r *http.Request) error {
		c, _ := callerOf(r)
		m, err := s.svc.Member(r.Context(), r.PathValue("org"), c.p)
		if err != nil {
			return err
		}
		c.m = m
		return h(w, r)
	})
}

// orgRef is the organization a page acts on, as the path names it: manage
// remembers, per request, the membership inOrg looked up under this name.
func orgRef(r *http.Request) string { return r.PathValue("org") }

func membership(r *http.Request) kve.Membership {
	c, _ := callerOf(r)
	return c.m
}

func principal(r *http.Request) manage.Principal {
	c, _ := callerOf(r)
	return c.p
}
