package proxy

import (
	"net/http"
	"testing"

	"github.com/keyvault-edge/kve/shared/kve"
)

// TestPreflight: the proxy answers preflights itself, without a token
// lookup or an upstream call.
func TestPreflight(t *testing.T) {
	e := newEnv(t, nil)
	res, _ := e.do("OPTIONS", "/openai/v1/chat/completions", "", http.Header{
		"Origin":                         {"https://app.example.com"},
		"Access-Control-Request-Method":  {"POST"},
		"Access-Control-Request-Headers": {"authorization, content-type, x-stainless-os"},
	})
	if res.StatusCode != 204 {
		t.Fatalf("status %d", res.StatusCode)
	}
	want := map[string]string{
		"Access-Control-Allow-Origin":  "https://app.example.com",
		"Access-Control-Allow-Methods": "POST",
		"Access-Control-Allow-Headers": "authorization, content-type, x-stainless-os",
		"Access-Control-Max-Age":       "600",
	}
	for k, v := range want {
		if got := res.Header.Get(k); got != v {
			t.Errorf("%s = %q, want %q", k, got, v)
		}
	}
	if res.Header.Values("Vary")[0] != "Origin" {
		t.Errorf("Vary = %q", res.Header.Values("Vary"))
	}
	if e.up.calls.Load() != 0 || e.tokens.lookups.Load() != 0 {
		t.Error("preflight reached the store or the upstream")
	}
}

// TestCORSOnAllowedOrigin: an allowed origin gets its own
// Access-Control-Allow-Origin, never the upstream's; a refused one gets none.
func TestCORSOnAllowedOrigin(t *testing.T) {
	e := newEnv(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Access-Control-Allow-Origin", "*")
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(`{}`))
	})
	v := e.token("openai", func(tok *kve.Token) {
		tok.Policy.Origins = []kve.Origin{mustOrigin("https://*.example.com"), mustOrigin("http://localhost:*")}
		tok.Policy.AllowServer = false
	})
	for _, tt := range []struct {
		origin string
		status int
		acao   string
	}{
		{"https://app.example.com", 200, "https://app.example.com"},
		{"http://localhost:5173", 200, "http://localhost:5173"},
		{"https://example.com", 403, ""},
		{"https://app.example.com.evil.com", 403, ""},
		{"https://evil.com", 403, ""},
	} {
		res, body := e.do("POST", "/openai/v1/chat/completions", chatBody, http.Header{
			"Authorization": {"Bearer " + v}, "Origin": {tt.origin}})
		if res.StatusCode != tt.status || res.Header.Get("Access-Control-Allow-Origin") != tt.acao {
			t.Errorf("%s: status %d ACAO %q (%s)", tt.origin, res.StatusCode, res.Header.Get("Access-Control-Allow-Origin"), body)
		}
	}
}
