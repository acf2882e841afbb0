// Package web holds what kve's HTTP servers outside the proxy (the
// management API, the dashboard, local mode's front and its alert
// endpoints) share: the peer's address and the status a handler wrote, for
// their access logs.
package web

import (
	"net"
	"net/http"
)

// RemoteIP is the host part of the request's RemoteAddr: the socket peer
// in local mode, API Gateway's source IP on Lambda (the adapter puts it
// there). Never a client-supplied header (SECURITY T11).
func RemoteIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// StatusWriter remembers the status a handler answered with: the first
// WriteHeader's, or 200 once the body is written without one. Status is 0
// while nothing was written.
type StatusWriter struct {
	http.ResponseWriter
	Status int
}

func (w *StatusWriter) WriteHeader(code int) {
	if w.Status == 0 {
		w.Status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *StatusWriter) Write(b []byte) (int, error) {
	if w.Status == 0 {
		w.Status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the writer underneath (to
// flush, for one).
func (w *StatusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
