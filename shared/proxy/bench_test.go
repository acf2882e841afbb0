package proxy

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/keyvault-edge/kve/shared/kve"
	"github.com/keyvault-edge/kve/shared/limits"
)

// The benchmarks measure the hot path in-process, without sockets: the
// policy (credential, token parse, HMAC, store lookup, checks, key lookup),
// the header rewrite, and the whole handler against an upstream
// RoundTripper that answers a canned OpenAI response. BenchmarkProxy runs a
// bare httputil.ReverseProxy (a Rewrite that only swaps the Authorization
// header) on the same RoundTripper, so the difference between the two is
// what kve adds per request. Sockets, the real stores and the secrets cache
// are measured elsewhere: shared/loadbench (local mode end to end),
// shared/store/sqlite BenchmarkTokenByHash, shared/secrets BenchmarkCacheHit.
//
//	go test -run '^$' -bench . -benchmem ./shared/proxy

const benchKey = "sk-test-FAKE-bench-0123456789abcdefghijklmnopqrstuv"

var benchPepper = []byte("bench-pepper-FAKE-0123456789abcd") // 32 bytes

// benchChatRequest is the body of an OpenAI SDK chat request.
const benchChatRequest = `{"messages":[{"role":"system","content":"You are a helpful assistant."},{"role":"user","content":"Write a haiku about reverse proxies."}],"model":"gpt-4o-mini","temperature":0.7}`

// benchCompletion is an OpenAI chat completion of realistic size (672 B).
const benchCompletion = `{"id":"chatcmpl-BenchFAKE0123456789abcdefghij","object":"chat.completion","created":1764244800,"model":"gpt-4o-mini-2024-07-18","choices":[{"index":0,"message":{"role":"assistant","content":"Requests pass through,\nkeys swapped in the quiet dark,\nanswers stream back home.","refusal":null,"annotations":[]},"logprobs":null,"finish_reason":"stop"}],"usage":{"prompt_tokens":28,"completion_tokens":19,"total_tokens":47,"prompt_tokens_details":{"cached_tokens":0,"audio_tokens":0},"completion_tokens_details":{"reasoning_tokens":0,"audio_tokens":0,"accepted_prediction_tokens":0,"rejected_prediction_tokens":0}},"service_tier":"default","system_fingerprint":"fp_0123456789"}`

// benchStream is an OpenAI chat completion stream with usage: a role
// chunk, a chunk per word, the finish chunk, the usage chunk, [DONE] (17
// events, 4.9 KB).
var benchStream = func() []string {
	const chunk = `data: {"id":"chatcmpl-BenchFAKE0123456789abcdefghij","object":"chat.completion.chunk","created":1764244800,"model":"gpt-4o-mini-2024-07-18","service_tier":"default","system_fingerprint":"fp_0123456789","choices":[{"index":0,"delta":%s,"logprobs":null,"finish_reason":%s}],"usage":null}` + "\n\n"
	ev := func(delta, finish string) string {
		return strings.Replace(strings.Replace(chunk, "%s", delta, 1), "%s", finish, 1)
	}
	s := []string{ev(`{"role":"assistant","content":"","refusal":null}`, "null")}
	for _, w := range strings.Fields("Requests pass through, keys swapped in the quiet dark, answers stream back home.") {
		s = append(s, ev(`{"content":"`+w+` "}`, "null"))
	}
	s = append(s, ev(`{}`, `"stop"`),
		`data: {"id":"chatcmpl-BenchFAKE0123456789abcdefghij","object":"chat.completion.chunk","created":1764244800,"model":"gpt-4o-mini-2024-07-18","choices":[],"usage":{"prompt_tokens":28,"completion_tokens":19,"total_tokens":47}}`+"\n\n",
		"data: [DONE]\n\n")
	return s
}()

// benchTokens is a token source with one token, looked up by its HMAC the
// way the stores do, without their I/O.
type benchTokens map[string]kve.Token

func (m benchTokens) TokenByHash(_ context.Context, hash []byte) (kve.Token, error) {
	t, ok := m[string(hash)]
	if !ok {
		return kve.Token{}, kve.ErrNotFound
	}
	return t, nil
}

// benchKeys is a key source keyed like secrets.Cache, by name and version.
type benchKeys map[[2]string]kve.Secret

func (m benchKeys) Value(_ context.Context, name, version string) (kve.Secret, error) {
	v, ok := m[[2]string{name, version}]
	if !ok {
		return "", kve.ErrNotFound
	}
	return v, nil
}

// lastUsage keeps the last usage record, so a benchmark can check that the
// meter read the response it was meant to.
type lastUsage struct{ u kve.Usage }

func (l *lastUsage) Record(_ context.Context, u *kve.Usage) { l.u = *u }

// cannedUpstream is an upstream RoundTripper: it consumes the request body
// as a transport writing it to the network would, and answers a fresh
// response whose body is body, delivered one SSE event per Read when
// events is set.
type cannedUpstream struct {
	contentType string
	body        string
	events      []string
}

func (u *cannedUpstream) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.Body != nil {
		io.Copy(io.Discard, r.Body)
		r.Body.Close()
	}
	res := &http.Response{
		StatusCode: http.StatusOK,
		Proto:      "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header:        http.Header{"Content-Type": {u.contentType}},
		ContentLength: -1,
		Request:       r,
	}
	if u.events != nil {
		res.Body = &eventReader{events: u.events}
	} else {
		res.ContentLength = int64(len(u.body))
		res.Header["Content-Length"] = []string{strconv.Itoa(len(u.body))}
		res.Body = io.NopCloser(strings.NewReader(u.body))
	}
	return res, nil
}

// eventReader returns one event per Read, as a streaming upstream does.
type eventReader struct {
	events []string
	off    int
}

func (e *eventReader) Read(p []byte) (int, error) {
	if len(e.events) == 0 {
		return 0, io.EOF
	}
	n := copy(p, e.events[0][e.off:])
	if e.off += n; e.off == len(e.events[0]) {
		e.events, e.off = e.events[1:], 0
	}
	return n, nil
}

func (e *eventReader) Close() error { return nil }

// discardWriter is a ResponseWriter that keeps only the status and the
// number of body bytes; it flushes like a server connection.
type discardWriter struct {
	header  http.Header
	status  int
	n       int
	flushes int
}

func (w *discardWriter) Header() http.Header { return w.header }
func (w *discardWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
}
func (w *discardWriter) Write(p []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	w.n += len(p)
	return len(p), nil
}
func (w *discardWriter) Flush() { w.flushes++ }

func (w *discardWriter) reset() {
	clear(w.header)
	w.status, w.n, w.flushes = 0, 0, 0
}

// rewindBody is a request body that can be replayed without allocating.
type rewindBody struct{ strings.Reader }

func (*rewindBody) Close() error { return nil }

// benchProxy is a kve Handler with one token, and the requests to send it.
type benchProxy struct {
	h     *Handler
	value string
	tok   kve.Token
	rec   *lastUsage
}

// newBenchProxy returns a Handler whose one token, for provider openai with
// the upstream at http://upstream.test, has the policy mod sets.
func newBenchProxy(b *testing.B, rt http.RoundTripper, lim Limiter, mod func(*kve.Token)) *benchProxy {
	b.Helper()
	hasher, err := kve.NewHasher(benchPepper)
	if err != nil {
		b.Fatal(err)
	}
	value := kve.NewTokenValue(kve.TokenShared, kve.EnvPrd).Reveal()
	tok := kve.Token{
		ID: "tok_bench", OrgID: "org_bench", Name: "bench", Kind: kve.TokenShared, Env: kve.EnvPrd,
		Hash: hasher.Hash(value),
		Key: kve.KeyRef{ID: "key_bench", Name: "main", Provider: "openai", Upstream: "http://upstream.test",
			Secret: "kve/org_bench/keys/key_bench", Version: "v1"},
		Policy: kve.Policy{AllowServer: true},
	}
	if mod != nil {
		mod(&tok)
	}
	rec := &lastUsage{}
	h := New(Config{Transport: rt}, Deps{
		Tokens:   benchTokens{string(tok.Hash): tok},
		Keys:     benchKeys{{tok.Key.Secret, tok.Key.Version}: benchKey},
		Hash:     hasher.Hash,
		Limiter:  lim,
		Recorder: rec,
	})
	return &benchProxy{h: h, value: value, tok: tok, rec: rec}
}

// chatRequest is what an OpenAI SDK sends, with the token as its API key.
func chatRequest(path, value string, body *rewindBody) *http.Request {
	r := &http.Request{
		Method: http.MethodPost, URL: &url.URL{Path: path}, RequestURI: path, Host: "127.0.0.1:8080",
		Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header: http.Header{
			"Authorization":           {"Bearer " + value},
			"Content-Type":            {"application/json"},
			"Accept":                  {"application/json"},
			"User-Agent":              {"OpenAI/Python 1.99.9"},
			"X-Stainless-Lang":        {"python"},
			"X-Stainless-Retry-Count": {"0"},
			"Connection":              {"keep-alive"},
		},
		ContentLength: int64(len(benchChatRequest)),
		Body:          body,
		RemoteAddr:    "203.0.113.7:54321",
	}
	return r.WithContext(context.Background())
}

// browserPolicy is a token with every check of DESIGN §6 switched on: an
// origin list, client networks, path rules, a rate limit and a budget.
// The lists are valid literals: a parse error is a bug in this file.
func browserPolicy(t *kve.Token) {
	for _, s := range []string{"https://app.example.com", "https://*.preview.example.com", "http://localhost:*"} {
		o, err := kve.ParseOriginPattern(s)
		if err != nil {
			panic(err)
		}
		t.Policy.Origins = append(t.Policy.Origins, o)
	}
	ips, err := kve.ParsePrefixes([]string{"10.0.0.0/8", "198.51.100.0/24", "203.0.113.0/24"})
	if err != nil {
		panic(err)
	}
	t.Policy.IPs = ips
	for _, s := range []string{"POST /v1/chat/completions", "POST /v1/embeddings", "GET /v1/models*"} {
		r, err := kve.ParsePathRule(s)
		if err != nil {
			panic(err)
		}
		t.Policy.Paths = append(t.Policy.Paths, r)
	}
	t.Policy.AllowServer = false
	t.Policy.RPM = 1_000_000
	t.Policy.BudgetMicro = 1_000_000_000_000
}

// BenchmarkPolicy runs authorize, everything the proxy does before it
// forwards: find the one credential, parse and checksum the token, HMAC it,
// look it up (in memory here), check the policy, fetch the real key.
func BenchmarkPolicy(b *testing.B) {
	tests := []struct {
		name   string
		mod    func(*kve.Token)
		lim    func() Limiter
		origin string
	}{
		{"server_token", nil, func() Limiter { return nil }, ""},
		{"browser_token_all_checks", browserPolicy, func() Limiter { return limits.NewMemory() }, "https://pr-42.preview.example.com"},
	}
	for _, tt := range tests {
		b.Run(tt.name, func(b *testing.B) {
			p := newBenchProxy(b, &cannedUpstream{}, tt.lim(), tt.mod)
			r := chatRequest("/openai/v1/chat/completions", p.value, nil)
			if tt.origin != "" {
				r.Header.Set("Origin", tt.origin)
			}
			rt, ok := parseRoute(r.Host, r.URL.EscapedPath(), "")
			if !ok {
				b.Fatal("route not parsed")
			}
			now := time.Date(2026, 11, 27, 0, 0, 0, 0, time.UTC)
			b.ReportAllocs()
			for b.Loop() {
				// Requests 100 µs apart: the limiter (1,000,000 a minute)
				// refills faster than they come, and never refuses one.
				now = now.Add(100 * time.Microsecond)
				c := &call{route: rt}
				if d := p.h.authorize(r, c, "/v1/chat/completions", now); d != nil {
					b.Fatalf("refused: %s %s", d.code, d.reason)
				}
			}
		})
	}
}

// BenchmarkPolicyParse is the format and checksum check alone, which runs
// before any store read.
func BenchmarkPolicyParse(b *testing.B) {
	v := kve.NewTokenValue(kve.TokenShared, kve.EnvPrd).Reveal()
	b.ReportAllocs()
	for b.Loop() {
		if _, _, ok := kve.ParseTokenValue(v); !ok {
			b.Fatal("token refused")
		}
	}
}

// BenchmarkPolicyHMAC is the lookup key of a token: HMAC-SHA256 under the
// pepper.
func BenchmarkPolicyHMAC(b *testing.B) {
	h, err := kve.NewHasher(benchPepper)
	if err != nil {
		b.Fatal(err)
	}
	v := kve.NewTokenValue(kve.TokenShared, kve.EnvPrd).Reveal()
	b.ReportAllocs()
	for b.Loop() {
		if len(h.Hash(v)) != 32 {
			b.Fatal("short MAC")
		}
	}
}

// BenchmarkPolicyCredential is finding the one credential among the
// headers every SDK may use.
func BenchmarkPolicyCredential(b *testing.B) {
	v := kve.NewTokenValue(kve.TokenShared, kve.EnvPrd).Reveal()
	r := chatRequest("/openai/v1/chat/completions", v, nil)
	p, _ := kve.LookupProvider("openai")
	b.ReportAllocs()
	for b.Loop() {
		if c, d := credential(r, p); d != nil || c.value != v {
			b.Fatal("credential not found")
		}
	}
}

// BenchmarkRewrite is the outbound request's rewrite alone: the upstream
// URL, every client credential removed, the real key injected. The same
// outbound request is rewritten on each iteration: the first removes the
// client's Authorization, later ones remove the injected one, which is the
// same work.
func BenchmarkRewrite(b *testing.B) {
	tests := []struct {
		name string
		auth kve.Auth
		prov string
	}{
		{"openai", kve.Auth{}, "openai"},
		{"anthropic", kve.Auth{}, "anthropic"},
		{"generic_header", kve.Auth{Mode: kve.AuthHeader, Name: "X-Acme-Token", Prefix: "token "}, "acme"},
	}
	for _, tt := range tests {
		b.Run(tt.name, func(b *testing.B) {
			p := newBenchProxy(b, &cannedUpstream{}, nil, func(t *kve.Token) {
				t.Key.Provider, t.Key.Auth = tt.prov, tt.auth
			})
			in := chatRequest("/"+tt.prov+"/v1/chat/completions", p.value, nil)
			rt, ok := parseRoute(in.Host, in.URL.EscapedPath(), "")
			if !ok {
				b.Fatal("route not parsed")
			}
			c := &call{route: rt, tok: &p.tok, key: benchKey}
			c.usage.Path = "/v1/chat/completions"
			in = in.WithContext(context.WithValue(in.Context(), callKey{}, c))
			out := in.Clone(in.Context())
			pr := &httputil.ProxyRequest{In: in, Out: out}
			b.ReportAllocs()
			for b.Loop() {
				p.h.rewrite(pr)
			}
			if out.URL.String() != "http://upstream.test/v1/chat/completions" {
				b.Fatalf("outbound URL %s", out.URL)
			}
			if countCredentials(out) != 1 {
				b.Fatalf("%d credentials upstream, want 1", countCredentials(out))
			}
		})
	}
}

// BenchmarkReadUsage: reading the model and usage of a 672-byte chat
// completion, as the meter does at the end of every JSON response.
func BenchmarkReadUsage(b *testing.B) {
	body := []byte(benchCompletion)
	b.ReportAllocs()
	for b.Loop() {
		var d usageDoc
		if !readUsageDoc(body, &d) || d.Usage == nil {
			b.Fatal("no usage read")
		}
	}
}

// BenchmarkProxy runs the whole handler, kve and a bare ReverseProxy, on a
// chat completion (JSON) and a chat completion stream (SSE, one event per
// upstream read, flushed each).
func BenchmarkProxy(b *testing.B) {
	modes := []struct {
		name     string
		upstream *cannedUpstream
		size     int
		tokens   int64 // completion tokens the meter must find
	}{
		{"json", &cannedUpstream{contentType: "application/json", body: benchCompletion}, len(benchCompletion), 19},
		{"sse", &cannedUpstream{contentType: "text/event-stream", events: benchStream}, len(strings.Join(benchStream, "")), 19},
	}
	for _, m := range modes {
		b.Run("kve/"+m.name, func(b *testing.B) {
			p := newBenchProxy(b, m.upstream, nil, nil)
			body := &rewindBody{}
			tmpl := chatRequest("/openai/v1/chat/completions", p.value, body)
			w := &discardWriter{header: http.Header{}}
			b.ReportAllocs()
			for b.Loop() {
				w.reset()
				body.Reset(benchChatRequest)
				r := *tmpl
				p.h.ServeHTTP(w, &r)
			}
			checkServed(b, w, m.size)
			if u := p.rec.u; u.CompletionTokens != m.tokens || u.Estimated {
				b.Fatalf("meter read %+v", u)
			}
		})
		b.Run("bare/"+m.name, func(b *testing.B) {
			target, _ := url.Parse("http://upstream.test")
			rp := &httputil.ReverseProxy{
				Rewrite: func(pr *httputil.ProxyRequest) {
					pr.SetURL(target)
					pr.Out.Header.Set("Authorization", "Bearer "+benchKey)
				},
				Transport: m.upstream,
			}
			body := &rewindBody{}
			tmpl := chatRequest("/v1/chat/completions", "kve_FAKE_client_key", body)
			w := &discardWriter{header: http.Header{}}
			b.ReportAllocs()
			for b.Loop() {
				w.reset()
				body.Reset(benchChatRequest)
				r := *tmpl
				rp.ServeHTTP(w, &r)
			}
			checkServed(b, w, m.size)
		})
	}
}

// checkServed fails the benchmark unless the last response was a whole 200.
func checkServed(b *testing.B, w *discardWriter, size int) {
	b.Helper()
	if w.status != http.StatusOK || w.n != size {
		b.Fatalf("last response: status %d, %d bytes, want 200 and %d", w.status, w.n, size)
	}
}

// TestBenchFixtures keeps the benchmarks honest: the canned response is of
// the size the figures claim, and the stream is well-formed SSE the meter
// reads usage from.
func TestBenchFixtures(t *testing.T) {
	if n := len(benchCompletion); n < 550 || n > 750 {
		t.Errorf("canned completion is %d bytes, want about 600", n)
	}
	u := kve.Usage{}
	m := &meter{body: io.NopCloser(strings.NewReader(strings.Join(benchStream, ""))), sse: true, u: &u}
	if _, err := io.Copy(io.Discard, m); err != nil {
		t.Fatal(err)
	}
	m.finish()
	if u.PromptTokens != 28 || u.CompletionTokens != 19 || u.Estimated {
		t.Errorf("stream usage %+v", u)
	}
	if !bytes.HasSuffix([]byte(benchStream[len(benchStream)-1]), []byte("[DONE]\n\n")) {
		t.Error("stream does not end with [DONE]")
	}
}
