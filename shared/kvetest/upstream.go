package kvetest

import (
	"crypto/rand"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// Upstream is a fake provider API: an httptest server on loopback that
// answers in the provider's wire format (JSON bodies, SSE transcripts from
// testdata replayed with a flush between events, the provider's error JSON)
// and checks every request it receives: the real key must arrive in the
// provider's header, as the only credential, and no kve token or API token
// may appear in any header, the URL or the body. A request that breaks a
// rule gets the provider's 401 and fails the test when it ends.
type Upstream struct {
	URL      string // base URL, the key's upstream
	Key      string // the real key it accepts, a canary: sk-test-CANARY-…
	Provider string // "openai" or "anthropic"

	srv   *httptest.Server
	done  chan struct{} // closed when the test ends, releasing held requests
	serve func(u *Upstream, w http.ResponseWriter, r *http.Request, body []byte)

	mu         sync.Mutex
	reqs       []Request
	violations []string
	fault      fault
}

// Request is one request an upstream received.
type Request struct {
	Method string
	Path   string // as sent, escaped
	Query  string
	Header http.Header
	Body   []byte
}

// fault is how an upstream misbehaves on the requests that follow.
type fault struct {
	hang     bool
	events   int              // SSE events sent before hold or reset
	hold     chan<- time.Time // after events: wait for the client to go away, then send when it did
	reset    bool             // after events: reset the connection
	echoKey  bool
	redirect string // answer 302 to this location
}

// maxUpstreamBody bounds what an upstream reads of a request body.
const maxUpstreamBody = 64 << 20

func newUpstream(t testing.TB, provider string, serve func(*Upstream, http.ResponseWriter, *http.Request, []byte)) *Upstream {
	t.Helper()
	u := &Upstream{Key: Canary("sk-test-"), Provider: provider, done: make(chan struct{}), serve: serve}
	u.srv = httptest.NewServer(http.HandlerFunc(u.handle))
	u.URL = u.srv.URL
	t.Cleanup(func() {
		close(u.done)
		u.srv.Close()
		for _, v := range u.Violations() {
			t.Errorf("%s upstream: %s", provider, v)
		}
	})
	return u
}

func (u *Upstream) handle(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(io.LimitReader(r.Body, maxUpstreamBody))
	if err != nil {
		return // the proxy broke the request off; nothing to answer
	}
	u.mu.Lock()
	u.reqs = append(u.reqs, Request{Method: r.Method, Path: r.URL.EscapedPath(), Query: r.URL.RawQuery,
		Header: r.Header.Clone(), Body: body})
	f := u.fault
	u.mu.Unlock()
	if u.Provider == "anthropic" {
		w.Header().Set("Request-Id", "req_011C"+rand.Text()[:20])
	} else {
		w.Header().Set("X-Request-Id", "req_"+strings.ToLower(rand.Text()))
	}
	if problems := u.check(r, body); len(problems) > 0 {
		u.mu.Lock()
		for _, p := range problems {
			u.violations = append(u.violations, fmt.Sprintf("%s %s: %s", r.Method, r.URL.Path, p))
		}
		u.mu.Unlock()
		u.authError(w, r, false)
		return
	}
	switch {
	case f.echoKey:
		u.authError(w, r, true)
	case f.redirect != "":
		w.Header().Set("Location", f.redirect)
		w.WriteHeader(http.StatusFound)
	case f.hang:
		select {
		case <-r.Context().Done():
		case <-u.done:
		}
	default:
		u.serve(u, w, r, body)
	}
}

// check applies the rules every request must follow.
func (u *Upstream) check(r *http.Request, body []byte) []string {
	var problems []string
	want := map[string]string{"Authorization": "Bearer " + u.Key} // openai
	if u.Provider == "anthropic" {
		want = map[string]string{"X-Api-Key": u.Key}
	}
	for _, name := range []string{"Authorization", "X-Api-Key", "Api-Key", "X-Goog-Api-Key", "Proxy-Authorization", "Cookie"} {
		got := r.Header.Values(name)
		switch w, ok := want[name]; {
		case ok && (len(got) != 1 || got[0] != w):
			problems = append(problems, fmt.Sprintf("header %s does not carry exactly the real key (%d values)", name, len(got)))
		case !ok && len(got) > 0:
			problems = append(problems, fmt.Sprintf("unexpected credential header %s", name))
		}
	}
	for name, vs := range r.Header {
		for _, v := range append(vs, name) {
			if hasToken(v) {
				problems = append(problems, "a kve token or API token in header "+name)
			}
		}
	}
	if hasToken(r.RequestURI) {
		problems = append(problems, "a kve token or API token in the URL")
	}
	if hasToken(string(body)) {
		problems = append(problems, "a kve token or API token in the body")
	}
	return problems
}

func hasToken(s string) bool { return strings.Contains(s, "kve_") || strings.Contains(s, "kvm_") }

// Requests returns the requests received so far.
func (u *Upstream) Requests() []Request {
	u.mu.Lock()
	defer u.mu.Unlock()
	return append([]Request(nil), u.reqs...)
}

// Calls returns how many requests arrived so far.
func (u *Upstream) Calls() int {
	u.mu.Lock()
	defer u.mu.Unlock()
	return len(u.reqs)
}

// Violations returns the rules requests broke so far.
func (u *Upstream) Violations() []string {
	u.mu.Lock()
	defer u.mu.Unlock()
	return append([]string(nil), u.violations...)
}

// Hang makes the upstream read each following request and never answer,
// until the proxy gives up.
func (u *Upstream) Hang() { u.setFault(fault{hang: true}) }

// HoldAfter makes the upstream send the first n events of each following
// stream and then wait until the client goes away; the returned channel
// receives the time the upstream saw its request cancelled.
func (u *Upstream) HoldAfter(n int) <-chan time.Time {
	c := make(chan time.Time, 16)
	u.setFault(fault{events: n, hold: c})
	return c
}

// ResetAfter makes the upstream send the first n events of each following
// stream and then reset the TCP connection, as a crashed upstream would.
func (u *Upstream) ResetAfter(n int) { u.setFault(fault{events: n, reset: true}) }

// EchoKey makes the upstream answer each following request with its 401,
// quoting the key it received in full, as a careless upstream does; kve must
// redact it before the client sees it (SECURITY T26).
func (u *Upstream) EchoKey() { u.setFault(fault{echoKey: true}) }

// Redirect makes the upstream answer each following request with a 302 to
// location; kve must pass it on, never follow it (SECURITY T45).
func (u *Upstream) Redirect(location string) { u.setFault(fault{redirect: location}) }

// Heal ends any fault.
func (u *Upstream) Heal() { u.setFault(fault{}) }

func (u *Upstream) setFault(f fault) {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.fault = f
}

func (u *Upstream) currentFault() fault {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.fault
}

// authError answers a request whose key is wrong, in the provider's words.
func (u *Upstream) authError(w http.ResponseWriter, r *http.Request, echo bool) {
	got := r.Header.Get("X-Api-Key")
	if u.Provider == "openai" {
		got = strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")
	}
	shown := maskKey(got)
	if echo {
		shown = got
	}
	if u.Provider == "anthropic" {
		writeAnthropicError(w, http.StatusUnauthorized, "authentication_error", "invalid x-api-key: "+shown)
		return
	}
	writeOpenAIError(w, http.StatusUnauthorized, "invalid_request_error", "invalid_api_key",
		"Incorrect API key provided: "+shown+". You can find your API key at https://platform.openai.com/account/api-keys.")
}

// maskKey shows a key the way OpenAI's errors do: a prefix, stars, the last four.
func maskKey(k string) string {
	if len(k) < 12 {
		return strings.Repeat("*", len(k))
	}
	return k[:3] + strings.Repeat("*", len(k)-7) + k[len(k)-4:]
}

// stream replays a transcript event by event with a flush after each, then
// applies the upstream's fault: hold the stream open or reset the connection
// after the first events.
func (u *Upstream) stream(w http.ResponseWriter, r *http.Request, header http.Header, events []string) {
	f := u.currentFault()
	for name, vs := range header {
		w.Header()[name] = vs
	}
	w.WriteHeader(http.StatusOK)
	rc := http.NewResponseController(w)
	rc.Flush()
	for i, ev := range events {
		if (f.hold != nil || f.reset) && i == f.events {
			break
		}
		_, err := io.WriteString(w, ev)
		if err == nil {
			err = rc.Flush()
		}
		if err != nil {
			// The proxy hung up before the events ran out: that is the
			// upstream seeing its request cancelled, too.
			if f.hold != nil {
				f.hold <- time.Now()
			}
			return
		}
	}
	switch {
	case f.hold != nil:
		select {
		case <-r.Context().Done():
			f.hold <- time.Now()
		case <-u.done:
		}
	case f.reset:
		conn, _, err := rc.Hijack()
		if err != nil {
			return
		}
		if tc, ok := conn.(*net.TCPConn); ok {
			tc.SetLinger(0) // close with RST, not FIN
		}
		conn.Close()
	}
}
