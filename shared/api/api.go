// Package api serves kve's management API: JSON over HTTP under /api/v1/
// (DESIGN §9), a thin layer over manage, which validates, authorizes and
// audits. Callers authenticate with a bearer kvm_ API token, or with the
// dashboard's session cookie on requests that pass cross-origin protection.
//
// Every route is registered through one authorization table (routes.go); a
// route without an entry refuses every request, and a test enumerates the
// routes against both the table and openapi.yaml.
package api

import (
	"cmp"
	"context"
	"log/slog"
	"net/http"
	"time"

	"github.com/keyvault-edge/kve/shared/kve"
	"github.com/keyvault-edge/kve/shared/manage"
	"github.com/keyvault-edge/kve/shared/web"
)

// Config tunes the API handler. Zero values take the defaults noted.
type Config struct {
	Logger       *slog.Logger // default slog.Default()
	MaxBodyBytes int64        // request body cap, default 1 MiB

	// SessionCookie names the dashboard's session cookie, default
	// "__Host-kve_session".
	SessionCookie string

	// ClientIP returns the caller's address for throttling and audit events.
	// The default takes the host of RemoteAddr, which the Lambda adapter
	// fills from API Gateway's request context and local mode from the
	// socket; never from a client header.
	ClientIP func(r *http.Request) string
}

// DefaultSessionCookie is the dashboard's session cookie name: the __Host-
// prefix makes browsers insist on Secure, Path=/ and no Domain.
const DefaultSessionCookie = "__Host-kve_session"

type server struct {
	svc      *manage.Service
	log      *slog.Logger
	maxBody  int64
	cookie   string
	clientIP func(*http.Request) string
	cop      *http.CrossOriginProtection
	mux      *http.ServeMux
	patterns []string // every registered pattern, in registration order
}

// New returns the management API handler. It serves paths under /api/v1/.
func New(svc *manage.Service, cfg Config) http.Handler {
	s := &server{
		svc:      svc,
		log:      cfg.Logger,
		maxBody:  cfg.MaxBodyBytes,
		cookie:   cfg.SessionCookie,
		clientIP: cfg.ClientIP,
		cop:      http.NewCrossOriginProtection(),
		mux:      http.NewServeMux(),
	}
	if s.log == nil {
		s.log = slog.Default()
	}
	if s.maxBody <= 0 {
		s.maxBody = 1 << 20
	}
	if s.cookie == "" {
		s.cookie = DefaultSessionCookie
	}
	if s.clientIP == nil {
		s.clientIP = web.RemoteIP
	}
	s.routes()
	return s
}

type requestIDKey struct{}

// ServeHTTP routes a request and writes its access log line: method, route
// pattern, status and duration, never headers, bodies or query strings.
func (s *server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	id := kve.NewID(kve.PrefixRequest, start)
	w.Header().Set("X-Request-Id", id)
	r = r.WithContext(context.WithValue(r.Context(), requestIDKey{}, id))
	sw := &web.StatusWriter{ResponseWriter: w}
	_, pattern := s.mux.Handler(r)
	if pattern == "" {
		// Unknown paths and methods answer alike, in JSON, with no hint of
		// which methods a path has.
		s.writeError(sw, r, kve.Errorf(kve.KindNotFound, "no_route", "no such route"))
	} else {
		s.mux.ServeHTTP(sw, r)
	}
	s.log.InfoContext(r.Context(), "api_request", "request_id", id, "method", r.Method, "route", pattern,
		"status", cmp.Or(sw.Status, http.StatusOK), "duration_ms", time.Since(start).Milliseconds())
}

func requestID(ctx context.Context) string {
	id, _ := ctx.Value(requestIDKey{}).(string)
	return id
}
