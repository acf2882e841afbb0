package proxy

import (
	"net/http"
	"strings"

	"github.com/keyvault-edge/kve/shared/kve"
)

// preflight answers a CORS preflight itself. A preflight carries no
// credential, so no token's origin list can apply to it; the real request
// that follows is checked against the token's origins (DESIGN §6). It never
// reaches an upstream.
func preflight(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Add("Vary", "Origin")
	h.Add("Vary", "Access-Control-Request-Method")
	h.Add("Vary", "Access-Control-Request-Headers")
	origin := r.Header.Get("Origin")
	method := r.Header.Get("Access-Control-Request-Method")
	if _, err := kve.ParseOrigin(origin); err != nil || !isHTTPToken(method) {
		w.WriteHeader(http.StatusNoContent)
		return
	}
	h.Set("Access-Control-Allow-Origin", origin)
	h.Set("Access-Control-Allow-Methods", method)
	if reqHeaders := r.Header.Get("Access-Control-Request-Headers"); validHeaderList(reqHeaders) {
		// SDKs send their own headers (x-stainless-*, anthropic-version…)
		// besides the credential: allow what was asked for.
		h.Set("Access-Control-Allow-Headers", reqHeaders)
	}
	h.Set("Access-Control-Max-Age", "600")
	w.WriteHeader(http.StatusNoContent)
}

// allowOrigin marks a response to a request whose origin the token allows.
func allowOrigin(h http.Header, origin string) {
	h.Set("Access-Control-Allow-Origin", origin)
	h.Set("Access-Control-Expose-Headers", "*")
	h.Add("Vary", "Origin")
}

// dropUpstreamCORS removes the upstream's own CORS headers: only kve decides
// which origins may read a response.
func dropUpstreamCORS(h http.Header) {
	for name := range h {
		if strings.HasPrefix(name, "Access-Control-") {
			delete(h, name)
		}
	}
}

func isHTTPToken(s string) bool {
	if s == "" || len(s) > 32 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

func validHeaderList(s string) bool {
	if s == "" || len(s) > 2048 {
		return false
	}
	for f := range strings.SplitSeq(s, ",") {
		if !isHTTPToken(strings.TrimSpace(f)) {
			return false
		}
	}
	return true
}

// isolate keeps an upstream's answer from acting on kve's own origin: in
// path form (local mode, the API's default endpoint) the proxy shares its
// origin with the dashboard, so an upstream that answered with HTML and a
// Set-Cookie could otherwise run script there or plant a session. Client
// cookies are never forwarded, so upstream cookies serve no purpose; the
// sandbox CSP makes any document it serves an opaque, script-less origin.
func isolate(h http.Header) {
	h.Del("Set-Cookie")
	h.Del("Set-Cookie2")
	h.Set("Content-Security-Policy", "sandbox; default-src 'none'; frame-ancestors 'none'")
	h.Set("X-Content-Type-Options", "nosniff")
}
