package proxy

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/keyvault-edge/kve/shared/kve"
)

// fakeMeter answers Admit with err, or admits with grant, and keeps what
// it was asked.
type fakeMeter struct {
	mu    sync.Mutex
	asks  []Ask
	usage []kve.Usage
	grant Grant
	err   error
}

func (m *fakeMeter) Admit(_ context.Context, _ *kve.Token, u *kve.Usage, ask Ask) (Grant, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.asks = append(m.asks, ask)
	m.usage = append(m.usage, *u)
	return m.grant, m.err
}

func withMeter(m Meter) envOption { return func(e *env) { e.meter = m } }

// TestMeterAsk: the Meter learns the most output the request allows, in
// each provider's words, and the model and body size.
func TestMeterAsk(t *testing.T) {
	for _, tc := range []struct {
		name, provider, path, body string
		want                       int64
		model                      string
	}{
		{"openai max_tokens", "openai", "/openai/v1/chat/completions", `{"model":"gpt-4o","max_tokens":300}`, 300, "gpt-4o"},
		{"openai max_completion_tokens", "openai", "/openai/v1/chat/completions", `{"model":"o3","max_completion_tokens":4000}`, 4000, "o3"},
		{"responses max_output_tokens", "openai", "/openai/v1/responses", `{"model":"gpt-5","max_output_tokens":900}`, 900, "gpt-5"},
		{"anthropic", "anthropic", "/anthropic/v1/messages", `{"model":"claude-sonnet-4-5","max_tokens":1024,"messages":[]}`, 1024, "claude-sonnet-4-5"},
		{"gemini", "gemini", "/gemini/v1beta/models/gemini-2.5-flash:generateContent", `{"contents":[],"generationConfig":{"maxOutputTokens":2048}}`, 2048, "gemini-2.5-flash"},
		{"none", "openai", "/openai/v1/chat/completions", `{"model":"gpt-4o"}`, 0, "gpt-4o"},
		{"a wrong type leaves the model", "openai", "/openai/v1/chat/completions", `{"model":"gpt-4o","max_tokens":"lots"}`, 0, "gpt-4o"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := &fakeMeter{grant: Grant{Remaining: -1}}
			e := newEnv(t, nil, withMeter(m))
			v := e.token(tc.provider, nil)
			h := bearerHeader(v)
			if tc.provider == "gemini" {
				h = http.Header{"X-Goog-Api-Key": {v}}
			}
			if res, body := e.do("POST", tc.path, tc.body, h); res.StatusCode != 200 {
				t.Fatalf("status %d: %s", res.StatusCode, body)
			}
			if len(m.asks) != 1 || m.asks[0].MaxOutputTokens != tc.want {
				t.Errorf("asks = %+v, want max output %d", m.asks, tc.want)
			}
			if u := m.usage[0]; u.Model != tc.model || u.BytesIn != int64(len(tc.body)) {
				t.Errorf("usage at admission: model %q, %d bytes in; want %q, %d", u.Model, u.BytesIn, tc.model, len(tc.body))
			}
		})
	}
}

// TestMeterGrant: an admitted request reports its budget left, which no
// upstream can set, and its record reaches the Recorder with its grant.
func TestMeterGrant(t *testing.T) {
	m := &fakeMeter{grant: Grant{Remaining: 1_234_500, Hold: "hold-1"}}
	e := newEnv(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Kve-Budget-Remaining", "999999")
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"model":"gpt-4o-mini","usage":{"prompt_tokens":3,"completion_tokens":4}}`)
	}, withMeter(m))
	v := e.token("openai", nil)
	res, _ := e.do("POST", "/openai/v1/chat/completions", chatBody, bearerHeader(v))
	if res.StatusCode != 200 || res.Header.Values("X-Kve-Budget-Remaining")[0] != "1.2345" || len(res.Header.Values("X-Kve-Budget-Remaining")) != 1 {
		t.Fatalf("status %d, X-Kve-Budget-Remaining %q; want 200 and 1.2345 alone", res.StatusCode, res.Header.Values("X-Kve-Budget-Remaining"))
	}
	e.rec.last(t)
	e.rec.mu.Lock()
	g := e.rec.grants[0]
	e.rec.mu.Unlock()
	if g == nil || g.Hold != "hold-1" {
		t.Errorf("the record came with grant %+v, want the one Admit gave", g)
	}

	// Without a budget the upstream's header is dropped all the same.
	m.grant = Grant{Remaining: -1}
	res, _ = e.do("POST", "/openai/v1/chat/completions", chatBody, bearerHeader(v))
	if got := res.Header.Get("X-Kve-Budget-Remaining"); got != "" {
		t.Errorf("unbudgeted: X-Kve-Budget-Remaining %q passed through from the upstream", got)
	}
}

func TestMeterRefusals(t *testing.T) {
	for _, tc := range []struct {
		name      string
		err       error
		status    int
		code      string
		retry     string
		remaining string
		reason    string
	}{
		{"budget", &Limited{Budget: true, RetryAfter: 90 * time.Minute, Reason: "budget_day"},
			429, "budget_exceeded", "5400", "0", "budget_day"},
		{"organization's budget", &Limited{Budget: true, RetryAfter: time.Hour, Reason: "budget_org_month",
			Message: "Monthly budget of this organization is spent."}, 429, "budget_exceeded", "3600", "0", "budget_org_month"},
		{"tokens per minute", &Limited{RetryAfter: 1500 * time.Millisecond, Reason: "tpm"},
			429, "rate_limited", "2", "", "tpm"},
		{"meter down", errors.New("spool: no space left on device"), 503, "store_unavailable", "", "", "meter_unavailable"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, nil, withMeter(&fakeMeter{err: tc.err}))
			v := e.token("openai", nil)
			res, body := e.do("POST", "/openai/v1/chat/completions", chatBody, bearerHeader(v))
			if res.StatusCode != tc.status || errorCode(t, body) != tc.code {
				t.Fatalf("got %d %s, want %d %s", res.StatusCode, body, tc.status, tc.code)
			}
			if got := res.Header.Get("Retry-After"); got != tc.retry {
				t.Errorf("Retry-After %q, want %q", got, tc.retry)
			}
			if got := res.Header.Get("X-Kve-Budget-Remaining"); got != tc.remaining {
				t.Errorf("X-Kve-Budget-Remaining %q, want %q", got, tc.remaining)
			}
			if n := e.up.calls.Load(); n != 0 {
				t.Errorf("%d upstream calls for a refused request", n)
			}
			u := e.rec.last(t)
			if u.Reason != tc.reason || u.Status != tc.status {
				t.Errorf("record: status %d reason %q, want %d %q", u.Status, u.Reason, tc.status, tc.reason)
			}
			if lim, ok := tc.err.(*Limited); ok && lim.Message != "" && !strings.Contains(body, lim.Message) {
				t.Errorf("body %s does not say %q", body, lim.Message)
			}
		})
	}
}

// TestMeterDecidesBudgets: with a Meter, the daily budget is the Meter's
// to check (it counts requests in flight); the lookup's spend is not
// checked again.
func TestMeterDecidesBudgets(t *testing.T) {
	e := newEnv(t, nil, withMeter(&fakeMeter{grant: Grant{Remaining: 0}}))
	v := e.token("openai", func(tok *kve.Token) {
		tok.Policy.BudgetMicro = 1_000_000
		tok.Spend = kve.Spend{Day: "2026-11-27", Micro: 5_000_000}
	})
	if res, body := e.do("POST", "/openai/v1/chat/completions", chatBody, bearerHeader(v)); res.StatusCode != 200 {
		t.Errorf("status %d %s: the proxy refused on the lookup's spend although the Meter admitted", res.StatusCode, body)
	}
}
