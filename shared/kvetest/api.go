package kvetest

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"testing"
)

// The management API client: what the README's curl lines do, over plain
// net/http, as the owner the instance was set up with.

// Owner is the first user Setup creates.
const Owner = "owner@example.com"

// Org is an organization as the API answers it.
type Org struct {
	ID   string `json:"id"`
	Slug string `json:"slug"`
	Name string `json:"name"`
}

// Key is a key's reference as the API answers it (never its value).
type Key struct {
	ID          string `json:"id"`
	Name        string `json:"name"`
	Provider    string `json:"provider"`
	Upstream    string `json:"upstream"`
	Last4       string `json:"last4"`
	Fingerprint string `json:"fingerprint"`
}

// Token is an issued token. Value is a live credential: tests pass it to
// clients and never print it.
type Token struct {
	ID    string `json:"id"`
	Value string `json:"token"`
	Env   string `json:"env"`
	Kind  string `json:"kind"`
}

// Setup creates the first owner (Owner, with a canary password) with the
// setup code from <data>/setup-code and keeps the kvm_ API token it answers
// for the calls that follow.
func (in *Instance) Setup(t testing.TB) string {
	t.Helper()
	pass := Canary("pw-")
	in.watch("the owner's password", pass)
	var out struct {
		APIToken string `json:"api_token"`
	}
	body := map[string]any{"code": in.SetupCode, "email": Owner, "name": "Test Owner", "password": pass}
	in.do(t, exempt(t.Context()), http.MethodPost, "/api/v1/setup", body, http.StatusCreated, &out)
	in.watch("an API token", out.APIToken)
	in.mu.Lock()
	in.apiToken, in.ownerPass = out.APIToken, pass
	in.mu.Unlock()
	return out.APIToken
}

// Login signs in and keeps the new kvm_ API token for the calls that follow.
func (in *Instance) Login(t testing.TB, email, password string) string {
	t.Helper()
	var out struct {
		APIToken string `json:"api_token"`
	}
	body := map[string]any{"email": email, "password": password}
	in.do(t, exempt(t.Context()), http.MethodPost, "/api/v1/login", body, http.StatusOK, &out)
	in.watch("an API token", out.APIToken)
	in.mu.Lock()
	in.apiToken = out.APIToken
	in.mu.Unlock()
	return out.APIToken
}

// OwnerPassword returns the password Setup chose.
func (in *Instance) OwnerPassword() string {
	in.mu.Lock()
	defer in.mu.Unlock()
	return in.ownerPass
}

// CreateOrg creates an organization.
func (in *Instance) CreateOrg(t testing.TB, name string) Org {
	t.Helper()
	var o Org
	in.Call(t, http.MethodPost, "/api/v1/orgs", map[string]any{"name": name}, http.StatusCreated, &o)
	return o
}

// SetupOrg runs Setup and creates an organization, returning its slug: the
// first two steps of the quickstart.
func (in *Instance) SetupOrg(t testing.TB) string {
	t.Helper()
	in.Setup(t)
	return in.CreateOrg(t, "Acme Test").Slug
}

// CreateKey adds a real key: body is {name, provider, upstream?, secret}.
// The secret joins the canary check.
func (in *Instance) CreateKey(t testing.TB, org string, body map[string]any) Key {
	t.Helper()
	if s, ok := body["secret"].(string); ok {
		in.watch("the upstream key of "+str(body["name"]), s)
	}
	var k Key
	in.Call(t, http.MethodPost, orgPath(org, "keys"), body, http.StatusCreated, &k)
	return k
}

// AddKey adds up's key under name, with up as its upstream.
func (in *Instance) AddKey(t testing.TB, org, name string, up *Upstream) Key {
	t.Helper()
	return in.CreateKey(t, org, map[string]any{"name": name, "provider": up.Provider, "upstream": up.URL, "secret": up.Key})
}

// CreateToken issues a token: body is {name, key, env, origins, allow_server,
// ips, paths, personal, rpm, budget_usd, expires_in}. Its value joins the
// canary check; the answer is one of the exempt one-time reveals.
func (in *Instance) CreateToken(t testing.TB, org string, body map[string]any) Token {
	t.Helper()
	var tok Token
	in.do(t, exempt(t.Context()), http.MethodPost, orgPath(org, "tokens"), body, http.StatusCreated, &tok)
	in.watch("the value of token "+tok.ID, tok.Value)
	return tok
}

// RevealToken reads a token's value again (an audited, exempt reveal).
func (in *Instance) RevealToken(t testing.TB, org, id string) Token {
	t.Helper()
	var tok Token
	in.do(t, exempt(t.Context()), http.MethodGet, orgPath(org, "tokens", id), nil, http.StatusOK, &tok)
	return tok
}

// PatchToken changes a token's origins, networks, paths or limits.
func (in *Instance) PatchToken(t testing.TB, org, id string, body map[string]any) {
	t.Helper()
	in.Call(t, http.MethodPatch, orgPath(org, "tokens", id), body, http.StatusOK, nil)
}

// RevokeToken revokes a token.
func (in *Instance) RevokeToken(t testing.TB, org, id string) {
	t.Helper()
	in.Call(t, http.MethodDelete, orgPath(org, "tokens", id), nil, http.StatusOK, nil)
}

// Call sends a management API request as the signed-in owner and decodes the
// JSON answer into out (if not nil). The test fails unless the status is want.
func (in *Instance) Call(t testing.TB, method, path string, body any, want int, out any) {
	t.Helper()
	in.do(t, t.Context(), method, path, body, want, out)
}

func (in *Instance) do(t testing.TB, ctx context.Context, method, path string, body any, want int, out any) {
	t.Helper()
	var r io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			t.Fatalf("encode %s %s: %v", method, path, err)
		}
		r = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, in.URL+path, r)
	if err != nil {
		t.Fatalf("build %s %s: %v", method, path, err)
	}
	if body != nil {
		// What curl -d sends: the README's commands set no type, and the
		// API must take them as they are.
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	in.mu.Lock()
	if in.apiToken != "" {
		req.Header.Set("Authorization", "Bearer "+in.apiToken)
	}
	in.mu.Unlock()
	res, err := in.client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatalf("%s %s: read answer: %v", method, path, err)
	}
	if res.StatusCode != want {
		t.Fatalf("%s %s = %d %s, want %d", method, path, res.StatusCode, in.redact(string(b)), want)
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			t.Fatalf("%s %s: decode answer: %v", method, path, err)
		}
	}
}

func orgPath(org string, parts ...string) string {
	p := "/api/v1/orgs/" + url.PathEscape(org)
	for _, s := range parts {
		p += "/" + url.PathEscape(s)
	}
	return p
}

func str(v any) string {
	s, _ := v.(string)
	return s
}
