package local_test

import (
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/openai/openai-go/v3/option"

	"github.com/keyvault-edge/kve/shared/kvetest"
	"github.com/keyvault-edge/kve/shared/local"
)

// sink is a TCP listener that counts the connections it gets: a place no
// request may reach.
type sink struct {
	addr  string
	conns atomic.Int32
}

func newSink(t *testing.T) *sink {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &sink{addr: l.Addr().String()}
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			s.conns.Add(1)
			c.Close()
		}
	}()
	t.Cleanup(func() { l.Close() })
	return s
}

// TestForwarding (SECURITY class c4): the upstream is the key's and nothing
// a client sends can change it (T13); exactly one credential goes upstream,
// whatever credential and hop-by-hop headers the client sends (T15; the fake
// upstream checks every request for it); an upstream's redirect is passed
// on, never followed (T45).
func TestForwarding(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	tok := e.token(t, nil)
	url := e.inst.URL + "/openai/v1/chat/completions"

	t.Run("T13 the client cannot pick the upstream", func(t *testing.T) {
		s := newSink(t)
		body := `{"model":"gpt-4o-mini","messages":[{"role":"user","content":"Hi"}],"api_base":"http://` + s.addr +
			`","base_url":"http://` + s.addr + `"}`
		req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, url+"?api_base=http://"+s.addr, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		req.Host = s.addr
		req.Header.Set("Authorization", "Bearer "+tok.Value)
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("X-Upstream-Url", "http://"+s.addr)
		req.Header.Set("X-Portkey-Custom-Host", "http://"+s.addr)
		req.Header.Set("X-Forwarded-Host", s.addr)
		before := e.up.Calls()
		res, err := e.inst.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != 200 || e.up.Calls() != before+1 || s.conns.Load() != 0 {
			t.Errorf("got %d, %d upstream calls, %d connections to the sink; want 200, 1, 0",
				res.StatusCode, e.up.Calls()-before, s.conns.Load())
		}
	})

	t.Run("T15 one credential upstream", func(t *testing.T) {
		other := e.token(t, nil)
		header := http.Header{
			"Connection":          {"Authorization, X-Api-Key, Cookie"},
			"Cookie":              {"session=" + other.Value},
			"Proxy-Authorization": {"Bearer " + other.Value},
			"Forwarded":           {"for=10.1.2.3;host=evil.example"},
			"X-Forwarded-For":     {"10.1.2.3"},
			"Anthropic-Version":   {"2023-06-01"},
		}
		before := len(e.up.Requests())
		res, body := post(t, e.inst, url, tok.Value, header)
		if res.StatusCode != 200 {
			t.Fatalf("got %d %s", res.StatusCode, errorCode(body))
		}
		got := e.up.Requests()[before]
		if got.Header.Get("Authorization") != "Bearer "+e.up.Key {
			t.Error("Connection: Authorization stripped the injected key")
		}
		for _, name := range []string{"Cookie", "Proxy-Authorization", "Connection"} {
			if v := got.Header.Values(name); len(v) > 0 {
				t.Errorf("the upstream received %s", name)
			}
		}
		if v := e.up.Violations(); len(v) > 0 {
			t.Errorf("upstream rules broken: %v", v)
		}
	})

	t.Run("T45 redirects are not followed", func(t *testing.T) {
		s := newSink(t)
		e.up.Redirect("http://" + s.addr + "/v1/chat/completions")
		defer e.up.Heal()
		// A client that does not follow redirects either, to see what kve sent.
		c := &http.Client{Transport: e.inst.Client().Transport, CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		}}
		req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, url, strings.NewReader(chatBody))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", "Bearer "+tok.Value)
		req.Header.Set("Content-Type", "application/json")
		res, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != http.StatusFound || s.conns.Load() != 0 {
			t.Errorf("got %d, %d connections to the redirect's target; want 302 passed on, 0", res.StatusCode, s.conns.Load())
		}
	})
}

// TestPrivateUpstreams (SECURITY T14, class c4): without
// --allow-private-upstreams, a key whose upstream is a loopback address is
// refused when kve dials, before a byte leaves: 502 and no connection.
func TestPrivateUpstreams(t *testing.T) {
	t.Parallel()
	up := kvetest.NewOpenAI(t)
	inst := kvetest.Start(t, kvetest.WithConfig(func(c *local.Config) { c.AllowPrivate = nil }))
	org := inst.SetupOrg(t)
	s := newSink(t)
	_, port, _ := net.SplitHostPort(s.addr)
	for i, host := range []string{"127.0.0.1", "[::ffff:7f00:1]", "localhost"} {
		name := "private-" + string(rune('a'+i))
		// https: without the allowance kve takes no http:// upstream at all.
		inst.CreateKey(t, org, map[string]any{"name": name, "provider": "openai", "upstream": "https://" + host + ":" + port, "secret": up.Key})
		tok := inst.CreateToken(t, org, map[string]any{"name": name, "key": name, "env": "dev", "allow_server": true})
		t.Run(host, func(t *testing.T) {
			c := inst.OpenAI(tok.Value, option.WithMaxRetries(0))
			err := chat(t, c)
			wantError(t, inst, err, 502, "upstream_unavailable")
			if n := s.conns.Load(); n != 0 {
				t.Errorf("kve connected to the private upstream %d times", n)
			}
		})
	}
}
