package api

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/keyvault-edge/kve/shared/kve"
	"github.com/keyvault-edge/kve/shared/manage/managetest"
)

// client talks to a real HTTP server and keeps every response body, so the
// test can check afterwards that no secret ever left in one.
type client struct {
	t      *testing.T
	base   string
	token  string
	bodies []string
}

func (c *client) do(method, path string, body any) (int, []byte) {
	c.t.Helper()
	var r io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			c.t.Fatal(err)
		}
		r = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(c.t.Context(), method, c.base+path, r)
	if err != nil {
		c.t.Fatal(err)
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(resp.Body)
	if err != nil {
		c.t.Fatal(err)
	}
	if resp.Header.Get("X-Request-Id") == "" {
		c.t.Errorf("%s %s: no X-Request-Id", method, path)
	}
	c.bodies = append(c.bodies, string(out))
	return resp.StatusCode, out
}

// must does a request that must answer want, and decodes the answer.
func must[T any](c *client, method, path string, body any, want int) T {
	c.t.Helper()
	status, out := c.do(method, path, body)
	if status != want {
		c.t.Fatalf("%s %s = %d, want %d: %s", method, path, status, want, out)
	}
	var v T
	if len(out) > 0 && json.Unmarshal(out, &v) != nil {
		c.t.Fatalf("%s %s: not JSON: %s", method, path, out)
	}
	return v
}

type object = map[string]any

func TestFlow(t *testing.T) {
	e := managetest.New(t)
	srv := httptest.NewServer(New(e.Service, Config{Logger: e.Logs.Logger()}))
	t.Cleanup(srv.Close)
	c := &client{t: t, base: srv.URL}
	const password = "flow-password-FAKE-42"
	const rotated = "sk-test-FAKE-rotated-000000009876"

	// Setup: a wrong code is refused, the right one works once.
	setup := object{"code": "kve-setup-FAKE-wrong", "email": "ops@example.com", "name": "Ops", "password": password}
	must[object](c, "POST", "/api/v1/setup", setup, http.StatusUnauthorized)
	setup["code"] = managetest.SetupCode.Reveal()
	first := must[object](c, "POST", "/api/v1/setup", setup, http.StatusCreated)
	if !kve.LooksLikeAPIToken(first["api_token"].(string)) {
		t.Fatal("setup gave no kvm_ token")
	}
	must[object](c, "POST", "/api/v1/setup", setup, http.StatusConflict)

	login := must[object](c, "POST", "/api/v1/login", object{"email": "ops@example.com", "password": password}, http.StatusOK)
	apiTokens := []string{first["api_token"].(string), login["api_token"].(string)}
	c.token = apiTokens[1]

	org := must[object](c, "POST", "/api/v1/orgs", object{"name": "Acme Labs"}, http.StatusCreated)
	if org["slug"] != "acme-labs" || org["role"] != "owner" || !strings.HasPrefix(org["id"].(string), "org_") {
		t.Errorf("org = %v", org)
	}
	orgs := must[list[object]](c, "GET", "/api/v1/orgs", nil, http.StatusOK)
	if len(orgs.Items) != 1 || orgs.Items[0]["id"] != org["id"] {
		t.Errorf("orgs = %v", orgs)
	}
	base := "/api/v1/orgs/acme-labs"

	key := must[object](c, "POST", base+"/keys", object{"name": "main", "provider": "openai", "secret": managetest.OpenAIKey.Reveal()}, http.StatusCreated)
	wantKeys := []string{"created_at", "created_by", "fingerprint", "id", "last4", "name", "provider", "upstream"}
	if diff := cmp.Diff(wantKeys, keysOf(key)); diff != "" {
		t.Errorf("key reference fields (-want +got):\n%s", diff)
	}
	if key["last4"] != "cdef" || key["upstream"] != "https://api.openai.com" {
		t.Errorf("key = %v", key)
	}
	keys := must[list[object]](c, "GET", base+"/keys", nil, http.StatusOK)
	if len(keys.Items) != 1 || keys.Items[0]["fingerprint"] != key["fingerprint"] {
		t.Errorf("keys = %v", keys)
	}

	tok := must[object](c, "POST", base+"/tokens", object{
		"name": "web", "key": "main", "env": "dev", "origins": []string{"http://localhost:3000"},
	}, http.StatusCreated)
	value, _ := tok["token"].(string)
	if kind, env, ok := kve.ParseTokenValue(value); !ok || kind != kve.TokenShared || env != kve.EnvDev {
		t.Fatalf("token value does not parse as kve_hb_dev_…")
	}
	wantTok := object{"id": tok["id"], "name": "web", "token": value, "kind": "hb", "env": "dev", "hint": kve.TokenHint(kve.Secret(value)),
		"key": "main", "provider": "openai", "origins": []any{"http://localhost:3000"}, "allow_server": false,
		"ips": []any{}, "paths": []any{}, "rpm": 60.0, "budget_usd": 2.0, "tpm": 0.0, "budget_month_usd": 0.0,
		"created_by": first["user_id"],
		"created_at": managetest.Start.Format(time.RFC3339), "updated_at": managetest.Start.Format(time.RFC3339),
		"expires_at": managetest.Start.Add(30 * 24 * time.Hour).Format(time.RFC3339),
		"alerts":     false, "auto_suspend": true} // a dev token's breach alert defaults
	if diff := cmp.Diff(wantTok, tok); diff != "" {
		t.Errorf("created token (-want +got):\n%s", diff)
	}
	id := tok["id"].(string)

	listed := must[list[object]](c, "GET", base+"/tokens", nil, http.StatusOK)
	if len(listed.Items) != 1 || listed.Items[0]["id"] != id || listed.Items[0]["token"] != nil {
		t.Errorf("token list = %v (a list never carries values)", listed)
	}
	revealed := must[object](c, "GET", base+"/tokens/"+id, nil, http.StatusOK)
	if revealed["token"] != value {
		t.Error("reveal does not give the issued value")
	}
	patched := must[object](c, "PATCH", base+"/tokens/"+id, object{"origins": []string{"https://app.example.com"}, "rpm": 30}, http.StatusOK)
	if !slices.Equal(asStrings(patched["origins"]), []string{"https://app.example.com"}) || patched["rpm"] != 30.0 || patched["token"] != nil {
		t.Errorf("patched = %v", patched)
	}
	rot := must[object](c, "POST", base+"/keys/main/rotate", object{"secret": rotated}, http.StatusOK)
	if rot["last4"] != "9876" || rot["fingerprint"] == key["fingerprint"] {
		t.Errorf("rotated key = %v", rot)
	}
	revoked := must[object](c, "DELETE", base+"/tokens/"+id, nil, http.StatusOK)
	if revoked["revoked_at"] == nil {
		t.Errorf("revoked = %v", revoked)
	}
	must[object](c, "GET", base+"/tokens/"+id, nil, http.StatusGone)
	must[object](c, "DELETE", base+"/keys/main", nil, http.StatusNoContent)

	audit := must[list[kve.Event]](c, "GET", base+"/audit", nil, http.StatusOK)
	var actions []string
	for _, ev := range audit.Items {
		actions = append(actions, ev.Action)
		if ev.ActorID != first["user_id"] || ev.IP != "127.0.0.1" {
			t.Errorf("event %s by %s from %s", ev.Action, ev.ActorID, ev.IP)
		}
	}
	slices.Sort(actions)
	wantActions := []string{"key.create", "key.delete", "key.rotate", "org.create", "token.create", "token.reveal", "token.revoke", "token.update"}
	if diff := cmp.Diff(wantActions, actions); diff != "" {
		t.Errorf("audit actions (-want +got):\n%s", diff)
	}

	// No secret in any response, bar the token values where they belong, and
	// none at all in the log.
	for _, body := range c.bodies {
		for _, s := range []string{managetest.OpenAIKey.Reveal(), rotated, password, managetest.SetupCode.Reveal()} {
			if strings.Contains(body, s) {
				t.Errorf("a response holds a secret: %.80s…", body)
			}
		}
	}
	logs := e.Logs.String()
	if !strings.Contains(logs, `"msg":"api_request"`) {
		t.Fatal("no access log lines were captured")
	}
	canaries := append([]string{managetest.OpenAIKey.Reveal(), rotated, password, managetest.SetupCode.Reveal(), value}, apiTokens...)
	for _, s := range canaries {
		if strings.Contains(logs, s) {
			t.Errorf("the log holds a secret (%d bytes)", len(s))
		}
	}
}

func keysOf(m object) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

func asStrings(v any) []string {
	var out []string
	for _, x := range v.([]any) {
		out = append(out, x.(string))
	}
	return out
}
