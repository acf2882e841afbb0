// Package lambdahttp serves a plain http.Handler from AWS Lambda behind an API
// Gateway REST API (proxy integration, payload version 1.0): Buffered for the
// api and console functions, Streaming for the proxy (API Gateway response
// streaming). The handlers never know they run in Lambda; the same ones run
// under net/http in local mode and in tests.
package lambdahttp

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/base64"
	"fmt"
	"net/http"
	"net/netip"
	"net/url"

	"github.com/aws/aws-lambda-go/events"
)

type requestIDKey struct{}

// RequestID returns the API Gateway request id of the event the request
// with this context was built from, or "" when it did not come through this
// package (local mode, tests). The handler decides what to do with it; the
// adapter never sets X-Request-Id itself.
func RequestID(ctx context.Context) string {
	id, _ := ctx.Value(requestIDKey{}).(string)
	return id
}

// newRequest turns an API Gateway REST proxy event into the request a
// net/http server would have built for the same call.
func newRequest(ctx context.Context, ev events.APIGatewayProxyRequest) (*http.Request, error) {
	body := []byte(ev.Body)
	if ev.IsBase64Encoded {
		var err error
		if body, err = base64.StdEncoding.DecodeString(ev.Body); err != nil {
			return nil, fmt.Errorf("decode event body: %w", err)
		}
	}
	ctx = context.WithValue(ctx, requestIDKey{}, ev.RequestContext.RequestID)
	r, err := http.NewRequestWithContext(ctx, ev.HTTPMethod, "/", bytes.NewReader(body))
	if err != nil {
		return nil, fmt.Errorf("build request: %w", err)
	}
	// REST APIs deliver the path (without the stage) still percent-encoded.
	// Keep that encoding as RawPath so an escaped "/" or "?" survives.
	r.URL.Path = ev.Path
	if p, err := url.PathUnescape(ev.Path); err == nil {
		r.URL.Path, r.URL.RawPath = p, ev.Path
	}
	r.URL.RawQuery = query(ev).Encode()
	r.RequestURI = r.URL.RequestURI()

	r.Header = header(ev)
	r.Host = r.Header.Get("Host")
	r.Header.Del("Host") // as net/http does: the host lives in r.Host only
	if r.Host == "" {
		r.Host = ev.RequestContext.DomainName
	}
	// API Gateway terminates TLS (REST APIs accept HTTPS only), so the
	// client did speak TLS; handlers that set Secure cookies rely on this.
	r.TLS = &tls.ConnectionState{HandshakeComplete: true, ServerName: r.Host}

	// The client address comes only from API Gateway's own view of the
	// connection, never from X-Forwarded-For, which the client can write
	// (SECURITY T11). An unusable value (a console test invoke sends
	// "test-invoke-source-ip") leaves RemoteAddr empty: unknown, not trusted.
	if ip, err := netip.ParseAddr(ev.RequestContext.Identity.SourceIP); err == nil {
		r.RemoteAddr = netip.AddrPortFrom(ip.WithZone(""), 0).String()
	}
	return r, nil
}

// query prefers the multi-value parameters, the only form that keeps a
// repeated parameter. API Gateway hands them over decoded.
func query(ev events.APIGatewayProxyRequest) url.Values {
	q := url.Values{}
	for k, vs := range ev.MultiValueQueryStringParameters {
		q[k] = append(q[k], vs...)
	}
	if len(ev.MultiValueQueryStringParameters) == 0 {
		for k, v := range ev.QueryStringParameters {
			q.Set(k, v)
		}
	}
	return q
}

// header prefers the multi-value headers for the same reason, and
// canonicalizes names: API Gateway passes them in the client's spelling.
func header(ev events.APIGatewayProxyRequest) http.Header {
	h := http.Header{}
	for k, vs := range ev.MultiValueHeaders {
		for _, v := range vs {
			h.Add(k, v)
		}
	}
	if len(ev.MultiValueHeaders) == 0 {
		for k, v := range ev.Headers {
			h.Add(k, v)
		}
	}
	return h
}
