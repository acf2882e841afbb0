// Package console serves kve's dashboard: server-rendered HTML pages for the
// people of a team who never touch the JSON API. It is a client of manage,
// which validates, authorizes by role and audits every operation; the
// dashboard only decides what to show, and hides the buttons a role may not
// use (manage refuses them anyway).
//
// Templates and static assets are embedded and parsed once, at New. Assets
// are served under /static/<hash>/<name> and cached for a year. Pages carry
// a Content-Security-Policy of default-src 'self' and hold no inline script
// or style; the JavaScript (copy buttons, confirmation dialogs) is a small
// external file, and every page works without it. Charts are SVG drawn on
// the server (chart.go), coloured by the stylesheet.
//
// Sessions are a cookie named __Host-kve_session when the request came over
// TLS (the Lambda adapter sets r.TLS) and kve_session otherwise (local mode
// on plain HTTP), HttpOnly and SameSite=Lax. Every state-changing request
// passes http.CrossOriginProtection, and no GET changes anything.
package console

import (
	"cmp"
	"context"
	"html/template"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/keyvault-edge/kve/shared/kve"
	"github.com/keyvault-edge/kve/shared/manage"
	"github.com/keyvault-edge/kve/shared/web"
)

// Config tunes the dashboard. Zero values take the defaults noted.
type Config struct {
	Logger *slog.Logger // default slog.Default()

	// PublicURL is the base URL users reach the dashboard at. Its path, if
	// any, prefixes every link: API Gateway's default endpoint serves the
	// dashboard under the stage (https://<id>.execute-api.<region>.amazonaws.com/prod)
	// and hands the function paths without it.
	PublicURL string

	Now          func() time.Time // default time.Now; decides what shows as expired
	MaxFormBytes int64            // request body cap, default 64 KiB

	// ClientIP returns the caller's address for throttling and audit
	// events. The default takes the host of RemoteAddr, which the Lambda
	// adapter fills from API Gateway's request context and local mode from
	// the socket; never from a client header.
	ClientIP func(r *http.Request) string
}

type server struct {
	svc      *manage.Service
	log      *slog.Logger
	base     string // the path of the public URL, "" or "/prod"
	now      func() time.Time
	maxForm  int64
	clientIP func(*http.Request) string

	pages  map[string]*template.Template
	assets *assets
	mux    *http.ServeMux
	cop    *http.CrossOriginProtection
	routed http.Handler // mux behind cop
}

// New returns the dashboard handler. It serves the paths Paths lists.
func New(svc *manage.Service, cfg Config) http.Handler {
	s := &server{
		svc:      svc,
		log:      cfg.Logger,
		now:      cfg.Now,
		maxForm:  cfg.MaxFormBytes,
		clientIP: cfg.ClientIP,
		assets:   loadAssets(),
		mux:      http.NewServeMux(),
		cop:      http.NewCrossOriginProtection(),
	}
	if s.log == nil {
		s.log = slog.Default()
	}
	if u, err := url.Parse(cfg.PublicURL); err == nil {
		s.base = strings.TrimRight(u.EscapedPath(), "/")
	}
	if s.now == nil {
		s.now = time.Now
	}
	if s.maxForm <= 0 {
		s.maxForm = 64 << 10
	}
	if s.clientIP == nil {
		s.clientIP = web.RemoteIP
	}
	s.pages = parsePages(s.funcs())
	s.cop.SetDenyHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.fail(w, r, kve.Errorf(kve.KindForbidden, "cross_origin",
			"This request came from another site and was refused. Reload the page and try again."))
	}))
	s.routes()
	s.routed = s.cop.Handler(s.mux)
	return s
}

// csp allows nothing but kve's own files: no inline script or style, no
// framing, no <base>, forms that post only back to kve.
const csp = "default-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"

type requestIDKey struct{}

// ServeHTTP sets the security headers every answer carries, routes the
// request (state-changing ones through cross-origin protection) and writes
// the access log line: method, route pattern, status and duration, never
// headers, bodies or query strings.
func (s *server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	id := kve.NewID(kve.PrefixRequest, start)
	h := w.Header()
	h.Set("X-Request-Id", id)
	h.Set("Content-Security-Policy", csp)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Referrer-Policy", "same-origin")
	if strings.HasPrefix(r.URL.Path, "/invite/") {
		// The path holds an invite's code: no Referer may carry it
		// anywhere, kve's own static files included, and no crawler
		// should keep it.
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("X-Robots-Tag", "noindex, nofollow")
	}
	h.Set("Cross-Origin-Opener-Policy", "same-origin")
	// Pages show token values and who did what; no cache may keep them.
	// Static assets replace this with their own long-lived header.
	h.Set("Cache-Control", "no-store")
	if r.TLS != nil {
		h.Set("Strict-Transport-Security", "max-age=31536000")
	}
	r = r.WithContext(context.WithValue(r.Context(), requestIDKey{}, id))
	sw := &web.StatusWriter{ResponseWriter: w}
	_, pattern := s.mux.Handler(r)
	if pattern == "" {
		s.fail(sw, r, errNoPage)
	} else {
		s.routed.ServeHTTP(sw, r)
	}
	s.log.InfoContext(r.Context(), "console_request", "request_id", id, "method", r.Method, "route", pattern,
		"status", cmp.Or(sw.Status, http.StatusOK), "duration_ms", time.Since(start).Milliseconds())
}

var errNoPage = kve.Errorf(kve.KindNotFound, "no_route", "There is no such page.")

func requestID(ctx context.Context) string {
	id, _ := ctx.Value(requestIDKey{}).(string)
	return id
}
