package dynamo

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/keyvault-edge/kve/shared/kve"
	"github.com/keyvault-edge/kve/shared/proxy"
	"github.com/keyvault-edge/kve/shared/store"
	"github.com/keyvault-edge/kve/shared/usage"
)

// These tests run the proxy handler with the Lambda meter (usage.Shared)
// on this store, as deploy.Proxy wires it, against minidyn: several
// handlers on one table stand for concurrent execution environments.

var meterPepper = []byte("test-pepper-FAKE-0123456789abcdef")

func meterHash(v string) []byte {
	m := hmac.New(sha256.New, meterPepper)
	m.Write([]byte(v))
	return m.Sum(nil)
}

const meterKey = "sk-test-FAKE-metering-0123456789"

type meterKeys struct{}

func (meterKeys) Value(context.Context, string, string) (kve.Secret, error) { return meterKey, nil }

// chatUpstream answers every chat completion with usage, 1,000 prompt and
// 1,000 completion tokens of the model asked for (gpt-4o-mini: $0.00075,
// gpt-4o: $0.0125), and counts calls.
type chatUpstream struct {
	*httptest.Server
	calls atomic.Int64
}

func newChatUpstream(t *testing.T) *chatUpstream {
	t.Helper()
	u := &chatUpstream{}
	u.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var req struct {
			Model string `json:"model"`
		}
		json.NewDecoder(r.Body).Decode(&req)
		u.calls.Add(1)
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"id":"chatcmpl-1","object":"chat.completion","model":%q,"choices":[],"usage":{"prompt_tokens":1000,"completion_tokens":1000,"total_tokens":2000}}`,
			req.Model+"-2024-08-06")
	}))
	t.Cleanup(u.Close)
	return u
}

// meteredToken stores a token of the seeded organization with a real
// value, upstream and policy, and returns its value.
func (e *env) meteredToken(s seeded, upstream string, pol kve.Policy) (kve.Token, string) {
	e.t.Helper()
	v := kve.NewTokenValue(kve.TokenShared, kve.EnvPrd).Reveal()
	tok := e.newToken(s.key)
	tok.Env, tok.Hash, tok.Policy = kve.EnvPrd, meterHash(v), pol
	tok.Key.Upstream = upstream
	e.ok(e.store.CreateToken(e.ctx, tok, e.event(s.org.ID, "token.create", tok.ID)))
	return tok, v
}

// meteredProxy is one execution environment: a proxy handler with its own
// store client and meter on the shared table.
func (e *env) meteredProxy(api API, now func() time.Time) *httptest.Server {
	e.t.Helper()
	st := Open(api, e.table, WithClock(now))
	meter := usage.NewShared(st, usage.SharedConfig{Now: now, Logger: discardLogger()})
	h := proxy.New(proxy.Config{
		AllowPrivate: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")},
		Now:          now,
	}, proxy.Deps{Tokens: st, Keys: meterKeys{}, Hash: meterHash, Recorder: meter, Meter: meter})
	srv := httptest.NewServer(h)
	e.t.Cleanup(srv.Close)
	return srv
}

func discardLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }

func chat(t *testing.T, srv *httptest.Server, value string, maxTokens int) (int, http.Header) {
	t.Helper()
	return chatModel(t, srv, value, "gpt-4o-mini", maxTokens)
}

func chatModel(t *testing.T, srv *httptest.Server, value, model string, maxTokens int) (int, http.Header) {
	t.Helper()
	body := fmt.Sprintf(`{"model":%q,"max_tokens":%d,"messages":[{"role":"user","content":"hi"}]}`, model, maxTokens)
	req, err := http.NewRequest("POST", srv.URL+"/openai/v1/chat/completions", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+value)
	req.Header.Set("Content-Type", "application/json")
	res, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, res.Body)
	res.Body.Close()
	return res.StatusCode, res.Header
}

// TestMeteringCalls: a metered request costs one lookup and two writes,
// the hold before it is forwarded and the settlement as it completes, once
// the environment knows the token's limits.
func TestMeteringCalls(t *testing.T) {
	e := newEnv(t)
	s := e.seed()
	up := newChatUpstream(t)
	now := time.Now
	tok, v := e.meteredToken(s, up.URL, kve.Policy{AllowServer: true, RPM: 600, BudgetMicro: 2_000_000})
	srv := e.meteredProxy(e.calls, now)

	e.calls.take()
	if code, _ := chat(t, srv, v, 100); code != 200 {
		t.Fatalf("first request: %d", code)
	}
	first := e.calls.take()
	if code, h := chat(t, srv, v, 100); code != 200 || h.Get("X-Kve-Budget-Remaining") == "" {
		t.Fatalf("second request: %d, budget header %q", code, h.Get("X-Kve-Budget-Remaining"))
	}
	want := map[string]int{"Query": 1, "TransactWriteItems": 2}
	if diff := cmp.Diff(want, e.calls.take()); diff != "" {
		t.Errorf("calls of a request (-want +got):\n%s", diff)
	}
	// The first request also read the organization's billing and the
	// token's limits, which the environment then keeps for a while.
	want["GetItem"] = 2
	if diff := cmp.Diff(want, first); diff != "" {
		t.Errorf("calls of the first request (-want +got):\n%s", diff)
	}
	sp, err := e.store.Spend(e.ctx, s.org.ID, tok.ID, now())
	if err != nil || sp.Day != 2*750 {
		t.Errorf("Spend = %+v (%v), want the two requests' 750 µ$ each", sp, err)
	}
	page, err := e.store.UsageRecords(e.ctx, s.org.ID, store.UsageFilter{TokenID: tok.ID})
	if err != nil || len(page.Items) != 2 || page.Items[0].CostMicro != 750 || page.Items[0].Reason != "" {
		t.Errorf("records %+v (%v), want two settled at 750", page.Items, err)
	}
}

// TestRateLimitAcrossEnvironments (SECURITY T16 read for Lambda): 100
// requests per minute hold across three environments sharing the table,
// under a burst of 300 spread over them.
func TestRateLimitAcrossEnvironments(t *testing.T) {
	e := newEnv(t)
	s := e.seed()
	up := newChatUpstream(t)
	at := time.Date(2026, 11, 27, 12, 0, 10, 0, time.UTC) // one minute for the whole burst
	now := func() time.Time { return at }
	_, v := e.meteredToken(s, up.URL, kve.Policy{AllowServer: true, RPM: 100})
	var envs []*httptest.Server
	for range 3 {
		envs = append(envs, e.meteredProxy(newClient(e.url), now))
	}
	var ok, limited atomic.Int64
	var wg sync.WaitGroup
	sem := make(chan struct{}, 30)
	for i := range 300 {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			code, h := chat(t, envs[i%3], v, 10)
			switch {
			case code == 200:
				ok.Add(1)
			case code == 429 && h.Get("Retry-After") == "50":
				limited.Add(1)
			default:
				t.Errorf("request %d: %d, Retry-After %q", i, code, h.Get("Retry-After"))
			}
		})
	}
	wg.Wait()
	if ok.Load() != 100 || limited.Load() != 200 {
		t.Errorf("%d admitted, %d limited; want exactly 100 and 200", ok.Load(), limited.Load())
	}
	if n := up.calls.Load(); n != ok.Load() {
		t.Errorf("upstream saw %d calls for %d admitted requests", n, ok.Load())
	}
}

// TestBudgetAcrossEnvironments (SECURITY T17, G7): 50 parallel requests
// over three environments against a budget with $0.01 left, each reserving
// more than that (gpt-4o, 16,384 tokens of output: $0.16): exactly one is
// admitted, and spend passes the budget by less than one request's cost.
func TestBudgetAcrossEnvironments(t *testing.T) {
	e := newEnv(t)
	s := e.seed()
	up := newChatUpstream(t)
	now := time.Now
	const budget, cost = 2_000_000, 12_500
	tok, v := e.meteredToken(s, up.URL, kve.Policy{AllowServer: true, BudgetMicro: budget})
	// $1.99 spent today already.
	e.ok(e.store.RecordUsage(e.ctx, []kve.Usage{{RequestID: "req_earlier", At: now().UTC(), OrgID: s.org.ID,
		TokenID: tok.ID, Provider: "openai", Model: "gpt-4o-mini", Status: 200, CostMicro: budget - 10_000}}))
	var envs []*httptest.Server
	for range 3 {
		envs = append(envs, e.meteredProxy(newClient(e.url), now))
	}
	var ok, refused atomic.Int64
	var wg sync.WaitGroup
	for i := range 50 {
		wg.Go(func() {
			code, h := chatModel(t, envs[i%3], v, "gpt-4o", 16384)
			switch {
			case code == 200:
				ok.Add(1)
			case code == 429 && h.Get("X-Kve-Budget-Remaining") == "0" && h.Get("Retry-After") != "":
				refused.Add(1)
			default:
				t.Errorf("request %d: %d", i, code)
			}
		})
	}
	wg.Wait()
	if ok.Load() != 1 || refused.Load() != 49 {
		t.Errorf("%d admitted and %d refused, want 1 and 49", ok.Load(), refused.Load())
	}
	sp, err := e.store.Spend(e.ctx, s.org.ID, tok.ID, now())
	if err != nil {
		t.Fatal(err)
	}
	if over := sp.Day - budget; over < 0 || over > cost {
		t.Errorf("spend %d passes the budget %d by %d, want at most one request's %d", sp.Day, budget, over, cost)
	}
}

// TestInterruptedRequestIsReconciled (SECURITY T50 read for Lambda): an
// environment that dies after its hold leaves the request's pending record;
// the first look for stale holds after the proxy's longest request settles
// it at its reservation, once.
func TestInterruptedRequestIsReconciled(t *testing.T) {
	e := newEnv(t)
	s := e.seed()
	up := newChatUpstream(t)
	start := time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)
	tok, _ := e.meteredToken(s, up.URL, kve.Policy{AllowServer: true, BudgetMicro: 2_000_000})
	meter := usage.NewShared(e.store, usage.SharedConfig{Now: func() time.Time { return start }, Logger: discardLogger()})
	tok.Spend = kve.Spend{Day: start.Format(time.DateOnly)}
	u := kve.Usage{RequestID: kve.NewID(kve.PrefixRequest, start), At: start, OrgID: s.org.ID, TokenID: tok.ID,
		Env: tok.Env, Provider: "openai", Method: "POST", Path: "/v1/chat/completions", Model: "gpt-4o-mini", BytesIn: 400}
	g, err := meter.Admit(e.ctx, &tok, &u, proxy.Ask{MaxOutputTokens: 1000})
	e.ok(err)
	// ... and the environment dies: Record never runs.
	held, err := e.store.Spend(e.ctx, s.org.ID, tok.ID, start)
	e.ok(err)
	if held.Day <= 0 || g.Remaining != 2_000_000-held.Day {
		t.Fatalf("held %d, remaining %d", held.Day, g.Remaining)
	}
	n, err := usage.Reconcile(e.ctx, e.store, s.org.ID, start.Add(time.Minute))
	if err != nil || n != 1 {
		t.Fatalf("Reconcile = %d, %v; want the one stale hold", n, err)
	}
	if n, err := usage.Reconcile(e.ctx, e.store, s.org.ID, start.Add(time.Minute)); err != nil || n != 0 {
		t.Errorf("Reconcile again = %d, %v; want nothing left", n, err)
	}
	page, err := e.store.UsageRecords(e.ctx, s.org.ID, store.UsageFilter{TokenID: tok.ID})
	e.ok(err)
	if len(page.Items) != 1 {
		t.Fatalf("%d records, want 1", len(page.Items))
	}
	r := page.Items[0]
	if r.RequestID != u.RequestID || r.Reason != "interrupted" || !r.Estimated || r.CostMicro != held.Day {
		t.Errorf("record %+v, want the request, interrupted, estimated, at its reservation %d", r, held.Day)
	}
	after, err := e.store.Spend(e.ctx, s.org.ID, tok.ID, start)
	if err != nil || after.Day != held.Day {
		t.Errorf("spend after reconciling = %+v (%v), want the reservation %d unchanged", after, err, held.Day)
	}
}
