package kve_test

import (
	"encoding/json"
	"net/netip"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"unicode"

	"github.com/google/go-cmp/cmp"

	"github.com/keyvault-edge/kve/shared/kve"
)

func TestParseOrigin(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    kve.Origin
		wantErr bool
	}{
		{name: "https", in: "https://app.example.com", want: kve.Origin{Scheme: "https", Host: "app.example.com"}},
		{name: "http with port", in: "http://localhost:3000", want: kve.Origin{Scheme: "http", Host: "localhost", Port: "3000"}},
		{name: "case folded", in: "HTTPS://App.Example.COM", want: kve.Origin{Scheme: "https", Host: "app.example.com"}},
		{name: "https default port", in: "https://app.example.com:443", want: kve.Origin{Scheme: "https", Host: "app.example.com"}},
		{name: "http default port", in: "http://app.example.com:80", want: kve.Origin{Scheme: "http", Host: "app.example.com"}},
		{name: "https on port 80", in: "https://app.example.com:80", want: kve.Origin{Scheme: "https", Host: "app.example.com", Port: "80"}},
		{name: "http on port 443", in: "http://app.example.com:443", want: kve.Origin{Scheme: "http", Host: "app.example.com", Port: "443"}},
		{name: "highest port", in: "http://localhost:65535", want: kve.Origin{Scheme: "http", Host: "localhost", Port: "65535"}},
		{name: "IPv4", in: "http://127.0.0.1:8080", want: kve.Origin{Scheme: "http", Host: "127.0.0.1", Port: "8080"}},
		{name: "IPv6", in: "http://[::1]:3000", want: kve.Origin{Scheme: "http", Host: "[::1]", Port: "3000"}},
		{name: "IPv6 canonicalised", in: "https://[2001:DB8:0:0::1]:443", want: kve.Origin{Scheme: "https", Host: "[2001:db8::1]"}},
		{name: "IPv6 long form of loopback", in: "http://[0:0:0:0:0:0:0:1]", want: kve.Origin{Scheme: "http", Host: "[::1]"}},
		{name: "punycode", in: "https://xn--bcher-kva.example", want: kve.Origin{Scheme: "https", Host: "xn--bcher-kva.example"}},
		{name: "hyphens inside labels", in: "https://my-app.ex-ample.com", want: kve.Origin{Scheme: "https", Host: "my-app.ex-ample.com"}},

		{name: "null", in: "null", wantErr: true},
		{name: "empty", in: "", wantErr: true},
		{name: "no scheme", in: "app.example.com", wantErr: true},
		{name: "scheme-relative", in: "//app.example.com", wantErr: true},
		{name: "no host", in: "https://", wantErr: true},
		{name: "port only", in: "https://:443", wantErr: true},
		{name: "ftp", in: "ftp://app.example.com", wantErr: true},
		{name: "javascript", in: "javascript://app.example.com", wantErr: true},
		{name: "file", in: "file://", wantErr: true},
		{name: "missing slashes", in: "https:app.example.com", wantErr: true},
		{name: "one slash", in: "https:/app.example.com", wantErr: true},
		{name: "three slashes", in: "https:///app.example.com", wantErr: true},

		{name: "trailing slash", in: "https://app.example.com/", wantErr: true},
		{name: "path", in: "https://app.example.com/login", wantErr: true},
		{name: "query", in: "https://app.example.com?x=1", wantErr: true},
		{name: "empty query", in: "https://app.example.com?", wantErr: true},
		{name: "fragment", in: "https://app.example.com#x", wantErr: true},
		{name: "empty fragment", in: "https://app.example.com#", wantErr: true},

		{name: "userinfo trick", in: "https://app.example.com@evil.com", wantErr: true},
		{name: "userinfo with password", in: "https://user:pass@app.example.com", wantErr: true},
		{name: "userinfo before allowed host", in: "https://evil.com@app.example.com", wantErr: true},
		{name: "fragment hides host", in: "https://evil.com#@app.example.com", wantErr: true},
		{name: "backslash as slash", in: "https://app.example.com\\@evil.com", wantErr: true},
		{name: "backslashes for slashes", in: "https:\\\\app.example.com", wantErr: true},

		{name: "trailing dot", in: "https://app.example.com.", wantErr: true},
		{name: "trailing dot before port", in: "http://localhost.:3000", wantErr: true},
		{name: "leading dot", in: "https://.example.com", wantErr: true},
		{name: "empty label", in: "https://app..example.com", wantErr: true},
		{name: "label starts with hyphen", in: "https://-app.example.com", wantErr: true},
		{name: "label ends with hyphen", in: "https://app-.example.com", wantErr: true},
		{name: "underscore", in: "https://app_1.example.com", wantErr: true},
		{name: "label of 64", in: "https://" + strings.Repeat("a", 64) + ".com", wantErr: true},
		{name: "host of 254", in: "https://" + strings.Repeat("a.", 126) + "ab", wantErr: true},
		{name: "over 300 bytes", in: "https://" + strings.Repeat("a", 60) + "." + strings.Repeat("b", 60) + "." + strings.Repeat("c", 60) + "." + strings.Repeat("d", 60) + "." + strings.Repeat("e", 60) + ".com", wantErr: true},
		{name: "unicode host", in: "https://exämple.com", wantErr: true},
		{name: "cyrillic look-alike", in: "https://\u0430pp.example.com", wantErr: true},
		{name: "Kelvin sign folds to k", in: "https://\u212Aeys.example.com", wantErr: true},
		{name: "fullwidth dot", in: "https://app\uff0eexample.com", wantErr: true},

		{name: "leading space", in: " https://app.example.com", wantErr: true},
		{name: "trailing space", in: "https://app.example.com ", wantErr: true},
		{name: "space inside", in: "https://app example.com", wantErr: true},
		{name: "tab", in: "https://app.example.com\t", wantErr: true},
		{name: "CRLF", in: "https://app.example.com\r\nX-Evil: 1", wantErr: true},
		{name: "NUL", in: "https://app.example.com\x00", wantErr: true},
		{name: "non-UTF-8", in: "https://app.example.com\xff", wantErr: true},
		{name: "two origins", in: "https://app.example.com https://app.example.com", wantErr: true},
		{name: "two origins with comma", in: "https://app.example.com,https://app.example.com", wantErr: true},

		{name: "percent-encoded dot", in: "https://app%2eexample.com", wantErr: true},
		{name: "percent-encoded letter", in: "https://%61pp.example.com", wantErr: true},
		{name: "IPv6 zone", in: "http://[fe80::1%25eth0]", wantErr: true},
		{name: "unclosed IPv6", in: "http://[::1", wantErr: true},
		{name: "junk after IPv6", in: "http://[::1]x", wantErr: true},
		{name: "IPv4 in brackets", in: "http://[127.0.0.1]", wantErr: true},
		{name: "IPv6 without brackets", in: "http://::1", wantErr: true},
		{name: "IPv6 empty port", in: "http://[::1]:", wantErr: true},

		{name: "empty port", in: "http://localhost:", wantErr: true},
		{name: "port 0", in: "http://localhost:0", wantErr: true},
		{name: "port too high", in: "http://localhost:65536", wantErr: true},
		{name: "port with leading zero", in: "http://localhost:03000", wantErr: true},
		{name: "port with plus sign", in: "http://localhost:+3000", wantErr: true},
		{name: "default port with plus sign", in: "https://app.example.com:+443", wantErr: true},
		{name: "negative port", in: "http://localhost:-1", wantErr: true},
		{name: "port with space", in: "http://localhost: 3000", wantErr: true},
		{name: "letters in port", in: "http://localhost:abc", wantErr: true},
		{name: "two ports", in: "http://localhost:3000:3000", wantErr: true},
		{name: "huge port", in: "http://localhost:99999999999999999999", wantErr: true},

		{name: "wildcard host", in: "https://*.example.com", wantErr: true},
		{name: "wildcard port", in: "http://localhost:*", wantErr: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := kve.ParseOrigin(tc.in)
			if tc.wantErr {
				if err == nil {
					t.Fatalf("ParseOrigin(%q) = %+v, want an error", tc.in, got)
				}
				if kve.KindOf(err) != kve.KindInvalid || kve.CodeOf(err) != "invalid_origin" {
					t.Errorf("error kind %v code %q, want invalid / invalid_origin", kve.KindOf(err), kve.CodeOf(err))
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseOrigin(%q): %v", tc.in, err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("ParseOrigin(%q) (-want +got):\n%s", tc.in, diff)
			}
			if s := got.String(); s != strings.ToLower(s) || strings.HasSuffix(s, ":443") && got.Scheme == "https" {
				t.Errorf("String() = %q is not canonical", s)
			}
		})
	}
}

func TestParseOriginPattern(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    kve.Origin
		canon   string
		wantErr bool
	}{
		{name: "exact", in: "https://app.example.com", want: kve.Origin{Scheme: "https", Host: "app.example.com"}, canon: "https://app.example.com"},
		{name: "subdomains", in: "https://*.example.com", want: kve.Origin{Scheme: "https", Host: "example.com", Wildcard: true}, canon: "https://*.example.com"},
		{name: "any port", in: "http://localhost:*", want: kve.Origin{Scheme: "http", Host: "localhost", Port: "*"}, canon: "http://localhost:*"},
		{name: "subdomains any port", in: "https://*.example.com:*", want: kve.Origin{Scheme: "https", Host: "example.com", Port: "*", Wildcard: true}, canon: "https://*.example.com:*"},
		{name: "default port dropped", in: "HTTPS://*.Example.com:443", want: kve.Origin{Scheme: "https", Host: "example.com", Wildcard: true}, canon: "https://*.example.com"},
		{name: "surrounding space trimmed", in: "  http://localhost:3000\n", want: kve.Origin{Scheme: "http", Host: "localhost", Port: "3000"}, canon: "http://localhost:3000"},
		{name: "IPv6 any port", in: "http://[::1]:*", want: kve.Origin{Scheme: "http", Host: "[::1]", Port: "*"}, canon: "http://[::1]:*"},

		{name: "bare wildcard", in: "https://*", wantErr: true},
		{name: "wildcard and dot", in: "https://*.", wantErr: true},
		{name: "wildcard without dot", in: "https://*example.com", wantErr: true},
		{name: "wildcard in the middle", in: "https://app.*.example.com", wantErr: true},
		{name: "double wildcard", in: "https://*.*.example.com", wantErr: true},
		{name: "wildcard at the end", in: "https://example.*", wantErr: true},
		{name: "wildcard scheme", in: "*://example.com", wantErr: true},
		{name: "wildcard host with port", in: "http://*:3000", wantErr: true},
		{name: "wildcard over IPv6", in: "https://*.[::1]", wantErr: true},
		{name: "wildcard over a bracket", in: "https://*.[", wantErr: true},
		{name: "wildcard over an unclosed literal", in: "https://*.[example.com", wantErr: true},
		{name: "two stars in port", in: "http://localhost:**", wantErr: true},
		{name: "star and digits in port", in: "http://localhost:3*", wantErr: true},
		{name: "path", in: "https://*.example.com/", wantErr: true},
		{name: "userinfo", in: "https://*.example.com@evil.com", wantErr: true},
		{name: "trailing dot", in: "https://*.example.com.", wantErr: true},
		{name: "null", in: "null", wantErr: true},
		{name: "space inside", in: "https://*. example.com", wantErr: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := kve.ParseOriginPattern(tc.in)
			if tc.wantErr {
				if err == nil {
					t.Fatalf("ParseOriginPattern(%q) = %+v, want an error", tc.in, got)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseOriginPattern(%q): %v", tc.in, err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("ParseOriginPattern(%q) (-want +got):\n%s", tc.in, diff)
			}
			if s := got.String(); s != tc.canon {
				t.Errorf("String() = %q, want %q", s, tc.canon)
			}
			again, err := kve.ParseOriginPattern(got.String())
			if err != nil || again != got {
				t.Errorf("ParseOriginPattern(String()) = %+v, %v; want %+v", again, err, got)
			}
		})
	}
}

// TestOriginMatches is T08 and DESIGN §6, through the path the proxy uses: a
// token's patterns against the raw Origin header value.
func TestOriginMatches(t *testing.T) {
	tests := []struct {
		pattern string
		origin  string
		want    bool
	}{
		{"https://app.example.com", "https://app.example.com", true},
		{"https://app.example.com", "HTTPS://APP.EXAMPLE.COM", true},
		{"https://app.example.com", "https://app.example.com:443", true},
		{"https://app.example.com:443", "https://app.example.com", true},
		{"https://app.example.com", "http://app.example.com", false},
		{"https://app.example.com", "https://app.example.com:8443", false},
		{"https://app.example.com", "https://app.example.com.", false},
		{"https://app.example.com", "https://app.example.com.evil.com", false},
		{"https://app.example.com", "https://evil-app.example.com", false},
		{"https://app.example.com", "https://sub.app.example.com", false},
		{"https://app.example.com", "https://app.example.co", false},
		{"https://app.example.com", "https://app.examp1e.com", false},
		{"https://app.example.com", "https://app.example.com@evil.com", false},
		{"https://app.example.com", "https://evil.com@app.example.com", false},
		{"https://app.example.com", "https://app.example.com/", false},
		{"https://app.example.com", "https://app.example.com/path", false},
		{"https://app.example.com", "null", false},
		{"https://app.example.com", "", false},
		{"https://app.example.com", "https://\u0430pp.example.com", false},
		{"https://app.example.com", "https://*.example.com", false},

		{"https://*.example.com", "https://a.example.com", true},
		{"https://*.example.com", "https://a.b.example.com", true},
		{"https://*.example.com", "https://A.EXAMPLE.COM:443", true},
		{"https://*.example.com", "https://example.com", false},
		{"https://*.example.com", "https://evil-example.com", false},
		{"https://*.example.com", "https://aexample.com", false},
		{"https://*.example.com", "https://example.com.evil.com", false},
		{"https://*.example.com", "https://a.example.com.evil.com", false},
		{"https://*.example.com", "http://a.example.com", false},
		{"https://*.example.com", "https://a.example.com:8443", false},
		{"https://*.example.com", "https://a.example.com.", false},
		{"https://*.example.com", "https://.example.com", false},
		{"https://*.example.com", "https://a.example.com@evil.com", false},
		{"https://*.example.com:*", "https://a.example.com:8443", true},

		{"http://localhost:*", "http://localhost:3000", true},
		{"http://localhost:*", "http://localhost", true},
		{"http://localhost:*", "http://localhost:80", true},
		{"http://localhost:*", "https://localhost:3000", false},
		{"http://localhost:*", "http://localhost.evil.com:3000", false},
		{"http://localhost:*", "http://sub.localhost:3000", false},
		{"http://localhost:*", "http://127.0.0.1:3000", false},
		{"http://localhost:*", "http://localhost:3000/", false},
		{"http://localhost:*", "http://localhost:+3000", false},
		{"http://localhost:*", "http://localhost:*", false},

		// T08: a dev token restricted to http://localhost:3000.
		{"http://localhost:3000", "http://localhost:3000", true},
		{"http://localhost:3000", "HTTP://LOCALHOST:3000", true},
		{"http://localhost:3000", "http://localhost:3001", false},
		{"http://localhost:3000", "http://localhost", false},
		{"http://localhost:3000", "https://localhost:3000", false},
		{"http://localhost:3000", "http://localhost.:3000", false},
		{"http://localhost:3000", "http://localhost:03000", false},
		{"http://localhost:3000", "http://localhost:3000@evil.com", false},
		{"http://localhost:3000", "http://evil.com@localhost:3000", false},
		{"http://localhost:3000", "http://127.0.0.1:3000", false},
		{"http://localhost:3000", "http://[::1]:3000", false},
		{"http://localhost:3000", "http://localhost:3000 ", false},
		{"http://localhost:3000", "http://localhost:3000\r\n", false},
		{"http://localhost:3000", "http://localhost:3000, http://localhost:3000", false},
		{"http://localhost:3000", "http://localhost:3000 http://localhost:3000", false},
		{"http://localhost:3000", "http://localhost:3000/index.html", false},
		{"http://localhost:3000", "null", false},

		{"http://[::1]:3000", "http://[0:0::1]:3000", true},
		{"http://[::1]:3000", "http://[::1]:3001", false},
		{"http://127.0.0.1:3000", "http://127.0.0.1:3000", true},
		{"http://127.0.0.1:3000", "http://127.000.000.001:3000", false},
		{"http://127.0.0.1:3000", "http://2130706433:3000", false},
	}
	for _, tc := range tests {
		t.Run(tc.pattern+" "+tc.origin, func(t *testing.T) {
			p, err := kve.ParseOriginPattern(tc.pattern)
			if err != nil {
				t.Fatalf("ParseOriginPattern(%q): %v", tc.pattern, err)
			}
			policy := kve.Policy{Origins: []kve.Origin{p}}
			if got := policy.AllowsOrigin(tc.origin); got != tc.want {
				t.Errorf("%q allows %q = %v, want %v", tc.pattern, tc.origin, got, tc.want)
			}
		})
	}
}

func TestOriginMatchesRefusesPatternsAsOrigins(t *testing.T) {
	anyPort := kve.Origin{Scheme: "http", Host: "localhost", Port: "*"}
	sub := kve.Origin{Scheme: "https", Host: "example.com", Wildcard: true}
	tests := []struct {
		name    string
		pattern kve.Origin
		origin  kve.Origin
	}{
		{"any port as origin", anyPort, anyPort},
		{"wildcard as origin", sub, sub},
		{"wildcard as origin of an exact pattern", kve.Origin{Scheme: "https", Host: "example.com"}, sub},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if tc.pattern.Matches(tc.origin) {
				t.Errorf("%v matches the pattern %v used as an origin", tc.pattern, tc.origin)
			}
		})
	}
}

func TestPolicyAllowsOriginEmpty(t *testing.T) {
	var p kve.Policy
	if p.AllowsOrigin("https://app.example.com") {
		t.Error("a policy without origins allows a browser origin")
	}
}

func TestOriginIsLocal(t *testing.T) {
	tests := []struct {
		in   string
		want bool
	}{
		{"http://localhost:3000", true},
		{"http://localhost", true},
		{"http://app.localhost:3000", true},
		{"http://127.0.0.1", true},
		{"http://127.1.2.3:8080", true},
		{"http://[::1]:3000", true},
		{"http://[::ffff:127.0.0.1]", true},
		{"https://example.com", false},
		{"http://localhost.example.com", false},
		{"http://mylocalhost", false},
		{"http://localhostx", false},
		{"http://10.0.0.1", false},
		{"http://0.0.0.0", false},
		{"http://[::]", false},
		{"http://[2001:db8::1]", false},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			o, err := kve.ParseOrigin(tc.in)
			if err != nil {
				t.Fatalf("ParseOrigin(%q): %v", tc.in, err)
			}
			if got := o.IsLocal(); got != tc.want {
				t.Errorf("IsLocal(%q) = %v, want %v", tc.in, got, tc.want)
			}
		})
	}
}

func TestOriginJSON(t *testing.T) {
	var p kve.Policy
	in := `{"origins":["https://*.Example.com:443","http://localhost:*"]}`
	if err := json.Unmarshal([]byte(in), &p); err != nil {
		t.Fatal(err)
	}
	want := []kve.Origin{
		{Scheme: "https", Host: "example.com", Wildcard: true},
		{Scheme: "http", Host: "localhost", Port: "*"},
	}
	if diff := cmp.Diff(want, p.Origins); diff != "" {
		t.Errorf("decoded origins (-want +got):\n%s", diff)
	}
	b, err := json.Marshal(p.Origins)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := string(b), `["https://*.example.com","http://localhost:*"]`; got != want {
		t.Errorf("encoded origins = %s, want %s", got, want)
	}
	for _, bad := range []string{`{"origins":["null"]}`, `{"origins":["https://app.example.com/"]}`, `{"origins":["https://a.com@evil.com"]}`} {
		var p kve.Policy
		if err := json.Unmarshal([]byte(bad), &p); err == nil {
			t.Errorf("json.Unmarshal(%s) accepted it: %+v", bad, p.Origins)
		}
	}
}

// refOrigin is the fuzz reference for origins: net/url reads the string, and
// the rules of a serialised origin (RFC 6454: ASCII scheme://host[:port],
// nothing more) decide the rest.
type refOrigin struct {
	scheme, host, port string
	wildcard           bool
}

var refLDH = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$`)

// refParse canonicalises s, a request origin or (pattern) a token's pattern.
func refParse(s string, pattern bool) (refOrigin, bool) {
	var r refOrigin
	if pattern {
		s = strings.TrimSpace(s)
	}
	if len(s) > 300 {
		return r, false // kve's own limit on what it will read
	}
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return r, false // origins are ASCII; IDNs arrive in punycode
		}
	}
	if pattern {
		if rest, ok := strings.CutSuffix(s, ":*"); ok {
			s, r.port = rest, "*"
		}
		if scheme, rest, ok := strings.Cut(s, "://*."); ok {
			s, r.wildcard = scheme+"://"+rest, true
		}
	}
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") {
		return r, false
	}
	// Exactly scheme://host[:port]: anything else in the string (userinfo,
	// path, query, fragment, escapes) makes it differ from what url read.
	if !strings.EqualFold(s, u.Scheme+"://"+u.Host) || strings.HasSuffix(u.Host, ":") {
		return r, false
	}
	r.scheme = u.Scheme
	host := strings.ToLower(u.Hostname())
	if strings.HasPrefix(u.Host, "[") {
		a, err := netip.ParseAddr(host)
		if err != nil || !a.Is6() || a.Zone() != "" || r.wildcard {
			return r, false
		}
		r.host = "[" + a.String() + "]"
	} else {
		if len(host) > 253 || !refLDH.MatchString(host) {
			return r, false
		}
		r.host = host
	}
	if p := u.Port(); p != "" {
		if r.port == "*" {
			return r, false
		}
		n, err := strconv.Atoi(p)
		if err != nil || p[0] == '0' || n < 1 || n > 65535 {
			return r, false
		}
		if !(r.scheme == "http" && n == 80 || r.scheme == "https" && n == 443) {
			r.port = p
		}
	}
	return r, true
}

// refMatch: same scheme, same port (or any), and the same host, or for a
// wildcard more labels than the pattern's host that end in all of its labels.
func refMatch(p, o refOrigin) bool {
	if p.scheme != o.scheme || p.port != "*" && p.port != o.port {
		return false
	}
	if !p.wildcard {
		return p.host == o.host
	}
	pl, ol := strings.Split(p.host, "."), strings.Split(o.host, ".")
	return len(ol) > len(pl) && slices.Equal(ol[len(ol)-len(pl):], pl)
}

func (r refOrigin) origin() kve.Origin {
	return kve.Origin{Scheme: r.scheme, Host: r.host, Port: r.port, Wildcard: r.wildcard}
}

// FuzzOriginMatch is F2: ParseOrigin, ParseOriginPattern and Matches agree
// with the reference above, and nothing holding userinfo, a path or
// whitespace is ever allowed.
func FuzzOriginMatch(f *testing.F) {
	f.Add("https://*.example.com", "https://a.b.example.com")
	f.Add("http://localhost:*", "http://localhost:3000")
	f.Add("http://localhost:3000", "http://localhost:3000@evil.com")
	f.Add("https://app.example.com", "HTTPS://APP.EXAMPLE.COM:443")
	f.Add("http://[::1]:*", "http://[0:0::1]:8080")
	f.Fuzz(func(t *testing.T, pattern, origin string) {
		ro, rok := refParse(origin, false)
		o, err := kve.ParseOrigin(origin)
		if (err == nil) != rok {
			t.Fatalf("ParseOrigin(%q) error = %v, reference accepts = %v", origin, err, rok)
		}
		if rok && o != ro.origin() {
			t.Fatalf("ParseOrigin(%q) = %+v, reference %+v", origin, o, ro.origin())
		}

		rp, rpok := refParse(pattern, true)
		p, err := kve.ParseOriginPattern(pattern)
		if (err == nil) != rpok {
			t.Fatalf("ParseOriginPattern(%q) error = %v, reference accepts = %v", pattern, err, rpok)
		}
		if !rpok {
			return
		}
		if p != rp.origin() {
			t.Fatalf("ParseOriginPattern(%q) = %+v, reference %+v", pattern, p, rp.origin())
		}
		if again, err := kve.ParseOriginPattern(p.String()); err != nil || again != p {
			t.Fatalf("ParseOriginPattern(%q) = %+v, %v; want %+v", p.String(), again, err, p)
		}

		policy := kve.Policy{Origins: []kve.Origin{p}}
		allowed := policy.AllowsOrigin(origin)
		if want := rok && refMatch(rp, ro); allowed != want {
			t.Fatalf("%q allows %q = %v, reference %v", pattern, origin, allowed, want)
		}
		if allowed {
			_, rest, _ := strings.Cut(origin, "://")
			if strings.ContainsAny(rest, "@/\\?#") || strings.ContainsFunc(origin, unicode.IsSpace) {
				t.Fatalf("%q allows %q, which holds userinfo, a path or whitespace", pattern, origin)
			}
		}
	})
}

// TestWildcardScope: a wildcard may not cover a top-level domain or a range
// of IP addresses.
func TestWildcardScope(t *testing.T) {
	for _, s := range []string{"https://*.com", "http://*.1", "http://*.0.0.1", "https://*.localhost"} {
		if _, err := kve.ParseOriginPattern(s); err == nil {
			t.Errorf("ParseOriginPattern(%q) accepted", s)
		}
	}
	for _, s := range []string{"https://*.example.com", "https://*.co.uk"} {
		if _, err := kve.ParseOriginPattern(s); err != nil {
			t.Errorf("ParseOriginPattern(%q): %v", s, err)
		}
	}
}
