package local_test

import (
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/anthropics/anthropic-sdk-go"
	aoption "github.com/anthropics/anthropic-sdk-go/option"
	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"

	"github.com/keyvault-edge/kve/shared/kve"
	"github.com/keyvault-edge/kve/shared/kvetest"
	"github.com/keyvault-edge/kve/shared/local"
	"github.com/keyvault-edge/kve/shared/store"
)

// env is an instance set up as the quickstart leaves it: an owner, an
// organization and a key for a fake upstream.
type env struct {
	inst *kvetest.Instance
	org  kvetest.Org
	up   *kvetest.Upstream
}

func newEnv(t *testing.T, opts ...kvetest.Option) *env {
	t.Helper()
	e := &env{up: kvetest.NewOpenAI(t), inst: kvetest.Start(t, opts...)}
	e.inst.Setup(t)
	e.org = e.inst.CreateOrg(t, "Acme")
	e.inst.AddKey(t, e.org.Slug, "openai-main", e.up)
	return e
}

// token issues a dev token for the openai-main key; policy adds to or
// overrides {"allow_server": true}.
func (e *env) token(t *testing.T, policy map[string]any) kvetest.Token {
	t.Helper()
	body := map[string]any{"name": "t", "key": "openai-main", "env": "dev", "allow_server": true}
	for k, v := range policy {
		body[k] = v
	}
	return e.inst.CreateToken(t, e.org.Slug, body)
}

// client is the OpenAI SDK with retries off, so that every refusal is one
// request and the upstream count is exact.
func (e *env) client(key string, opts ...option.RequestOption) openai.Client {
	return e.inst.OpenAI(key, append([]option.RequestOption{option.WithMaxRetries(0)}, opts...)...)
}

func chat(t *testing.T, c openai.Client) error {
	t.Helper()
	_, err := c.Chat.Completions.New(t.Context(), openai.ChatCompletionNewParams{
		Model:    "gpt-4o-mini",
		Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("Say hello.")},
	})
	return err
}

// wantError checks that err is the SDK's own *openai.Error for the status and
// code of DESIGN §7, and that the body the client received is exactly
// {"error":{"message":…,"type":"kve_error","code":…}} with an X-Request-Id.
// It returns the response's headers.
func wantError(t *testing.T, inst *kvetest.Instance, err error, status int, code string) http.Header {
	t.Helper()
	var apierr *openai.Error
	if !errors.As(err, &apierr) {
		t.Fatalf("got error %T %v, want *openai.Error %d %s", err, err, status, code)
	}
	if apierr.StatusCode != status || apierr.Code != code || apierr.Type != "kve_error" || apierr.Message == "" {
		t.Errorf("got %d %s (type %s), want %d %s (kve_error)", apierr.StatusCode, apierr.Code, apierr.Type, status, code)
	}
	h := apierr.Response.Header
	wantErrorBody(t, inst, h.Get("X-Request-Id"), code)
	return h
}

// wantErrorBody finds the response with this request id among those the
// instance's clients received and checks its body's shape.
func wantErrorBody(t *testing.T, inst *kvetest.Instance, requestID, code string) {
	t.Helper()
	if !strings.HasPrefix(requestID, "req_") {
		t.Fatalf("X-Request-Id %q", requestID)
	}
	for _, r := range inst.Responses() {
		if r.Header.Get("X-Request-Id") != requestID {
			continue
		}
		var body map[string]map[string]string
		if err := json.Unmarshal(r.Body(), &body); err != nil {
			t.Fatalf("error body is not {\"error\":{…}}: %v", err)
		}
		e := body["error"]
		keys := make([]string, 0, len(e))
		for k := range e {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		if len(body) != 1 || !slices.Equal(keys, []string{"code", "message", "type"}) || e["code"] != code || e["type"] != "kve_error" {
			t.Errorf("error body = %s", r.Body())
		}
		if ct := r.Header.Get("Content-Type"); ct != "application/json" {
			t.Errorf("error Content-Type %q", ct)
		}
		return
	}
	t.Fatalf("no response with request id %s was received", requestID)
}

// TestProxyErrors reaches every error code of DESIGN §7 end to end through
// the official SDK, which raises its normal error type for each. A request
// refused before forwarding makes no upstream call.
func TestProxyErrors(t *testing.T) {
	t.Parallel()
	e := newEnv(t)

	refused := func(t *testing.T, status int, code string, call func(t *testing.T) error) http.Header {
		t.Helper()
		before := e.up.Calls()
		h := wantError(t, e.inst, call(t), status, code)
		if n := e.up.Calls() - before; n != 0 {
			t.Errorf("a refused request made %d upstream calls", n)
		}
		if h.Get("Access-Control-Allow-Origin") != "" {
			t.Errorf("refusal carries Access-Control-Allow-Origin")
		}
		return h
	}
	ok := func(t *testing.T, c openai.Client) {
		t.Helper()
		if err := chat(t, c); err != nil {
			t.Fatalf("first request refused: %v", err)
		}
	}

	t.Run("invalid_token", func(t *testing.T) {
		valid := e.token(t, nil)
		revoked := e.token(t, nil)
		expired := e.token(t, map[string]any{"expires_in": "1h"})
		ok(t, e.client(revoked.Value))
		ok(t, e.client(expired.Value))
		e.inst.RevokeToken(t, e.org.Slug, revoked.ID)
		e.inst.ExpireToken(t, e.org.ID, expired.ID)
		stored, err := e.inst.Store(t).Token(t.Context(), e.org.ID, valid.ID)
		if err != nil {
			t.Fatal(err)
		}
		tests := []struct {
			name, value string
		}{
			{"malformed", "kve_hb_dev_notatoken"},
			{"bad checksum", flip(valid.Value, len(valid.Value)-10)},
			{"env edited", strings.Replace(valid.Value, "_dev_", "_prd_", 1)},
			{"unknown", kve.NewTokenValue(kve.TokenShared, kve.EnvDev).Reveal()},
			{"revoked, on the very next request", revoked.Value},
			{"expired", expired.Value},
			{"a management API token", e.inst.Login(t, kvetest.Owner, e.inst.OwnerPassword())},
			// SECURITY T01: injection attempts and junk, refused before any lookup.
			{"SQL injection", "' OR '1'='1"},
			{"SQL statement", `kve_hb_dev_"; DROP TABLE tokens;--`},
			{"not UTF-8", "kve_hb_dev_\xff\xfe" + strings.Repeat("A", 36)},
			// SECURITY T07: the MAC from a stolen database is no credential.
			{"the stored MAC, hex", hex.EncodeToString(stored.Hash)},
			{"the stored MAC, base64", base64.StdEncoding.EncodeToString(stored.Hash)},
		}
		var bodies []string
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				refused(t, 401, "invalid_token", func(t *testing.T) error { return chat(t, e.client(tt.value)) })
				bodies = append(bodies, lastBody(e.inst))
			})
		}
		// One uniform answer: no oracle tells revoked from unknown (SECURITY T05).
		for i, b := range bodies {
			if b != bodies[0] {
				t.Errorf("body of %q differs from that of %q:\n%s\n%s", tests[i].name, tests[0].name, b, bodies[0])
			}
		}
	})

	t.Run("oversized token", func(t *testing.T) {
		// SECURITY T01: a 1 MB token never reaches the proxy; net/http
		// refuses the request head.
		before := e.up.Calls()
		err := chat(t, e.client("kve_hb_dev_"+strings.Repeat("A", 1<<20)))
		var apierr *openai.Error
		if !errors.As(err, &apierr) || apierr.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
			t.Errorf("got %T %v, want 431", err, err)
		}
		if e.up.Calls() != before {
			t.Error("the request reached the upstream")
		}
	})

	t.Run("missing_token", func(t *testing.T) {
		refused(t, 401, "missing_token", func(t *testing.T) error {
			return chat(t, e.client("", option.WithHeaderDel("Authorization")))
		})
		// The Anthropic SDK without any key sends no credential at all.
		before := e.up.Calls()
		ac := e.inst.Anthropic("", anthropicNoRetry)
		_, err := ac.Messages.New(t.Context(), anthropicParams)
		var aerr *anthropic.Error
		if !errors.As(err, &aerr) || aerr.StatusCode != 401 {
			t.Fatalf("got %T %v, want *anthropic.Error 401", err, err)
		}
		wantErrorBody(t, e.inst, aerr.Response.Header.Get("X-Request-Id"), "missing_token")
		if e.up.Calls() != before {
			t.Errorf("a refused request reached the upstream")
		}
	})

	t.Run("ambiguous_credentials", func(t *testing.T) {
		a, b := e.token(t, nil), e.token(t, nil)
		refused(t, 400, "ambiguous_credentials", func(t *testing.T) error {
			return chat(t, e.client(a.Value, option.WithHeader("X-Api-Key", b.Value)))
		})
	})

	t.Run("origin_not_allowed", func(t *testing.T) {
		tok := e.token(t, map[string]any{"origins": []string{"http://localhost:3000"}, "allow_server": false})
		refused(t, 403, "origin_not_allowed", func(t *testing.T) error {
			return chat(t, e.client(tok.Value, option.WithHeader("Origin", "https://evil.example")))
		})
	})

	t.Run("server_use_not_allowed", func(t *testing.T) {
		tok := e.token(t, map[string]any{"origins": []string{"http://localhost:3000"}, "allow_server": false})
		refused(t, 403, "server_use_not_allowed", func(t *testing.T) error { return chat(t, e.client(tok.Value)) })
	})

	t.Run("ip_not_allowed", func(t *testing.T) {
		tok := e.token(t, map[string]any{"ips": []string{"10.0.0.0/8"}})
		c := e.client(tok.Value)
		refused(t, 403, "ip_not_allowed", func(t *testing.T) error { return chat(t, c) })
		// A policy change holds on the very next request, as a revocation does.
		e.inst.PatchToken(t, e.org.Slug, tok.ID, map[string]any{"ips": []string{"127.0.0.0/8"}})
		ok(t, c)
		e.inst.PatchToken(t, e.org.Slug, tok.ID, map[string]any{"ips": []string{"10.0.0.0/8"}})
		refused(t, 403, "ip_not_allowed", func(t *testing.T) error { return chat(t, c) })
	})

	t.Run("path_not_allowed", func(t *testing.T) {
		tok := e.token(t, map[string]any{"paths": []string{"POST /v1/embeddings"}})
		refused(t, 403, "path_not_allowed", func(t *testing.T) error { return chat(t, e.client(tok.Value)) })
		// An OpenAI token at the Anthropic route is refused the same way.
		other := e.token(t, nil)
		before := e.up.Calls()
		ac := e.inst.Anthropic(other.Value, anthropicNoRetry)
		_, err := ac.Messages.New(t.Context(), anthropicParams)
		var aerr *anthropic.Error
		if !errors.As(err, &aerr) || aerr.StatusCode != 403 {
			t.Fatalf("got %T %v, want *anthropic.Error 403", err, err)
		}
		wantErrorBody(t, e.inst, aerr.Response.Header.Get("X-Request-Id"), "path_not_allowed")
		if e.up.Calls() != before {
			t.Errorf("a refused request reached the upstream")
		}
	})

	t.Run("rate_limited", func(t *testing.T) {
		tok := e.token(t, map[string]any{"rpm": 1})
		c := e.client(tok.Value)
		ok(t, c)
		h := refused(t, 429, "rate_limited", func(t *testing.T) error { return chat(t, c) })
		if s, err := strconv.Atoi(h.Get("Retry-After")); err != nil || s < 1 || s > 60 {
			t.Errorf("Retry-After %q, want 1 to 60 seconds", h.Get("Retry-After"))
		}
	})

	t.Run("budget_exceeded", func(t *testing.T) {
		// One micro-dollar: the first answer (19 + 9 tokens of gpt-4o-mini) spends it.
		tok := e.token(t, map[string]any{"budget_usd": 0.000001})
		c := e.client(tok.Value)
		ok(t, c)
		kvetest.Eventually(t, 10*time.Second, "the spend recorded", func() bool {
			page, err := e.inst.Store(t).UsageRecords(t.Context(), e.org.ID, store.UsageFilter{TokenID: tok.ID})
			if err != nil {
				t.Fatalf("read usage: %v", err)
			}
			return len(page.Items) == 1 && page.Items[0].CostMicro >= 1
		})
		h := refused(t, 429, "budget_exceeded", func(t *testing.T) error { return chat(t, c) })
		if s, err := strconv.Atoi(h.Get("Retry-After")); err != nil || s < 1 || s > 86400 {
			t.Errorf("Retry-After %q, want the seconds until the next UTC day", h.Get("Retry-After"))
		}
	})

	t.Run("unknown_provider", func(t *testing.T) {
		tok := e.token(t, nil)
		refused(t, 404, "unknown_provider", func(t *testing.T) error {
			return chat(t, e.client(tok.Value, option.WithBaseURL(e.inst.URL+"/nope/v1/")))
		})
	})

	t.Run("upstream_unavailable", func(t *testing.T) {
		e.inst.CreateKey(t, e.org.Slug, map[string]any{
			"name": "dead", "provider": "openai", "upstream": "http://" + closedPort(t), "secret": kvetest.Canary("sk-test-"),
		})
		tok := e.token(t, map[string]any{"key": "dead"})
		wantError(t, e.inst, chat(t, e.client(tok.Value)), 502, "upstream_unavailable")
	})
}

// TestProxyErrorsOnOwnInstances reaches the codes that need an instance of
// their own: a small body cap, a short upstream timeout, a store gone.
func TestProxyErrorsOnOwnInstances(t *testing.T) {
	t.Parallel()
	t.Run("request_too_large", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t, kvetest.WithConfig(func(c *local.Config) { c.MaxBodyBytes = 2048 }))
		c := e.client(e.token(t, nil).Value)
		_, err := c.Chat.Completions.New(t.Context(), openai.ChatCompletionNewParams{
			Model:    "gpt-4o-mini",
			Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage(strings.Repeat("long prompt ", 400))},
		})
		wantError(t, e.inst, err, 413, "request_too_large")
		if n := e.up.Calls(); n != 0 {
			t.Errorf("%d upstream calls", n)
		}
	})
	t.Run("upstream_timeout", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t, kvetest.WithConfig(func(c *local.Config) { c.Timeouts.ResponseHeader = 300 * time.Millisecond }))
		e.up.Hang()
		c := e.client(e.token(t, nil).Value)
		start := time.Now()
		wantError(t, e.inst, chat(t, c), 504, "upstream_timeout")
		if d := time.Since(start); d > 10*time.Second {
			t.Errorf("the timeout took %v", d)
		}
	})
	t.Run("store_unavailable", func(t *testing.T) {
		t.Parallel()
		// The store goes away underneath the running server (export_test.go):
		// the token lookup fails, and kve answers 503 rather than 401 (the
		// token may be valid) or forwarding (it may be revoked).
		e := newEnv(t)
		tok := e.token(t, nil)
		if err := local.CloseStore(e.inst.Main); err != nil {
			t.Fatal(err)
		}
		wantError(t, e.inst, chat(t, e.client(tok.Value)), 503, "store_unavailable")
		if n := e.up.Calls(); n != 0 {
			t.Errorf("%d upstream calls", n)
		}
	})
}

var (
	anthropicNoRetry = aoption.WithMaxRetries(0)
	anthropicParams  = anthropic.MessageNewParams{
		Model:     "claude-sonnet-4-5",
		MaxTokens: 256,
		Messages:  []anthropic.MessageParam{anthropic.NewUserMessage(anthropic.NewTextBlock("Say hello."))},
	}
)

// flip changes the base62 character at i, keeping the token's format.
func flip(v string, i int) string {
	c := byte('A')
	if v[i] == 'A' {
		c = 'B'
	}
	return v[:i] + string(c) + v[i+1:]
}

// lastBody returns the body of the last response the instance's clients received.
func lastBody(inst *kvetest.Instance) string {
	rs := inst.Responses()
	return string(rs[len(rs)-1].Body())
}

// closedPort returns a loopback address nothing listens on.
func closedPort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

const chatBody = `{"model":"gpt-4o-mini","messages":[{"role":"user","content":"Say hello."}]}`

// post sends a chat completion as a browser or curl would: raw headers, the
// instance's recording client.
func post(t *testing.T, inst *kvetest.Instance, url, token string, header http.Header) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, url, strings.NewReader(chatBody))
	if err != nil {
		t.Fatal(err)
	}
	for name, vs := range header {
		req.Header[name] = vs
	}
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	res, err := inst.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return res, b
}

// errorCode reads the code of a kve error body ("" for anything else).
func errorCode(b []byte) string {
	var body struct {
		Error struct {
			Code string `json:"code"`
		} `json:"error"`
	}
	json.Unmarshal(b, &body)
	return body.Error.Code
}
