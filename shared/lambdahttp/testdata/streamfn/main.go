// Command streamfn is the Lambda function of the lambdahttp runtime tests. It
// starts exactly as the proxy function does, lambda.Start(lambdahttp.Streaming(h)),
// around a handler that streams four server-sent events and reports in
// X-Seen-* headers what it saw of its request.
//
// When STREAMFN_GATE is set, the handler writes event N+1 only after a GET of
// $STREAMFN_GATE?after=N has returned, which the test answers once its fake
// Runtime API has received event N: proof, across the process boundary and
// without timing, that each event leaves on its own.
package main

import (
	"context"
	"fmt"
	"io"
	"log"
	"net/http"
	"os"
	"strconv"

	"github.com/aws/aws-lambda-go/lambda"

	"github.com/keyvault-edge/kve/shared/lambdahttp"
)

var events = []string{"data: {\"n\":1}\n\n", "data: {\"n\":2}\n\n", "data: {\"n\":3}\n\n", "data: [DONE]\n\n"}

func main() {
	lambda.Start(lambdahttp.Streaming(handler(os.Getenv("STREAMFN_GATE"))))
}

func handler(gate string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		h := w.Header()
		h.Set("Content-Type", "text/event-stream")
		h.Set("Cache-Control", "no-cache")
		h.Add("Set-Cookie", "a=1; Path=/")
		h.Add("Set-Cookie", "b=2; Path=/; HttpOnly")
		h.Set("X-Seen-Request", r.Method+" "+r.Host+" "+r.RequestURI)
		h.Set("X-Seen-Remote-Addr", r.RemoteAddr)
		h.Set("X-Seen-Request-Id", lambdahttp.RequestID(r.Context()))
		h.Set("X-Seen-Body-Bytes", strconv.Itoa(len(body)))
		for n, ev := range events {
			if n > 0 && gate != "" {
				if err := wait(r.Context(), gate, n); err != nil {
					log.Printf("streamfn: %v", err)
					return
				}
			}
			io.WriteString(w, ev)
			w.(http.Flusher).Flush()
		}
	}
}

// wait returns once the test has received event n (counting from 1).
func wait(ctx context.Context, gate string, n int) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, gate+"?after="+strconv.Itoa(n), nil)
	if err != nil {
		return err
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("wait for event %d: %w", n, err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusOK {
		return fmt.Errorf("wait for event %d: %s", n, res.Status)
	}
	return nil
}
