package alerts

import (
	"bytes"
	"context"
	"log/slog"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/keyvault-edge/kve/shared/kve"
	"github.com/keyvault-edge/kve/shared/store/sqlite"
)

// The tests run detection and response on the real embedded store, with a
// clock they move, against the channels' real protocols (HTTP receivers,
// an SMTP server, the SNS query protocol, the goaws emulator).

// clock is a clock that moves only when told.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// logBuffer collects log lines from concurrent writers.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// env is one organization with a key on a fresh SQLite store.
type env struct {
	t     testing.TB
	ctx   context.Context
	st    *sqlite.Store
	clock *clock
	org   kve.Org
	key   kve.Key
	logs  *logBuffer
	log   *slog.Logger
}

func newEnv(t testing.TB) *env {
	t.Helper()
	st, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "kve.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	e := &env{t: t, ctx: context.Background(), st: st, clock: &clock{t: time.Date(2026, 11, 27, 12, 0, 30, 0, time.UTC)},
		logs: &logBuffer{}}
	e.log = slog.New(slog.NewJSONHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	e.org = e.newOrg("Acme Labs")
	return e
}

// newOrg stores an organization with its owner and an openai key.
func (e *env) newOrg(name string) kve.Org {
	e.t.Helper()
	now := e.clock.Now()
	actor := kve.Actor{UserID: kve.NewID(kve.PrefixUser, now), Email: "owner@example.test"}
	org := kve.Org{ID: kve.NewID(kve.PrefixOrg, now), Slug: kve.Slugify(name) + "-" + kve.NewID("", now)[20:], Name: name,
		CreatedAt: now, CreatedBy: actor.UserID}
	owner := kve.Member{OrgID: org.ID, UserID: actor.UserID, Email: actor.Email, Role: kve.RoleOwner, JoinedAt: now}
	if err := e.st.CreateOrg(e.ctx, org, owner, actor.Event(org.ID, "org.create", org.ID, now)); err != nil {
		e.t.Fatal(err)
	}
	key := kve.Key{ID: kve.NewID(kve.PrefixKey, now), OrgID: org.ID, Name: "main", Provider: "openai",
		Upstream: "https://api.openai.com", Version: "v1", Last4: "FAKE", CreatedAt: now}
	key.Secret = kve.SecretName(org.ID, key.ID)
	if err := e.st.CreateKey(e.ctx, key, actor.Event(org.ID, "key.create", key.ID, now)); err != nil {
		e.t.Fatal(err)
	}
	if e.key.ID == "" {
		e.key = key
	}
	return org
}

// token stores a token of the env's organization; the value is thrown
// away (detection never sees one).
func (e *env) token(env kve.Env, mods ...func(*kve.Token)) kve.Token {
	e.t.Helper()
	now := e.clock.Now()
	v := kve.NewTokenValue(kve.TokenShared, env)
	tok := kve.Token{ID: kve.NewID(kve.PrefixToken, now), OrgID: e.org.ID, Name: "web-" + string(env), Kind: kve.TokenShared,
		Env: env, Hint: kve.TokenHint(v), Hash: []byte(kve.NewID("hash_", now)), Sealed: []byte("sealed"),
		Key: e.key.Ref(), Policy: kve.Policy{AllowServer: true}, CreatedBy: "usr_test", CreatedAt: now, UpdatedAt: now,
		Alerts: env == kve.EnvPrd, AutoSuspend: true}
	for _, m := range mods {
		m(&tok)
	}
	if err := e.st.CreateToken(e.ctx, tok, kve.Actor{UserID: "usr_test"}.Event(tok.OrgID, "token.create", tok.ID, now)); err != nil {
		e.t.Fatal(err)
	}
	return tok
}

// usage is a record of tok at the clock's time, refused for reason ("" =
// served).
func (e *env) usage(tok kve.Token, reason string, mods ...func(*kve.Usage)) kve.Usage {
	now := e.clock.Now()
	u := kve.Usage{RequestID: kve.NewID(kve.PrefixRequest, now), At: now, OrgID: tok.OrgID, TokenID: tok.ID, Env: tok.Env,
		Provider: "openai", Method: "POST", Path: "/v1/chat/completions", Status: 200, ClientIP: "198.51.100.7",
		UserAgent: "curl/8.5.0", Reason: reason}
	if reason != "" {
		u.Status = 403
	}
	for _, m := range mods {
		m(&u)
	}
	return u
}

// published records what a Responder publishes: the channel boundary,
// seen from the test.
type published struct {
	mu  sync.Mutex
	ns  []Notification
	err error
}

func (p *published) Publish(_ context.Context, n Notification) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.err != nil {
		return p.err
	}
	p.ns = append(p.ns, n)
	return nil
}

func (p *published) all() []Notification {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]Notification(nil), p.ns...)
}

// responder returns a Responder of the env publishing to pub.
func (e *env) responder(pub Publisher) *Responder {
	return NewResponder(e.st, pub, ResponderConfig{PublicURL: "https://kve.example.test", Now: e.clock.Now, Logger: e.log})
}

// detector returns a Detector of the env that flushes every request.
func (e *env) detector(mods ...func(*DetectorConfig)) *Detector {
	cfg := DetectorConfig{FlushEvery: 1, Now: e.clock.Now, Logger: e.log}
	for _, m := range mods {
		m(&cfg)
	}
	return NewDetector(e.st, cfg)
}
