package proxy

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/keyvault-edge/kve/shared/kve"
)

const chatBody = `{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}]}`

// TestForwardSwapsKey: each provider family gets exactly its one credential
// with the real key, and the kve token reaches the upstream nowhere.
func TestForwardSwapsKey(t *testing.T) {
	tests := []struct {
		name     string
		provider string
		auth     kve.Auth
		path     string
		header   func(v string) http.Header
		query    func(v string) string
		want     func(r *http.Request) string // the credential the upstream saw
		wantAuth string
	}{
		{"openai bearer", "openai", kve.Auth{}, "/openai/v1/chat/completions",
			func(v string) http.Header { return bearerHeader(v) }, nil,
			func(r *http.Request) string { return r.Header.Get("Authorization") }, "Bearer " + fakeKey},
		{"anthropic x-api-key", "anthropic", kve.Auth{}, "/anthropic/v1/messages",
			func(v string) http.Header {
				return http.Header{"X-Api-Key": {v}, "Anthropic-Version": {"2023-06-01"}}
			}, nil,
			func(r *http.Request) string { return r.Header.Get("X-Api-Key") }, fakeKey},
		{"anthropic bearer", "anthropic", kve.Auth{}, "/anthropic/v1/messages",
			func(v string) http.Header { return bearerHeader(v) }, nil,
			func(r *http.Request) string { return r.Header.Get("X-Api-Key") }, fakeKey},
		{"gemini header", "gemini", kve.Auth{}, "/gemini/v1beta/models/gemini-2.0-flash:generateContent",
			func(v string) http.Header { return http.Header{"X-Goog-Api-Key": {v}} }, nil,
			func(r *http.Request) string { return r.Header.Get("X-Goog-Api-Key") }, fakeKey},
		{"gemini query", "gemini", kve.Auth{}, "/gemini/v1beta/models/gemini-2.0-flash:generateContent",
			func(string) http.Header { return nil }, func(v string) string { return "?alt=sse&key=" + v },
			func(r *http.Request) string { return r.Header.Get("X-Goog-Api-Key") }, fakeKey},
		{"azure api-key", "azure-openai", kve.Auth{}, "/azure-openai/openai/deployments/d1/chat/completions?api-version=2024-10-21",
			func(v string) http.Header { return http.Header{"Api-Key": {v}} }, nil,
			func(r *http.Request) string { return r.Header.Get("Api-Key") }, fakeKey},
		{"generic header template", "stripe", kve.Auth{Mode: kve.AuthHeader, Name: "Authorization", Prefix: "Bearer "}, "/stripe/v1/charges",
			func(v string) http.Header { return bearerHeader(v) }, nil,
			func(r *http.Request) string { return r.Header.Get("Authorization") }, "Bearer " + fakeKey},
		{"generic custom header", "acme", kve.Auth{Mode: kve.AuthHeader, Name: "X-Acme-Token", Prefix: "token "}, "/acme/items",
			func(v string) http.Header { return bearerHeader(v) }, nil,
			func(r *http.Request) string { return r.Header.Get("X-Acme-Token") }, "token " + fakeKey},
		{"generic query", "weather", kve.Auth{Mode: kve.AuthQuery, Name: "appid"}, "/weather/data/2.5?q=Paris",
			func(v string) http.Header { return bearerHeader(v) }, nil,
			func(r *http.Request) string { return r.URL.Query().Get("appid") }, fakeKey},
		{"generic basic", "twilio", kve.Auth{Mode: kve.AuthBasic}, "/twilio/2010-04-01/Accounts.json",
			func(v string) http.Header { return bearerHeader(v) }, nil,
			func(r *http.Request) string { u, p, _ := r.BasicAuth(); return u + ":" + p }, fakeKey},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, nil)
			if tt.auth.Mode == kve.AuthBasic {
				e.keys.values["kve/org_1/keys/key_1@v1"] = "AC_FAKE_SID:FAKE_AUTH_TOKEN_123"
				tt.wantAuth = "AC_FAKE_SID:FAKE_AUTH_TOKEN_123"
			}
			v := e.token(tt.provider, func(tok *kve.Token) { tok.Key.Auth = tt.auth })
			path := tt.path
			if tt.query != nil {
				path += tt.query(v)
			}
			res, body := e.do("POST", path, chatBody, tt.header(v))
			if res.StatusCode != 200 {
				t.Fatalf("status %d: %s", res.StatusCode, body)
			}
			r, got := e.up.last(t)
			if cred := tt.want(r); cred != tt.wantAuth {
				t.Errorf("upstream credential = %q, want %q", cred, tt.wantAuth)
			}
			if got != chatBody {
				t.Errorf("upstream body = %q", got)
			}
			assertNoToken(t, r, v)
			if n := countCredentials(r); n != 1 {
				t.Errorf("upstream saw %d credentials, want exactly 1", n)
			}
			if res.Header.Get("X-Request-Id") == "" {
				t.Error("no X-Request-Id")
			}
		})
	}
}

// assertNoToken fails if the token value appears anywhere in the outbound request.
func assertNoToken(t *testing.T, r *http.Request, v string) {
	t.Helper()
	for name, vs := range r.Header {
		for _, hv := range vs {
			if strings.Contains(hv, v) || strings.Contains(hv, "kve_") {
				t.Errorf("token reached the upstream in header %s", name)
			}
		}
	}
	if strings.Contains(r.URL.String(), "kve_") {
		t.Errorf("token reached the upstream in the URL")
	}
}

func countCredentials(r *http.Request) int {
	n := 0
	for _, h := range []string{"Authorization", "X-Api-Key", "Api-Key", "X-Goog-Api-Key", "X-Acme-Token"} {
		n += len(r.Header.Values(h))
	}
	for _, q := range []string{"key", "appid"} {
		n += len(r.URL.Query()[q])
	}
	return n
}

// TestHeaderHygiene (SECURITY T15): a client naming the credential headers in
// Connection cannot strip the injected key; forwarding headers, cookies and
// every client credential are gone.
func TestHeaderHygiene(t *testing.T) {
	e := newEnv(t, nil)
	v := e.token("anthropic", nil)
	h := http.Header{
		"X-Api-Key":           {v},
		"Connection":          {"x-api-key, authorization, anthropic-version"},
		"Proxy-Authorization": {"Basic Zm9vOmJhcg=="},
		"Forwarded":           {"for=1.2.3.4;host=evil.example"},
		"X-Forwarded-Host":    {"evil.example"},
		"X-Forwarded-For":     {"10.0.0.1"},
		"Cookie":              {"session=abc"},
		"Anthropic-Version":   {"2023-06-01"},
	}
	res, body := e.do("POST", "/anthropic/v1/messages", `{"model":"claude-sonnet-4-5","max_tokens":10,"messages":[]}`, h)
	if res.StatusCode != 200 {
		t.Fatalf("status %d: %s", res.StatusCode, body)
	}
	r, _ := e.up.last(t)
	if got := r.Header.Get("X-Api-Key"); got != fakeKey {
		t.Errorf("X-Api-Key = %q, want the injected key", got)
	}
	for _, name := range []string{"Proxy-Authorization", "Forwarded", "X-Forwarded-Host", "X-Forwarded-For", "Cookie", "Authorization"} {
		if r.Header.Get(name) != "" {
			t.Errorf("%s reached the upstream", name)
		}
	}
	if countCredentials(r) != 1 {
		t.Errorf("want exactly one credential upstream")
	}
}

// TestRefusals reaches each refusal code of DESIGN §7 that is decided before
// forwarding, checks status, body shape and code, and that the upstream saw
// nothing (SECURITY INV-2).
func TestRefusals(t *testing.T) {
	tests := []struct {
		name     string
		provider string
		mod      func(*kve.Token)
		method   string
		path     string
		header   func(v string) http.Header
		status   int
		code     string
		reason   string // recorded reason, when the token is known
	}{
		{"missing", "openai", nil, "POST", "/openai/v1/chat/completions",
			func(string) http.Header { return nil }, 401, "missing_token", ""},
		{"misplaced", "openai", nil, "POST", "/openai/v1/chat/completions",
			func(v string) http.Header { return http.Header{"X-Goog-Api-Key": {v}} }, 401, "missing_token", ""},
		{"ambiguous headers", "anthropic", nil, "POST", "/anthropic/v1/messages",
			func(v string) http.Header {
				return http.Header{"X-Api-Key": {v}, "Authorization": {"Bearer sk-other"}}
			}, 400, "ambiguous_credentials", ""},
		{"ambiguous repeated", "openai", nil, "POST", "/openai/v1/chat/completions",
			func(v string) http.Header { return http.Header{"Authorization": {"Bearer " + v, "Bearer x" + v}} },
			400, "ambiguous_credentials", ""},
		{"malformed", "openai", nil, "POST", "/openai/v1/chat/completions",
			func(string) http.Header { return bearerHeader("' OR '1'='1") }, 401, "invalid_token", ""},
		{"bad checksum", "openai", nil, "POST", "/openai/v1/chat/completions",
			func(v string) http.Header { return bearerHeader(v[:len(v)-1] + flip(v[len(v)-1])) }, 401, "invalid_token", ""},
		{"revoked", "openai", func(tok *kve.Token) { tok.RevokedAt = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC) },
			"POST", "/openai/v1/chat/completions", bearerHeader, 401, "invalid_token", "revoked"},
		{"expired", "openai", func(tok *kve.Token) { tok.ExpiresAt = time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC) },
			"POST", "/openai/v1/chat/completions", bearerHeader, 401, "invalid_token", "expired"},
		{"wrong provider", "anthropic", nil, "POST", "/openai/v1/chat/completions", bearerHeader, 403, "path_not_allowed", "wrong_provider"},
		{"generic name of another key", "stripe", nil, "POST", "/acme/v1/x", bearerHeader, 404, "unknown_provider", "wrong_provider"},
		{"path rule", "openai", func(tok *kve.Token) {
			tok.Policy.Paths = []kve.PathRule{{Method: "POST", Path: "/v1/embeddings"}}
		}, "POST", "/openai/v1/chat/completions", bearerHeader, 403, "path_not_allowed", "path"},
		{"origin not listed", "openai", func(tok *kve.Token) {
			tok.Policy.Origins = []kve.Origin{mustOrigin("http://localhost:3000")}
		}, "POST", "/openai/v1/chat/completions", func(v string) http.Header {
			return http.Header{"Authorization": {"Bearer " + v}, "Origin": {"http://localhost:3001"}}
		}, 403, "origin_not_allowed", "origin"},
		{"origin null", "openai", func(tok *kve.Token) {
			tok.Policy.Origins = []kve.Origin{mustOrigin("http://localhost:3000")}
		}, "POST", "/openai/v1/chat/completions", func(v string) http.Header {
			return http.Header{"Authorization": {"Bearer " + v}, "Origin": {"null"}}
		}, 403, "origin_not_allowed", "origin"},
		{"origin repeated", "openai", func(tok *kve.Token) {
			tok.Policy.Origins = []kve.Origin{mustOrigin("http://localhost:3000")}
		}, "POST", "/openai/v1/chat/completions", func(v string) http.Header {
			return http.Header{"Authorization": {"Bearer " + v}, "Origin": {"http://localhost:3000", "http://localhost:3000"}}
		}, 403, "origin_not_allowed", "origin_repeated"},
		{"referer is no origin", "openai", func(tok *kve.Token) {
			tok.Policy.Origins = []kve.Origin{mustOrigin("http://localhost:3000")}
			tok.Policy.AllowServer = false
		}, "POST", "/openai/v1/chat/completions", func(v string) http.Header {
			return http.Header{"Authorization": {"Bearer " + v}, "Referer": {"http://localhost:3000/page"}}
		}, 403, "server_use_not_allowed", "server_use"},
		{"server use", "openai", func(tok *kve.Token) { tok.Policy.AllowServer = false },
			"POST", "/openai/v1/chat/completions", bearerHeader, 403, "server_use_not_allowed", "server_use"},
		{"ip", "openai", func(tok *kve.Token) {
			tok.Policy.IPs = []netip.Prefix{netip.MustParsePrefix("10.1.0.0/16")}
		}, "POST", "/openai/v1/chat/completions", func(v string) http.Header {
			return http.Header{"Authorization": {"Bearer " + v}, "X-Forwarded-For": {"10.1.2.3"}}
		}, 403, "ip_not_allowed", "ip"},
		{"budget", "openai", func(tok *kve.Token) {
			tok.Policy.BudgetMicro = 2_000_000
			tok.Spend = kve.Spend{Day: "2026-11-27", Micro: 2_000_000}
		}, "POST", "/openai/v1/chat/completions", bearerHeader, 429, "budget_exceeded", "budget"},
		{"reserved name", "openai", nil, "POST", "/api/v1/chat/completions", bearerHeader, 404, "unknown_provider", ""},
		{"dot segments", "openai", nil, "POST", "/openai/v1/%2e%2e/%2e%2e/admin", bearerHeader, 400, "invalid_request", ""},
		{"dot-dot-semicolon", "openai", nil, "POST", "/openai/v1/models/..;/admin", bearerHeader, 400, "invalid_request", ""},
		{"backslash", "openai", nil, "POST", "/openai/v1/models/%5c..%5cadmin", bearerHeader, 400, "invalid_request", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, nil)
			v := e.token(tt.provider, tt.mod)
			res, body := e.do(tt.method, tt.path, chatBody, tt.header(v))
			if res.StatusCode != tt.status {
				t.Fatalf("status = %d, want %d: %s", res.StatusCode, tt.status, body)
			}
			if got := errorCode(t, body); got != tt.code {
				t.Errorf("code = %q, want %q", got, tt.code)
			}
			if n := e.up.calls.Load(); n != 0 {
				t.Errorf("upstream called %d times on a refusal", n)
			}
			if strings.Contains(body, v) || strings.Contains(body, fakeKey) {
				t.Error("refusal echoes a secret")
			}
			if res.Header.Get("Access-Control-Allow-Origin") != "" {
				t.Error("refused request got a CORS header")
			}
			if tt.reason != "" {
				u := e.rec.last(t)
				if u.Reason != tt.reason || u.Status != tt.status || u.TokenID == "" {
					t.Errorf("recorded reason=%q status=%d token=%q, want reason %q", u.Reason, u.Status, u.TokenID, tt.reason)
				}
			}
		})
	}
}

func flip(c byte) string {
	if c == 'a' {
		return "b"
	}
	return "a"
}

func mustOrigin(s string) kve.Origin {
	o, err := kve.ParseOriginPattern(s)
	if err != nil {
		panic(err)
	}
	return o
}

func errorCode(t *testing.T, body string) string {
	t.Helper()
	var e struct {
		Error struct {
			Message string `json:"message"`
			Type    string `json:"type"`
			Code    string `json:"code"`
		} `json:"error"`
	}
	if err := json.Unmarshal([]byte(body), &e); err != nil {
		t.Fatalf("error body is not JSON: %q", body)
	}
	if e.Error.Type != "kve_error" || e.Error.Message == "" {
		t.Errorf("error body shape: %q", body)
	}
	return e.Error.Code
}

// TestNoLookupForMalformed (SECURITY T01, F1): checksum-invalid and
// malformed values never reach the store.
func TestNoLookupForMalformed(t *testing.T) {
	e := newEnv(t, nil)
	v := e.token("openai", nil)
	bad := []string{
		"' OR '1'='1", `"; DROP TABLE tokens;--`, strings.Repeat("A", 1<<20), "kve_hb_dev_\x00\r\n",
		"kve_hb_dev_\xff\xfe", v[:len(v)-1], v + "x", strings.Replace(v, "_dev_", "_prd_", 1),
	}
	for _, b := range bad {
		res, body := e.do("POST", "/openai/v1/chat/completions", chatBody, http.Header{"Authorization": {"Bearer " + strings.ToValidUTF8(strings.NewReplacer("\r", "", "\n", "", "\x00", "").Replace(b), "")}})
		if res.StatusCode != 401 {
			t.Errorf("%.20q: status %d: %s", b, res.StatusCode, body)
		}
	}
	if n := e.tokens.lookups.Load(); n != 0 {
		t.Errorf("%d store lookups for checksum-invalid tokens", n)
	}
}

// TestUniformInvalid (SECURITY T05): unknown, revoked, expired and malformed
// tokens get byte-identical answers apart from the request id.
func TestUniformInvalid(t *testing.T) {
	e := newEnv(t, nil)
	revoked := e.token("openai", func(tok *kve.Token) { tok.RevokedAt = e.now.Add(-time.Hour) })
	expired := e.token("openai", func(tok *kve.Token) { tok.ExpiresAt = e.now.Add(-time.Second) })
	unknown := kve.NewTokenValue(kve.TokenShared, kve.EnvDev).Reveal()
	var first string
	for _, v := range []string{revoked, expired, unknown, "kve_nonsense"} {
		res, body := e.do("POST", "/openai/v1/chat/completions", chatBody, bearerHeader(v))
		got := res.Status + "\n" + body
		if first == "" {
			first = got
		} else if got != first {
			t.Errorf("answers differ:\n%s\n%s", first, got)
		}
	}
}

// TestStoreUnavailable: the store down is 503, never 401 and never a forward.
func TestStoreUnavailable(t *testing.T) {
	e := newEnv(t, nil)
	v := e.token("openai", nil)
	e.tokens.err = kve.Wrap(kve.KindUnavailable, "unavailable", "store down", errors.New("connection refused"))
	res, body := e.do("POST", "/openai/v1/chat/completions", chatBody, bearerHeader(v))
	if res.StatusCode != 503 || errorCode(t, body) != "store_unavailable" {
		t.Fatalf("got %d %s", res.StatusCode, body)
	}
	e.tokens.err = nil
	e.keys.err = kve.Wrap(kve.KindUnavailable, "unavailable", "secrets down", errors.New("throttled"))
	res, body = e.do("POST", "/openai/v1/chat/completions", chatBody, bearerHeader(v))
	if res.StatusCode != 503 || errorCode(t, body) != "store_unavailable" {
		t.Fatalf("got %d %s", res.StatusCode, body)
	}
	if e.up.calls.Load() != 0 {
		t.Error("forwarded without a key")
	}
}

// TestClientGoneDuringLookup: a client that hangs up while the token or
// its key is read (a remote store then fails the read) is not a store
// failure: no error is logged, the refusal says client_gone, nothing is
// forwarded.
func TestClientGoneDuringLookup(t *testing.T) {
	for _, stage := range []string{"token", "key"} {
		t.Run(stage, func(t *testing.T) {
			var logs bytes.Buffer // read once the request is over: the handler logs on its own goroutine
			e := newEnv(t, nil, withConfig(func(c *Config) {
				c.Logger = slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
			}))
			v := e.token("openai", nil)
			lookups := &e.tokens.lookups
			if stage == "token" {
				e.tokens.hang = true
			} else {
				e.keys.hang, lookups = true, &e.keys.lookups
			}
			ctx, cancel := context.WithCancel(t.Context())
			req := httptest.NewRequestWithContext(ctx, "POST", "/openai/v1/chat/completions", strings.NewReader(chatBody))
			req.Header.Set("Authorization", "Bearer "+v)
			done := make(chan struct{})
			go func() {
				defer close(done)
				e.h.ServeHTTP(httptest.NewRecorder(), req)
			}()
			for lookups.Load() == 0 {
				time.Sleep(time.Millisecond)
			}
			cancel()
			<-done
			out := logs.String()
			if strings.Contains(out, `"level":"ERROR"`) {
				t.Errorf("a client hanging up was logged as an error:\n%s", out)
			}
			if !strings.Contains(out, `"reason":"client_gone"`) {
				t.Errorf("the refusal does not say client_gone:\n%s", out)
			}
			if e.up.calls.Load() != 0 {
				t.Error("forwarded")
			}
		})
	}
}

// TestRevocationNextRequest: the proxy reads the token on every request, so a
// revocation holds on the very next one.
func TestRevocationNextRequest(t *testing.T) {
	e := newEnv(t, nil)
	v := e.token("openai", nil)
	if res, _ := e.do("POST", "/openai/v1/chat/completions", chatBody, bearerHeader(v)); res.StatusCode != 200 {
		t.Fatalf("status %d", res.StatusCode)
	}
	tok, _ := e.tokens.TokenByHash(t.Context(), hashValue(v))
	tok.RevokedAt = e.now
	e.tokens.put(tok)
	if res, _ := e.do("POST", "/openai/v1/chat/completions", chatBody, bearerHeader(v)); res.StatusCode != 401 {
		t.Fatalf("after revocation: status %d", res.StatusCode)
	}
}

// TestRateLimited: over the token's rate the answer is 429 with Retry-After.
func TestRateLimited(t *testing.T) {
	lim := &fixedLimiter{allow: 2}
	e := newEnv(t, nil, withLimiter(lim))
	v := e.token("openai", func(tok *kve.Token) { tok.Policy.RPM = 2 })
	for i := range 3 {
		res, body := e.do("POST", "/openai/v1/chat/completions", chatBody, bearerHeader(v))
		if i < 2 && res.StatusCode != 200 {
			t.Fatalf("request %d: %d", i, res.StatusCode)
		}
		if i == 2 {
			if res.StatusCode != 429 || errorCode(t, body) != "rate_limited" {
				t.Fatalf("got %d %s", res.StatusCode, body)
			}
			if res.Header.Get("Retry-After") != "30" {
				t.Errorf("Retry-After = %q", res.Header.Get("Retry-After"))
			}
		}
	}
	if e.up.calls.Load() != 2 {
		t.Errorf("upstream calls = %d, want 2", e.up.calls.Load())
	}
}

type fixedLimiter struct{ allow int }

func (f *fixedLimiter) Allow(_ context.Context, _ *kve.Token, _ time.Time) (bool, time.Duration, error) {
	if f.allow == 0 {
		return false, 30 * time.Second, nil
	}
	f.allow--
	return true, 0, nil
}

// TestBodyTooLarge: a declared or streamed body over the cap is 413 and the
// upstream never gets it whole.
func TestBodyTooLarge(t *testing.T) {
	e := newEnv(t, nil, withConfig(func(c *Config) { c.MaxBodyBytes = 1024 }))
	v := e.token("openai", nil)
	res, body := e.do("POST", "/openai/v1/chat/completions", strings.Repeat("x", 2048), bearerHeader(v))
	if res.StatusCode != 413 || errorCode(t, body) != "request_too_large" {
		t.Fatalf("declared: %d %s", res.StatusCode, body)
	}
	// Chunked: no Content-Length, the cap trips while streaming upstream.
	req, _ := http.NewRequest("POST", e.srv.URL+"/openai/v1/files", io.MultiReader(strings.NewReader(strings.Repeat("y", 4096))))
	req.Header.Set("Authorization", "Bearer "+v)
	req.Header.Set("Content-Type", "application/octet-stream")
	req.ContentLength = -1
	res2, err := e.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(res2.Body)
	res2.Body.Close()
	if res2.StatusCode != 413 || errorCode(t, string(b)) != "request_too_large" {
		t.Fatalf("chunked: %d %s", res2.StatusCode, b)
	}
}

// TestProxyImportsOnlyKve enforces the package boundary of STYLE.md: the hot
// path imports kve and the standard library, nothing else.
func TestProxyImportsOnlyKve(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "-f", "{{if not .Standard}}{{.ImportPath}}{{end}}", ".").Output()
	if err != nil {
		t.Fatal(err)
	}
	allowed := regexp.MustCompile(`^github\.com/keyvault-edge/kve/shared/(proxy|kve)$`)
	for _, p := range strings.Fields(string(out)) {
		if !allowed.MatchString(p) {
			t.Errorf("shared/proxy depends on %s", p)
		}
	}
}
