package local_test

import (
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/keyvault-edge/kve/shared/kve"
	"github.com/keyvault-edge/kve/shared/kvetest"
	"github.com/keyvault-edge/kve/shared/store"
)

// TestOriginLookalikes (SECURITY T08, class c2): a dev token for
// http://localhost:3000 is refused from every origin but that exact one
// (scheme and host compare case-folded), with no CORS header on the refusal,
// no Referer fallback, and no upstream call; each refusal is recorded with
// its reason.
func TestOriginLookalikes(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	tok := e.token(t, map[string]any{"origins": []string{"http://localhost:3000"}, "allow_server": false})
	url := e.inst.URL + "/openai/v1/chat/completions"
	tests := []struct {
		name    string
		header  http.Header
		allowed bool
		code    string
	}{
		{"exact", http.Header{"Origin": {"http://localhost:3000"}}, true, ""},
		{"case-folded", http.Header{"Origin": {"http://LOCALHOST:3000"}}, true, ""},
		{"suffix look-alike", http.Header{"Origin": {"http://localhost:3000.evil.com"}}, false, "origin_not_allowed"},
		{"longer port", http.Header{"Origin": {"http://localhost:30000"}}, false, "origin_not_allowed"},
		{"other scheme", http.Header{"Origin": {"https://localhost:3000"}}, false, "origin_not_allowed"},
		{"default port", http.Header{"Origin": {"http://localhost"}}, false, "origin_not_allowed"},
		{"subdomain", http.Header{"Origin": {"http://app.localhost:3000"}}, false, "origin_not_allowed"},
		{"null", http.Header{"Origin": {"null"}}, false, "origin_not_allowed"},
		{"trailing dot", http.Header{"Origin": {"http://localhost.:3000"}}, false, "origin_not_allowed"},
		{"userinfo before", http.Header{"Origin": {"http://localhost:3000@evil.com"}}, false, "origin_not_allowed"},
		{"userinfo after", http.Header{"Origin": {"http://evil.com@localhost:3000"}}, false, "origin_not_allowed"},
		{"path", http.Header{"Origin": {"http://localhost:3000/app"}}, false, "origin_not_allowed"},
		{"duplicate", http.Header{"Origin": {"http://localhost:3000", "http://localhost:3000"}}, false, "origin_not_allowed"},
		{"very long", http.Header{"Origin": {"http://localhost:3000." + strings.Repeat("a", 1000) + ".example"}}, false, "origin_not_allowed"},
		{"referer without origin", http.Header{"Referer": {"http://localhost:3000/app"}}, false, "server_use_not_allowed"},
	}
	refusals := 0
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := e.up.Calls()
			res, body := post(t, e.inst, url, tok.Value, tt.header)
			acao := res.Header.Get("Access-Control-Allow-Origin")
			calls := e.up.Calls() - before
			if tt.allowed {
				if res.StatusCode != 200 || acao != tt.header.Get("Origin") || calls != 1 {
					t.Errorf("got %d, Access-Control-Allow-Origin %q, %d upstream calls; want 200, the origin, 1", res.StatusCode, acao, calls)
				}
				return
			}
			refusals++
			if res.StatusCode != 403 || errorCode(body) != tt.code || acao != "" || calls != 0 {
				t.Errorf("got %d %s, Access-Control-Allow-Origin %q, %d upstream calls; want 403 %s, none, 0",
					res.StatusCode, errorCode(body), acao, calls, tt.code)
			}
		})
	}
	t.Run("refusals recorded", func(t *testing.T) {
		var denied []kve.Usage
		kvetest.Eventually(t, 10*time.Second, "every refusal recorded", func() bool {
			page, err := e.inst.Store(t).UsageRecords(t.Context(), e.org.ID, store.UsageFilter{TokenID: tok.ID})
			if err != nil {
				t.Fatalf("read usage: %v", err)
			}
			denied = slices.DeleteFunc(page.Items, func(u kve.Usage) bool { return u.Status != 403 })
			return len(denied) == refusals
		})
		for _, u := range denied {
			if !slices.Contains([]string{"origin", "origin_repeated", "server_use"}, u.Reason) {
				t.Errorf("refusal %s recorded with reason %q", u.RequestID, u.Reason)
			}
			if len(u.Origin) > 200+len("…") {
				t.Errorf("refusal %s recorded a %d-byte origin", u.RequestID, len(u.Origin))
			}
		}
	})
}

// TestCORSPreflight: kve answers a browser's preflight itself, through the
// whole server — 204 with the requested method and headers allowed, a max
// age and Vary: Origin — with no credential and no upstream call; the real
// request that follows gets Access-Control-Allow-Origin when its token
// allows the origin.
func TestCORSPreflight(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	tok := e.token(t, map[string]any{"origins": []string{"http://localhost:3000"}, "allow_server": false})
	url := e.inst.URL + "/openai/v1/chat/completions"
	tests := []struct {
		name, origin string
		allowOrigin  string
	}{
		{"a page", "http://localhost:3000", "http://localhost:3000"},
		{"any other page: the real request decides", "https://elsewhere.example", "https://elsewhere.example"},
		{"an opaque origin", "null", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, err := http.NewRequestWithContext(t.Context(), http.MethodOptions, url, nil)
			if err != nil {
				t.Fatal(err)
			}
			req.Header.Set("Origin", tt.origin)
			req.Header.Set("Access-Control-Request-Method", "POST")
			req.Header.Set("Access-Control-Request-Headers", "authorization,content-type,x-stainless-os")
			res, err := e.inst.Client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			res.Body.Close()
			h := res.Header
			if res.StatusCode != 204 || h.Get("Access-Control-Allow-Origin") != tt.allowOrigin || !slices.Contains(h.Values("Vary"), "Origin") {
				t.Errorf("got %d, Allow-Origin %q, Vary %v", res.StatusCode, h.Get("Access-Control-Allow-Origin"), h.Values("Vary"))
			}
			if tt.allowOrigin != "" && (h.Get("Access-Control-Allow-Methods") != "POST" ||
				h.Get("Access-Control-Allow-Headers") != "authorization,content-type,x-stainless-os" ||
				h.Get("Access-Control-Max-Age") == "") {
				t.Errorf("Allow-Methods %q, Allow-Headers %q, Max-Age %q", h.Get("Access-Control-Allow-Methods"),
					h.Get("Access-Control-Allow-Headers"), h.Get("Access-Control-Max-Age"))
			}
		})
	}
	if n := e.up.Calls(); n != 0 {
		t.Errorf("preflights made %d upstream calls", n)
	}
	res, _ := post(t, e.inst, url, tok.Value, http.Header{"Origin": {"http://localhost:3000"}})
	if res.StatusCode != 200 || res.Header.Get("Access-Control-Allow-Origin") != "http://localhost:3000" {
		t.Errorf("real request: %d, Allow-Origin %q", res.StatusCode, res.Header.Get("Access-Control-Allow-Origin"))
	}
}
