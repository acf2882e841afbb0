package proxy

import (
	"net"
	"strings"

	"github.com/keyvault-edge/kve/shared/kve"
)

// route is where a request is going: the provider its host or first path
// segment names, and the escaped path that follows, which is appended to the
// key's upstream base URL.
type route struct {
	provider kve.Provider
	rest     string // escaped path after the route prefix, "" or starting with "/"
}

// parseRoute reads the provider from the host form (<provider>.<domain>) when
// the Host is under domain, else from the path form (/<provider>/…). The
// upstream itself never comes from the request (SECURITY INV-1).
func parseRoute(host, escapedPath, domain string) (route, bool) {
	if domain != "" {
		if h, _, err := net.SplitHostPort(host); err == nil {
			host = h
		}
		host = strings.TrimSuffix(strings.ToLower(host), ".")
		if name, ok := strings.CutSuffix(host, "."+domain); ok && !strings.Contains(name, ".") {
			p, ok := kve.LookupProvider(name)
			return route{provider: p, rest: escapedPath}, ok
		}
	}
	if len(escapedPath) < 2 || escapedPath[0] != '/' {
		return route{}, false
	}
	name, rest, _ := strings.Cut(escapedPath[1:], "/")
	p, ok := kve.LookupProvider(name)
	if !ok {
		return route{}, false
	}
	if rest != "" || strings.HasSuffix(escapedPath, "/") {
		rest = "/" + rest
	}
	return route{provider: p, rest: rest}, true
}

// cleanPath reports whether a decoded request path is safe to append to an
// upstream base: no dot segments (which the upstream would resolve above
// the base path), nothing a server might read as one, no empty segments.
func cleanPath(p string) bool {
	if p == "" {
		return true
	}
	for seg := range strings.SplitSeq(p[1:], "/") {
		if seg == "." {
			return false
		}
	}
	// ".." anywhere, not only as a whole segment, and backslashes: some
	// servers read "/..;/" or "\" as a step up (as ValidateUpstream refuses).
	return !strings.Contains(p, "//") && !strings.Contains(p, "..") && !strings.ContainsRune(p, '\\')
}
