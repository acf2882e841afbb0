package api

import (
	"bufio"
	"bytes"
	"fmt"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/keyvault-edge/kve/shared/kve"
	"github.com/keyvault-edge/kve/shared/manage"
	"github.com/keyvault-edge/kve/shared/manage/managetest"
)

func TestEveryRouteHasAnAuthorizationEntry(t *testing.T) {
	s := New(nil, Config{}).(*server)
	if len(s.patterns) == 0 {
		t.Fatal("no routes registered")
	}
	for _, p := range s.patterns {
		if _, ok := policy[p]; !ok {
			t.Errorf("route %q has no entry in the authorization table", p)
		}
	}
	for p := range policy {
		if !slices.Contains(s.patterns, p) {
			t.Errorf("authorization entry %q names no registered route", p)
		}
	}
}

func TestRouteWithoutEntryFailsClosed(t *testing.T) {
	a := newAPITeam(t)
	called := false
	a.srv.handle("GET /api/v1/unlisted", func(w http.ResponseWriter, r *http.Request) error {
		called = true
		return nil
	})
	rec := a.call(t, "GET", "/api/v1/unlisted", a.Owner.Token, "")
	wantError(t, rec, http.StatusInternalServerError, "internal")
	if called {
		t.Error("the handler of a route without an authorization entry ran")
	}
	if n := strings.Count(a.Logs.String(), `"msg":"api_error"`); n != 1 {
		t.Errorf("internal error logged %d times, want once", n)
	}
}

// openAPIRoutes reads "METHOD /path" pairs from the paths section of the
// OpenAPI file: path keys are indented two spaces, operations four.
func openAPIRoutes(t *testing.T) []string {
	t.Helper()
	pathKey := regexp.MustCompile(`^  (/\S*):\s*$`)
	opKey := regexp.MustCompile(`^    (get|put|post|delete|patch|head|options):\s*$`)
	var routes []string
	inPaths, path := false, ""
	sc := bufio.NewScanner(bytes.NewReader(openAPISpec))
	for sc.Scan() {
		line := sc.Text()
		switch {
		case line == "paths:":
			inPaths = true
		case inPaths && line != "" && line[0] != ' ':
			inPaths = false
		case !inPaths:
		case pathKey.MatchString(line):
			path = pathKey.FindStringSubmatch(line)[1]
		case opKey.MatchString(line):
			routes = append(routes, strings.ToUpper(opKey.FindStringSubmatch(line)[1])+" "+path)
		}
	}
	if len(routes) == 0 {
		t.Fatal("no routes found in openapi.yaml")
	}
	return routes
}

func TestOpenAPIMatchesRoutes(t *testing.T) {
	s := New(nil, Config{}).(*server)
	registered := slices.Sorted(slices.Values(s.patterns))
	documented := slices.Sorted(slices.Values(openAPIRoutes(t)))
	if diff := cmp.Diff(registered, documented); diff != "" {
		t.Errorf("registered routes (-) vs openapi.yaml (+):\n%s", diff)
	}
	if !bytes.HasPrefix(openAPISpec, []byte("openapi: 3.1.0\n")) {
		t.Error("openapi.yaml is not OpenAPI 3.1")
	}
}

func TestServesOpenAPI(t *testing.T) {
	a := newAPITeam(t)
	rec := a.call(t, "GET", "/api/v1/openapi.yaml", "", "")
	if rec.Code != http.StatusOK || !bytes.Equal(rec.Body.Bytes(), openAPISpec) {
		t.Errorf("GET openapi.yaml = %d, %d bytes", rec.Code, rec.Body.Len())
	}
}

// TestRoleMatrix calls every route as every kind of caller and checks the
// exact status: DESIGN §8, with 404 outside the organization and 403 for a
// member whose role lacks the right (SECURITY T21). The removed member was
// a developer of the organization and still belongs to another, so their
// API token works: only the membership is gone.
func TestRoleMatrix(t *testing.T) {
	a := newAPITeam(t)
	ctx := t.Context()
	owner := a.Principal(t, a.Owner, "192.0.2.1")
	outsider := a.Principal(t, a.Outsider, "192.0.2.5")
	otherOrgs, err := a.Service.Orgs(ctx, outsider)
	if err != nil || len(otherOrgs) != 1 {
		t.Fatalf("the outsider's orgs: %v, %v", otherOrgs, err)
	}
	removed := a.AddUser(t, "former@example.com", "Fred Former")
	a.AddMember(t, a.Org.ID, removed, kve.RoleDeveloper)
	a.AddMember(t, otherOrgs[0].Org.ID, removed, kve.RoleDeveloper)
	if _, err := a.Service.RemoveMember(ctx, a.Org.ID, owner, removed.ID); err != nil {
		t.Fatal(err)
	}

	org := "/api/v1/orgs/" + a.Org.Slug
	n := 0
	fresh := func(prefix string) string { n++; return fmt.Sprintf("%s%d", prefix, n) }
	// Objects a cell changes are created for it alone.
	newKey := func() string {
		name := fresh("k-")
		if _, err := a.Service.CreateKey(ctx, a.Org.ID, owner, manage.KeyInput{Name: name, Provider: "openai", Secret: managetest.OpenAIKey}); err != nil {
			t.Fatal(err)
		}
		return name
	}
	newToken := func() string {
		it, err := a.Service.CreateToken(ctx, a.Org.ID, owner, manage.TokenInput{Name: fresh("t-"), Key: "main", Env: "dev", AllowServer: true})
		if err != nil {
			t.Fatal(err)
		}
		return it.Token.ID
	}
	// newInvite invites a fresh address into orgRef as p; it returns the
	// invite's id and code.
	newInvite := func(p manage.Principal, orgRef, email string) (string, string) {
		if email == "" {
			email = fresh("invitee-") + "@example.com"
		}
		in, err := a.Service.CreateInvite(ctx, orgRef, p, manage.InviteInput{Email: email, Role: "developer"})
		if err != nil {
			t.Fatal(err)
		}
		return in.Invite.ID, codeOf(t, in.AcceptURL.Reveal())
	}
	newMember := func() string {
		u := a.AddUser(t, fresh("member-")+"@example.com", "Mia Member")
		a.AddMember(t, a.Org.ID, u, kve.RoleDeveloper)
		return u.ID
	}
	// newOrg is an organization with the team's roles, for a cell that
	// deletes it.
	newOrg := func() string {
		o, err := a.Service.CreateOrg(ctx, owner, manage.OrgInput{Name: fresh("Doomed ")})
		if err != nil {
			t.Fatal(err)
		}
		a.AddMember(t, o.ID, a.Admin, kve.RoleAdmin)
		a.AddMember(t, o.ID, a.Dev, kve.RoleDeveloper)
		return o.Slug
	}
	_, sharedCode := newInvite(owner, a.Org.ID, "")
	shared := newToken()

	type caller struct {
		name string
		user *managetest.User // nil: anonymous
	}
	callers := []caller{{"owner", &a.Owner}, {"admin", &a.Admin}, {"developer", &a.Dev},
		{"removed member", &removed}, {"non-member", &a.Outsider}, {"anonymous", nil}}
	type cell [6]int // in the order of callers
	const (
		ok, created, none  = http.StatusOK, http.StatusCreated, http.StatusNoContent
		unauth, forbidden  = http.StatusUnauthorized, http.StatusForbidden
		notFound, conflict = http.StatusNotFound, http.StatusConflict
	)
	inOrg := func(allowed ...int) cell { // the team's roles, then the three outside it
		return cell{allowed[0], allowed[1], allowed[2], notFound, notFound, unauth}
	}
	password := jsonOf(t, map[string]string{"current_password": managetest.OwnerPassword.Reveal(), "new_password": managetest.OwnerPassword.Reveal()})

	routes := []struct {
		pattern string
		req     func(c caller) (path, body string)
		// cred overrides the caller's usual API token (for a cell that ends it).
		cred func(c caller) kve.Secret
		want cell
	}{
		{"GET /api/v1/openapi.yaml", func(caller) (string, string) { return "/api/v1/openapi.yaml", "" }, nil,
			cell{ok, ok, ok, ok, ok, ok}},
		{"POST /api/v1/setup", func(caller) (string, string) {
			return "/api/v1/setup", `{"code":"x","email":"a@example.com","name":"A","password":"long-enough-FAKE"}`
		}, nil, cell{conflict, conflict, conflict, conflict, conflict, conflict}},
		{"POST /api/v1/login", func(caller) (string, string) {
			return "/api/v1/login", jsonOf(t, map[string]string{"email": managetest.OwnerEmail, "password": managetest.OwnerPassword.Reveal()})
		}, nil, cell{ok, ok, ok, ok, ok, ok}},
		{"POST /api/v1/logout", func(caller) (string, string) { return "/api/v1/logout", "" },
			func(c caller) kve.Secret { return a.AddToken(t, c.user.ID) }, cell{none, none, none, none, none, unauth}},
		{"GET /api/v1/account/tokens", func(caller) (string, string) { return "/api/v1/account/tokens", "" }, nil,
			cell{ok, ok, ok, ok, ok, unauth}},
		{"DELETE /api/v1/account/tokens/{id}", func(c caller) (string, string) {
			userID := a.Owner.ID
			if c.user != nil {
				userID = c.user.ID
			}
			return "/api/v1/account/tokens/" + apiTokenID(t, a, userID), ""
		}, nil, cell{none, none, none, none, none, unauth}},
		// Only the owner has a password; the others' checks fail.
		{"POST /api/v1/account/password", func(caller) (string, string) { return "/api/v1/account/password", password }, nil,
			cell{ok, forbidden, forbidden, forbidden, forbidden, unauth}},
		{"GET /api/v1/invites/{code}", func(caller) (string, string) { return "/api/v1/invites/" + sharedCode, "" }, nil,
			cell{ok, ok, ok, ok, ok, ok}},
		// Each caller accepts an invite for their own address into a new
		// organization of the outsider's; anonymously, one for a new
		// address, creating the account. The outsider owns that
		// organization, so their address cannot be invited: they try an
		// invite for another address, which is refused (SECURITY T36).
		{"POST /api/v1/invites/accept", func(c caller) (string, string) {
			o, err := a.Service.CreateOrg(ctx, outsider, manage.OrgInput{Name: fresh("Join ")})
			if err != nil {
				t.Fatal(err)
			}
			switch {
			case c.user == nil:
				_, code := newInvite(outsider, o.ID, "")
				return "/api/v1/invites/accept", jsonOf(t, map[string]string{"code": code, "name": "Nia New", "password": "new-password-FAKE-77"})
			case c.user.ID == a.Outsider.ID:
				_, code := newInvite(outsider, o.ID, "")
				return "/api/v1/invites/accept", jsonOf(t, map[string]string{"code": code})
			}
			_, code := newInvite(outsider, o.ID, c.user.Email)
			return "/api/v1/invites/accept", jsonOf(t, map[string]string{"code": code})
		}, nil, cell{created, created, created, created, forbidden, created}},
		{"POST /api/v1/orgs", func(caller) (string, string) { return "/api/v1/orgs", `{"name":"New Org"}` }, nil,
			cell{created, created, created, created, created, unauth}},
		{"GET /api/v1/orgs", func(caller) (string, string) { return "/api/v1/orgs", "" }, nil,
			cell{ok, ok, ok, ok, ok, unauth}},
		{"PATCH /api/v1/orgs/{org}", func(caller) (string, string) { return org, `{"name":"Acme Labs"}` }, nil,
			inOrg(ok, forbidden, forbidden)},
		{"DELETE /api/v1/orgs/{org}", func(caller) (string, string) { return "/api/v1/orgs/" + newOrg(), "" }, nil,
			inOrg(ok, forbidden, forbidden)},
		{"GET /api/v1/orgs/{org}/members", func(caller) (string, string) { return org + "/members", "" }, nil,
			inOrg(ok, ok, ok)},
		{"PATCH /api/v1/orgs/{org}/members/{user}", func(caller) (string, string) {
			return org + "/members/" + newMember(), `{"role":"admin"}`
		}, nil, inOrg(ok, forbidden, forbidden)},
		{"DELETE /api/v1/orgs/{org}/members/{user}", func(caller) (string, string) { return org + "/members/" + newMember(), "" }, nil,
			inOrg(ok, forbidden, forbidden)},
		{"POST /api/v1/orgs/{org}/invites", func(caller) (string, string) {
			return org + "/invites", jsonOf(t, map[string]string{"email": fresh("new-") + "@example.com", "role": "developer"})
		}, nil, inOrg(created, created, forbidden)},
		{"GET /api/v1/orgs/{org}/invites", func(caller) (string, string) { return org + "/invites", "" }, nil,
			inOrg(ok, ok, forbidden)},
		{"DELETE /api/v1/orgs/{org}/invites/{id}", func(caller) (string, string) {
			id, _ := newInvite(owner, a.Org.ID, "")
			return org + "/invites/" + id, ""
		}, nil, inOrg(none, none, forbidden)},
		{"POST /api/v1/orgs/{org}/invites/{id}/resend", func(caller) (string, string) {
			id, _ := newInvite(owner, a.Org.ID, "")
			return org + "/invites/" + id + "/resend", ""
		}, nil, inOrg(ok, ok, forbidden)},
		{"POST /api/v1/orgs/{org}/keys", func(caller) (string, string) {
			return org + "/keys", jsonOf(t, map[string]string{"name": fresh("new-"), "provider": "openai", "secret": managetest.OpenAIKey.Reveal()})
		}, nil, inOrg(created, forbidden, forbidden)},
		{"GET /api/v1/orgs/{org}/keys", func(caller) (string, string) { return org + "/keys", "" }, nil,
			inOrg(ok, forbidden, forbidden)},
		{"POST /api/v1/orgs/{org}/keys/{name}/rotate", func(caller) (string, string) {
			return org + "/keys/main/rotate", jsonOf(t, map[string]string{"secret": "sk-test-FAKE-rotated-0000000001"})
		}, nil, inOrg(ok, forbidden, forbidden)},
		{"DELETE /api/v1/orgs/{org}/keys/{name}", func(caller) (string, string) { return org + "/keys/" + newKey(), "" }, nil,
			inOrg(none, forbidden, forbidden)},
		{"POST /api/v1/orgs/{org}/tokens", func(caller) (string, string) {
			return org + "/tokens", `{"name":"mine","key":"main","env":"dev","personal":true,"allow_server":true}`
		}, nil, inOrg(created, created, created)},
		{"GET /api/v1/orgs/{org}/tokens", func(caller) (string, string) { return org + "/tokens", "" }, nil,
			inOrg(ok, ok, ok)},
		{"GET /api/v1/orgs/{org}/tokens/{id}", func(caller) (string, string) { return org + "/tokens/" + shared, "" }, nil,
			inOrg(ok, ok, ok)},
		{"PATCH /api/v1/orgs/{org}/tokens/{id}", func(caller) (string, string) { return org + "/tokens/" + shared, `{"rpm":10}` }, nil,
			inOrg(ok, ok, forbidden)},
		{"DELETE /api/v1/orgs/{org}/tokens/{id}", func(caller) (string, string) { return org + "/tokens/" + newToken(), "" }, nil,
			inOrg(ok, ok, forbidden)},
		{"GET /api/v1/orgs/{org}/env", func(caller) (string, string) { return org + "/env?env=dev", "" }, nil,
			inOrg(ok, ok, ok)},
		{"GET /api/v1/orgs/{org}/audit", func(caller) (string, string) { return org + "/audit", "" }, nil,
			inOrg(ok, ok, forbidden)},
		{"GET /api/v1/orgs/{org}/usage", func(caller) (string, string) { return org + "/usage?by=day", "" }, nil,
			inOrg(ok, ok, ok)},
		{"GET /api/v1/orgs/{org}/usage/unused", func(caller) (string, string) { return org + "/usage/unused", "" }, nil,
			inOrg(ok, ok, forbidden)},
		{"POST /api/v1/orgs/{org}/tokens/revoke", func(caller) (string, string) {
			return org + "/tokens/revoke", `{"ids":["` + newToken() + `"]}`
		}, nil, inOrg(ok, ok, forbidden)},
		{"GET /api/v1/orgs/{org}/billing", func(caller) (string, string) { return org + "/billing", "" }, nil,
			inOrg(ok, forbidden, forbidden)},
		{"PATCH /api/v1/orgs/{org}/billing", func(caller) (string, string) {
			return org + "/billing", `{"contact_email":"billing@example.com"}`
		}, nil, inOrg(ok, forbidden, forbidden)},
		{"GET /api/v1/orgs/{org}/billing/prices", func(caller) (string, string) { return org + "/billing/prices", "" }, nil,
			inOrg(ok, forbidden, forbidden)},
		{"PUT /api/v1/orgs/{org}/billing/prices", func(caller) (string, string) {
			return org + "/billing/prices", `{"overrides":[]}`
		}, nil, inOrg(ok, forbidden, forbidden)},
		{"GET /api/v1/orgs/{org}/billing/report", func(caller) (string, string) {
			return org + "/billing/report?month=" + a.Clock.Now().UTC().Format("2006-01"), ""
		}, nil, inOrg(ok, forbidden, forbidden)},
		{"GET /api/v1/orgs/{org}/alerts", func(caller) (string, string) { return org + "/alerts", "" }, nil,
			inOrg(ok, ok, forbidden)},
		{"POST /api/v1/orgs/{org}/alerts/{id}/ack", func(caller) (string, string) {
			return org + "/alerts/" + newIncident(t, a, newToken()) + "/ack", ""
		}, nil, inOrg(ok, ok, forbidden)},
		{"GET /api/v1/orgs/{org}/alerts/subscriptions", func(caller) (string, string) { return org + "/alerts/subscriptions", "" }, nil,
			inOrg(ok, ok, forbidden)},
		{"POST /api/v1/orgs/{org}/alerts/subscriptions", func(caller) (string, string) {
			return org + "/alerts/subscriptions", `{"protocol":"https","endpoint":"https://hooks.example.invalid/` + fresh("h-") + `"}`
		}, nil, inOrg(created, created, forbidden)},
		{"DELETE /api/v1/orgs/{org}/alerts/subscriptions/{id}", func(caller) (string, string) {
			return org + "/alerts/subscriptions/" + newSubscription(t, a, owner, fresh("h-")), ""
		}, nil, inOrg(none, none, forbidden)},
		{"POST /api/v1/orgs/{org}/alerts/test", func(caller) (string, string) { return org + "/alerts/test", "" }, nil,
			inOrg(http.StatusAccepted, http.StatusAccepted, forbidden)},
		// No scanning keys on this deployment: the endpoint is not found,
		// for every caller alike (no credential is ever asked for).
		{"POST /api/v1/secret-scanning/github", func(caller) (string, string) { return "/api/v1/secret-scanning/github", "[]" }, nil,
			cell{notFound, notFound, notFound, notFound, notFound, notFound}},
	}

	covered := map[string]bool{}
	for _, rt := range routes {
		covered[rt.pattern] = true
		method, _, _ := strings.Cut(rt.pattern, " ")
		for i, c := range callers {
			t.Run(rt.pattern+"/"+c.name, func(t *testing.T) {
				path, body := rt.req(c)
				var cred kve.Secret
				switch {
				case c.user == nil:
				case rt.cred != nil:
					cred = rt.cred(c)
				default:
					cred = c.user.Token
				}
				rec := a.call(t, method, path, cred, body)
				if rec.Code != rt.want[i] {
					t.Errorf("status = %d, want %d; body %s", rec.Code, rt.want[i], rec.Body)
				}
			})
		}
	}
	for p := range policy {
		if !covered[p] {
			t.Errorf("route %q is missing from the role matrix", p)
		}
	}
}

// codeOf takes the invite code out of an accept URL.
func codeOf(t *testing.T, acceptURL string) string {
	t.Helper()
	_, code, ok := strings.Cut(acceptURL, "/invite/")
	if !ok || code == "" {
		t.Fatalf("accept URL %q holds no code", acceptURL)
	}
	return code
}

// apiTokenID stores another API token of userID and returns its id.
func apiTokenID(t *testing.T, a *apiTeam, userID string) string {
	t.Helper()
	now := a.Clock.Now()
	s := kve.Session{ID: kve.NewID(kve.PrefixSession, now), UserID: userID, Kind: kve.SessionAPI, Name: "spare",
		Hash: a.Keyring.Hash(kve.NewAPIToken().Reveal()), CreatedAt: now, ExpiresAt: now.Add(time.Hour), LastSeen: now}
	if err := a.Store.CreateSession(t.Context(), s); err != nil {
		t.Fatal(err)
	}
	return s.ID
}

// TestOrgByIDAndSlugDecideAlike: the same decision whichever way the
// organization is named, and the same 404 for one that does not exist.
func TestOrgByIDAndSlugDecideAlike(t *testing.T) {
	a := newAPITeam(t)
	for _, ref := range []string{a.Org.ID, a.Org.Slug} {
		if rec := a.call(t, "GET", "/api/v1/orgs/"+ref+"/keys", a.Owner.Token, ""); rec.Code != http.StatusOK {
			t.Errorf("owner GET keys via %s = %d", ref, rec.Code)
		}
		if rec := a.call(t, "GET", "/api/v1/orgs/"+ref+"/keys", a.Dev.Token, ""); rec.Code != http.StatusForbidden {
			t.Errorf("developer GET keys via %s = %d", ref, rec.Code)
		}
	}
	missing := a.call(t, "GET", "/api/v1/orgs/no-such-org/tokens", a.Outsider.Token, "")
	existing := a.call(t, "GET", "/api/v1/orgs/"+a.Org.Slug+"/tokens", a.Outsider.Token, "")
	wantError(t, missing, http.StatusNotFound, "not_found")
	if missing.Body.String() != existing.Body.String() {
		t.Errorf("non-member answers differ: %s vs %s", missing.Body, existing.Body)
	}
}
