package kve_test

import (
	"net/netip"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/google/go-cmp/cmp"

	"github.com/keyvault-edge/kve/shared/kve"
)

func TestParsePrefixes(t *testing.T) {
	tests := []struct {
		name    string
		in      []string
		want    []string
		wantErr bool
	}{
		{name: "none", in: nil, want: []string{}},
		{name: "IPv4 network", in: []string{"10.0.0.0/8"}, want: []string{"10.0.0.0/8"}},
		{name: "IPv4 network masked", in: []string{"10.1.2.3/16"}, want: []string{"10.1.0.0/16"}},
		{name: "IPv4 address", in: []string{"10.1.2.3"}, want: []string{"10.1.2.3/32"}},
		{name: "IPv4 any", in: []string{"0.0.0.0/0"}, want: []string{"0.0.0.0/0"}},
		{name: "IPv6 network masked", in: []string{"2001:db8::1/32"}, want: []string{"2001:db8::/32"}},
		{name: "IPv6 address", in: []string{"2001:DB8::1"}, want: []string{"2001:db8::1/128"}},
		{name: "IPv4-mapped address", in: []string{"::ffff:10.1.2.3"}, want: []string{"10.1.2.3/32"}},
		{name: "IPv4-mapped network", in: []string{"::ffff:10.1.0.0/112"}, want: []string{"10.1.0.0/16"}},
		{name: "IPv4-mapped network masked", in: []string{"::ffff:10.1.2.3/120"}, want: []string{"10.1.2.0/24"}},
		{name: "IPv4-mapped all", in: []string{"::ffff:0.0.0.0/96"}, want: []string{"0.0.0.0/0"}},
		{name: "IPv4-compatible stays IPv6", in: []string{"::10.1.2.3"}, want: []string{"::a01:203/128"}},
		{name: "spaces trimmed", in: []string{" 10.0.0.0/8 ", "\t2001:db8::/32\n"}, want: []string{"10.0.0.0/8", "2001:db8::/32"}},
		{name: "several", in: []string{"10.0.0.0/8", "192.168.1.1", "2001:db8::/32"}, want: []string{"10.0.0.0/8", "192.168.1.1/32", "2001:db8::/32"}},

		{name: "mapped network wider than IPv4", in: []string{"::ffff:0.0.0.0/80"}, wantErr: true},
		{name: "zone on address", in: []string{"fe80::1%eth0"}, wantErr: true},
		{name: "zone on network", in: []string{"fe80::1%eth0/64"}, wantErr: true},
		{name: "zone on mapped address", in: []string{"::ffff:10.1.2.3%eth0"}, wantErr: true},
		{name: "empty entry", in: []string{""}, wantErr: true},
		{name: "blank entry", in: []string{"  "}, wantErr: true},
		{name: "leading zeros", in: []string{"010.001.002.003"}, wantErr: true},
		{name: "leading zeros in network", in: []string{"010.001.000.000/16"}, wantErr: true},
		{name: "leading zero in bits", in: []string{"10.0.0.0/08"}, wantErr: true},
		{name: "too many bits", in: []string{"10.0.0.0/33"}, wantErr: true},
		{name: "too many IPv6 bits", in: []string{"2001:db8::/129"}, wantErr: true},
		{name: "negative bits", in: []string{"10.0.0.0/-1"}, wantErr: true},
		{name: "no bits", in: []string{"10.0.0.0/"}, wantErr: true},
		{name: "two slashes", in: []string{"10.0.0.0/8/8"}, wantErr: true},
		{name: "space before bits", in: []string{"10.0.0.0 /8"}, wantErr: true},
		{name: "three octets", in: []string{"10.1.2"}, wantErr: true},
		{name: "five octets", in: []string{"10.1.2.3.4"}, wantErr: true},
		{name: "octet over 255", in: []string{"10.1.2.256"}, wantErr: true},
		{name: "hex octet", in: []string{"0x0a.1.2.3"}, wantErr: true},
		{name: "decimal integer", in: []string{"167838211"}, wantErr: true},
		{name: "host name", in: []string{"example.com"}, wantErr: true},
		{name: "star", in: []string{"*"}, wantErr: true},
		{name: "comma list in one entry", in: []string{"10.0.0.0/8,10.1.0.0/16"}, wantErr: true},
		{name: "bracketed IPv6", in: []string{"[2001:db8::1]"}, wantErr: true},
		{name: "one bad among good", in: []string{"10.0.0.0/8", "nope", "2001:db8::/32"}, wantErr: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := kve.ParsePrefixes(tc.in)
			if tc.wantErr {
				if err == nil {
					t.Fatalf("ParsePrefixes(%q) = %v, want an error", tc.in, got)
				}
				if kve.KindOf(err) != kve.KindInvalid || kve.CodeOf(err) != "invalid_ips" {
					t.Errorf("error kind %v code %q, want invalid / invalid_ips", kve.KindOf(err), kve.CodeOf(err))
				}
				if got != nil {
					t.Errorf("ParsePrefixes returned %v with its error", got)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParsePrefixes(%q): %v", tc.in, err)
			}
			strs := make([]string, len(got))
			for i, p := range got {
				strs[i] = p.String()
				if p != p.Masked() || p.Addr().Is4In6() || p.Addr().Zone() != "" {
					t.Errorf("%v is not canonical", p)
				}
			}
			if diff := cmp.Diff(tc.want, strs); diff != "" {
				t.Errorf("ParsePrefixes(%q) (-want +got):\n%s", tc.in, diff)
			}
		})
	}
}

func TestParsePrefixesTruncatesEcho(t *testing.T) {
	long := strings.Repeat("9", 10_000)
	_, err := kve.ParsePrefixes([]string{long})
	if err == nil {
		t.Fatal("ParsePrefixes accepted 10,000 nines")
	}
	if msg := kve.MessageOf(err); len(msg) > 200 {
		t.Errorf("the message echoes %d bytes of input", len(msg))
	}
}

// TestAllowsIP is T11/T12: the matcher sees the address the platform gives,
// unmapped and without zone, and an address it cannot read matches nothing.
func TestAllowsIP(t *testing.T) {
	tests := []struct {
		name string
		ips  []string
		addr string // parsed with netip.ParseAddr; one that does not parse is the zero Addr
		want bool
	}{
		{"inside", []string{"10.1.0.0/16"}, "10.1.2.3", true},
		{"network address", []string{"10.1.0.0/16"}, "10.1.0.0", true},
		{"broadcast address", []string{"10.1.0.0/16"}, "10.1.255.255", true},
		{"outside", []string{"10.1.0.0/16"}, "10.2.0.1", false},
		{"IPv4-mapped inside", []string{"10.1.0.0/16"}, "::ffff:10.1.2.3", true},
		{"IPv4-mapped outside", []string{"10.1.0.0/16"}, "::ffff:10.2.0.1", false},
		{"IPv4-mapped with zone", []string{"10.1.0.0/16"}, "::ffff:10.1.2.3%eth0", true},
		{"IPv4-compatible is not IPv4", []string{"10.1.0.0/16"}, "::10.1.2.3", false},
		{"NAT64 is not IPv4", []string{"10.1.0.0/16"}, "64:ff9b::a01:203", false},
		{"leading zeros never read as 10.1.2.3", []string{"10.1.0.0/16"}, "010.001.002.003", false},
		{"decimal integer", []string{"10.1.0.0/16"}, "167838211", false},
		{"hex octets", []string{"10.1.0.0/16"}, "0x0a.0x01.0x02.0x03", false},
		{"short form", []string{"10.1.0.0/16"}, "10.1.515", false},
		{"invalid address", []string{"10.1.0.0/16"}, "", false},
		{"invalid address, allow all IPv4", []string{"0.0.0.0/0"}, "not an address", false},
		{"invalid address, allow all IPv6", []string{"::/0"}, "not an address", false},
		{"IPv6 inside", []string{"2001:db8::/32"}, "2001:db8::1", true},
		{"IPv6 outside", []string{"2001:db8::/32"}, "2001:db9::1", false},
		{"IPv6 with zone", []string{"fe80::/10"}, "fe80::1%eth0", true},
		{"IPv4 against IPv6 network", []string{"2001:db8::/32"}, "10.1.2.3", false},
		{"IPv6 against IPv4 network", []string{"10.1.0.0/16"}, "2001:db8::1", false},
		{"IPv4 any does not cover IPv6", []string{"0.0.0.0/0"}, "2001:db8::1", false},
		{"mapped network, plain client", []string{"::ffff:10.1.0.0/112"}, "10.1.2.3", true},
		{"single address", []string{"10.1.2.3"}, "10.1.2.3", true},
		{"single address, neighbour", []string{"10.1.2.3"}, "10.1.2.4", false},
		{"second network", []string{"192.168.0.0/16", "10.1.0.0/16"}, "10.1.2.3", true},
		{"no networks allow any", nil, "203.0.113.9", true},
		{"no networks allow even an invalid address", nil, "", true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ips, err := kve.ParsePrefixes(tc.ips)
			if err != nil {
				t.Fatalf("ParsePrefixes(%q): %v", tc.ips, err)
			}
			addr, _ := netip.ParseAddr(tc.addr)
			p := kve.Policy{IPs: ips}
			if got := p.AllowsIP(addr); got != tc.want {
				t.Errorf("networks %q allow %q = %v, want %v", tc.ips, tc.addr, got, tc.want)
			}
		})
	}
}

// refPrefix is the fuzz reference for one ParsePrefixes entry: netip parses,
// an IPv4-mapped network becomes the IPv4 network it covers, an address its
// own host network.
func refPrefix(s string) (netip.Prefix, bool) {
	s = strings.TrimSpace(s)
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return netip.Prefix{}, false
		}
		if p.Addr().Is4In6() {
			if p.Bits() < 96 {
				return netip.Prefix{}, false
			}
			p = netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96)
		}
		return p.Masked(), true
	}
	a, err := netip.ParseAddr(s)
	if err != nil || a.Zone() != "" {
		return netip.Prefix{}, false
	}
	a = a.Unmap()
	return netip.PrefixFrom(a, a.BitLen()), true
}

// FuzzAllowsIP is F3: ParsePrefixes accepts exactly the lists whose entries
// netip reads, and AllowsIP equals netip.Prefix.Contains on the unmapped,
// zone-free address; an address that does not parse never matches a list.
func FuzzAllowsIP(f *testing.F) {
	f.Add("10.1.0.0/16", "::ffff:10.1.2.3")
	f.Add("10.1.0.0/16", "010.001.002.003")
	f.Add("fe80::/10", "fe80::1%eth0")
	f.Add("::ffff:10.1.0.0/112,2001:db8::/32", "10.1.2.3")
	f.Add("0.0.0.0/0", "")
	f.Fuzz(func(t *testing.T, list, addr string) {
		entries := strings.Split(list, ",")
		got, err := kve.ParsePrefixes(entries)
		var want []netip.Prefix
		ok := true
		for _, e := range entries {
			p, pok := refPrefix(e)
			want = append(want, p)
			ok = ok && pok
		}
		if (err == nil) != ok {
			t.Fatalf("ParsePrefixes(%q) error = %v, reference accepts = %v", entries, err, ok)
		}
		if !ok {
			return
		}
		if diff := cmp.Diff(want, got, cmp.Comparer(func(a, b netip.Prefix) bool { return a == b })); diff != "" {
			t.Fatalf("ParsePrefixes(%q) (-want +got):\n%s", entries, diff)
		}

		a, aerr := netip.ParseAddr(addr)
		policy := kve.Policy{IPs: got}
		allowed := policy.AllowsIP(a)
		if aerr != nil {
			if allowed {
				t.Fatalf("%v allows %q, which is not an address", got, addr)
			}
			return
		}
		match := false
		for _, p := range want {
			match = match || p.Contains(a.Unmap().WithZone(""))
		}
		if allowed != match {
			t.Fatalf("%v allows %v = %v, netip says %v", got, a, allowed, match)
		}
	})
}

func TestParsePathRule(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    kve.PathRule
		wantErr bool
	}{
		{name: "path", in: "/v1/chat/completions", want: kve.PathRule{Path: "/v1/chat/completions"}},
		{name: "method and path", in: "POST /v1/chat/completions", want: kve.PathRule{Method: "POST", Path: "/v1/chat/completions"}},
		{name: "method upper-cased", in: "post /v1/embeddings", want: kve.PathRule{Method: "POST", Path: "/v1/embeddings"}},
		{name: "prefix", in: "/v1/models*", want: kve.PathRule{Path: "/v1/models*"}},
		{name: "spaces trimmed", in: "  GET   /v1/models*  ", want: kve.PathRule{Method: "GET", Path: "/v1/models*"}},
		{name: "root prefix", in: "/*", want: kve.PathRule{Path: "/*"}},

		{name: "empty", in: "", wantErr: true},
		{name: "method only", in: "GET", wantErr: true},
		{name: "relative", in: "v1/chat", wantErr: true},
		{name: "method and relative", in: "GET v1/chat", wantErr: true},
		{name: "dot dot", in: "/v1/../admin", wantErr: true},
		{name: "trailing dot dot", in: "/v1/..", wantErr: true},
		{name: "query", in: "/v1/chat?x=1", wantErr: true},
		{name: "fragment", in: "/v1/chat#x", wantErr: true},
		{name: "space in path", in: "GET /v1/a b", wantErr: true},
		{name: "digit in method", in: "G3T /v1", wantErr: true},
		{name: "hyphen in method", in: "GE-T /v1", wantErr: true},
		{name: "tab separator", in: "GET\t/v1", wantErr: true},
		{name: "star only", in: "*", wantErr: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := kve.ParsePathRule(tc.in)
			if tc.wantErr {
				if err == nil {
					t.Fatalf("ParsePathRule(%q) = %+v, want an error", tc.in, got)
				}
				if kve.CodeOf(err) != "invalid_paths" {
					t.Errorf("code = %q, want invalid_paths", kve.CodeOf(err))
				}
				return
			}
			if err != nil {
				t.Fatalf("ParsePathRule(%q): %v", tc.in, err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("ParsePathRule(%q) (-want +got):\n%s", tc.in, diff)
			}
			if again, err := kve.ParsePathRule(got.String()); err != nil || again != got {
				t.Errorf("ParsePathRule(%q) = %+v, %v; want %+v", got.String(), again, err, got)
			}
		})
	}
}

func TestAllowsPath(t *testing.T) {
	var rules []kve.PathRule
	for _, s := range []string{"POST /v1/chat/completions", "/v1/models*"} {
		r, err := kve.ParsePathRule(s)
		if err != nil {
			t.Fatal(err)
		}
		rules = append(rules, r)
	}
	tests := []struct {
		name   string
		rules  []kve.PathRule
		method string
		path   string
		want   bool
	}{
		{"exact", rules, "POST", "/v1/chat/completions", true},
		{"exact, other method", rules, "GET", "/v1/chat/completions", false},
		{"exact, lower-case method", rules, "post", "/v1/chat/completions", false},
		{"exact, trailing slash", rules, "POST", "/v1/chat/completions/", false},
		{"exact, longer", rules, "POST", "/v1/chat/completionsX", false},
		{"exact, shorter", rules, "POST", "/v1/chat", false},
		{"prefix itself", rules, "GET", "/v1/models", true},
		{"under prefix", rules, "GET", "/v1/models/gpt-4o", true},
		{"prefix, any method", rules, "DELETE", "/v1/models/ft-1", true},
		{"not under prefix", rules, "GET", "/v1/model", false},
		{"other version", rules, "GET", "/v2/models", false},
		{"empty path", rules, "GET", "", false},
		{"no rules allow any", nil, "DELETE", "/anything", true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := kve.Policy{Paths: tc.rules}
			if got := p.AllowsPath(tc.method, tc.path); got != tc.want {
				t.Errorf("AllowsPath(%q, %q) = %v, want %v", tc.method, tc.path, got, tc.want)
			}
		})
	}
}

func TestTruncate(t *testing.T) {
	tests := []struct {
		name string
		in   string
		n    int
		want string
	}{
		{"empty", "", 5, ""},
		{"fits exactly", "abc", 3, "abc"},
		{"shorter", "abc", 10, "abc"},
		{"cut", "abcd", 3, "abc…"},
		{"zero", "abc", 0, "…"},
		{"two-byte rune at the cut", "héllo", 2, "h…"},
		{"two-byte rune before the cut", "héllo", 3, "hé…"},
		{"three-byte runes", "日本語", 4, "日…"},
		{"three-byte runes on a boundary", "日本語", 6, "日本…"},
		{"four-byte rune, too small", "😀x", 3, "…"},
		{"four-byte rune fits", "😀xy", 4, "😀…"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := kve.Truncate(tc.in, tc.n); got != tc.want {
				t.Errorf("Truncate(%q, %d) = %q, want %q", tc.in, tc.n, got, tc.want)
			}
		})
	}
}

// FuzzTruncate: the result is s itself when it fits, otherwise a prefix of at
// most n bytes that ends on a rune boundary, plus the ellipsis.
func FuzzTruncate(f *testing.F) {
	f.Add("héllo wörld", uint16(2))
	f.Add("日本語のテキスト", uint16(7))
	f.Add("😀😀😀", uint16(5))
	f.Add("\xff\x80\x80\x80abc", uint16(3))
	f.Fuzz(func(t *testing.T, s string, n uint16) {
		got := kve.Truncate(s, int(n))
		if len(s) <= int(n) {
			if got != s {
				t.Fatalf("Truncate(%q, %d) = %q, want it unchanged", s, n, got)
			}
			return
		}
		head, ok := strings.CutSuffix(got, "…")
		if !ok || len(head) > int(n) || !strings.HasPrefix(s, head) {
			t.Fatalf("Truncate(%q, %d) = %q, want a prefix of at most %d bytes and an ellipsis", s, n, got, n)
		}
		if head != "" && !utf8.RuneStart(s[len(head)]) {
			t.Fatalf("Truncate(%q, %d) = %q splits a UTF-8 sequence", s, n, got)
		}
		if utf8.ValidString(s) {
			if !utf8.ValidString(got) {
				t.Fatalf("Truncate(%q, %d) = %q is not valid UTF-8", s, n, got)
			}
			if len(head) < int(n)-(utf8.UTFMax-1) {
				t.Fatalf("Truncate(%q, %d) = %q drops more than a partial rune", s, n, got)
			}
		}
	})
}
