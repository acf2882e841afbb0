package proxy

import (
	"encoding/base64"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/keyvault-edge/kve/shared/kve"
)

// TestRedactsEchoedKey (SECURITY T26): an upstream error echoing the key in
// its body (raw or URL-encoded) or a header reaches the client redacted.
func TestRedactsEchoedKey(t *testing.T) {
	e := newEnv(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("X-Debug-Auth", r.Header.Get("Authorization"))
		w.Header().Set("X-Debug-Key", fakeKey) // exactly as long as the key
		w.Header().Set("X-Debug-Basic", base64.StdEncoding.EncodeToString([]byte(fakeKey)))
		w.WriteHeader(401)
		io.WriteString(w, `{"error":{"message":"Incorrect API key provided: `+fakeKey+`. See https://x/?key=`+url.QueryEscape(fakeKey)+`","type":"invalid_request_error","code":"invalid_api_key"}}`)
	})
	v := e.token("openai", nil)
	res, body := e.do("POST", "/openai/v1/chat/completions", chatBody, bearerHeader(v))
	if res.StatusCode != 401 {
		t.Fatalf("status %d", res.StatusCode)
	}
	if strings.Contains(body, fakeKey) || strings.Contains(res.Header.Get("X-Debug-Auth"), fakeKey) {
		t.Fatalf("key echoed to the client: %s / %s", body, res.Header.Get("X-Debug-Auth"))
	}
	for _, name := range []string{"X-Debug-Key", "X-Debug-Basic"} {
		if got := res.Header.Get(name); got != "[redacted by kve]" {
			t.Errorf("%s = %q, want it redacted", name, got)
		}
	}
	if !strings.Contains(body, "invalid_api_key") || !strings.Contains(body, "[redacted by kve]") {
		t.Errorf("upstream error not passed through: %s", body)
	}
}

// TestRedirectNotFollowed (SECURITY T45): a 3xx goes back to the client as
// is, and kve makes no second request.
func TestRedirectNotFollowed(t *testing.T) {
	var sinkCalls atomic.Int64
	sink := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { sinkCalls.Add(1) }))
	defer sink.Close()
	e := newEnv(t, func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, sink.URL+"/steal", http.StatusTemporaryRedirect)
	})
	v := e.token("openai", nil)
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	req, _ := http.NewRequest("POST", e.srv.URL+"/openai/v1/chat/completions", strings.NewReader(chatBody))
	req.Header.Set("Authorization", "Bearer "+v)
	res, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != 307 || !strings.HasPrefix(res.Header.Get("Location"), sink.URL) {
		t.Fatalf("got %d %q", res.StatusCode, res.Header.Get("Location"))
	}
	if sinkCalls.Load() != 0 || e.up.calls.Load() != 1 {
		t.Errorf("followed the redirect: sink %d, upstream %d", sinkCalls.Load(), e.up.calls.Load())
	}
}

// TestUpstreamFromKeyOnly (SECURITY T13): nothing in the request can move
// the upstream: body fields, headers, Host.
func TestUpstreamFromKeyOnly(t *testing.T) {
	var sinkBytes atomic.Int64
	sink := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		sinkBytes.Add(int64(len(b)) + 1)
	}))
	defer sink.Close()
	e := newEnv(t, nil)
	v := e.token("openai", nil)
	h := bearerHeader(v)
	h.Set("X-Upstream-Url", sink.URL)
	h.Set("X-Portkey-Custom-Host", sink.URL)
	h.Set("X-Forwarded-Host", strings.TrimPrefix(sink.URL, "http://"))
	body := `{"model":"gpt-4o-mini","api_base":"` + sink.URL + `","base_url":"` + sink.URL + `","messages":[]}`
	req, _ := http.NewRequest("POST", e.srv.URL+"/openai/v1/chat/completions", strings.NewReader(body))
	req.Header = h
	req.Host = strings.TrimPrefix(sink.URL, "http://")
	res, err := e.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != 200 || e.up.calls.Load() != 1 || sinkBytes.Load() != 0 {
		t.Fatalf("status %d, upstream %d, sink %d", res.StatusCode, e.up.calls.Load(), sinkBytes.Load())
	}
	r, _ := e.up.last(t)
	if r.Host != strings.TrimPrefix(e.up.URL, "http://") {
		t.Errorf("upstream Host = %q", r.Host)
	}
}

// TestPrivateUpstreamRefused (SECURITY T14): without an allowance, an
// upstream on a private or loopback address is refused at dial time, and the
// key is never sent.
func TestPrivateUpstreamRefused(t *testing.T) {
	e := newEnv(t, nil, withConfig(func(c *Config) { c.AllowPrivate = nil }))
	v := e.token("openai", nil)
	res, body := e.do("POST", "/openai/v1/chat/completions", chatBody, bearerHeader(v))
	if res.StatusCode != 502 || errorCode(t, body) != "upstream_unavailable" {
		t.Fatalf("got %d %s", res.StatusCode, body)
	}
	if e.up.calls.Load() != 0 {
		t.Error("dialled a loopback upstream without an allowance")
	}
	if strings.Contains(body, "127.0.0.1") {
		t.Errorf("error names the upstream: %s", body)
	}
}

func TestCheckAddress(t *testing.T) {
	allow := []netip.Prefix{netip.MustParsePrefix("10.9.0.0/16")}
	tests := []struct {
		addr string
		ok   bool
	}{
		{"93.184.216.34:443", true},
		{"[2606:2800:220:1:248:1893:25c8:1946]:443", true},
		{"127.0.0.1:80", false},
		{"169.254.169.254:80", false},
		{"[::ffff:169.254.169.254]:80", false},
		{"[::ffff:a9fe:a9fe]:80", false},
		{"[::1]:80", false},
		{"0.0.0.0:80", false},
		{"10.0.0.1:443", false},
		{"10.9.3.4:443", true}, // allowed by the operator
		{"172.16.0.1:443", false},
		{"192.168.1.1:443", false},
		{"100.64.0.1:443", false},
		{"[fd00::1]:443", false},
		{"[fe80::1%eth0]:443", false},
		{"[64:ff9b::7f00:1]:443", false},
		{"[2002:7f00:1::]:443", false},
		{"224.0.0.1:443", false},
		{"255.255.255.255:443", false},
		{"garbage", false},
	}
	for _, tt := range tests {
		if got := checkAddress(tt.addr, allow) == nil; got != tt.ok {
			t.Errorf("checkAddress(%s) allowed = %v, want %v", tt.addr, got, tt.ok)
		}
	}
}

// FuzzPublicAddr (SECURITY F4): whatever encoding an address takes, the
// classifier agrees with netip's own view of it.
func FuzzPublicAddr(f *testing.F) {
	for _, s := range []string{"127.0.0.1", "::ffff:127.0.0.1", "169.254.169.254", "fe80::1", "8.8.8.8", "2001:4860::8888", "10.0.0.1"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		a, err := netip.ParseAddr(s)
		if err != nil {
			return
		}
		u := a.Unmap().WithZone("")
		if publicAddr(u) && (u.IsLoopback() || u.IsPrivate() || u.IsLinkLocalUnicast() || u.IsUnspecified()) {
			t.Fatalf("%s classified public", s)
		}
		if publicAddr(u) != (checkAddress(netip.AddrPortFrom(a, 443).String(), nil) == nil) {
			t.Fatalf("%s: classifier and dial check disagree", s)
		}
	})
}

// TestUpstreamTimeout: an upstream that never answers is a 504.
func TestUpstreamTimeout(t *testing.T) {
	release := make(chan struct{})
	defer close(release)
	e := newEnv(t, func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}, withConfig(func(c *Config) { c.Timeouts.ResponseHeader = 200 * time.Millisecond }))
	v := e.token("openai", nil)
	res, body := e.do("POST", "/openai/v1/chat/completions", chatBody, bearerHeader(v))
	if res.StatusCode != 504 || errorCode(t, body) != "upstream_timeout" {
		t.Fatalf("got %d %s", res.StatusCode, body)
	}
}

// TestUpstreamRefused: nothing listening is a 502 that names no address.
func TestUpstreamRefused(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := "http://" + l.Addr().String()
	l.Close()
	e := newEnv(t, nil)
	v := e.token("openai", func(tok *kve.Token) { tok.Key.Upstream = dead })
	res, body := e.do("POST", "/openai/v1/chat/completions", chatBody, bearerHeader(v))
	if res.StatusCode != 502 || errorCode(t, body) != "upstream_unavailable" || strings.Contains(body, "127.0.0.1") {
		t.Fatalf("got %d %s", res.StatusCode, body)
	}
}

// TestUpstreamBasePath: a base URL with a path (Groq's /openai) keeps it,
// and the client's path is appended, escapes intact.
func TestUpstreamBasePath(t *testing.T) {
	e := newEnv(t, nil)
	v := e.token("groq", func(tok *kve.Token) { tok.Key.Upstream = e.up.URL + "/openai" })
	res, _ := e.do("GET", "/groq/v1/models/a%2Fb?limit=2", "", bearerHeader(v))
	if res.StatusCode != 200 {
		t.Fatalf("status %d", res.StatusCode)
	}
	r, _ := e.up.last(t)
	if got := r.URL.EscapedPath(); got != "/openai/v1/models/a%2Fb" {
		t.Errorf("upstream path = %q", got)
	}
	if r.URL.RawQuery != "limit=2" {
		t.Errorf("upstream query = %q", r.URL.RawQuery)
	}
}

// TestHostForm routes openai.<domain>/v1/… like /openai/v1/….
func TestHostForm(t *testing.T) {
	e := newEnv(t, nil, withConfig(func(c *Config) { c.Domain = "kve.example.com" }))
	v := e.token("openai", nil)
	req, _ := http.NewRequest("POST", e.srv.URL+"/v1/chat/completions", strings.NewReader(chatBody))
	req.Host = "openai.kve.example.com"
	req.Header.Set("Authorization", "Bearer "+v)
	req.Header.Set("Content-Type", "application/json")
	res, err := e.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != 200 {
		t.Fatalf("status %d", res.StatusCode)
	}
	if r, _ := e.up.last(t); r.URL.Path != "/v1/chat/completions" {
		t.Errorf("upstream path %q", r.URL.Path)
	}
}

// TestUpstreamCannotActOnKveOrigin: an upstream's HTML and cookies reach
// the client inert — no Set-Cookie, a sandbox CSP — since the proxy shares
// its origin with the dashboard in path form.
func TestUpstreamCannotActOnKveOrigin(t *testing.T) {
	e := newEnv(t, func(w http.ResponseWriter, r *http.Request) {
		http.SetCookie(w, &http.Cookie{Name: "__Host-kve_session", Value: "attacker", Path: "/", Secure: true})
		w.Header().Set("Content-Type", "text/html")
		w.Header().Set("Content-Security-Policy", "default-src *")
		io.WriteString(w, "<script>fetch('/api/v1/orgs')</script>")
	})
	v := e.token("gemini", nil)
	res, _ := e.do("GET", "/gemini/x?key="+v, "", nil)
	if res.StatusCode != 200 {
		t.Fatalf("status %d", res.StatusCode)
	}
	if len(res.Header.Values("Set-Cookie")) != 0 {
		t.Errorf("upstream Set-Cookie reached the client: %q", res.Header.Values("Set-Cookie"))
	}
	if csp := res.Header.Values("Content-Security-Policy"); len(csp) != 1 || !strings.HasPrefix(csp[0], "sandbox;") {
		t.Errorf("Content-Security-Policy = %q, want kve's sandbox only", csp)
	}
	if res.Header.Get("X-Content-Type-Options") != "nosniff" {
		t.Error("no nosniff")
	}
}

// TestPlainHTTPOnlyToAllowedNetworks: allowing private upstreams lets
// cleartext http reach those networks only; an http upstream on a public
// address is refused before any byte of the key leaves.
func TestPlainHTTPOnlyToAllowedNetworks(t *testing.T) {
	rt := NewTransport(Timeouts{}, []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")})
	req, _ := http.NewRequest("GET", "http://93.184.216.34:80/v1/models", nil)
	_, err := rt.RoundTrip(req)
	if !errors.Is(err, errPrivateAddress) {
		t.Fatalf("http to a public address: %v, want refused at dial time", err)
	}
	e := newEnv(t, nil) // loopback is allowed: http to it works
	v := e.token("openai", nil)
	if res, body := e.do("POST", "/openai/v1/chat/completions", chatBody, bearerHeader(v)); res.StatusCode != 200 {
		t.Fatalf("http to an allowed network: %d %s", res.StatusCode, body)
	}
}
