package kve

import (
	"net/netip"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Origin is a browser origin or an origin pattern, canonical: lower-case
// scheme and host, no default port, no userinfo, path, query or fragment.
// Patterns may name any subdomain ("https://*.example.com", which does not
// match example.com itself) or any port ("http://localhost:*").
type Origin struct {
	Scheme   string
	Host     string // without the "*." of a wildcard pattern; IPv6 in brackets
	Port     string // "" for the scheme's default, "*" for any port in a pattern
	Wildcard bool   // matches strict subdomains of Host
}

// ParseOrigin parses the value of an Origin header. "null", patterns and
// anything that is not a serialized origin are errors.
func ParseOrigin(s string) (Origin, error) {
	o, err := parseOrigin(s)
	if err == nil && (o.Wildcard || o.Port == "*") {
		err = errOrigin(s, "a request origin cannot hold a wildcard")
	}
	if err != nil {
		return Origin{}, err
	}
	return o, nil
}

// ParseOriginPattern parses an origin a token allows, with optional wildcards.
func ParseOriginPattern(s string) (Origin, error) { return parseOrigin(strings.TrimSpace(s)) }

func parseOrigin(s string) (Origin, error) {
	var o Origin
	if len(s) > 300 {
		return o, errOrigin(s, "too long")
	}
	scheme, rest, ok := strings.Cut(s, "://")
	if !ok {
		return o, errOrigin(s, "want scheme://host[:port]")
	}
	o.Scheme = strings.ToLower(scheme)
	if o.Scheme != "http" && o.Scheme != "https" {
		return o, errOrigin(s, "scheme must be http or https")
	}
	if strings.ContainsAny(rest, "/?#@\\ \t\r\n%") {
		return o, errOrigin(s, "an origin has no path, query, userinfo or spaces")
	}
	for i := 0; i < len(rest); i++ {
		// Only ASCII: strings.ToLower below would fold look-alikes such as
		// the Kelvin sign U+212A into an ASCII host. Browsers send punycode.
		if rest[i] >= utf8.RuneSelf {
			return o, errOrigin(s, "an origin is ASCII (hosts in punycode)")
		}
	}
	host, port := rest, ""
	if strings.HasPrefix(rest, "[") { // IPv6 literal
		end := strings.IndexByte(rest, ']')
		if end < 0 {
			return o, errOrigin(s, "unclosed IPv6 literal")
		}
		host, port = rest[:end+1], rest[end+1:]
		a, err := netip.ParseAddr(host[1 : len(host)-1])
		if err != nil || !a.Is6() || a.Zone() != "" {
			return o, errOrigin(s, "invalid IPv6 address")
		}
		host = "[" + a.String() + "]"
		if port != "" {
			if port[0] != ':' {
				return o, errOrigin(s, "junk after IPv6 address")
			}
			port = port[1:]
		}
	} else if h, p, ok := strings.Cut(rest, ":"); ok {
		host, port = h, p
	}
	host = strings.ToLower(host)
	if strings.HasPrefix(host, "*.") {
		o.Wildcard, host = true, host[2:]
	}
	if (o.Wildcard || !strings.HasPrefix(host, "[")) && !validHostname(host) {
		return Origin{}, errOrigin(s, "invalid host")
	}
	if o.Wildcard && (!strings.Contains(host, ".") || isNumericLabel(host[strings.LastIndexByte(host, '.')+1:])) {
		// *.com would allow a whole top-level domain, *.0.1 a range of IPs.
		return Origin{}, errOrigin(s, "a wildcard needs a domain of at least two labels")
	}
	o.Host = host
	switch {
	case port == "*":
		o.Port = "*"
	case port != "" || strings.HasSuffix(rest, ":"):
		n, err := strconv.Atoi(port)
		if err != nil || n < 1 || n > 65535 || port[0] < '1' || port[0] > '9' {
			return o, errOrigin(s, "invalid port")
		}
		if !(o.Scheme == "http" && n == 80 || o.Scheme == "https" && n == 443) {
			o.Port = port
		}
	}
	return o, nil
}

// validHostname accepts LDH labels (and IPv4 literals), no empty label, no
// trailing dot: a trailing-dot host is a different origin to a browser.
func validHostname(h string) bool {
	if h == "" || len(h) > 253 {
		return false
	}
	for label := range strings.SplitSeq(h, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for i := 0; i < len(label); i++ {
			c := label[i]
			if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-') {
				return false
			}
		}
	}
	return true
}

func isNumericLabel(l string) bool {
	for i := 0; i < len(l); i++ {
		if l[i] < '0' || l[i] > '9' {
			return false
		}
	}
	return true
}

func errOrigin(s, why string) error {
	return Errorf(KindInvalid, "invalid_origin", "%q is not a valid origin: %s", truncate(s, 64), why)
}

// Matches reports whether the pattern p allows the concrete origin o.
func (p Origin) Matches(o Origin) bool {
	if p.Scheme != o.Scheme || o.Wildcard || o.Port == "*" {
		return false
	}
	if p.Port != "*" && p.Port != o.Port {
		return false
	}
	if p.Wildcard {
		return strings.HasSuffix(o.Host, "."+p.Host)
	}
	return p.Host == o.Host
}

func (p Origin) String() string {
	var b strings.Builder
	b.WriteString(p.Scheme)
	b.WriteString("://")
	if p.Wildcard {
		b.WriteString("*.")
	}
	b.WriteString(p.Host)
	if p.Port != "" {
		b.WriteByte(':')
		b.WriteString(p.Port)
	}
	return b.String()
}

// IsLocal reports whether the origin names this machine (localhost, a
// loopback address): a prd token used from one is a breach signal.
func (p Origin) IsLocal() bool {
	h := strings.Trim(p.Host, "[]")
	if h == "localhost" || strings.HasSuffix(h, ".localhost") {
		return true
	}
	a, err := netip.ParseAddr(h)
	return err == nil && a.IsLoopback()
}

// MarshalText implements encoding.TextMarshaler.
func (p Origin) MarshalText() ([]byte, error) { return []byte(p.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler.
func (p *Origin) UnmarshalText(b []byte) error {
	o, err := ParseOriginPattern(string(b))
	if err != nil {
		return err
	}
	*p = o
	return nil
}
