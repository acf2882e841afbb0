package kvetest

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// errorsTB records the errors reported to it instead of failing the test.
type errorsTB struct {
	testing.TB
	mu   sync.Mutex
	errs []string
}

func (e *errorsTB) Errorf(format string, args ...any) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.errs = append(e.errs, fmt.Sprintf(format, args...))
}

func (e *errorsTB) reported() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.errs
}

func send(t *testing.T, method, url string, header http.Header, body string) (int, string) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header = header
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return res.StatusCode, string(b)
}

// TestUpstreamChecks: a fake upstream answers a request that carries exactly
// its key, and refuses — in the provider's error JSON — and reports when the
// test ends every request that carries a kve token anywhere, a wrong key or
// a second credential.
func TestUpstreamChecks(t *testing.T) {
	const chat = `{"model":"gpt-4o-mini","messages":[{"role":"user","content":"Hi"}]}`
	token := "kve_hb_dev_0123456789abcdefghijklmnopqrstuvwxyzAB"
	tests := []struct {
		name     string
		header   func(key string) http.Header
		path     string
		body     string
		status   int
		reported bool
	}{
		{"the real key", func(k string) http.Header { return http.Header{"Authorization": {"Bearer " + k}} }, "/v1/chat/completions", chat, 200, false},
		{"a wrong key", func(k string) http.Header { return http.Header{"Authorization": {"Bearer sk-test-other"}} }, "/v1/chat/completions", chat, 401, true},
		{"no key", func(k string) http.Header { return http.Header{} }, "/v1/chat/completions", chat, 401, true},
		{"a second credential", func(k string) http.Header {
			return http.Header{"Authorization": {"Bearer " + k}, "X-Api-Key": {k}}
		}, "/v1/chat/completions", chat, 401, true},
		{"a token in a header", func(k string) http.Header {
			return http.Header{"Authorization": {"Bearer " + k}, "X-Note": {token}}
		}, "/v1/chat/completions", chat, 401, true},
		{"a token in the URL", func(k string) http.Header { return http.Header{"Authorization": {"Bearer " + k}} },
			"/v1/chat/completions?t=" + token, chat, 401, true},
		{"a token in the body", func(k string) http.Header { return http.Header{"Authorization": {"Bearer " + k}} },
			"/v1/chat/completions", strings.Replace(chat, "Hi", token, 1), 401, true},
		{"an unknown path", func(k string) http.Header { return http.Header{"Authorization": {"Bearer " + k}} }, "/v1/nope", "", 404, false},
	}
	for _, tt := range tests {
		var tb *errorsTB
		var status int
		var body string
		t.Run(tt.name, func(t *testing.T) {
			tb = &errorsTB{TB: t}
			up := NewOpenAI(tb)
			status, body = send(t, http.MethodPost, up.URL+tt.path, tt.header(up.Key), tt.body)
			if strings.Contains(body, up.Key) {
				t.Errorf("the upstream's answer shows its whole key")
			}
		})
		if status != tt.status {
			t.Errorf("%s: status %d, want %d", tt.name, status, tt.status)
		}
		var e struct {
			Error *struct {
				Message string  `json:"message"`
				Type    string  `json:"type"`
				Code    *string `json:"code"`
			} `json:"error"`
		}
		if status != 200 && (json.Unmarshal([]byte(body), &e) != nil || e.Error == nil || e.Error.Type == "") {
			t.Errorf("%s: error body %s is not OpenAI's error JSON", tt.name, body)
		}
		if got := len(tb.reported()) > 0; got != tt.reported {
			t.Errorf("%s: reported %v, want reported %v", tt.name, tb.reported(), tt.reported)
		}
	}
}

// TestAnthropicUpstream: the fake Anthropic API wants x-api-key and
// anthropic-version, and answers a message or its event stream.
func TestAnthropicUpstream(t *testing.T) {
	up := NewAnthropic(t)
	h := http.Header{"X-Api-Key": {up.Key}, "Content-Type": {"application/json"}}
	const msg = `{"model":"claude-sonnet-4-5","max_tokens":64,"messages":[{"role":"user","content":"Hi"}]%s}`
	status, body := send(t, http.MethodPost, up.URL+"/v1/messages", h, fmt.Sprintf(msg, ""))
	if status != 400 || !strings.Contains(body, `"type":"invalid_request_error"`) {
		t.Errorf("without anthropic-version: %d %s", status, body)
	}
	h.Set("Anthropic-Version", "2023-06-01")
	if status, body := send(t, http.MethodPost, up.URL+"/v1/messages", h, fmt.Sprintf(msg, "")); status != 200 || !strings.Contains(body, `"type": "message"`) {
		t.Errorf("message: %d %s", status, body)
	}
	status, body = send(t, http.MethodPost, up.URL+"/v1/messages", h, fmt.Sprintf(msg, `,"stream":true`))
	if want := string(Transcript(t, "anthropic/message_stream.sse")); status != 200 || body != want {
		t.Errorf("stream: %d\n%s", status, body)
	}
}

// TestTranscripts: every recorded SSE transcript is well formed: events end
// with a blank line, every data line holds JSON (or OpenAI's [DONE]), and an
// Anthropic event's event: line names the type of its data.
func TestTranscripts(t *testing.T) {
	names, err := fs.Glob(testdata, "testdata/*/*.sse")
	if err != nil || len(names) == 0 {
		t.Fatalf("no transcripts: %v", err)
	}
	for _, name := range names {
		name = strings.TrimPrefix(name, "testdata/")
		t.Run(name, func(t *testing.T) {
			raw := Transcript(t, name)
			events := Events(t, name)
			if strings.Join(events, "") != string(raw) {
				t.Fatal("the transcript does not split into whole events")
			}
			for i, ev := range events {
				var typ, data string
				for line := range strings.SplitSeq(strings.TrimSuffix(ev, "\n\n"), "\n") {
					field, value, ok := strings.Cut(line, ": ")
					switch {
					case !ok:
						t.Fatalf("event %d: line %q", i, line)
					case field == "event":
						typ = value
					case field == "data":
						data = value
					}
				}
				if data == "[DONE]" {
					continue
				}
				var doc struct {
					Type string `json:"type"`
				}
				if err := json.Unmarshal([]byte(data), &doc); err != nil {
					t.Fatalf("event %d: data is not JSON: %v", i, err)
				}
				if typ != doc.Type {
					t.Errorf("event %d: event: %q, data type %q", i, typ, doc.Type)
				}
			}
		})
	}
}

// TestFindLeaks: the canary check finds a secret as is, URL-encoded and in
// base64, and nothing that merely shares a prefix with it.
func TestFindLeaks(t *testing.T) {
	key := Canary("sk-test-") + "/+="
	c := []canary{{label: "the key", value: key}}
	sources := map[string]string{
		"plain":   "Authorization: Bearer " + key,
		"escaped": "GET /v1/models?key=" + url.QueryEscape(key),
		"base64":  "Basic " + base64.StdEncoding.EncodeToString([]byte(key)),
		"clean":   "Incorrect API key provided: " + maskKey(key) + " " + key[:20],
	}
	var where []string
	for _, l := range findLeaks(c, sources) {
		where = append(where, l.Where)
	}
	if diff := cmp.Diff([]string{"base64", "escaped", "plain"}, where); diff != "" {
		t.Errorf("leaks found (-want +got):\n%s", diff)
	}
}

// TestStart: an instance serves, hands out its setup code, and passes its
// own canary check after the quickstart's management calls.
func TestStart(t *testing.T) {
	up := NewOpenAI(t)
	in := Start(t)
	if len(in.SetupCode) != 24 {
		t.Errorf("setup code %q", in.SetupCode)
	}
	org := in.SetupOrg(t)
	k := in.AddKey(t, org, "openai-main", up)
	if k.Provider != "openai" || k.Upstream != up.URL {
		t.Errorf("key = %+v", k)
	}
	tok := in.CreateToken(t, org, map[string]any{"name": "t", "key": "openai-main", "env": "dev", "allow_server": true})
	if !strings.HasPrefix(tok.Value, "kve_hb_dev_") {
		t.Errorf("token %s has the wrong prefix", tok.ID)
	}
	if leaks := in.Leaks(t); len(leaks) > 0 {
		t.Errorf("leaks: %v", leaks)
	}
}
