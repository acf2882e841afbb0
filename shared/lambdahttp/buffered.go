package lambdahttp

import (
	"bytes"
	"context"
	"encoding/base64"
	"net/http"
	"unicode/utf8"

	"github.com/aws/aws-lambda-go/events"
)

// Buffered adapts h to a Lambda function behind an API Gateway REST proxy
// integration that returns the whole response at once (the api and console
// functions). The Lambda context, with its deadline, becomes the request
// context, canceled when h returns.
func Buffered(h http.Handler) func(context.Context, events.APIGatewayProxyRequest) (events.APIGatewayProxyResponse, error) {
	return func(ctx context.Context, ev events.APIGatewayProxyRequest) (events.APIGatewayProxyResponse, error) {
		ctx, cancel := context.WithCancel(ctx)
		defer cancel()
		r, err := newRequest(ctx, ev)
		if err != nil {
			return events.APIGatewayProxyResponse{}, err
		}
		w := &recorder{header: http.Header{}}
		h.ServeHTTP(w, r)
		return w.response(), nil
	}
}

// recorder is the http.ResponseWriter of Buffered. It does not implement
// http.Flusher: nothing can reach the client before the function returns.
type recorder struct {
	header http.Header
	status int
	body   bytes.Buffer
}

func (w *recorder) Header() http.Header { return w.header }

func (w *recorder) WriteHeader(code int) {
	if w.status == 0 && !informational(code) {
		w.status = code
	}
}

func (w *recorder) Write(p []byte) (int, error) {
	w.WriteHeader(http.StatusOK)
	return w.body.Write(p)
}

func (w *recorder) response() events.APIGatewayProxyResponse {
	w.WriteHeader(http.StatusOK)
	body := w.body.Bytes()
	sniff(w.header, body)
	res := events.APIGatewayProxyResponse{
		StatusCode: w.status,
		// Multi-value, so that several Set-Cookie headers survive.
		MultiValueHeaders: headers(w.header),
	}
	if utf8.Valid(body) {
		res.Body = string(body)
	} else {
		res.Body = base64.StdEncoding.EncodeToString(body)
		res.IsBase64Encoded = true
	}
	return res
}

// informational reports a 1xx status, which net/http sends ahead of the
// response (103 Early Hints, say) and which API Gateway cannot pass on.
func informational(code int) bool { return code >= 100 && code < 200 }

// sniff sets Content-Type from the first bytes of the body when the handler
// set none, as net/http does, so that a handler answers alike in Lambda and
// in local mode. As with net/http, a nil Content-Type entry turns it off.
func sniff(h http.Header, body []byte) {
	if _, ok := h["Content-Type"]; !ok && len(body) > 0 {
		h.Set("Content-Type", http.DetectContentType(body))
	}
}

// headers copies h for a response event, leaving out names without values.
func headers(h http.Header) map[string][]string {
	out := make(map[string][]string, len(h))
	for k, vs := range h {
		if len(vs) > 0 {
			out[k] = append([]string(nil), vs...)
		}
	}
	return out
}
