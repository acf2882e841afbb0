package usage

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/keyvault-edge/kve/shared/kve"
	"github.com/keyvault-edge/kve/shared/proxy"
	"github.com/keyvault-edge/kve/shared/store"
	"github.com/keyvault-edge/kve/shared/store/sqlite"
)

// localEnv is a Local meter on a SQLite store in a temporary directory,
// with one organization, key and token.
type localEnv struct {
	t     *testing.T
	dir   string
	st    *sqlite.Store
	org   kve.Org
	key   kve.Key
	clock time.Time
}

func newLocalEnv(t *testing.T) *localEnv {
	t.Helper()
	dir := t.TempDir()
	st, err := sqlite.Open(t.Context(), filepath.Join(dir, "kve.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	e := &localEnv{t: t, dir: dir, st: st, clock: time.Now().UTC()}
	actor := kve.Actor{UserID: "usr_test", Email: "owner@example.test"}
	e.org = kve.Org{ID: kve.NewID(kve.PrefixOrg, e.clock), Slug: "acme", Name: "Acme", CreatedAt: e.clock}
	owner := kve.Member{OrgID: e.org.ID, UserID: actor.UserID, Email: actor.Email, Role: kve.RoleOwner, JoinedAt: e.clock}
	e.ok(st.CreateOrg(t.Context(), e.org, owner, actor.Event(e.org.ID, "org.create", e.org.ID, e.clock)))
	e.key = kve.Key{ID: kve.NewID(kve.PrefixKey, e.clock), OrgID: e.org.ID, Name: "main", Provider: "openai",
		Upstream: "https://api.openai.com", Last4: "FAKE", Version: "v1", CreatedAt: e.clock}
	e.key.Secret = kve.SecretName(e.org.ID, e.key.ID)
	e.ok(st.CreateKey(t.Context(), e.key, actor.Event(e.org.ID, "key.create", e.key.ID, e.clock)))
	return e
}

func (e *localEnv) ok(err error) {
	e.t.Helper()
	if err != nil {
		e.t.Fatal(err)
	}
}

func (e *localEnv) token(pol kve.Policy) kve.Token {
	e.t.Helper()
	tok := kve.Token{ID: kve.NewID(kve.PrefixToken, e.clock), OrgID: e.org.ID, Name: "t", Kind: kve.TokenShared,
		Env: kve.EnvDev, Hash: []byte("hash-" + kve.NewID("", e.clock)), Sealed: []byte("sealed"), Key: e.key.Ref(),
		Policy: pol, CreatedAt: e.clock, UpdatedAt: e.clock}
	e.ok(e.st.CreateToken(e.t.Context(), tok, kve.Actor{UserID: "usr_test"}.Event(e.org.ID, "token.create", tok.ID, e.clock)))
	return tok
}

func (e *localEnv) open() *Local {
	e.t.Helper()
	l, err := OpenLocal(e.t.Context(), e.st, LocalConfig{Spool: filepath.Join(e.dir, "usage-spool"),
		Logger: slog.New(slog.DiscardHandler), Now: func() time.Time { return e.clock }, LimitsTTL: time.Nanosecond})
	e.ok(err)
	return l
}

// request is a chat request of tok arriving now.
func (e *localEnv) request(tok kve.Token) *kve.Usage {
	return &kve.Usage{RequestID: kve.NewID(kve.PrefixRequest, e.clock), At: e.clock, OrgID: tok.OrgID, TokenID: tok.ID,
		Env: tok.Env, Provider: "openai", Method: "POST", Path: "/v1/chat/completions", Model: "gpt-4o-mini", BytesIn: 400}
}

// served records u as the proxy does once its response is complete: 1,000
// prompt and 1,000 completion tokens ($0.00075).
func served(l *Local, u *kve.Usage, g proxy.Grant) {
	u.Status, u.PromptTokens, u.CompletionTokens = 200, 1000, 1000
	l.Record(proxy.WithGrant(context.Background(), &g), u)
}

func (e *localEnv) records(tok kve.Token) map[string]kve.Usage {
	e.t.Helper()
	page, err := e.st.UsageRecords(e.t.Context(), e.org.ID, store.UsageFilter{TokenID: tok.ID})
	e.ok(err)
	out := map[string]kve.Usage{}
	for _, u := range page.Items {
		out[u.RequestID] = u
	}
	return out
}

func TestLocalMetersARequest(t *testing.T) {
	e := newLocalEnv(t)
	tok := e.token(kve.Policy{AllowServer: true, BudgetMicro: 2_000_000})
	l := e.open()
	u := e.request(tok)
	g, err := l.Admit(t.Context(), &tok, u, proxy.Ask{MaxOutputTokens: 1000})
	e.ok(err)
	if want := int64(2_000_000 - 615); g.Remaining != want { // 100 tokens in, 1,000 out reserved
		t.Errorf("Remaining = %d, want %d", g.Remaining, want)
	}
	served(l, u, g)
	e.ok(l.Close())
	r, ok := e.records(tok)[u.RequestID]
	if !ok || r.CostMicro != 750 || r.Status != 200 {
		t.Fatalf("record %+v (found %v), want cost 750", r, ok)
	}
	sp, err := e.st.Spend(t.Context(), e.org.ID, tok.ID, e.clock)
	if err != nil || sp != (store.Spend{Day: 750, Month: 750, OrgMonth: 750}) {
		t.Errorf("Spend = %+v (%v), want 750 everywhere", sp, err)
	}
	if entries, _ := os.ReadDir(filepath.Join(e.dir, "usage-spool")); len(entries) != 0 {
		t.Errorf("the spool kept %d files after a clean close", len(entries))
	}
}

// TestLocalBudgetsFromTheStore: a new process seeds its counters from the
// store, and the month and organization budgets refuse as the day's does.
func TestLocalBudgetsFromTheStore(t *testing.T) {
	e := newLocalEnv(t)
	tok := e.token(kve.Policy{AllowServer: true})
	e.ok(e.st.RecordUsage(t.Context(), []kve.Usage{{RequestID: "req_before", At: e.clock, OrgID: e.org.ID,
		TokenID: tok.ID, Provider: "openai", Model: "gpt-4o-mini", Status: 200, CostMicro: 5_000}}))
	ev := kve.Actor{UserID: "usr_test"}.Event
	for _, tc := range []struct {
		name string
		set  func()
		code string
	}{
		{"the token's month", func() {
			e.ok(e.st.SetLimits(t.Context(), e.org.ID, tok.ID, store.Limits{MonthBudgetMicro: 5_000}, ev(e.org.ID, "token.limits", tok.ID, e.clock)))
		}, store.LimitMonth},
		{"the organization's month", func() {
			e.ok(e.st.SetLimits(t.Context(), e.org.ID, tok.ID, store.Limits{}, ev(e.org.ID, "token.limits", tok.ID, e.clock)))
			e.ok(e.st.SetBilling(t.Context(), store.Billing{OrgID: e.org.ID, MonthBudgetMicro: 5_000}, ev(e.org.ID, "billing.update", e.org.ID, e.clock)))
		}, store.LimitOrgMonth},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.set()
			l := e.open()
			defer l.Close()
			_, err := l.Admit(t.Context(), &tok, e.request(tok), proxy.Ask{})
			var lim *proxy.Limited
			if !errors.As(err, &lim) || !lim.Budget || lim.Reason != tc.code || lim.RetryAfter <= 0 {
				t.Errorf("Admit = %v, want a budget refusal %s with Retry-After", err, tc.code)
			}
		})
	}
}

func TestLocalTokensPerMinute(t *testing.T) {
	e := newLocalEnv(t)
	tok := e.token(kve.Policy{AllowServer: true})
	ev := kve.Actor{UserID: "usr_test"}.Event(e.org.ID, "token.limits", tok.ID, e.clock)
	e.ok(e.st.SetLimits(t.Context(), e.org.ID, tok.ID, store.Limits{TPM: 1500}, ev))
	l := e.open()
	defer l.Close()
	u := e.request(tok)
	g, err := l.Admit(t.Context(), &tok, u, proxy.Ask{})
	e.ok(err)
	served(l, u, g) // 2,000 tokens of 1,500 a minute
	_, err = l.Admit(t.Context(), &tok, e.request(tok), proxy.Ask{})
	var lim *proxy.Limited
	if !errors.As(err, &lim) || lim.Budget || lim.Reason != store.LimitTPM {
		t.Fatalf("Admit after 2,000 tokens = %v, want tpm", err)
	}
	// The 500 in debt are paid back at 25 a second: 21 s with the token
	// the next request needs.
	if lim.RetryAfter < 20*time.Second || lim.RetryAfter > 21*time.Second {
		t.Errorf("Retry-After %v, want about 20 s", lim.RetryAfter)
	}
	e.clock = e.clock.Add(lim.RetryAfter)
	if _, err := l.Admit(t.Context(), &tok, e.request(tok), proxy.Ask{}); err != nil {
		t.Errorf("after Retry-After: %v", err)
	}
}

// TestLocalFailsClosed (SECURITY T55): while the spool cannot be written
// (its segment cut short under the mapping, which is how a full disk
// shows on a filesystem that cannot preallocate), a token with a budget is
// refused, so that no spend goes unmetered; one without goes through only
// when configured to.
func TestLocalFailsClosed(t *testing.T) {
	e := newLocalEnv(t)
	budgeted := kve.Policy{AllowServer: true, BudgetMicro: 2_000_000}
	free := kve.Policy{AllowServer: true}
	for _, tc := range []struct {
		name     string
		failOpen bool
		policy   kve.Policy
		admitted bool
	}{
		{"budgeted", false, budgeted, false},
		{"budgeted, fail-open configured", true, budgeted, false},
		{"unbudgeted", false, free, false},
		{"unbudgeted, fail-open configured", true, free, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tok := e.token(tc.policy)
			l := e.open()
			l.failOpen = tc.failOpen
			e.ok(os.Truncate(l.spool.seg.f.Name(), 0))
			u := e.request(tok)
			_, err := l.Admit(t.Context(), &tok, u, proxy.Ask{})
			if (err == nil) != tc.admitted {
				t.Errorf("Admit = %v, want admitted %v", err, tc.admitted)
			}
			var lim *proxy.Limited
			if errors.As(err, &lim) {
				t.Errorf("a spool failure answered as a limit (%v): the proxy must answer 503", err)
			}
			// A refused hold leaves nothing held: the next request (100
			// tokens in, 1 out: 16 µ$), on a new segment, finds the whole
			// budget.
			g, err := l.Admit(t.Context(), &tok, e.request(tok), proxy.Ask{MaxOutputTokens: 1})
			e.ok(err)
			if tok.Policy.BudgetMicro > 0 && g.Remaining != 2_000_000-16 {
				t.Errorf("Remaining = %d after the refused hold, want %d", g.Remaining, 2_000_000-16)
			}
			e.ok(l.Close())
		})
	}
}

// TestLocalRecoversAfterKill (SECURITY T50): a process killed while a
// request streams (its hold spooled, its record never written) leaves the
// spool; the next start records the request as interrupted, charged its
// reservation, and the budget counts it.
func TestLocalRecoversAfterKill(t *testing.T) {
	e := newLocalEnv(t)
	tok := e.token(kve.Policy{AllowServer: true, BudgetMicro: 2_000_000})
	l := e.open()
	done, streaming := e.request(tok), e.request(tok)
	g1, err := l.Admit(t.Context(), &tok, done, proxy.Ask{MaxOutputTokens: 1000})
	e.ok(err)
	served(l, done, g1)
	_, err = l.Admit(t.Context(), &tok, streaming, proxy.Ask{MaxOutputTokens: 1000})
	e.ok(err)
	// SIGKILL: nothing is flushed or closed. (The batcher goroutine is
	// left to the test's end; its store writes are idempotent.)
	l2 := e.open()
	defer l2.Close()
	recs := e.records(tok)
	if r := recs[done.RequestID]; r.CostMicro != 750 || r.Status != 200 {
		t.Errorf("the completed request: %+v", r)
	}
	if r := recs[streaming.RequestID]; r.Reason != "interrupted" || r.CostMicro != 615 || !r.Estimated {
		t.Errorf("the request cut by the kill: %+v, want interrupted at its reservation 615", r)
	}
	g, err := l2.Admit(t.Context(), &tok, e.request(tok), proxy.Ask{MaxOutputTokens: 1})
	if err != nil || g.Remaining != 2_000_000-750-615-16 {
		t.Errorf("Remaining = %d (%v), want the two earlier requests counted", g.Remaining, err)
	}
}

// TestRecordAfterClose: a stream that ends after shutdown gave up draining
// is recorded by the spool alone; recording must not panic on the closed
// queue.
func TestRecordAfterClose(t *testing.T) {
	e := newLocalEnv(t)
	tok := e.token(kve.Policy{AllowServer: true})
	l := e.open()
	e.ok(l.Close())
	defer func() {
		if r := recover(); r != nil {
			t.Fatalf("Record after Close panicked: %v", r)
		}
	}()
	u := e.request(tok)
	u.Status = 200
	l.Record(context.Background(), u)
	if l.Dropped() != 1 {
		t.Errorf("Dropped = %d, want the late record counted", l.Dropped())
	}
}
