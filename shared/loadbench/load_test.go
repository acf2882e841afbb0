package loadbench

import (
	"bufio"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"
)

const testKey = "sk-test-FAKE-loadbench-test-0123456789"

func newUpstream(t *testing.T) *httptest.Server {
	t.Helper()
	s := httptest.NewServer(Upstream(testKey))
	t.Cleanup(s.Close)
	return s
}

func bearer(v string) http.Header { return http.Header{"Authorization": {"Bearer " + v}} }

// TestUpstream: the fake OpenAI answers a completion of the advertised size,
// a stream event by event, and 401 without its key.
func TestUpstream(t *testing.T) {
	up := newUpstream(t)
	tests := []struct {
		name, body, key string
		status          int
		check           func(t *testing.T, res *http.Response, body string)
	}{
		{"completion", ChatRequest, testKey, 200, func(t *testing.T, res *http.Response, body string) {
			if body != Completion || res.ContentLength != int64(len(Completion)) {
				t.Errorf("body %d bytes, Content-Length %d", len(body), res.ContentLength)
			}
			if n := len(Completion); n < 550 || n > 750 {
				t.Errorf("completion is %d bytes, want about 600", n)
			}
		}},
		{"stream", StreamRequest, testKey, 200, func(t *testing.T, res *http.Response, body string) {
			if !strings.HasPrefix(res.Header.Get("Content-Type"), "text/event-stream") {
				t.Errorf("Content-Type %q", res.Header.Get("Content-Type"))
			}
			if body != strings.Join(Stream, "") || strings.Count(body, "data: ") != 17 {
				t.Errorf("stream body: %q", body)
			}
		}},
		{"wrong key", ChatRequest, "sk-test-FAKE-wrong", 401, func(t *testing.T, _ *http.Response, body string) {
			if !strings.Contains(body, "invalid_api_key") {
				t.Errorf("body %q", body)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, _ := http.NewRequestWithContext(t.Context(), "POST", up.URL+"/v1/chat/completions", strings.NewReader(tt.body))
			req.Header = bearer(tt.key)
			res, err := up.Client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer res.Body.Close()
			b, _ := io.ReadAll(res.Body)
			if res.StatusCode != tt.status {
				t.Fatalf("status %d, want %d", res.StatusCode, tt.status)
			}
			tt.check(t, res, string(b))
		})
	}
}

// TestStreamFlushesEachEvent: the upstream's events arrive one by one, so
// the first-byte figure is the first event's, not the whole stream's.
func TestStreamFlushesEachEvent(t *testing.T) {
	up := newUpstream(t)
	req, _ := http.NewRequestWithContext(t.Context(), "POST", up.URL+"/v1/chat/completions", strings.NewReader(StreamRequest))
	req.Header = bearer(testKey)
	res, err := up.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	br := bufio.NewReader(res.Body)
	first, err := br.ReadString('\n')
	if err != nil || first != strings.TrimSuffix(Stream[0], "\n") {
		t.Fatalf("first line %q, %v", first, err)
	}
}

// TestBareSwapsKey: the bare proxy replaces the client's credential with
// the key and forwards everything else.
func TestBareSwapsKey(t *testing.T) {
	var mu sync.Mutex
	var got []string
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		got = append(got, r.Header.Values("Authorization")...)
		mu.Unlock()
		Upstream(testKey).ServeHTTP(w, r)
	}))
	t.Cleanup(up.Close)
	u, _ := url.Parse(up.URL)
	bare := httptest.NewServer(Bare(u, testKey))
	t.Cleanup(bare.Close)

	req, _ := http.NewRequestWithContext(t.Context(), "POST", bare.URL+"/v1/chat/completions", strings.NewReader(ChatRequest))
	req.Header = bearer(bareClient)
	res, err := bare.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != 200 || string(b) != Completion {
		t.Fatalf("status %d: %q", res.StatusCode, b)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(got) != 1 || got[0] != "Bearer "+testKey {
		t.Errorf("upstream saw %d Authorization headers, want exactly the key", len(got))
	}
}

// TestLoad: the generator drives keep-alive connections in a closed loop,
// counts only 200s, and measures the first byte before the last.
func TestLoad(t *testing.T) {
	up := newUpstream(t)
	tests := []struct {
		name   string
		key    string
		body   string
		errors bool
	}{
		{"completion", testKey, ChatRequest, false},
		{"stream", testKey, StreamRequest, false},
		{"refused", "sk-test-FAKE-wrong", ChatRequest, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, err := Load{URL: up.URL + "/v1/chat/completions", Header: bearer(tt.key), Body: tt.body,
				Conns: 4, Warmup: 50 * time.Millisecond, Duration: 300 * time.Millisecond}.Run(t.Context())
			if err != nil {
				t.Fatal(err)
			}
			if tt.errors {
				if res.Errors == 0 || res.Requests != 0 || !strings.Contains(res.FirstErr, "401") {
					t.Errorf("refused requests: %+v", res)
				}
				return
			}
			if res.Errors != 0 || res.Requests == 0 || res.Total < res.Requests {
				t.Fatalf("result %+v", res)
			}
			if res.Latency.N != uint64(res.Requests) || res.FirstByte.N != res.Latency.N {
				t.Errorf("histograms hold %d and %d of %d requests", res.Latency.N, res.FirstByte.N, res.Requests)
			}
			if res.FirstByte.P50 > res.Latency.P50 || res.Latency.P50 <= 0 {
				t.Errorf("first byte p50 %v µs after whole response p50 %v µs", res.FirstByte.P50, res.Latency.P50)
			}
			if want := float64(res.Requests) / 0.3; res.RPS < want*0.99 || res.RPS > want*1.01 {
				t.Errorf("rps %v, want %v", res.RPS, want)
			}
		})
	}
}

// TestLoadRequest: the request written on the wire is the SDK's, with the
// body's length.
func TestLoadRequest(t *testing.T) {
	u, _ := url.Parse("http://127.0.0.1:9/openai/v1/chat/completions?x=1")
	raw := string(rawRequest(u, bearer("kve_FAKE"), ChatRequest))
	req, err := http.ReadRequest(bufio.NewReader(strings.NewReader(raw)))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(req.Body)
	if req.Method != "POST" || req.RequestURI != "/openai/v1/chat/completions?x=1" || req.Host != "127.0.0.1:9" ||
		req.Header.Get("Authorization") != "Bearer kve_FAKE" || string(b) != ChatRequest {
		t.Errorf("request %s %s host %s body %q", req.Method, req.RequestURI, req.Host, b)
	}
}

func TestLoadRejectsBadInput(t *testing.T) {
	for _, l := range []Load{
		{URL: "https://example.com/", Conns: 1, Duration: time.Second},
		{URL: "http://127.0.0.1:9/", Conns: 0, Duration: time.Second},
		{URL: "http://127.0.0.1:9/", Conns: 1},
	} {
		if _, err := l.Run(t.Context()); err == nil {
			t.Errorf("%+v: no error", l)
		}
	}
}
