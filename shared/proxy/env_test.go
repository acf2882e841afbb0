package proxy

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/keyvault-edge/kve/shared/kve"
)

// The proxy's tests run the real Handler against real httptest upstreams
// that assert what arrived. The token and key sources are in-memory maps
// behind the proxy's own one-method interfaces; end-to-end tests with the
// real stores live in shared/local.

const fakeKey = "sk-test-FAKE-0123456789abcdefghijklmnop" // obviously fake upstream key

var testPepper = []byte("test-pepper-0123456789abcdef0123")

func hashValue(v string) []byte {
	m := hmac.New(sha256.New, testPepper)
	m.Write([]byte(v))
	return m.Sum(nil)
}

// memTokens is an in-memory token source that counts lookups.
type memTokens struct {
	mu      sync.Mutex
	byHash  map[string]kve.Token
	lookups atomic.Int64
	err     error
	hang    bool // wait for the request's end, and fail as a remote store would
}

func (m *memTokens) TokenByHash(ctx context.Context, hash []byte) (kve.Token, error) {
	m.lookups.Add(1)
	if m.hang {
		<-ctx.Done()
		return kve.Token{}, kve.Wrap(kve.KindUnavailable, "unavailable", "unavailable", ctx.Err())
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.err != nil {
		return kve.Token{}, m.err
	}
	t, ok := m.byHash[hex.EncodeToString(hash)]
	if !ok {
		return kve.Token{}, kve.ErrNotFound
	}
	return t, nil
}

func (m *memTokens) put(t kve.Token) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.byHash[hex.EncodeToString(t.Hash)] = t
}

// memKeys maps secret name@version to a value.
type memKeys struct {
	values  map[string]kve.Secret
	err     error
	hang    bool // wait for the request's end, and fail as Secrets Manager would
	lookups atomic.Int64
}

func (m *memKeys) Value(ctx context.Context, name, version string) (kve.Secret, error) {
	m.lookups.Add(1)
	if m.hang {
		<-ctx.Done()
		return "", kve.Wrap(kve.KindUnavailable, "unavailable", "unavailable", ctx.Err())
	}
	if m.err != nil {
		return "", m.err
	}
	v, ok := m.values[name+"@"+version]
	if !ok {
		return "", kve.ErrNotFound
	}
	return v, nil
}

// recorder collects usage records.
type recorder struct {
	mu     sync.Mutex
	recs   []kve.Usage
	grants []*Grant // each record's, nil when not admitted by a Meter
	got    chan struct{}
}

func (r *recorder) Record(ctx context.Context, u *kve.Usage) {
	r.mu.Lock()
	r.recs = append(r.recs, *u)
	r.grants = append(r.grants, GrantOf(ctx))
	r.mu.Unlock()
	select {
	case r.got <- struct{}{}:
	default:
	}
}

func (r *recorder) all() []kve.Usage {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]kve.Usage(nil), r.recs...)
}

// last waits for the next record (the proxy records after the response is
// complete, which may be just after the client read the last byte).
func (r *recorder) last(t *testing.T) kve.Usage {
	t.Helper()
	deadline := time.After(5 * time.Second)
	for {
		if recs := r.all(); len(recs) > 0 {
			return recs[len(recs)-1]
		}
		select {
		case <-r.got:
		case <-deadline:
			t.Fatal("no usage record")
		}
	}
}

// upstream is a test upstream that records each request it receives.
type upstream struct {
	*httptest.Server
	calls  atomic.Int64
	mu     sync.Mutex
	reqs   []*http.Request
	bodies []string
	handle http.HandlerFunc
}

func newUpstream(t *testing.T, handle http.HandlerFunc) *upstream {
	t.Helper()
	u := &upstream{handle: handle}
	u.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u.calls.Add(1)
		b, _ := io.ReadAll(r.Body)
		u.mu.Lock()
		u.reqs = append(u.reqs, r.Clone(context.Background()))
		u.bodies = append(u.bodies, string(b))
		u.mu.Unlock()
		if u.handle != nil {
			u.handle(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"id":"chatcmpl-1","object":"chat.completion","model":"gpt-4o-mini","choices":[{"index":0,"message":{"role":"assistant","content":"hi"},"finish_reason":"stop"}],"usage":{"prompt_tokens":9,"completion_tokens":2,"total_tokens":11}}`)
	}))
	t.Cleanup(u.Close)
	return u
}

func (u *upstream) last(t *testing.T) (*http.Request, string) {
	t.Helper()
	u.mu.Lock()
	defer u.mu.Unlock()
	if len(u.reqs) == 0 {
		t.Fatal("upstream received no request")
	}
	return u.reqs[len(u.reqs)-1], u.bodies[len(u.bodies)-1]
}

// env is a proxy in front of one upstream with one org's tokens.
type env struct {
	t       *testing.T
	up      *upstream
	tokens  *memTokens
	keys    *memKeys
	rec     *recorder
	h       *Handler
	srv     *httptest.Server
	now     time.Time
	cfg     Config
	limiter Limiter
	meter   Meter
}

type envOption func(*env)

func withConfig(f func(*Config)) envOption { return func(e *env) { f(&e.cfg) } }
func withLimiter(l Limiter) envOption      { return func(e *env) { e.limiter = l } }

func newEnv(t *testing.T, handle http.HandlerFunc, opts ...envOption) *env {
	t.Helper()
	e := &env{
		t:      t,
		up:     newUpstream(t, handle),
		tokens: &memTokens{byHash: map[string]kve.Token{}},
		keys:   &memKeys{values: map[string]kve.Secret{"kve/org_1/keys/key_1@v1": fakeKey}},
		rec:    &recorder{got: make(chan struct{}, 1)},
		now:    time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC),
		cfg: Config{
			AllowPrivate: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")},
		},
	}
	for _, o := range opts {
		o(e)
	}
	e.cfg.Now = func() time.Time { return e.now }
	e.h = New(e.cfg, Deps{Tokens: e.tokens, Keys: e.keys, Hash: hashValue, Limiter: e.limiter, Recorder: e.rec, Meter: e.meter})
	e.srv = httptest.NewServer(e.h)
	t.Cleanup(e.srv.Close)
	return e
}

// token issues a token for provider with the given policy tweaks and
// returns its value.
func (e *env) token(provider string, mod func(*kve.Token)) string {
	e.t.Helper()
	v := kve.NewTokenValue(kve.TokenShared, kve.EnvDev).Reveal()
	tok := kve.Token{
		ID: kve.NewID(kve.PrefixToken, e.now), OrgID: "org_1", Name: "test", Kind: kve.TokenShared, Env: kve.EnvDev,
		Hash: hashValue(v),
		Key: kve.KeyRef{ID: "key_1", Name: "main", Provider: provider, Upstream: e.up.URL,
			Secret: "kve/org_1/keys/key_1", Version: "v1"},
		Policy: kve.Policy{AllowServer: true},
	}
	if mod != nil {
		mod(&tok)
	}
	if tok.Kind == kve.TokenPersonal || tok.Env != kve.EnvDev {
		// Re-issue the value so its prefix matches the kind and env.
		v = kve.NewTokenValue(tok.Kind, tok.Env).Reveal()
		tok.Hash = hashValue(v)
	}
	e.tokens.put(tok)
	return v
}

// do sends a request to the proxy and returns the response and body.
func (e *env) do(method, path string, body string, header http.Header) (*http.Response, string) {
	e.t.Helper()
	req, err := http.NewRequest(method, e.srv.URL+path, strings.NewReader(body))
	if err != nil {
		e.t.Fatal(err)
	}
	for k, vs := range header {
		for _, v := range vs {
			req.Header.Add(k, v)
		}
	}
	if body != "" && req.Header.Get("Content-Type") == "" {
		req.Header.Set("Content-Type", "application/json")
	}
	res, err := e.srv.Client().Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		e.t.Fatal(err)
	}
	return res, string(b)
}

func bearerHeader(v string) http.Header { return http.Header{"Authorization": {"Bearer " + v}} }
