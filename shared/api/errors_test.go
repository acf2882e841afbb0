package api

import (
	"context"
	"net/http"
	"strconv"
	"strings"
	"testing"

	"github.com/keyvault-edge/kve/shared/kve"
	"github.com/keyvault-edge/kve/shared/manage"
	"github.com/keyvault-edge/kve/shared/manage/managetest"
)

// TestErrorStatuses reaches every status the API answers with for an error.
func TestErrorStatuses(t *testing.T) {
	a := newAPITeam(t)
	org := "/api/v1/orgs/" + a.Org.Slug
	tok := a.call(t, "POST", org+"/tokens", a.Owner.Token, `{"name":"web","key":"main","env":"dev","allow_server":true}`)
	id := decodeBody[map[string]any](t, tok)["id"].(string)
	a.call(t, "DELETE", org+"/tokens/"+id, a.Owner.Token, "")

	tests := []struct {
		name         string
		method, path string
		cred         kve.Secret
		body         string
		status       int
		code         string
	}{
		{"invalid", "POST", "/api/v1/orgs", a.Owner.Token, `{"name":""}`, http.StatusBadRequest, "invalid_name"},
		{"unauthenticated", "GET", "/api/v1/orgs", "", "", http.StatusUnauthorized, "unauthenticated"},
		{"forbidden", "GET", org + "/audit", a.Dev.Token, "", http.StatusForbidden, "forbidden"},
		{"not found", "GET", org + "/tokens/tok_nothing", a.Owner.Token, "", http.StatusNotFound, "not_found"},
		{"no route", "GET", "/api/v1/nothing", a.Owner.Token, "", http.StatusNotFound, "no_route"},
		{"wrong method", "PUT", "/api/v1/orgs", a.Owner.Token, "", http.StatusNotFound, "no_route"},
		{"conflict", "POST", org + "/keys", a.Owner.Token, `{"name":"main","provider":"openai","secret":"sk-test-FAKE-dup-0000"}`, http.StatusConflict, "key_exists"},
		{"gone", "GET", org + "/tokens/" + id, a.Owner.Token, "", http.StatusGone, "token_revoked"},
		{"too large", "POST", "/api/v1/orgs", a.Owner.Token, `{"name":"` + strings.Repeat("a", 1<<20) + `"}`, http.StatusRequestEntityTooLarge, "request_too_large"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			wantError(t, a.call(t, tt.method, tt.path, tt.cred, tt.body), tt.status, tt.code)
		})
	}

	t.Run("unauthenticated names the scheme", func(t *testing.T) {
		rec := a.call(t, "GET", "/api/v1/orgs", "", "")
		if got := rec.Header().Get("WWW-Authenticate"); got != `Bearer realm="kve"` {
			t.Errorf("WWW-Authenticate = %q", got)
		}
	})
}

func TestRateLimitedAnswersRetryAfter(t *testing.T) {
	a := newAPITeam(t)
	wrong := `{"email":"owner@example.com","password":"wrong-password-FAKE"}`
	for i := range 10 {
		wantError(t, a.call(t, "POST", "/api/v1/login", "", wrong, from("198.51.100."+strconv.Itoa(i+1))), http.StatusUnauthorized, "invalid_credentials")
	}
	right := jsonOf(t, map[string]string{"email": managetest.OwnerEmail, "password": managetest.OwnerPassword.Reveal()})
	rec := a.call(t, "POST", "/api/v1/login", "", right, from("198.51.100.99"))
	wantError(t, rec, http.StatusTooManyRequests, "rate_limited")
	secs, err := strconv.Atoi(rec.Header().Get("Retry-After"))
	if err != nil || secs < 1 || secs > 90 {
		t.Errorf("Retry-After = %q, want 1 to 90 seconds", rec.Header().Get("Retry-After"))
	}
}

func TestUnavailable(t *testing.T) {
	// Setup reads its code from a secret store that cannot answer.
	e := managetest.New(t, func(c *manage.Config) {
		c.SetupCode = func(context.Context) (kve.Secret, error) { return "", kve.ErrUnavailable }
	})
	h := New(e.Service, Config{Logger: e.Logs.Logger()})
	rec := send(t, h, "POST", "/api/v1/setup", "", `{"code":"x","email":"a@example.com","name":"A","password":"long-enough-FAKE"}`)
	wantError(t, rec, http.StatusServiceUnavailable, "unavailable")
	if !strings.Contains(e.Logs.String(), `"msg":"api_unavailable"`) {
		t.Error("an unavailable dependency was not logged")
	}
}

func TestRequestBodies(t *testing.T) {
	a := newAPITeam(t)
	org := "/api/v1/orgs/" + a.Org.Slug
	tok := a.call(t, "POST", org+"/tokens", a.Owner.Token, `{"name":"web","key":"main","env":"stg","allow_server":true}`)
	id := decodeBody[map[string]any](t, tok)["id"].(string)
	tests := []struct {
		name         string
		method, path string
		body         string
		code         string
	}{
		{"empty", "POST", "/api/v1/orgs", "", "invalid_json"},
		{"not JSON", "POST", "/api/v1/orgs", `name=x`, "invalid_json"},
		{"two values", "POST", "/api/v1/orgs", `{"name":"a"}{"name":"b"}`, "invalid_json"},
		{"trailing garbage", "POST", "/api/v1/orgs", `{"name":"a"} x`, "invalid_json"},
		{"wrong type", "POST", "/api/v1/orgs", `{"name":7}`, "invalid_json"},
		{"unknown field", "POST", "/api/v1/orgs", `{"name":"a","owner":"usr_x"}`, "unknown_field"},
		{"unknown field in a key", "POST", org + "/keys", `{"name":"k2","provider":"openai","secret":"sk-test-FAKE-00000","org_id":"org_x"}`, "unknown_field"},
		{"unknown field in a token", "POST", org + "/tokens", `{"name":"t","key":"main","env":"dev","allow_server":true,"owner_id":"usr_x"}`, "unknown_field"},
		// Mass assignment: nothing beyond the policy can be patched.
		{"patch org_id", "PATCH", org + "/tokens/" + id, `{"org_id":"org_01kjpwd6m07j60wcc8kxx9v2eb"}`, "unknown_field"},
		{"patch kind", "PATCH", org + "/tokens/" + id, `{"kind":"pt"}`, "unknown_field"},
		{"patch owner_id", "PATCH", org + "/tokens/" + id, `{"owner_id":"usr_01kjpwd6m0ew5mgc0hepcbb1ar"}`, "unknown_field"},
		{"patch env", "PATCH", org + "/tokens/" + id, `{"env":"prd"}`, "unknown_field"},
		{"patch key", "PATCH", org + "/tokens/" + id, `{"key":"other"}`, "unknown_field"},
		{"patch with an allowed field too", "PATCH", org + "/tokens/" + id, `{"rpm":5,"owner_id":"usr_x"}`, "unknown_field"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			wantError(t, a.call(t, tt.method, tt.path, a.Owner.Token, tt.body), http.StatusBadRequest, tt.code)
		})
	}
	stored, err := a.Store.Token(t.Context(), a.Org.ID, id)
	if err != nil || stored.Policy.RPM != 0 || stored.Kind != kve.TokenShared || stored.OwnerID != "" {
		t.Errorf("a refused patch changed the token: %+v, %v", stored, err)
	}
	if n := len(decodeBody[list[any]](t, a.call(t, "GET", "/api/v1/orgs", a.Owner.Token, "")).Items); n != 1 {
		t.Errorf("owner has %d orgs after refused creations, want 1", n)
	}
}

func TestCredentials(t *testing.T) {
	a := newAPITeam(t)
	proxyToken := kve.NewTokenValue(kve.TokenShared, kve.EnvDev)
	tests := []struct {
		name   string
		header []string
	}{
		{"proxy token", []string{"Bearer " + proxyToken.Reveal()}},
		{"unknown kvm_ token", []string{"Bearer " + kve.NewAPIToken().Reveal()}},
		{"basic", []string{"Basic " + a.Owner.Token.Reveal()}},
		{"no scheme", []string{a.Owner.Token.Reveal()}},
		{"two headers", []string{"Bearer " + a.Owner.Token.Reveal(), "Bearer " + a.Owner.Token.Reveal()}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := a.call(t, "GET", "/api/v1/orgs", "", "", func(r *http.Request) { r.Header["Authorization"] = tt.header })
			wantError(t, rec, http.StatusUnauthorized, "unauthenticated")
		})
	}
	rec := a.call(t, "GET", "/api/v1/orgs", "", "", func(r *http.Request) { r.Header.Set("Authorization", "bearer "+a.Owner.Token.Reveal()) })
	if rec.Code != http.StatusOK {
		t.Errorf("lower-case bearer scheme: %d", rec.Code)
	}
}

func TestSessionCookie(t *testing.T) {
	a := newAPITeam(t)
	c, err := a.Service.Login(t.Context(), manage.LoginInput{Email: managetest.OwnerEmail, Password: managetest.OwnerPassword}, "192.0.2.1", kve.SessionBrowser)
	if err != nil {
		t.Fatal(err)
	}
	cookie := func(value string, headers ...string) func(*http.Request) {
		return func(r *http.Request) {
			r.AddCookie(&http.Cookie{Name: DefaultSessionCookie, Value: value})
			for i := 0; i+1 < len(headers); i += 2 {
				r.Header.Set(headers[i], headers[i+1])
			}
		}
	}
	v := c.Value.Reveal()
	tests := []struct {
		name   string
		method string
		opt    func(*http.Request)
		status int
	}{
		{"read", "GET", cookie(v), http.StatusOK},
		{"same-origin write", "POST", cookie(v, "Sec-Fetch-Site", "same-origin"), http.StatusCreated},
		{"write from a non-browser", "POST", cookie(v), http.StatusCreated},
		{"cross-site write", "POST", cookie(v, "Sec-Fetch-Site", "cross-site"), http.StatusForbidden},
		{"write from another origin", "POST", cookie(v, "Origin", "https://evil.example"), http.StatusForbidden},
		{"API token as a cookie", "GET", cookie(a.Owner.Token.Reveal()), http.StatusUnauthorized},
		{"unknown session", "GET", cookie(kve.NewSessionID().Reveal()), http.StatusUnauthorized},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			body := ""
			if tt.method == "POST" {
				body = `{"name":"Cookie Org"}`
			}
			rec := a.call(t, tt.method, "/api/v1/orgs", "", body, tt.opt)
			if rec.Code != tt.status {
				t.Errorf("status = %d, want %d; body %s", rec.Code, tt.status, rec.Body)
			}
		})
	}
	t.Run("a session cannot be a bearer token", func(t *testing.T) {
		wantError(t, a.call(t, "GET", "/api/v1/orgs", c.Value, ""), http.StatusUnauthorized, "unauthenticated")
	})
}

func TestSetupOverAPI(t *testing.T) {
	e := managetest.New(t)
	h := New(e.Service, Config{Logger: e.Logs.Logger()})
	body := func(code string) string {
		return jsonOf(t, map[string]string{"code": code, "email": "ops@example.com", "name": "Ops", "password": "setup-password-FAKE"})
	}
	wantError(t, send(t, h, "POST", "/api/v1/setup", "", body("kve-setup-FAKE-guess")), http.StatusUnauthorized, "invalid_setup_code")
	if rec := send(t, h, "POST", "/api/v1/setup", "", body(managetest.SetupCode.Reveal())); rec.Code != http.StatusCreated {
		t.Fatalf("setup = %d %s", rec.Code, rec.Body)
	}
	wantError(t, send(t, h, "POST", "/api/v1/setup", "", body(managetest.SetupCode.Reveal())), http.StatusConflict, "setup_done")
	wantError(t, send(t, h, "POST", "/api/v1/setup", "", body("kve-setup-FAKE-guess")), http.StatusConflict, "setup_done")
}

func TestLoginAnswersAlike(t *testing.T) {
	a := newAPITeam(t)
	unknown := a.call(t, "POST", "/api/v1/login", "", `{"email":"nobody@example.com","password":"some-password-FAKE"}`, from("203.0.113.1"))
	wrong := a.call(t, "POST", "/api/v1/login", "", `{"email":"owner@example.com","password":"some-password-FAKE"}`, from("203.0.113.2"))
	wantError(t, unknown, http.StatusUnauthorized, "invalid_credentials")
	if unknown.Code != wrong.Code || unknown.Body.String() != wrong.Body.String() {
		t.Errorf("unknown email: %d %s; wrong password: %d %s", unknown.Code, unknown.Body, wrong.Code, wrong.Body)
	}
	for _, h := range []string{"Content-Type", "WWW-Authenticate", "Retry-After"} {
		if unknown.Header().Get(h) != wrong.Header().Get(h) {
			t.Errorf("header %s differs: %q vs %q", h, unknown.Header().Get(h), wrong.Header().Get(h))
		}
	}
}

func TestDeveloperTokens(t *testing.T) {
	a := newAPITeam(t)
	path := "/api/v1/orgs/" + a.Org.Slug + "/tokens"
	tests := []struct {
		name   string
		body   string
		status int
	}{
		{"shared dev", `{"name":"t","key":"main","env":"dev","allow_server":true}`, http.StatusForbidden},
		{"shared prd", `{"name":"t","key":"main","env":"prd","allow_server":true}`, http.StatusForbidden},
		{"personal prd", `{"name":"t","key":"main","env":"prd","personal":true,"allow_server":true}`, http.StatusForbidden},
		{"personal dev over the rate cap", `{"name":"t","key":"main","env":"dev","personal":true,"allow_server":true,"rpm":1000}`, http.StatusForbidden},
		{"personal dev", `{"name":"t","key":"main","env":"dev","personal":true,"allow_server":true}`, http.StatusCreated},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := a.call(t, "POST", path, a.Dev.Token, tt.body)
			if rec.Code != tt.status {
				t.Fatalf("status = %d, want %d: %s", rec.Code, tt.status, rec.Body)
			}
			if tt.status == http.StatusCreated {
				got := decodeBody[map[string]any](t, rec)
				if got["kind"] != "pt" || got["owner_id"] != a.Dev.ID || !strings.HasPrefix(got["token"].(string), "kve_pt_dev_") {
					t.Errorf("developer's token = %v", got)
				}
			}
		})
	}
}

func TestAccessLogHoldsNoHeadersBodiesOrQueries(t *testing.T) {
	a := newAPITeam(t)
	const marker = "FAKE-marker-7d1e"
	a.call(t, "GET", "/api/v1/orgs/"+a.Org.Slug+"/tokens?cursor="+marker, a.Owner.Token, "",
		func(r *http.Request) { r.Header.Set("X-Custom", marker); r.Header.Set("User-Agent", marker) })
	a.call(t, "POST", "/api/v1/login", "", `{"email":"`+marker+`@example.com","password":"`+marker+`"}`)
	logs := a.Logs.String()
	if !strings.Contains(logs, `"route":"GET /api/v1/orgs/{org}/tokens"`) {
		t.Fatalf("no access log line for the request:\n%s", logs)
	}
	for _, s := range []string{marker, a.Owner.Token.Reveal()} {
		if strings.Contains(logs, s) {
			t.Errorf("the log holds a header, body or query value")
		}
	}
}

func TestKeyValueNeverLeaves(t *testing.T) {
	a := newAPITeam(t)
	org := "/api/v1/orgs/" + a.Org.Slug
	const value = "sk-test-FAKE-canary-5f2c9a7e1b3d"
	var bodies []string
	for _, step := range []struct{ method, path, body string }{
		{"POST", org + "/keys", `{"name":"canary","provider":"openai","secret":"` + value + `"}`},
		{"POST", org + "/keys", `{"name":"canary","provider":"openai","secret":"` + value + `"}`},               // conflict
		{"POST", org + "/keys", `{"name":"Bad Name","provider":"openai","secret":"` + value + `"}`},             // invalid
		{"POST", org + "/keys", `{"name":"canary2","provider":"openai","secret":"` + value + `","extra":true}`}, // unknown field
		{"GET", org + "/keys", ""},
		{"POST", org + "/keys/canary/rotate", `{"secret":"` + value + `-2"}`},
		{"POST", org + "/tokens", `{"name":"t","key":"canary","env":"stg","allow_server":true}`},
		{"GET", org + "/tokens", ""},
		{"GET", org + "/audit", ""},
	} {
		rec := a.call(t, step.method, step.path, a.Owner.Token, step.body)
		bodies = append(bodies, rec.Body.String())
	}
	for _, b := range append(bodies, a.Logs.String()) {
		if strings.Contains(b, value) {
			t.Errorf("the key value left in a response or the log: %.60s…", b)
		}
	}
	if !strings.Contains(bodies[0], `"last4":"1b3d"`) {
		t.Errorf("create key answered %s", bodies[0])
	}
}
