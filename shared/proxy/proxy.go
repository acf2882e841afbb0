// Package proxy is kve's hot path: it takes a request carrying a sanitized
// token, checks the token's policy, swaps in the real key and forwards the
// request to the upstream, streaming the answer back and metering it.
//
// The package imports kve and the standard library only (a test enforces
// it): the store, the secret cache, the limiter and the recorder are the small
// interfaces below, satisfied elsewhere and wired by the functions/* mains.
package proxy

import (
	"context"
	"errors"
	"io"
	"log"
	"log/slog"
	"net/http"
	"net/http/httputil"
	"net/netip"
	"net/url"
	"sync"
	"time"

	"github.com/keyvault-edge/kve/shared/kve"
)

// Tokens finds a token by the HMAC of its value, with a strongly consistent
// read: a revocation must hold on the very next request.
type Tokens interface {
	TokenByHash(ctx context.Context, hash []byte) (kve.Token, error)
}

// Keys returns the value of a real key by secret name and version; the
// implementation caches per execution environment (secrets.Cache).
type Keys interface {
	Value(ctx context.Context, name, version string) (kve.Secret, error)
}

// Limiter decides whether a token may make one more request now.
type Limiter interface {
	Allow(ctx context.Context, t *kve.Token, now time.Time) (ok bool, retryAfter time.Duration, err error)
}

// Recorder receives the usage record of every request whose token is known,
// served or refused, once the response is complete. Record must not block
// for long: the Lambda implementation writes before the invocation ends, the
// local one queues. The record of a request the Meter admitted comes with
// its Grant in ctx (GrantOf), which the recorder settles.
type Recorder interface {
	Record(ctx context.Context, u *kve.Usage)
}

// Config configures a Handler.
type Config struct {
	// Domain enables host-form routing: <provider>.<Domain>. Empty: path form only.
	Domain string
	// MaxBodyBytes caps request bodies (413 beyond it). Default 10 MiB, API
	// Gateway's own limit.
	MaxBodyBytes int64
	Timeouts     Timeouts
	// AllowPrivate lists networks upstreams may resolve to besides public
	// addresses (local upstreams in tests, a private gateway).
	AllowPrivate []netip.Prefix
	// Transport overrides the upstream transport (NewTransport by default).
	Transport http.RoundTripper
	Now       func() time.Time
	Logger    *slog.Logger
}

// Deps are the backends a Handler uses.
type Deps struct {
	Tokens   Tokens
	Keys     Keys
	Hash     func(value string) []byte // the keyring's HMAC
	Limiter  Limiter                   // nil: no rate limits
	Recorder Recorder                  // nil: nothing recorded
	// Meter admits requests against tokens per minute and every budget,
	// holding each one's cost until it is recorded. nil: the daily budget
	// is checked against the spend the token lookup read.
	Meter Meter
}

// Handler is the proxy as an http.Handler.
type Handler struct {
	domain  string
	maxBody int64
	idle    time.Duration
	total   time.Duration
	now     func() time.Time
	log     *slog.Logger
	deps    Deps
	rp      *httputil.ReverseProxy
}

// New returns the proxy handler.
func New(cfg Config, deps Deps) *Handler {
	cfg.Timeouts.defaults()
	if cfg.MaxBodyBytes <= 0 {
		cfg.MaxBodyBytes = 10 << 20
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Transport == nil {
		cfg.Transport = NewTransport(cfg.Timeouts, cfg.AllowPrivate)
	}
	h := &Handler{
		domain:  cfg.Domain,
		maxBody: cfg.MaxBodyBytes,
		idle:    cfg.Timeouts.StreamIdle,
		total:   cfg.Timeouts.Total,
		now:     cfg.Now,
		log:     cfg.Logger,
		deps:    deps,
	}
	h.rp = &httputil.ReverseProxy{
		Rewrite:        h.rewrite,
		Transport:      cfg.Transport,
		ModifyResponse: h.modifyResponse,
		ErrorHandler:   h.upstreamError,
		BufferPool:     &bufferPool{},
		// Upstream errors can carry URLs (with a query-injected key); the
		// proxy logs its own sanitized lines instead.
		ErrorLog: log.New(io.Discard, "", 0),
	}
	return h
}

// call is the state of one proxied request, shared by the ReverseProxy hooks
// through the outbound request's context.
type call struct {
	tok      *kve.Token
	route    route
	key      kve.Secret
	origin   string // the request's Origin when the token allows it
	usage    kve.Usage
	meter    *meter // &m once a response came
	m        meter
	cancel   context.CancelCauseFunc
	sent     time.Time
	failed   code // set when the upstream exchange failed
	upstream *url.URL

	ask       Ask    // what the request asks for, for the Meter
	grant     *Grant // what the Meter admitted; nil without one
	remaining int64  // micro-USD of budget left, for X-Kve-Budget-Remaining; -1: unknown
}

type callKey struct{}

// maxUserAgent bounds the User-Agent kept in a usage record, which breach
// incidents sample (SECURITY T37).
const maxUserAgent = 200

var (
	errStreamIdle = errors.New("upstream stream idle")
	errTotal      = errors.New("upstream exchange over its total time")
)

func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := h.now()
	c := &call{usage: kve.Usage{
		RequestID: kve.NewID(kve.PrefixRequest, start),
		At:        start.UTC(),
		Method:    r.Method,
		ClientIP:  clientIP(r).String(),
		UserAgent: kve.Truncate(r.UserAgent(), maxUserAgent),
	}}
	w.Header().Set("X-Request-Id", c.usage.RequestID)
	c.remaining = -1

	rt, ok := parseRoute(r.Host, r.URL.EscapedPath(), h.domain)
	if !ok {
		h.refuse(w, r, c, denial{code: codeUnknownProv, reason: "unknown_provider"})
		return
	}
	c.route = rt
	c.usage.Provider = rt.provider.Name
	if r.Method == http.MethodOptions && r.Header.Get("Access-Control-Request-Method") != "" {
		preflight(w, r)
		return
	}
	path, err := url.PathUnescape(rt.rest)
	if err != nil || !cleanPath(path) {
		h.refuse(w, r, c, denial{code: codeBadRequest, reason: "bad_path"})
		return
	}
	c.usage.Path = path
	if d := h.authorize(r, c, path, start); d != nil {
		h.refuse(w, r, c, *d)
		return
	}

	if r.ContentLength > h.maxBody {
		h.refuse(w, r, c, denial{code: codeTooLarge, reason: "too_large"})
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, h.maxBody)
	if d := inspectRequest(r, c); d != nil {
		h.refuse(w, r, c, *d)
		return
	}
	if d := h.admit(r, c); d != nil {
		h.refuse(w, r, c, *d)
		return
	}

	// One context with a cause: the deadlines cancel it through timers, the
	// whole exchange's here, the stream's idle one once a body flows
	// (modifyResponse), which costs less than a context per deadline.
	ctx, cancel := context.WithCancelCause(r.Context())
	c.cancel = cancel
	total := time.AfterFunc(h.total, func() { cancel(errTotal) })
	defer func() {
		total.Stop()
		cancel(nil)
		h.finish(c, start)
	}()
	h.rp.ServeHTTP(w, r.WithContext(context.WithValue(ctx, callKey{}, c)))
}

// authorize runs the policy of DESIGN §6 in its order: format and checksum,
// known, not revoked, not expired, provider and path, origin (or server
// use), client IP, rate limit, budget. It returns before any upstream I/O.
func (h *Handler) authorize(r *http.Request, c *call, path string, now time.Time) *denial {
	cred, d := credential(r, c.route.provider)
	if d != nil {
		return d
	}
	kind, env, ok := kve.ParseTokenValue(cred.value)
	if !ok {
		return &denial{code: codeInvalidToken, reason: "malformed"}
	}
	tok, err := h.deps.Tokens.TokenByHash(r.Context(), h.deps.Hash(cred.value))
	switch {
	case kve.KindOf(err) == kve.KindNotFound:
		return &denial{code: codeInvalidToken, reason: "unknown"}
	case err != nil && r.Context().Err() != nil:
		return clientGone(c) // not the store's failure
	case err != nil:
		h.log.Error("token lookup", "request_id", c.usage.RequestID, "err", err)
		return &denial{code: codeStoreDown, reason: "store_unavailable"}
	}
	c.tok = &tok
	c.usage.OrgID, c.usage.TokenID, c.usage.Env = tok.OrgID, tok.ID, tok.Env
	if tok.Kind == kve.TokenPersonal {
		c.usage.UserID = tok.OwnerID
	}
	switch {
	case tok.Kind != kind || tok.Env != env:
		return &denial{code: codeInvalidToken, reason: "mismatch"}
	case tok.Revoked():
		return &denial{code: codeInvalidToken, reason: "revoked"}
	case tok.Expired(now):
		return &denial{code: codeInvalidToken, reason: "expired"}
	case tok.Suspended():
		// A suspended token (a breach alert, or a manager) answers like
		// a revoked one: no oracle of why.
		return &denial{code: codeInvalidToken, reason: "suspended"}
	}
	if tok.Key.Provider != c.route.provider.Name {
		if kve.IsBuiltinProvider(c.route.provider.Name) {
			return &denial{code: codePath, reason: "wrong_provider",
				message: "This token is not valid for provider " + c.route.provider.Name + "."}
		}
		return &denial{code: codeUnknownProv, reason: "wrong_provider"}
	}
	if !tok.Policy.AllowsPath(r.Method, path) {
		return &denial{code: codePath, reason: "path"}
	}
	switch origins := r.Header.Values("Origin"); {
	case len(origins) > 1:
		return &denial{code: codeOrigin, reason: "origin_repeated"}
	case len(origins) == 1:
		c.usage.Origin = kve.Truncate(origins[0], 200)
		if !tok.Policy.AllowsOrigin(origins[0]) {
			return &denial{code: codeOrigin, reason: "origin"}
		}
		c.origin = origins[0]
	case !tok.Policy.AllowServer:
		return &denial{code: codeServerUse, reason: "server_use"}
	}
	if !tok.Policy.AllowsIP(clientIP(r)) {
		return &denial{code: codeIP, reason: "ip"}
	}
	if h.deps.Limiter != nil && tok.Policy.RPM > 0 {
		ok, wait, err := h.deps.Limiter.Allow(r.Context(), &tok, now)
		if err != nil {
			h.log.Error("rate limit", "request_id", c.usage.RequestID, "token_id", tok.ID, "err", err)
			return &denial{code: codeStoreDown, reason: "limiter_unavailable"}
		}
		if !ok {
			return &denial{code: codeRateLimited, reason: "rate", retryAfter: wait}
		}
	}
	if b := tok.Policy.BudgetMicro; b > 0 && h.deps.Meter == nil && tok.Spend.Today(now) >= b {
		return &denial{code: codeBudget, reason: "budget", retryAfter: untilTomorrow(now)}
	}
	key, err := h.deps.Keys.Value(r.Context(), tok.Key.Secret, tok.Key.Version)
	switch {
	case kve.KindOf(err) == kve.KindNotFound:
		h.log.Error("key missing", "request_id", c.usage.RequestID, "token_id", tok.ID, "key_id", tok.Key.ID)
		return &denial{code: codeUpstreamDown, reason: "key_missing",
			message: "The key behind this token is not available."}
	case err != nil && r.Context().Err() != nil:
		return clientGone(c)
	case err != nil:
		h.log.Error("key lookup", "request_id", c.usage.RequestID, "token_id", tok.ID, "err", err)
		return &denial{code: codeStoreDown, reason: "secrets_unavailable"}
	}
	c.key = key
	return nil
}

// refuse answers a request that goes no further, and records it when the
// token is known. CORS: only a refusal after the origin check passed lets
// the page read the error.
// clientGone is the denial of a request whose client went away while kve
// was still reading the store: a remote store fails such a read, and that
// failure is the client's, not the store's.
func clientGone(c *call) *denial {
	c.usage.ClientAborted = true
	return &denial{code: codeClientGone, reason: "client_gone"}
}

func (h *Handler) refuse(w http.ResponseWriter, r *http.Request, c *call, d denial) {
	if c.origin != "" {
		allowOrigin(w.Header(), c.origin)
	}
	c.setRemaining(w.Header())
	writeError(w, d)
	c.usage.Status = errorStatus[d.code]
	c.usage.Reason = d.reason
	c.usage.Duration = h.now().Sub(c.usage.At)
	if c.tok != nil && h.deps.Recorder != nil {
		h.deps.Recorder.Record(r.Context(), &c.usage)
	}
	h.log.Info("refused", "request_id", c.usage.RequestID, "org_id", c.usage.OrgID,
		"token_id", c.usage.TokenID, "provider", c.usage.Provider, "status", c.usage.Status,
		"code", string(d.code), "reason", d.reason, "client_ip", c.usage.ClientIP)
}

// finish records a forwarded request once its response is complete (also
// when the client went away or the upstream broke off).
func (h *Handler) finish(c *call, start time.Time) {
	u := &c.usage
	if c.meter != nil {
		c.meter.finish()
	}
	if c.failed != "" {
		u.Reason = string(c.failed)
	}
	u.Duration = h.now().Sub(start)
	if h.deps.Recorder != nil {
		ctx := context.Background()
		if c.grant != nil {
			ctx = WithGrant(ctx, c.grant)
		}
		h.deps.Recorder.Record(ctx, u)
	}
	if h.log.Enabled(context.Background(), slog.LevelInfo) { // the arguments cost allocations
		h.log.Info("proxied", "request_id", u.RequestID, "org_id", u.OrgID, "token_id", u.TokenID,
			"provider", u.Provider, "method", u.Method, "path", u.Path, "status", u.Status,
			"duration_ms", u.Duration.Milliseconds(), "client_aborted", u.ClientAborted)
	}
}

// rewrite builds the outbound request: the upstream from the token's key,
// every client credential removed, the real key injected. It runs after
// ReverseProxy removed hop-by-hop headers, so a client's Connection header
// cannot strip the injected key (which Director would allow).
func (h *Handler) rewrite(pr *httputil.ProxyRequest) {
	c := pr.In.Context().Value(callKey{}).(*call)
	out := pr.Out
	base := c.upstreamURL()
	out.URL.Scheme, out.URL.Host = base.Scheme, base.Host
	out.URL.Path = base.Path + c.usage.Path
	out.URL.RawPath = base.EscapedPath() + c.route.rest
	out.Host = ""
	stripCredentials(out, c.route.provider)
	// Identity encoding lets the meter read usage; see NewTransport.
	out.Header.Del("Accept-Encoding")
	injectKey(out, &c.tok.Key, c.route.provider.Family, c.key)
	c.sent = h.now()
}

// upstreamURL returns the key's upstream base, or the provider's default.
func (c *call) upstreamURL() *url.URL {
	if c.upstream != nil {
		return c.upstream
	}
	raw := c.tok.Key.Upstream
	if raw == "" {
		raw = c.route.provider.Upstream
	}
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		// Keys are validated when created; a broken one fails at dial time.
		u = &url.URL{Scheme: "https", Host: "invalid.invalid"}
	}
	c.upstream = u
	return u
}

// modifyResponse prepares the upstream's answer for the client.
func (h *Handler) modifyResponse(res *http.Response) error {
	c := res.Request.Context().Value(callKey{}).(*call)
	c.usage.Status = res.StatusCode
	c.usage.Upstream = h.now().Sub(c.sent)
	redactHeaders(res.Header, c.key) // the upstream's headers; kve's own below hold no key
	dropUpstreamCORS(res.Header)
	isolate(res.Header)
	if c.origin != "" {
		allowOrigin(res.Header, c.origin)
	}
	c.setRemaining(res.Header) // replaces any the upstream sent
	if res.StatusCode >= 400 {
		if err := redactBody(res, c.key); err != nil {
			return err
		}
	}
	c.m = meter{
		body:  res.Body,
		sse:   isEventStream(res.Header.Get("Content-Type")),
		u:     &c.usage,
		onErr: func(err error) error { return h.bodyError(c, res.Request.Context(), err) },
	}
	c.meter = &c.m
	if h.idle > 0 {
		c.m.idle, c.m.idleIn = time.AfterFunc(h.idle, func() { c.cancel(errStreamIdle) }), h.idle
	}
	res.Body = c.meter
	return nil
}

// bodyError classifies an error met while copying the response body.
func (h *Handler) bodyError(c *call, ctx context.Context, err error) error {
	switch cause := context.Cause(ctx); {
	case errors.Is(cause, errStreamIdle), errors.Is(cause, errTotal):
		c.failed = codeUpstreamSlow
	case ctx.Err() != nil:
		c.usage.ClientAborted = true
		c.failed = codeClientGone
	default:
		c.failed = codeUpstreamDown
	}
	return err
}

// upstreamError answers when no response came: one error map for the proxy
// (SECURITY: never copy err.Error(), which may hold the upstream URL).
func (h *Handler) upstreamError(w http.ResponseWriter, r *http.Request, err error) {
	c := r.Context().Value(callKey{}).(*call)
	var d denial
	var tooLarge *http.MaxBytesError
	switch cause := context.Cause(r.Context()); {
	case errors.As(err, &tooLarge):
		d = denial{code: codeTooLarge, reason: "too_large"}
	case errors.Is(cause, errTotal), errors.Is(cause, errStreamIdle), isTimeout(err):
		d = denial{code: codeUpstreamSlow, reason: "upstream_timeout"}
	case r.Context().Err() != nil:
		c.usage.ClientAborted = true
		d = denial{code: codeClientGone, reason: "client_gone"}
	default:
		d = denial{code: codeUpstreamDown, reason: "upstream_unavailable"}
	}
	c.failed = d.code
	c.usage.Status = errorStatus[d.code]
	level := slog.LevelWarn
	if d.code == codeClientGone {
		level = slog.LevelDebug
	}
	h.log.Log(r.Context(), level, "upstream failed", "request_id", c.usage.RequestID,
		"token_id", c.usage.TokenID, "provider", c.usage.Provider, "code", string(d.code),
		"err", sanitizeError(err))
	if d.code == codeClientGone {
		return // nobody is listening
	}
	if c.origin != "" {
		allowOrigin(w.Header(), c.origin)
	}
	c.setRemaining(w.Header())
	writeError(w, d)
}

// bufferPool reuses ReverseProxy's 32 KiB copy buffers across requests.
type bufferPool struct{ p sync.Pool }

func (b *bufferPool) Get() []byte {
	if v, ok := b.p.Get().(*[]byte); ok {
		return *v
	}
	return make([]byte, 32<<10)
}

func (b *bufferPool) Put(buf []byte) { b.p.Put(&buf) }

func untilTomorrow(now time.Time) time.Duration {
	t := now.UTC()
	return time.Date(t.Year(), t.Month(), t.Day()+1, 0, 0, 0, 0, time.UTC).Sub(t)
}
