package lambdahttp

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"testing"

	"github.com/aws/aws-lambda-go/events"
	"github.com/google/go-cmp/cmp"

	"github.com/keyvault-edge/kve/shared/kve"
)

// placeholder is the bearer token in the fixtures of events/ (see its README).
const placeholder = "kve_hb_dev_FIXTUREPLACEHOLDER00000000000000000000"

// fixture reads events/<name> with its token placeholder replaced by token.
func fixture(t *testing.T, name, token string) []byte {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("..", "..", "events", name))
	if err != nil {
		t.Fatal(err)
	}
	return bytes.ReplaceAll(raw, []byte(placeholder), []byte(token))
}

// event decodes a fixture the way the Lambda runtime does.
func event(t *testing.T, name, token string) events.APIGatewayProxyRequest {
	t.Helper()
	var ev events.APIGatewayProxyRequest
	if err := json.Unmarshal(fixture(t, name, token), &ev); err != nil {
		t.Fatalf("decode %s: %v", name, err)
	}
	return ev
}

// seen is what a handler saw of its request.
type seen struct {
	Method, Host, RemoteAddr, RequestID string
	Path, EscapedPath, RequestURI       string
	Query                               url.Values
	Header                              http.Header
	Body                                string
	ContentLength                       int64
	TLS                                 bool
}

// recording returns a handler that records its request into got and answers
// with two cookies, so that both directions of an adapter are exercised.
// The token it was given shows as "Bearer [token]" in got, so a failing
// comparison never prints a token.
func recording(t *testing.T, token string, got *seen) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			t.Errorf("read body: %v", err)
		}
		h := r.Header.Clone()
		if h.Get("Authorization") == "Bearer "+token {
			h.Set("Authorization", "Bearer [token]")
		}
		*got = seen{
			Method: r.Method, Host: r.Host, RemoteAddr: r.RemoteAddr, RequestID: RequestID(r.Context()),
			Path: r.URL.Path, EscapedPath: r.URL.EscapedPath(), RequestURI: r.RequestURI,
			Query: r.URL.Query(), Header: h, Body: string(body), ContentLength: r.ContentLength,
			TLS: r.TLS != nil,
		}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Add("Set-Cookie", "kve_session=sess-FAKE; Path=/; HttpOnly; Secure; SameSite=Lax")
		w.Header().Add("Set-Cookie", "kve_flash=saved; Path=/; Max-Age=60")
		w.WriteHeader(http.StatusCreated)
		io.WriteString(w, `{"ok":true}`)
	})
}

// edge returns the headers API Gateway adds to every request it forwards.
func edge(xff, trace string) http.Header {
	return http.Header{
		"X-Amzn-Trace-Id":   {trace},
		"X-Forwarded-For":   {xff},
		"X-Forwarded-Port":  {"443"},
		"X-Forwarded-Proto": {"https"},
	}
}

func with(h http.Header, more http.Header) http.Header {
	for k, vs := range more {
		h[k] = vs
	}
	return h
}

const executeAPIHost = "a1b2c3d4e5.execute-api.us-east-1.amazonaws.com"

var sdkHeaders = http.Header{
	"Accept":                  {"application/json"},
	"Authorization":           {"Bearer [token]"},
	"Content-Type":            {"application/json"},
	"User-Agent":              {"OpenAI/Python 1.99.9"},
	"X-Stainless-Lang":        {"python"},
	"X-Stainless-Retry-Count": {"0"},
}

// fixtureRequests lists, for each API Gateway fixture, exactly the request a
// handler must see.
var fixtureRequests = []struct {
	name string
	want seen
}{
	{"proxy-chat.json", seen{
		Method: "POST", Host: executeAPIHost,
		// Not 10.1.2.3, which the client wrote into X-Forwarded-For (T11).
		RemoteAddr: "203.0.113.7:0", RequestID: "6f1e3c2a-9b8d-4e7f-a1b2-c3d4e5f60718",
		Path: "/openai/v1/chat/completions", EscapedPath: "/openai/v1/chat/completions",
		RequestURI: "/openai/v1/chat/completions", Query: url.Values{},
		Header:        with(sdkHeaders.Clone(), edge("10.1.2.3, 203.0.113.7", "Root=1-6928845a-3f1c2b7e9d0a4c5b6e7f8a90")),
		Body:          `{"model":"gpt-4o-mini","messages":[{"role":"user","content":"Say hello in one word."}]}`,
		ContentLength: 87, TLS: true,
	}},
	{"proxy-chat-stream.json", seen{
		Method: "POST", Host: executeAPIHost,
		RemoteAddr: "203.0.113.7:0", RequestID: "0b7c5d9e-2f3a-4b1c-8d6e-7f8091a2b3c4",
		Path: "/openai/v1/chat/completions", EscapedPath: "/openai/v1/chat/completions",
		RequestURI: "/openai/v1/chat/completions", Query: url.Values{},
		Header:        with(sdkHeaders.Clone(), edge("10.1.2.3, 203.0.113.7", "Root=1-6928845b-0a9b8c7d6e5f4a3b2c1d0e9f")),
		Body:          `{"model":"gpt-4o-mini","messages":[{"role":"user","content":"Say hello in one word."}],"stream":true}`,
		ContentLength: 101, TLS: true,
	}},
	{"proxy-preflight.json", seen{
		Method: "OPTIONS", Host: executeAPIHost,
		RemoteAddr: "[2001:db8:85a3::8a2e:370:7334]:0", RequestID: "9a8b7c6d-5e4f-4a3b-9c2d-1e0f9a8b7c6d",
		Path: "/openai/v1/chat/completions", EscapedPath: "/openai/v1/chat/completions",
		RequestURI: "/openai/v1/chat/completions", Query: url.Values{},
		Header: with(http.Header{
			"Accept":                         {"*/*"},
			"Access-Control-Request-Headers": {"authorization,content-type"},
			"Access-Control-Request-Method":  {"POST"},
			"Origin":                         {"https://app.example.com"},
			"Referer":                        {"https://app.example.com/"},
			"Sec-Fetch-Mode":                 {"cors"},
			"Sec-Fetch-Site":                 {"cross-site"},
			"User-Agent":                     {"Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36"},
		}, edge("2001:db8:85a3::8a2e:370:7334", "Root=1-6928845c-1d2e3f4a5b6c7d8e9f0a1b2c")),
		TLS: true,
	}},
	{"proxy-host-form.json", seen{
		Method: "GET", Host: "openai.kve.example.com",
		RemoteAddr: "198.51.100.14:0", RequestID: "4c3b2a19-0f8e-4d7c-b6a5-948372615f0e",
		Path: "/v1/models", EscapedPath: "/v1/models",
		RequestURI: "/v1/models?owned_by=openai&owned_by=system&q=gpt+4o",
		Query:      url.Values{"owned_by": {"openai", "system"}, "q": {"gpt 4o"}},
		Header: with(http.Header{
			"Accept":        {"application/json", "text/plain"},
			"Authorization": {"Bearer [token]"},
			"User-Agent":    {"curl/8.11.1"},
		}, edge("198.51.100.14", "Root=1-6928845d-2e3f4a5b6c7d8e9f0a1b2c3d")),
		TLS: true,
	}},
	{"api-setup.json", seen{
		Method: "POST", Host: executeAPIHost,
		RemoteAddr: "198.51.100.14:0", RequestID: "d2c1b0a9-8f7e-4d6c-a5b4-c3d2e1f0a9b8",
		Path: "/api/v1/setup", EscapedPath: "/api/v1/setup", RequestURI: "/api/v1/setup", Query: url.Values{},
		Header: with(http.Header{
			"Accept":       {"application/json"},
			"Content-Type": {"application/json"},
			"User-Agent":   {"curl/8.11.1"},
		}, edge("198.51.100.14", "Root=1-6928845e-3f4a5b6c7d8e9f0a1b2c3d4e")),
		Body:          `{"code":"setup-FAKE-2f9c1e","email":"owner@example.com","name":"Olivia Owner","password":"correct-horse-FAKE-staple"}`,
		ContentLength: 117, TLS: true,
	}},
	{"console-login.json", seen{
		Method: "GET", Host: executeAPIHost,
		RemoteAddr: "192.0.2.44:0", RequestID: "7e6d5c4b-3a29-4180-9f7e-6d5c4b3a2918",
		Path: "/login", EscapedPath: "/login", RequestURI: "/login?next=%2Forgs%2Facme%2Ftokens",
		Query: url.Values{"next": {"/orgs/acme/tokens"}},
		Header: with(http.Header{
			"Accept":          {"text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"},
			"Accept-Language": {"en-GB,en;q=0.9"},
			"Cookie":          {"kve_session=sess-FAKE-0000000000000000; theme=dark"},
			"Sec-Fetch-Dest":  {"document"},
			"Sec-Fetch-Mode":  {"navigate"},
			"Sec-Fetch-Site":  {"same-origin"},
			"User-Agent":      {"Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0"},
		}, edge("192.0.2.44", "Root=1-6928845f-4a5b6c7d8e9f0a1b2c3d4e5f")),
		TLS: true,
	}},
}

// wantHeaders is the response head of the recording handler, as both
// adapters must pass it to API Gateway.
var wantHeaders = map[string][]string{
	"Content-Type": {"application/json"},
	"Set-Cookie": {
		"kve_session=sess-FAKE; Path=/; HttpOnly; Secure; SameSite=Lax",
		"kve_flash=saved; Path=/; Max-Age=60",
	},
}

func TestFixturesBuffered(t *testing.T) {
	for _, tt := range fixtureRequests {
		t.Run(tt.name, func(t *testing.T) {
			token := kve.NewTokenValue(kve.TokenShared, kve.EnvDev).Reveal()
			var got seen
			res, err := Buffered(recording(t, token, &got))(t.Context(), event(t, tt.name, token))
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("request (-want +got):\n%s", diff)
			}
			want := events.APIGatewayProxyResponse{StatusCode: http.StatusCreated, MultiValueHeaders: wantHeaders, Body: `{"ok":true}`}
			if diff := cmp.Diff(want, res); diff != "" {
				t.Errorf("response (-want +got):\n%s", diff)
			}
		})
	}
}

func TestFixturesStreaming(t *testing.T) {
	for _, tt := range fixtureRequests {
		t.Run(tt.name, func(t *testing.T) {
			noLeaks(t)
			token := kve.NewTokenValue(kve.TokenShared, kve.EnvDev).Reveal()
			var got seen
			res, err := Streaming(recording(t, token, &got))(t.Context(), event(t, tt.name, token))
			if err != nil {
				t.Fatal(err)
			}
			defer res.Close()
			body, err := io.ReadAll(res.Body) // EOF: the handler has returned
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("request (-want +got):\n%s", diff)
			}
			if res.StatusCode != http.StatusCreated || string(body) != `{"ok":true}` {
				t.Errorf("response = %d %q, want 201 {\"ok\":true}", res.StatusCode, body)
			}
			if diff := cmp.Diff(wantHeaders, res.MultiValueHeaders); diff != "" {
				t.Errorf("response headers (-want +got):\n%s", diff)
			}
		})
	}
}

// TestFixturesShape guards the fixtures themselves: each is a REST proxy
// event whose single-value maps agree with the multi-value ones, as API
// Gateway writes them, so the adapter's fallback and preferred paths would
// see the same request.
func TestFixturesShape(t *testing.T) {
	for _, tt := range fixtureRequests {
		t.Run(tt.name, func(t *testing.T) {
			ev := event(t, tt.name, placeholder)
			if ev.Resource != "/{proxy+}" || ev.RequestContext.Stage == "" || ev.RequestContext.RequestID == "" {
				t.Errorf("not a REST proxy event: resource %q, stage %q, request id %q",
					ev.Resource, ev.RequestContext.Stage, ev.RequestContext.RequestID)
			}
			for k, vs := range ev.MultiValueHeaders {
				if ev.Headers[k] != vs[len(vs)-1] {
					t.Errorf("headers[%q] = %q, want the last of %q", k, ev.Headers[k], vs)
				}
			}
			if len(ev.Headers) != len(ev.MultiValueHeaders) {
				t.Errorf("%d headers, %d multi-value headers", len(ev.Headers), len(ev.MultiValueHeaders))
			}
			for k, vs := range ev.MultiValueQueryStringParameters {
				if ev.QueryStringParameters[k] != vs[len(vs)-1] {
					t.Errorf("queryStringParameters[%q] = %q, want the last of %q", k, ev.QueryStringParameters[k], vs)
				}
			}
		})
	}
}

func TestFixtureSNSNotification(t *testing.T) {
	var n struct {
		Type, MessageID, TopicArn, Message, SignatureVersion, SigningCertURL string
	}
	if err := json.Unmarshal(fixture(t, "sns-notification.json", ""), &n); err != nil {
		t.Fatal(err)
	}
	var alert map[string]any
	if err := json.Unmarshal([]byte(n.Message), &alert); err != nil {
		t.Fatalf("message is not JSON: %v", err)
	}
	if n.Type != "Notification" || n.SignatureVersion != "2" || alert["reason"] != "origin_not_allowed" {
		t.Errorf("got type %q, signature version %q, alert %v", n.Type, n.SignatureVersion, alert)
	}
}
