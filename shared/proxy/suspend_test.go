package proxy

import (
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestSuspendedToken: a suspended token (a breach alert suspended it) is
// refused with the uniform invalid_token answer, byte for byte the one an
// unknown token gets, makes no upstream call, and is recorded with reason
// "suspended" so the breach detector sees it used again.
func TestSuspendedToken(t *testing.T) {
	e := newEnv(t, nil)
	v := e.token("openai", nil)
	if res, _ := e.do("POST", "/openai/v1/chat/completions", chatBody, bearerHeader(v)); res.StatusCode != 200 {
		t.Fatalf("before suspension: status %d", res.StatusCode)
	}
	e.rec.last(t) // the served request is recorded before the next one starts
	tok, _ := e.tokens.TokenByHash(t.Context(), hashValue(v))
	tok.SuspendedAt, tok.Suspension = e.now.Add(-time.Minute), "env_mismatch"
	e.tokens.put(tok)
	calls := e.up.calls.Load()

	res, body := e.do("POST", "/openai/v1/chat/completions", chatBody, bearerHeader(v))
	if res.StatusCode != http.StatusUnauthorized || errorCode(t, body) != "invalid_token" {
		t.Fatalf("suspended: %d %s", res.StatusCode, body)
	}
	if e.up.calls.Load() != calls {
		t.Error("a suspended token reached the upstream")
	}
	if u := e.rec.last(t); u.Reason != "suspended" || u.TokenID != tok.ID || u.Status != http.StatusUnauthorized {
		t.Errorf("record: reason %q, token %q, status %d", u.Reason, u.TokenID, u.Status)
	}
	unknown, unknownBody := e.do("POST", "/openai/v1/chat/completions", chatBody, bearerHeader(strings.Repeat("x", 3)))
	if unknown.Status+unknownBody != res.Status+body {
		t.Errorf("suspended and malformed answers differ:\n%s %s\n%s %s", res.Status, body, unknown.Status, unknownBody)
	}
}

// TestRecordsUserAgent: the record carries the client's User-Agent, cut to
// maxUserAgent bytes, for breach incidents to sample.
func TestRecordsUserAgent(t *testing.T) {
	for _, tt := range []struct {
		name, ua, want string
	}{
		{"short", "curl/8.5.0", "curl/8.5.0"},
		{"long", strings.Repeat("a", 500), strings.Repeat("a", maxUserAgent) + "…"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, nil)
			h := bearerHeader(e.token("openai", nil))
			h.Set("User-Agent", tt.ua)
			e.do("POST", "/openai/v1/chat/completions", chatBody, h)
			if got := e.rec.last(t).UserAgent; got != tt.want {
				t.Errorf("user agent = %.40q (%d bytes), want %.40q", got, len(got), tt.want)
			}
		})
	}
}
