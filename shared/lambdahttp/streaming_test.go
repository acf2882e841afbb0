package lambdahttp

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/google/go-cmp/cmp"
	"go.uber.org/goleak"
)

// noLeaks checks, after every other cleanup of the test, that no goroutine
// the test started is left: a handler still blocked on a pipe nobody reads.
// Call it first.
func noLeaks(t *testing.T) {
	t.Helper()
	t.Cleanup(func() { goleak.VerifyNone(t) })
}

// await returns f's result, or fails the test when f blocks: an adapter that
// held the response back would otherwise hang the whole run. The bound only
// turns a hang into a failure; no test waits for it to pass.
func await[T any](t *testing.T, what string, f func() T) T {
	t.Helper()
	done := make(chan T, 1)
	go func() { done <- f() }()
	select {
	case v := <-done:
		return v
	case <-time.After(30 * time.Second):
		t.Fatalf("%s: nothing after 30s", what)
		panic("unreachable")
	}
}

// stream calls Streaming(h) and closes the response when the test ends.
func stream(t *testing.T, h http.Handler, ev events.APIGatewayProxyRequest) *events.APIGatewayProxyStreamingResponse {
	t.Helper()
	type result struct {
		res *events.APIGatewayProxyStreamingResponse
		err error
	}
	got := await(t, "response head", func() result {
		res, err := Streaming(h)(t.Context(), ev)
		return result{res, err}
	})
	if got.err != nil {
		t.Fatal(got.err)
	}
	t.Cleanup(func() { got.res.Close() })
	return got.res
}

// nextEvent reads one server-sent event, up to and including its blank line.
func nextEvent(t *testing.T, br *bufio.Reader) string {
	t.Helper()
	return await(t, "next event", func() string {
		var ev strings.Builder
		for {
			line, err := br.ReadString('\n')
			ev.WriteString(line)
			if err != nil {
				return fmt.Sprintf("%s<%v>", ev.String(), err)
			}
			if line == "\n" {
				return ev.String()
			}
		}
	})
}

var sseEvents = []string{"data: {\"n\":1}\n\n", "data: {\"n\":2}\n\n", "data: {\"n\":3}\n\n", "data: [DONE]\n\n"}

// The handler writes event N+1 only after the test has received event N, so
// the test passes only if every event leaves the adapter on its own: one
// held back until the handler returned (or until more bytes came) would
// deadlock, and await turns that into a failure.
func TestStreamingDeliversEachEvent(t *testing.T) {
	noLeaks(t)
	ack := make(chan struct{})
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		w.Header().Set("Cache-Control", "no-cache")
		for i, ev := range sseEvents {
			if i > 0 {
				select {
				case <-ack:
				case <-r.Context().Done():
					return
				}
			}
			io.WriteString(w, ev)
			w.(http.Flusher).Flush()
		}
	})
	res := stream(t, h, event(t, "proxy-chat-stream.json", placeholder))
	want := map[string][]string{"Content-Type": {"text/event-stream"}, "Cache-Control": {"no-cache"}}
	if diff := cmp.Diff(want, res.MultiValueHeaders); res.StatusCode != http.StatusOK || diff != "" {
		t.Errorf("head = %d, headers (-want +got):\n%s", res.StatusCode, diff)
	}
	br := bufio.NewReader(res.Body)
	for i, want := range sseEvents {
		if i > 0 {
			ack <- struct{}{}
		}
		if got := nextEvent(t, br); got != want {
			t.Fatalf("event %d = %q, want %q", i+1, got, want)
		}
	}
	if rest, err := io.ReadAll(res.Body); err != nil || len(rest) > 0 {
		t.Errorf("after the last event: %q, %v; want EOF", rest, err)
	}
}

// The response head goes out as soon as it is known, while the handler is
// still running: on its first Write, on a Flush after WriteHeader, or when
// it returns. Headers changed after that do not count, as with net/http.
func TestStreamingHead(t *testing.T) {
	tests := []struct {
		name       string
		head       func(w http.ResponseWriter) // must send the head
		wantStatus int
		wantHeader map[string][]string
		wantBody   string
	}{{
		name:       "first write",
		head:       func(w http.ResponseWriter) { io.WriteString(w, "hello ") },
		wantStatus: http.StatusOK,
		wantHeader: map[string][]string{"X-Early": {"1"}, "Content-Type": {"text/plain; charset=utf-8"}},
		wantBody:   "hello tail",
	}, {
		name: "WriteHeader then Flush",
		head: func(w http.ResponseWriter) {
			w.WriteHeader(http.StatusAccepted)
			w.(http.Flusher).Flush()
		},
		wantStatus: http.StatusAccepted,
		wantHeader: map[string][]string{"X-Early": {"1"}},
		wantBody:   "tail",
	}, {
		name: "Flush through http.ResponseController and a wrapping writer",
		head: func(w http.ResponseWriter) {
			if err := http.NewResponseController(unwrapper{w}).Flush(); err != nil {
				panic(err)
			}
		},
		wantStatus: http.StatusOK,
		wantHeader: map[string][]string{"X-Early": {"1"}},
		wantBody:   "tail",
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			noLeaks(t)
			release := make(chan struct{})
			h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("X-Early", "1")
				tt.head(w)
				w.Header().Set("X-Late", "1")
				<-release
				io.WriteString(w, "tail")
			})
			res := stream(t, h, events.APIGatewayProxyRequest{HTTPMethod: "GET", Path: "/"})
			if res.StatusCode != tt.wantStatus {
				t.Errorf("status = %d, want %d", res.StatusCode, tt.wantStatus)
			}
			if diff := cmp.Diff(tt.wantHeader, res.MultiValueHeaders); diff != "" {
				t.Errorf("headers (-want +got):\n%s", diff)
			}
			close(release)
			if body, err := io.ReadAll(res.Body); err != nil || string(body) != tt.wantBody {
				t.Errorf("body = %q, %v; want %q", body, err, tt.wantBody)
			}
		})
	}
	t.Run("handler returns without writing", func(t *testing.T) {
		noLeaks(t)
		h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Access-Control-Max-Age", "600")
			w.WriteHeader(http.StatusNoContent)
		})
		res := stream(t, h, event(t, "proxy-preflight.json", placeholder))
		body, err := io.ReadAll(res.Body)
		want := map[string][]string{"Access-Control-Max-Age": {"600"}}
		if diff := cmp.Diff(want, res.MultiValueHeaders); res.StatusCode != http.StatusNoContent || diff != "" || len(body) > 0 || err != nil {
			t.Errorf("got %d, body %q, %v; headers (-want +got):\n%s", res.StatusCode, body, err, diff)
		}
	})
}

// unwrapper is a middleware's writer, found through Unwrap by
// http.ResponseController.
type unwrapper struct{ http.ResponseWriter }

func (u unwrapper) Unwrap() http.ResponseWriter { return u.ResponseWriter }

// When the runtime stops reading (the client went away and Lambda dropped
// the stream), the handler's context ends at once, not at its next write,
// and its writes fail from then on.
func TestStreamingClientGone(t *testing.T) {
	noLeaks(t)
	type outcome struct {
		ctxErr, writeErr error
	}
	done := make(chan outcome, 1)
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, sseEvents[0])
		w.(http.Flusher).Flush()
		<-r.Context().Done()
		_, err := io.WriteString(w, sseEvents[1])
		done <- outcome{r.Context().Err(), err}
	})
	res := stream(t, h, event(t, "proxy-chat-stream.json", placeholder))
	if got := nextEvent(t, bufio.NewReader(res.Body)); got != sseEvents[0] {
		t.Fatalf("first event = %q", got)
	}
	res.Close()
	got := await(t, "handler to notice", func() outcome { return <-done })
	if !errors.Is(got.ctxErr, context.Canceled) || !errors.Is(got.writeErr, io.ErrClosedPipe) {
		t.Errorf("request context %v, write %v; want canceled and a closed pipe", got.ctxErr, got.writeErr)
	}
}

// The proxy is an httputil.ReverseProxy: SSE from the upstream must pass
// event by event, and a client that leaves must stop the upstream request.
func TestStreamingReverseProxy(t *testing.T) {
	noLeaks(t)
	ack := make(chan struct{})
	upstreamGone := make(chan error, 1)
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		w.WriteHeader(http.StatusOK)
		w.(http.Flusher).Flush()
		for _, ev := range sseEvents {
			select {
			case <-ack:
			case <-r.Context().Done():
				upstreamGone <- r.Context().Err()
				return
			}
			io.WriteString(w, ev)
			w.(http.Flusher).Flush()
		}
	}))
	t.Cleanup(upstream.Close)
	target, err := url.Parse(upstream.URL)
	if err != nil {
		t.Fatal(err)
	}
	proxy := &httputil.ReverseProxy{
		Rewrite:   func(pr *httputil.ProxyRequest) { pr.SetURL(target) },
		Transport: upstream.Client().Transport,
		ErrorLog:  log.New(io.Discard, "", 0), // the copy error when the client leaves
	}

	// The head arrives before any event: the upstream has sent none yet.
	res := stream(t, proxy, event(t, "proxy-chat-stream.json", placeholder))
	if ct := res.MultiValueHeaders["Content-Type"]; res.StatusCode != http.StatusOK || len(ct) != 1 || ct[0] != "text/event-stream" {
		t.Fatalf("head = %d %v", res.StatusCode, res.MultiValueHeaders)
	}
	br := bufio.NewReader(res.Body)
	for i, want := range sseEvents[:2] {
		ack <- struct{}{}
		if got := nextEvent(t, br); got != want {
			t.Fatalf("event %d = %q, want %q", i+1, got, want)
		}
	}
	res.Close()
	if err := await(t, "upstream to see the client leave", func() error { return <-upstreamGone }); !errors.Is(err, context.Canceled) {
		t.Errorf("upstream request context: %v, want canceled", err)
	}
}

func TestStreamingPanic(t *testing.T) {
	t.Run("before the head: the invocation fails", func(t *testing.T) {
		noLeaks(t)
		h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Authorization", "Bearer sk-test-FAKE-must-not-leak")
			panic("sk-test-FAKE-must-not-leak")
		})
		res, err := Streaming(h)(t.Context(), events.APIGatewayProxyRequest{HTTPMethod: "GET", Path: "/p"})
		if err == nil || res != nil {
			t.Fatalf("Streaming = %v, %v; want an error", res, err)
		}
		if strings.Contains(err.Error(), "FAKE") {
			t.Errorf("error repeats the panic value: %v", err)
		}
	})
	t.Run("after the head: the stream ends in an error", func(t *testing.T) {
		noLeaks(t)
		h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			io.WriteString(w, sseEvents[0])
			panic(http.ErrAbortHandler)
		})
		res := stream(t, h, events.APIGatewayProxyRequest{HTTPMethod: "GET", Path: "/p"})
		body, err := io.ReadAll(res.Body)
		if string(body) != sseEvents[0] || err == nil {
			t.Errorf("body = %q, %v; want the first event, then an error", body, err)
		}
	})
}

// A handler that has said nothing when the invocation runs out of time gets
// no response; its late writes fail instead of blocking forever.
func TestStreamingOutOfTimeBeforeHead(t *testing.T) {
	noLeaks(t)
	release := make(chan struct{})
	lateWrite := make(chan error, 1)
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		<-release
		_, err := io.WriteString(w, "too late")
		lateWrite <- err
	})
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	res, err := Streaming(h)(ctx, events.APIGatewayProxyRequest{HTTPMethod: "GET", Path: "/"})
	if !errors.Is(err, context.Canceled) || res != nil {
		t.Errorf("Streaming = %v, %v; want no response and context.Canceled", res, err)
	}
	close(release)
	if err := await(t, "the late write", func() error { return <-lateWrite }); !errors.Is(err, context.Canceled) {
		t.Errorf("late write: %v, want it to fail with the invocation's end", err)
	}
}

var _ http.Flusher = (*streamWriter)(nil)
