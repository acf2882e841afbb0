package api

import (
	"context"
	"fmt"
	"net/http"

	"github.com/keyvault-edge/kve/shared/kve"
	"github.com/keyvault-edge/kve/shared/manage"
)

// access says who may call a route.
type access struct {
	anonymous bool       // no credential at all
	optional  bool       // anyone; a credential, when sent, is checked and used
	roles     []kve.Role // roles in the route's {org}; nil: any signed-in user
}

var (
	anonymous = access{anonymous: true}
	optional  = access{optional: true}
	signedIn  = access{}
	owner     = access{roles: []kve.Role{kve.RoleOwner}}
	managers  = access{roles: []kve.Role{kve.RoleOwner, kve.RoleAdmin}}
	members   = access{roles: []kve.Role{kve.RoleOwner, kve.RoleAdmin, kve.RoleDeveloper}}
)

// policy is the authorization table: every route, by its ServeMux pattern,
// with who may call it (DESIGN §8). A caller outside the route's {org} gets
// 404, a member whose role is not listed 403. Finer rules (a Developer's own
// personal dev tokens only) are manage's, which checks them on every call.
var policy = map[string]access{
	"GET /api/v1/openapi.yaml": anonymous,
	"POST /api/v1/setup":       anonymous,
	"POST /api/v1/login":       anonymous,
	"POST /api/v1/logout":      signedIn,

	"GET /api/v1/account/tokens":         signedIn, // the caller's own
	"DELETE /api/v1/account/tokens/{id}": signedIn,
	"POST /api/v1/account/password":      signedIn,

	"GET /api/v1/invites/{code}":  anonymous, // reads, never consumes: mail scanners open links
	"POST /api/v1/invites/accept": optional,  // signed in: joins that account, which must have the invite's address

	"POST /api/v1/orgs":         signedIn,
	"GET /api/v1/orgs":          signedIn,
	"PATCH /api/v1/orgs/{org}":  owner,
	"DELETE /api/v1/orgs/{org}": owner,

	"GET /api/v1/orgs/{org}/members":           members,
	"PATCH /api/v1/orgs/{org}/members/{user}":  owner, // no role above the caller's own
	"DELETE /api/v1/orgs/{org}/members/{user}": owner,

	"POST /api/v1/orgs/{org}/invites":             managers, // Admins: admin and developer invites only
	"GET /api/v1/orgs/{org}/invites":              managers,
	"DELETE /api/v1/orgs/{org}/invites/{id}":      managers,
	"POST /api/v1/orgs/{org}/invites/{id}/resend": managers,

	"POST /api/v1/orgs/{org}/keys":               owner,
	"GET /api/v1/orgs/{org}/keys":                owner,
	"POST /api/v1/orgs/{org}/keys/{name}/rotate": owner,
	"DELETE /api/v1/orgs/{org}/keys/{name}":      owner,

	"POST /api/v1/orgs/{org}/tokens":        members, // Developers: personal dev tokens only
	"GET /api/v1/orgs/{org}/tokens":         members, // Developers: shared + own personal
	"GET /api/v1/orgs/{org}/tokens/{id}":    members, // reveal, audited; same visibility
	"PATCH /api/v1/orgs/{org}/tokens/{id}":  managers,
	"DELETE /api/v1/orgs/{org}/tokens/{id}": members, // Developers: own personal dev tokens

	"GET /api/v1/orgs/{org}/env":   members, // shared tokens only; every value audited
	"GET /api/v1/orgs/{org}/audit": managers,

	"GET /api/v1/orgs/{org}/usage":          members,  // Developers: their own personal tokens only
	"GET /api/v1/orgs/{org}/usage/unused":   managers, // the monthly audit
	"POST /api/v1/orgs/{org}/tokens/revoke": managers, // its one call: revoke the unused

	"GET /api/v1/orgs/{org}/billing":        owner,
	"PATCH /api/v1/orgs/{org}/billing":      owner,
	"GET /api/v1/orgs/{org}/billing/prices": owner,
	"PUT /api/v1/orgs/{org}/billing/prices": owner,
	"GET /api/v1/orgs/{org}/billing/report": owner,

	// Breach alerts (alerts.go). The secret-scanning endpoint takes no
	// credential: the report's signature, checked by manage, is its
	// authentication.
	"GET /api/v1/orgs/{org}/alerts":                       managers,
	"POST /api/v1/orgs/{org}/alerts/{id}/ack":             managers,
	"GET /api/v1/orgs/{org}/alerts/subscriptions":         managers,
	"POST /api/v1/orgs/{org}/alerts/subscriptions":        managers,
	"DELETE /api/v1/orgs/{org}/alerts/subscriptions/{id}": managers,
	"POST /api/v1/orgs/{org}/alerts/test":                 managers,
	"POST /api/v1/secret-scanning/github":                 anonymous,
}

func (s *server) routes() {
	s.handle("GET /api/v1/openapi.yaml", s.openAPI)
	s.handle("POST /api/v1/setup", s.setup)
	s.handle("POST /api/v1/login", s.login)
	s.handle("POST /api/v1/logout", s.logout)

	s.handle("GET /api/v1/account/tokens", s.apiTokens)
	s.handle("DELETE /api/v1/account/tokens/{id}", s.deleteAPIToken)
	s.handle("POST /api/v1/account/password", s.changePassword)

	s.handle("GET /api/v1/invites/{code}", s.inviteInfo)
	s.handle("POST /api/v1/invites/accept", s.acceptInvite)

	s.handle("POST /api/v1/orgs", s.createOrg)
	s.handle("GET /api/v1/orgs", s.orgs)
	s.handle("PATCH /api/v1/orgs/{org}", s.renameOrg)
	s.handle("DELETE /api/v1/orgs/{org}", s.deleteOrg)

	s.handle("GET /api/v1/orgs/{org}/members", s.members)
	s.handle("PATCH /api/v1/orgs/{org}/members/{user}", s.changeRole)
	s.handle("DELETE /api/v1/orgs/{org}/members/{user}", s.removeMember)

	s.handle("POST /api/v1/orgs/{org}/invites", s.createInvite)
	s.handle("GET /api/v1/orgs/{org}/invites", s.invites)
	s.handle("DELETE /api/v1/orgs/{org}/invites/{id}", s.revokeInvite)
	s.handle("POST /api/v1/orgs/{org}/invites/{id}/resend", s.resendInvite)

	s.handle("POST /api/v1/orgs/{org}/keys", s.createKey)
	s.handle("GET /api/v1/orgs/{org}/keys", s.keys)
	s.handle("POST /api/v1/orgs/{org}/keys/{name}/rotate", s.rotateKey)
	s.handle("DELETE /api/v1/orgs/{org}/keys/{name}", s.deleteKey)

	s.handle("POST /api/v1/orgs/{org}/tokens", s.createToken)
	s.handle("GET /api/v1/orgs/{org}/tokens", s.tokens)
	s.handle("GET /api/v1/orgs/{org}/tokens/{id}", s.revealToken)
	s.handle("PATCH /api/v1/orgs/{org}/tokens/{id}", s.updateToken)
	s.handle("DELETE /api/v1/orgs/{org}/tokens/{id}", s.revokeToken)

	s.handle("GET /api/v1/orgs/{org}/env", s.env)
	s.handle("GET /api/v1/orgs/{org}/audit", s.events)

	s.handle("GET /api/v1/orgs/{org}/usage", s.usage)
	s.handle("GET /api/v1/orgs/{org}/usage/unused", s.unusedTokens)
	s.handle("POST /api/v1/orgs/{org}/tokens/revoke", s.revokeTokens)

	s.handle("GET /api/v1/orgs/{org}/billing", s.billing)
	s.handle("PATCH /api/v1/orgs/{org}/billing", s.updateBilling)
	s.handle("GET /api/v1/orgs/{org}/billing/prices", s.prices)
	s.handle("PUT /api/v1/orgs/{org}/billing/prices", s.setPrices)
	s.handle("GET /api/v1/orgs/{org}/billing/report", s.billingReport)

	s.handle("GET /api/v1/orgs/{org}/alerts", s.incidents)
	s.handle("POST /api/v1/orgs/{org}/alerts/{id}/ack", s.ackIncident)
	s.handle("GET /api/v1/orgs/{org}/alerts/subscriptions", s.alertSubscriptions)
	s.handle("POST /api/v1/orgs/{org}/alerts/subscriptions", s.subscribe)
	s.handle("DELETE /api/v1/orgs/{org}/alerts/subscriptions/{id}", s.unsubscribe)
	s.handle("POST /api/v1/orgs/{org}/alerts/test", s.testAlert)
	s.handle("POST /api/v1/secret-scanning/github", s.secretScanning)
}

// handlerFunc is a route's handler: it writes a success, or returns an error
// that serve renders.
type handlerFunc func(w http.ResponseWriter, r *http.Request) error

// handle registers h behind the route's entry in the authorization table.
func (s *server) handle(pattern string, h handlerFunc) {
	s.patterns = append(s.patterns, pattern)
	a, ok := policy[pattern]
	s.mux.Handle(pattern, s.serve(func(w http.ResponseWriter, r *http.Request) error {
		if !ok {
			return fmt.Errorf("route %q has no authorization entry", pattern) // fails closed, 500
		}
		if a.anonymous || a.optional && !s.hasCredential(r) {
			return h(w, r)
		}
		p, err := s.authenticate(r)
		if err != nil {
			return err
		}
		if a.roles != nil {
			if _, err := s.svc.Authorize(r.Context(), r.PathValue("org"), p, a.roles...); err != nil {
				return err
			}
		}
		return h(w, r.WithContext(context.WithValue(r.Context(), principalKey{}, p)))
	}))
}

// serve adapts a handlerFunc, rendering its error.
func (s *server) serve(h handlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := h(w, r); err != nil {
			s.writeError(w, r, err)
		}
	})
}

type principalKey struct{}

// principal returns the caller that handle authenticated.
func principal(r *http.Request) manage.Principal {
	p, _ := r.Context().Value(principalKey{}).(manage.Principal)
	return p
}

// signedInCaller returns the caller of an optional route, nil when the
// request came without a credential.
func signedInCaller(r *http.Request) *manage.Principal {
	p, ok := r.Context().Value(principalKey{}).(manage.Principal)
	if !ok {
		return nil
	}
	return &p
}
