package lambdahttp

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"sync"

	"github.com/aws/aws-lambda-go/events"
)

// Streaming adapts h to a Lambda function behind an API Gateway REST proxy
// integration in response-streaming mode (the proxy function).
//
// h runs in its own goroutine and writes into a pipe. The function returns
// as soon as the response head is known (h's first Write, a Flush, or h
// returning), and the Lambda runtime then copies the pipe to the Runtime API
// while h keeps writing: each Write (each flushed SSE event) goes out as its
// own chunk, because the pipe does not buffer and the runtime's HTTP client
// flushes every chunk of a request body of unknown length.
//
// Two things would make a stream arrive as one blob at the end, as users of
// aws-lambda-go have reported (aws/aws-lambda-go#565): returning the
// response struct by value, which the runtime then encodes as JSON instead
// of reading it (this function returns a pointer, whose MarshalJSON fails on
// purpose), and the go1.x runtime's RPC mode, which reads the whole reader
// before answering. Build with -tags lambda.norpc for provided.al2023.
//
// The request context is canceled when h returns or when the runtime stops
// reading (it closes the body, or a write fails), so an upstream request
// made with it stops and the function is not billed for a client that left.
func Streaming(h http.Handler) func(context.Context, events.APIGatewayProxyRequest) (*events.APIGatewayProxyStreamingResponse, error) {
	return func(lambdaCtx context.Context, ev events.APIGatewayProxyRequest) (*events.APIGatewayProxyStreamingResponse, error) {
		ctx, cancel := context.WithCancel(lambdaCtx)
		r, err := newRequest(ctx, ev)
		if err != nil {
			cancel()
			return nil, err
		}
		pr, pw := io.Pipe()
		w := &streamWriter{header: http.Header{}, pipe: pw, cancel: cancel, ready: make(chan struct{})}
		go w.serve(h, r)
		select {
		case <-w.ready:
		case <-lambdaCtx.Done(): // out of time before h said anything
			cancel()
			pr.CloseWithError(lambdaCtx.Err()) // fails h's next write
			return nil, fmt.Errorf("wait for response head: %w", lambdaCtx.Err())
		}
		if w.err != nil {
			pr.Close()
			return nil, w.err
		}
		return &events.APIGatewayProxyStreamingResponse{
			StatusCode:        w.status,
			MultiValueHeaders: w.head,
			Body:              &streamBody{PipeReader: pr, cancel: cancel},
		}, nil
	}
}

// streamBody is the streamed response body. The runtime closes it when it is
// done with the invocation, early if the Runtime API went away.
type streamBody struct {
	*io.PipeReader
	cancel context.CancelFunc
}

func (b *streamBody) Close() error {
	b.cancel()
	return b.PipeReader.Close()
}

// streamWriter is the http.ResponseWriter of Streaming. The handler's
// goroutine calls it; Streaming reads head, status and err only after ready
// is closed.
type streamWriter struct {
	header http.Header
	pipe   *io.PipeWriter
	cancel context.CancelFunc

	once   sync.Once
	ready  chan struct{} // closed once the head below is final
	status int           // set by WriteHeader until ready, then final
	head   map[string][]string
	err    error // the handler failed before its head: no response
}

func (w *streamWriter) Header() http.Header { return w.header }

func (w *streamWriter) WriteHeader(code int) {
	if w.status == 0 && !informational(code) {
		w.status = code
	}
}

func (w *streamWriter) Write(p []byte) (int, error) {
	w.sendHead(p)
	if len(p) == 0 {
		return 0, nil // an empty pipe write would still wait for a reader
	}
	n, err := w.pipe.Write(p)
	if err != nil {
		w.cancel() // nobody reads any more: stop the handler's work
		return n, fmt.Errorf("write response: %w", err)
	}
	return n, nil
}

// Flush sends the head if it is not out yet; there is nothing else to flush,
// since written bytes are never held back. httputil.ReverseProxy flushes
// (through http.ResponseController) once before the first SSE event, which
// sends the head as soon as the upstream answers, and after every event.
// The writer wraps no other, so it has no Unwrap; a middleware's writer
// that wraps it needs one for http.ResponseController to find Flush.
func (w *streamWriter) Flush() { w.sendHead(nil) }

func (w *streamWriter) sendHead(p []byte) {
	w.once.Do(func() {
		w.WriteHeader(http.StatusOK)
		sniff(w.header, p)
		w.head = headers(w.header)
		close(w.ready)
	})
}

// serve runs the handler. A panic cannot be left to crash the function: it
// becomes the invocation's error if no head went out, and otherwise ends the
// stream with an error, which the runtime reports in the response trailers.
// The panic value is not repeated: it may hold a request's secrets.
func (w *streamWriter) serve(h http.Handler, r *http.Request) {
	defer w.cancel()
	defer func() {
		if v := recover(); v != nil {
			err := fmt.Errorf("serve %s %s: handler panicked (%T)", r.Method, r.URL.Path, v)
			w.once.Do(func() {
				w.err = err
				close(w.ready)
			})
			w.pipe.CloseWithError(err)
			return
		}
		w.sendHead(nil)
		w.pipe.Close()
	}()
	h.ServeHTTP(w, r)
}
