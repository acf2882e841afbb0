package kvetest

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strings"
	"sync"
)

// Response is one answer a test received from an instance: its status line,
// headers and the body bytes as far as the test read them.
type Response struct {
	Method string
	Path   string
	Status int
	Header http.Header
	// Exempt marks the one-time reveals the canary check skips: the answers
	// to setup and login (a kvm_ API token) and to creating or revealing a
	// token (its value).
	Exempt bool

	mu   sync.Mutex
	body bytes.Buffer
}

// Body returns the bytes read so far.
func (r *Response) Body() []byte {
	r.mu.Lock()
	defer r.mu.Unlock()
	return bytes.Clone(r.body.Bytes())
}

func (r *Response) write(p []byte) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.body.Write(p)
}

// text renders the response as the canary check reads it.
func (r *Response) text() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d\n", r.Status)
	names := make([]string, 0, len(r.Header))
	for name := range r.Header {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		for _, v := range r.Header[name] {
			fmt.Fprintf(&b, "%s: %s\n", name, v)
		}
	}
	b.WriteByte('\n')
	b.Write(r.Body())
	return b.String()
}

// recorder is the transport of an instance's client: it keeps every
// response, teeing the body as the caller reads it so that streams still
// arrive event by event.
type recorder struct {
	next http.RoundTripper

	mu   sync.Mutex
	seen []*Response
}

type exemptKey struct{}

// exempt marks a request whose answer is a one-time reveal.
func exempt(ctx context.Context) context.Context { return context.WithValue(ctx, exemptKey{}, true) }

func (rec *recorder) RoundTrip(req *http.Request) (*http.Response, error) {
	res, err := rec.next.RoundTrip(req)
	if err != nil {
		return nil, err
	}
	r := &Response{Method: req.Method, Path: req.URL.Path, Status: res.StatusCode, Header: res.Header.Clone()}
	r.Exempt, _ = req.Context().Value(exemptKey{}).(bool)
	rec.add(r)
	res.Body = &teeBody{ReadCloser: res.Body, r: r}
	return res, nil
}

func (rec *recorder) add(r *Response) {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	rec.seen = append(rec.seen, r)
}

func (rec *recorder) responses() []*Response {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	return append([]*Response(nil), rec.seen...)
}

func (rec *recorder) CloseIdleConnections() {
	if c, ok := rec.next.(interface{ CloseIdleConnections() }); ok {
		c.CloseIdleConnections()
	}
}

type teeBody struct {
	io.ReadCloser
	r *Response
}

func (b *teeBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if n > 0 {
		b.r.write(p[:n])
	}
	return n, err
}

// Responses returns every response the instance's clients received so far.
func (in *Instance) Responses() []*Response { return in.seen.responses() }

// Saw adds bytes a test read outside the instance's client (a raw TCP
// connection) to what the canary check reads.
func (in *Instance) Saw(what string, b []byte) {
	r := &Response{Method: "RAW", Path: what}
	r.write(b)
	in.seen.add(r)
}
