package api

import (
	"bufio"
	"bytes"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"testing"

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
// member whose role lacks the right.
func TestRoleMatrix(t *testing.T) {
	a := newAPITeam(t)
	ctx := t.Context()
	owner := a.Principal(t, a.Owner, "192.0.2.1")
	org := "/api/v1/orgs/" + a.Org.Slug
	n := 0
	fresh := func(prefix string) string { n++; return prefix + string(rune('a'+n%26)) + strings.Repeat("x", n/26) }
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
	shared := newToken()

	type cell struct{ owner, admin, dev, outsider, anonymous int }
	const (
		ok, created, none  = http.StatusOK, http.StatusCreated, http.StatusNoContent
		unauth, forbidden  = http.StatusUnauthorized, http.StatusForbidden
		notFound, conflict = http.StatusNotFound, http.StatusConflict
	)
	routes := []struct {
		pattern string
		req     func() (path, body string)
		want    cell
	}{
		{"GET /api/v1/openapi.yaml", func() (string, string) { return "/api/v1/openapi.yaml", "" },
			cell{ok, ok, ok, ok, ok}},
		{"POST /api/v1/setup", func() (string, string) {
			return "/api/v1/setup", `{"code":"x","email":"a@example.com","name":"A","password":"long-enough-FAKE"}`
		}, cell{conflict, conflict, conflict, conflict, conflict}},
		{"POST /api/v1/login", func() (string, string) {
			return "/api/v1/login", jsonOf(t, map[string]string{"email": managetest.OwnerEmail, "password": managetest.OwnerPassword.Reveal()})
		}, cell{ok, ok, ok, ok, ok}},
		{"POST /api/v1/orgs", func() (string, string) { return "/api/v1/orgs", `{"name":"New Org"}` },
			cell{created, created, created, created, unauth}},
		{"GET /api/v1/orgs", func() (string, string) { return "/api/v1/orgs", "" },
			cell{ok, ok, ok, ok, unauth}},
		{"POST /api/v1/orgs/{org}/keys", func() (string, string) {
			return org + "/keys", jsonOf(t, map[string]string{"name": fresh("new-"), "provider": "openai", "secret": managetest.OpenAIKey.Reveal()})
		}, cell{created, forbidden, forbidden, notFound, unauth}},
		{"GET /api/v1/orgs/{org}/keys", func() (string, string) { return org + "/keys", "" },
			cell{ok, forbidden, forbidden, notFound, unauth}},
		{"POST /api/v1/orgs/{org}/keys/{name}/rotate", func() (string, string) {
			return org + "/keys/main/rotate", jsonOf(t, map[string]string{"secret": "sk-test-FAKE-rotated-0000000001"})
		}, cell{ok, forbidden, forbidden, notFound, unauth}},
		{"DELETE /api/v1/orgs/{org}/keys/{name}", func() (string, string) { return org + "/keys/" + newKey(), "" },
			cell{none, forbidden, forbidden, notFound, unauth}},
		{"POST /api/v1/orgs/{org}/tokens", func() (string, string) {
			return org + "/tokens", `{"name":"mine","key":"main","env":"dev","personal":true,"allow_server":true}`
		}, cell{created, created, created, notFound, unauth}},
		{"GET /api/v1/orgs/{org}/tokens", func() (string, string) { return org + "/tokens", "" },
			cell{ok, ok, ok, notFound, unauth}},
		{"GET /api/v1/orgs/{org}/tokens/{id}", func() (string, string) { return org + "/tokens/" + shared, "" },
			cell{ok, ok, ok, notFound, unauth}},
		{"PATCH /api/v1/orgs/{org}/tokens/{id}", func() (string, string) { return org + "/tokens/" + shared, `{"rpm":10}` },
			cell{ok, ok, forbidden, notFound, unauth}},
		{"DELETE /api/v1/orgs/{org}/tokens/{id}", func() (string, string) { return org + "/tokens/" + newToken(), "" },
			cell{ok, ok, forbidden, notFound, unauth}},
		{"GET /api/v1/orgs/{org}/audit", func() (string, string) { return org + "/audit", "" },
			cell{ok, ok, forbidden, notFound, unauth}},
	}

	covered := map[string]bool{}
	for _, rt := range routes {
		covered[rt.pattern] = true
		method, _, _ := strings.Cut(rt.pattern, " ")
		callers := []struct {
			name string
			cred kve.Secret
			want int
		}{
			{"owner", a.Owner.Token, rt.want.owner},
			{"admin", a.Admin.Token, rt.want.admin},
			{"developer", a.Dev.Token, rt.want.dev},
			{"non-member", a.Outsider.Token, rt.want.outsider},
			{"anonymous", "", rt.want.anonymous},
		}
		for _, c := range callers {
			t.Run(rt.pattern+"/"+c.name, func(t *testing.T) {
				path, body := rt.req()
				rec := a.call(t, method, path, c.cred, body)
				if rec.Code != c.want {
					t.Errorf("status = %d, want %d; body %s", rec.Code, c.want, rec.Body)
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
