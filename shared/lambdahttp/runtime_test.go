package lambdahttp

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// buildStreamfn builds testdata/streamfn as the functions are built for
// Lambda (-tags lambda.norpc: no go1.x RPC mode) and returns the binary.
func buildStreamfn(t *testing.T, goos string) string {
	t.Helper()
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(t.TempDir(), "bootstrap")
	cmd := exec.CommandContext(t.Context(), goBin, "build", "-tags", "lambda.norpc", "-o", bin, "./testdata/streamfn")
	cmd.Env = append(os.Environ(), "GOOS="+goos, "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build streamfn: %v\n%s", err, out)
	}
	return bin
}

// streamHead is the JSON head of a streaming response, before the eight NUL
// bytes that separate it from the body.
type streamHead struct {
	StatusCode        int                 `json:"statusCode"`
	Headers           map[string]string   `json:"headers"`
	MultiValueHeaders map[string][]string `json:"multiValueHeaders"`
	Cookies           []string            `json:"cookies"`
}

var delimiter = make([]byte, 8)

// splitStream splits a streaming response into its head and body.
func splitStream(raw []byte) (streamHead, []byte, error) {
	var head streamHead
	i := bytes.Index(raw, delimiter)
	if i < 0 {
		return head, nil, fmt.Errorf("no eight-NUL delimiter in %q", raw)
	}
	if err := json.Unmarshal(raw[:i], &head); err != nil {
		return head, nil, fmt.Errorf("decode head %q: %w", raw[:i], err)
	}
	return head, raw[i+len(delimiter):], nil
}

// streamfnHead is what streamfn must answer to proxy-chat-stream.json.
var streamfnHead = streamHead{
	StatusCode: http.StatusOK,
	MultiValueHeaders: map[string][]string{
		"Cache-Control":      {"no-cache"},
		"Content-Type":       {"text/event-stream"},
		"Set-Cookie":         {"a=1; Path=/", "b=2; Path=/; HttpOnly"},
		"X-Seen-Body-Bytes":  {"101"},
		"X-Seen-Remote-Addr": {"203.0.113.7:0"},
		"X-Seen-Request":     {"POST a1b2c3d4e5.execute-api.us-east-1.amazonaws.com /openai/v1/chat/completions"},
		"X-Seen-Request-Id":  {"0b7c5d9e-2f3a-4b1c-8d6e-7f8091a2b3c4"},
	},
}

// posted is what the fake Runtime API received as the invocation's response.
type posted struct {
	path, contentType, mode string
	transferEncoding        []string
	head                    []byte
	events                  []string
	reads                   []int // the body read in which each event completed
	err                     error
}

// runtimeAPI is a fake Lambda Runtime API (2018-06-01) that hands out one
// invocation and reads its streamed response as it arrives.
type runtimeAPI struct {
	requestID string
	payload   []byte
	next      chan struct{}   // one token per invocation to hand out
	arrived   []chan struct{} // arrived[n] closes when event n+1 is in
	result    chan posted
}

func newRuntimeAPI(payload []byte, events int) *runtimeAPI {
	api := &runtimeAPI{
		requestID: "8476a536-e9f4-11e8-9739-2dfe598c3fcd",
		payload:   payload,
		next:      make(chan struct{}, 1),
		result:    make(chan posted, 1),
	}
	for range events {
		api.arrived = append(api.arrived, make(chan struct{}))
	}
	api.next <- struct{}{}
	return api
}

func (api *runtimeAPI) routes() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /2018-06-01/runtime/invocation/next", func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-api.next:
		case <-r.Context().Done(): // the second poll waits until the test kills the function
			return
		}
		h := w.Header()
		h.Set("Lambda-Runtime-Aws-Request-Id", api.requestID)
		h.Set("Lambda-Runtime-Deadline-Ms", strconv.FormatInt(time.Now().Add(time.Minute).UnixMilli(), 10))
		h.Set("Lambda-Runtime-Invoked-Function-Arn", "arn:aws:lambda:us-east-1:123456789012:function:kve-proxy")
		h.Set("Lambda-Runtime-Trace-Id", "Root=1-6928845b-0a9b8c7d6e5f4a3b2c1d0e9f;Parent=9a9197af755a6419;Sampled=0")
		h.Set("Content-Type", "application/json")
		w.Write(api.payload)
	})
	mux.HandleFunc("POST /2018-06-01/runtime/invocation/{id}/response", func(w http.ResponseWriter, r *http.Request) {
		p := api.read(r)
		p.path = r.URL.Path
		p.contentType = r.Header.Get("Content-Type")
		p.mode = r.Header.Get("Lambda-Runtime-Function-Response-Mode")
		p.transferEncoding = r.TransferEncoding
		api.result <- p
		w.WriteHeader(http.StatusAccepted)
	})
	mux.HandleFunc("POST /2018-06-01/runtime/invocation/{id}/error", func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		api.result <- posted{path: r.URL.Path, err: fmt.Errorf("function error: %s", body)}
		w.WriteHeader(http.StatusAccepted)
	})
	mux.HandleFunc("GET /gate", func(w http.ResponseWriter, r *http.Request) {
		n, err := strconv.Atoi(r.URL.Query().Get("after"))
		if err != nil || n < 1 || n > len(api.arrived) {
			http.Error(w, "bad after", http.StatusBadRequest)
			return
		}
		select {
		case <-api.arrived[n-1]:
		case <-r.Context().Done():
		}
	})
	return mux
}

// read consumes the streamed response body as it arrives, splitting off the
// head at the eight NUL bytes and then each SSE event as it completes, and
// opens the gate for the next event.
func (api *runtimeAPI) read(r *http.Request) posted {
	var p posted
	var buf []byte
	chunk := make([]byte, 32<<10)
	for reads := 1; ; reads++ {
		n, err := r.Body.Read(chunk)
		buf = append(buf, chunk[:n]...)
		if p.head == nil {
			if i := bytes.Index(buf, delimiter); i >= 0 {
				p.head, buf = buf[:i], buf[i+len(delimiter):]
			}
		}
		for p.head != nil {
			i := bytes.Index(buf, []byte("\n\n"))
			if i < 0 {
				break
			}
			p.events = append(p.events, string(buf[:i+2]))
			p.reads = append(p.reads, reads)
			buf = buf[i+2:]
			if k := len(p.events) - 1; k < len(api.arrived) {
				close(api.arrived[k])
			}
		}
		if errors.Is(err, io.EOF) {
			if len(buf) > 0 {
				p.err = fmt.Errorf("trailing bytes %q", buf)
			}
			return p
		}
		if err != nil {
			p.err = err
			return p
		}
	}
}

// TestRuntimeStreams runs the adapter under the real aws-lambda-go runtime
// client, in its own process, against a fake Runtime API: the response must
// be posted in streaming form, event by event.
func TestRuntimeStreams(t *testing.T) {
	bin := buildStreamfn(t, runtime.GOOS)
	api := newRuntimeAPI(fixture(t, "proxy-chat-stream.json", placeholder), len(sseEvents))
	srv := httptest.NewServer(api.routes())
	t.Cleanup(srv.Close)

	cmd := exec.Command(bin)
	cmd.Env = []string{
		"AWS_LAMBDA_RUNTIME_API=" + strings.TrimPrefix(srv.URL, "http://"),
		"STREAMFN_GATE=" + srv.URL + "/gate",
	}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { // before srv.Close, which waits for the function's poll
		cmd.Process.Kill()
		cmd.Wait()
		if t.Failed() {
			t.Logf("streamfn output:\n%s", out.String())
		}
	})

	got := await(t, "the streamed response", func() posted { return <-api.result })
	if got.err != nil {
		t.Fatal(got.err)
	}
	if want := "/2018-06-01/runtime/invocation/" + api.requestID + "/response"; got.path != want {
		t.Errorf("posted to %s, want %s", got.path, want)
	}
	if got.contentType != "application/vnd.awslambda.http-integration-response" {
		t.Errorf("Content-Type = %q, want the HTTP integration response type", got.contentType)
	}
	if len(got.transferEncoding) != 1 || got.transferEncoding[0] != "chunked" {
		t.Errorf("Transfer-Encoding = %q, want chunked", got.transferEncoding)
	}
	// The Runtime API's header is optional: the invoke (API Gateway's
	// response-streaming-invocations integration) decides that the response
	// streams, and aws-lambda-go v1.55.1 does not send it. Should a later
	// version send it, it must say streaming.
	t.Logf("Lambda-Runtime-Function-Response-Mode %q; events completed in body reads %v", got.mode, got.reads)
	if got.mode != "" && got.mode != "streaming" {
		t.Errorf("Lambda-Runtime-Function-Response-Mode = %q", got.mode)
	}
	var head streamHead
	if err := json.Unmarshal(got.head, &head); err != nil {
		t.Fatalf("head %q: %v", got.head, err)
	}
	if diff := cmp.Diff(streamfnHead, head); diff != "" {
		t.Errorf("head (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(sseEvents, got.events); diff != "" {
		t.Errorf("events (-want +got):\n%s", diff)
	}
	for i := 1; i < len(got.reads); i++ {
		if got.reads[i] <= got.reads[i-1] {
			t.Errorf("events %d and %d arrived in the same read: %v", i, i+1, got.reads)
		}
	}
}
