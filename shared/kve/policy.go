package kve

import (
	"net/netip"
	"strings"
	"unicode/utf8"
)

// Policy is what a token may do. The proxy checks it on every request in the
// order of DESIGN §6; everything here is data a team edits, never code.
type Policy struct {
	Origins     []Origin       `json:"origins"`          // browser origins allowed; empty = none
	AllowServer bool           `json:"allow_server"`     // requests without Origin (servers, CLIs)
	IPs         []netip.Prefix `json:"ips"`              // client networks; empty = any
	Paths       []PathRule     `json:"paths"`            // allowed method+path prefixes; empty = any
	RPM         int            `json:"rpm"`              // requests per minute; 0 = unlimited
	BudgetMicro int64          `json:"budget_micro_usd"` // spend per UTC day in micro-USD; 0 = unlimited
}

// AllowsOrigin reports whether a browser request with this Origin header
// value may use the token. A malformed origin never matches.
func (p *Policy) AllowsOrigin(header string) bool {
	o, err := ParseOrigin(header)
	if err != nil {
		return false
	}
	for _, pat := range p.Origins {
		if pat.Matches(o) {
			return true
		}
	}
	return false
}

// AllowsIP reports whether addr lies in one of the token's networks; a token
// without networks allows any address. IPv4-mapped IPv6 addresses are unmapped
// and zones dropped before matching; an invalid address matches nothing.
func (p *Policy) AllowsIP(addr netip.Addr) bool {
	if len(p.IPs) == 0 {
		return true
	}
	if !addr.IsValid() {
		return false
	}
	addr = addr.Unmap().WithZone("")
	for _, n := range p.IPs {
		if n.Contains(addr) {
			return true
		}
	}
	return false
}

// AllowsPath reports whether method and path are within the token's path rules.
func (p *Policy) AllowsPath(method, path string) bool {
	if len(p.Paths) == 0 {
		return true
	}
	for _, r := range p.Paths {
		if r.Matches(method, path) {
			return true
		}
	}
	return false
}

// ParsePrefixes parses IP networks ("10.0.0.0/8", "2001:db8::/32") or single
// addresses (taken as /32 or /128). Addresses are unmapped and networks
// masked, so what is stored is canonical.
func ParsePrefixes(list []string) ([]netip.Prefix, error) {
	out := make([]netip.Prefix, 0, len(list))
	for _, s := range list {
		s = strings.TrimSpace(s)
		var p netip.Prefix
		if strings.Contains(s, "/") {
			var err error
			if p, err = netip.ParsePrefix(s); err != nil {
				return nil, Errorf(KindInvalid, "invalid_ips", "%q is not an IP network (want 10.0.0.0/8 or 2001:db8::/32)", truncate(s, 64))
			}
			if a := p.Addr(); a.Is4In6() {
				bits := p.Bits() - 96
				if bits < 0 {
					return nil, Errorf(KindInvalid, "invalid_ips", "%q mixes IPv4-mapped and IPv6 ranges", truncate(s, 64))
				}
				p = netip.PrefixFrom(a.Unmap(), bits)
			}
		} else {
			a, err := netip.ParseAddr(s)
			if err != nil || a.Zone() != "" {
				return nil, Errorf(KindInvalid, "invalid_ips", "%q is not an IP address", truncate(s, 64))
			}
			a = a.Unmap()
			p = netip.PrefixFrom(a, a.BitLen())
		}
		out = append(out, p.Masked())
	}
	return out, nil
}

// PathRule allows a method (or any, when empty) on a path prefix. A rule
// "POST /v1/chat/completions" allows exactly that path; "/v1/models*" allows
// the prefix.
type PathRule struct {
	Method string `json:"method,omitempty"`
	Path   string `json:"path"`
}

// ParsePathRule reads "METHOD /path" or "/path", with an optional trailing *.
func ParsePathRule(s string) (PathRule, error) {
	s = strings.TrimSpace(s)
	var r PathRule
	if m, p, ok := strings.Cut(s, " "); ok {
		r.Method, s = strings.ToUpper(m), strings.TrimSpace(p)
		if !isToken(r.Method) {
			return PathRule{}, Errorf(KindInvalid, "invalid_paths", "%q: method is not valid", truncate(s, 64))
		}
	}
	if !strings.HasPrefix(s, "/") || strings.Contains(s, "..") || strings.ContainsAny(s, " ?#") {
		return PathRule{}, Errorf(KindInvalid, "invalid_paths", "%q: a path rule is an absolute path like /v1/chat/completions, optionally ending in *", truncate(s, 64))
	}
	r.Path = s
	return r, nil
}

// Matches reports whether the rule allows method on path.
func (r PathRule) Matches(method, path string) bool {
	if r.Method != "" && r.Method != method {
		return false
	}
	if prefix, ok := strings.CutSuffix(r.Path, "*"); ok {
		return strings.HasPrefix(path, prefix)
	}
	return path == r.Path
}

func (r PathRule) String() string {
	if r.Method == "" {
		return r.Path
	}
	return r.Method + " " + r.Path
}

func isToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 'A' || c > 'Z' {
			return false
		}
	}
	return true
}

// truncate shortens user-supplied text before it is echoed in a message.
// It counts bytes but never cuts a UTF-8 sequence in half.
func truncate(s string, n int) string {
	n = max(n, 0)
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}

// Truncate shortens attacker-controlled text (an Origin, a User-Agent) to at
// most n bytes plus an ellipsis before kve stores or shows it.
func Truncate(s string, n int) string { return truncate(s, n) }
