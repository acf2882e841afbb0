package lambdahttp

import (
	"context"
	"encoding/base64"
	"io"
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/google/go-cmp/cmp"
)

func TestNewRequest(t *testing.T) {
	identity := func(ip string) events.APIGatewayProxyRequestContext {
		return events.APIGatewayProxyRequestContext{RequestID: "req-1", DomainName: "api.example.com",
			Identity: events.APIGatewayRequestIdentity{SourceIP: ip}}
	}
	tests := []struct {
		name string
		ev   events.APIGatewayProxyRequest
		want seen
	}{{
		name: "repeated query parameters round trip exactly",
		ev: events.APIGatewayProxyRequest{HTTPMethod: "GET", Path: "/q",
			QueryStringParameters:           map[string]string{"tag": "ü", "x": "1=2"},
			MultiValueQueryStringParameters: map[string][]string{"tag": {"a b", "c&d", "ü"}, "x": {"1=2"}},
			RequestContext:                  identity("192.0.2.1")},
		want: seen{Method: "GET", Host: "api.example.com", RemoteAddr: "192.0.2.1:0", RequestID: "req-1",
			Path: "/q", EscapedPath: "/q", RequestURI: "/q?tag=a+b&tag=c%26d&tag=%C3%BC&x=1%3D2",
			Query:  url.Values{"tag": {"a b", "c&d", "ü"}, "x": {"1=2"}},
			Header: http.Header{}, TLS: true},
	}, {
		name: "single-value headers and query when there are no multi-value ones",
		ev: events.APIGatewayProxyRequest{HTTPMethod: "POST", Path: "/s",
			Headers:               map[string]string{"content-type": "text/plain", "host": "openai.kve.example.com"},
			QueryStringParameters: map[string]string{"a": "1"},
			Body:                  "hi", RequestContext: identity("192.0.2.1")},
		want: seen{Method: "POST", Host: "openai.kve.example.com", RemoteAddr: "192.0.2.1:0", RequestID: "req-1",
			Path: "/s", EscapedPath: "/s", RequestURI: "/s?a=1", Query: url.Values{"a": {"1"}},
			Header: http.Header{"Content-Type": {"text/plain"}}, Body: "hi", ContentLength: 2, TLS: true},
	}, {
		name: "percent-encoded path keeps its encoding",
		ev: events.APIGatewayProxyRequest{HTTPMethod: "GET", Path: "/openai/v1/files/file%2Fabc%20x%3F",
			RequestContext: identity("192.0.2.1")},
		want: seen{Method: "GET", Host: "api.example.com", RemoteAddr: "192.0.2.1:0", RequestID: "req-1",
			Path: "/openai/v1/files/file/abc x?", EscapedPath: "/openai/v1/files/file%2Fabc%20x%3F",
			RequestURI: "/openai/v1/files/file%2Fabc%20x%3F", Query: url.Values{}, Header: http.Header{}, TLS: true},
	}, {
		name: "path that is not valid percent-encoding is taken as it is",
		ev:   events.APIGatewayProxyRequest{HTTPMethod: "GET", Path: "/a%zz", RequestContext: identity("192.0.2.1")},
		want: seen{Method: "GET", Host: "api.example.com", RemoteAddr: "192.0.2.1:0", RequestID: "req-1",
			Path: "/a%zz", EscapedPath: "/a%25zz", RequestURI: "/a%25zz", Query: url.Values{}, Header: http.Header{}, TLS: true},
	}, {
		name: "base64 body is decoded",
		ev: events.APIGatewayProxyRequest{HTTPMethod: "PUT", Path: "/b", IsBase64Encoded: true,
			Body: base64.StdEncoding.EncodeToString([]byte{0xff, 0x00, 0x01}), RequestContext: identity("192.0.2.1")},
		want: seen{Method: "PUT", Host: "api.example.com", RemoteAddr: "192.0.2.1:0", RequestID: "req-1",
			Path: "/b", EscapedPath: "/b", RequestURI: "/b", Query: url.Values{}, Header: http.Header{},
			Body: "\xff\x00\x01", ContentLength: 3, TLS: true},
	}, {
		name: "IPv6 source is bracketed, its zone dropped",
		ev:   events.APIGatewayProxyRequest{HTTPMethod: "GET", Path: "/", RequestContext: identity("fe80::1%eth0")},
		want: seen{Method: "GET", Host: "api.example.com", RemoteAddr: "[fe80::1]:0", RequestID: "req-1",
			Path: "/", EscapedPath: "/", RequestURI: "/", Query: url.Values{}, Header: http.Header{}, TLS: true},
	}, {
		name: "IPv4-mapped source is passed on for the matcher to unmap",
		ev:   events.APIGatewayProxyRequest{HTTPMethod: "GET", Path: "/", RequestContext: identity("::ffff:10.1.2.3")},
		want: seen{Method: "GET", Host: "api.example.com", RemoteAddr: "[::ffff:10.1.2.3]:0", RequestID: "req-1",
			Path: "/", EscapedPath: "/", RequestURI: "/", Query: url.Values{}, Header: http.Header{}, TLS: true},
	}, {
		name: "console test invoke: no usable source, and X-Forwarded-For is not one",
		ev: events.APIGatewayProxyRequest{HTTPMethod: "GET", Path: "/",
			MultiValueHeaders: map[string][]string{"X-Forwarded-For": {"10.1.2.3"}},
			RequestContext:    identity("test-invoke-source-ip")},
		want: seen{Method: "GET", Host: "api.example.com", RemoteAddr: "", RequestID: "req-1",
			Path: "/", EscapedPath: "/", RequestURI: "/", Query: url.Values{},
			Header: http.Header{"X-Forwarded-For": {"10.1.2.3"}}, TLS: true},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := newRequest(t.Context(), tt.ev)
			if err != nil {
				t.Fatal(err)
			}
			body, err := io.ReadAll(r.Body)
			if err != nil {
				t.Fatal(err)
			}
			got := seen{
				Method: r.Method, Host: r.Host, RemoteAddr: r.RemoteAddr, RequestID: RequestID(r.Context()),
				Path: r.URL.Path, EscapedPath: r.URL.EscapedPath(), RequestURI: r.RequestURI,
				Query: r.URL.Query(), Header: r.Header, Body: string(body), ContentLength: r.ContentLength,
				TLS: r.TLS != nil,
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("request (-want +got):\n%s", diff)
			}
		})
	}
}

func TestNewRequestRefuses(t *testing.T) {
	tests := []struct {
		name string
		ev   events.APIGatewayProxyRequest
	}{
		{"body flagged base64 that is not", events.APIGatewayProxyRequest{HTTPMethod: "POST", Path: "/", Body: "not base64!", IsBase64Encoded: true}},
		{"invalid method", events.APIGatewayProxyRequest{HTTPMethod: "GE T", Path: "/"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if r, err := newRequest(t.Context(), tt.ev); err == nil {
				t.Errorf("newRequest = %s %s, want an error", r.Method, r.URL)
			}
		})
	}
}

// The Lambda context, and with it the invocation's deadline, is the
// request's context: a handler that honours it stops in time.
func TestRequestContextIsLambdaContext(t *testing.T) {
	deadline := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	ctx, cancel := context.WithDeadline(t.Context(), deadline)
	defer cancel()
	ev := events.APIGatewayProxyRequest{HTTPMethod: "GET", Path: "/"}
	handler := func(name string) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if got, ok := r.Context().Deadline(); !ok || !got.Equal(deadline) {
				t.Errorf("%s: request deadline = %v, %v; want %v", name, got, ok, deadline)
			}
		})
	}
	if _, err := Buffered(handler("Buffered"))(ctx, ev); err != nil {
		t.Fatal(err)
	}
	res, err := Streaming(handler("Streaming"))(ctx, ev)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadAll(res.Body); err != nil {
		t.Fatal(err)
	}
	res.Close()
}
