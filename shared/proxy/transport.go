package proxy

import (
	"crypto/tls"
	"errors"
	"net"
	"net/http"
	"net/netip"
	"syscall"
	"time"
)

// Timeouts bound every phase of an upstream call (SECURITY G13). A stream
// has no total write deadline: long generations are normal; an upstream that
// goes silent for StreamIdle is cut instead.
type Timeouts struct {
	Dial           time.Duration // TCP connect, default 10 s
	TLSHandshake   time.Duration // default 10 s
	ResponseHeader time.Duration // request sent → response head, default 300 s
	StreamIdle     time.Duration // longest silence inside a response body, default 120 s
	Total          time.Duration // whole exchange, default 30 min
}

func (t *Timeouts) defaults() {
	set := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	set(&t.Dial, 10*time.Second)
	set(&t.TLSHandshake, 10*time.Second)
	set(&t.ResponseHeader, 300*time.Second)
	set(&t.StreamIdle, 120*time.Second)
	set(&t.Total, 30*time.Minute)
}

// errPrivateAddress is returned when an upstream resolves to an address kve
// refuses to dial.
var errPrivateAddress = errors.New("upstream address is private and not allowed")

// NewTransport returns the transport for upstream calls (and webhooks). It
// dials only public addresses, checked after DNS resolution on the address
// actually dialled (so DNS rebinding cannot reach 127.0.0.1 or
// 169.254.169.254), unless an address lies in allowPrivate (SECURITY T14).
// Plain http goes only to allowPrivate, never to a public address: a key in
// cleartext may cross the operator's own network, not the internet. It
// ignores HTTP_PROXY settings: a key must go to the upstream and nowhere
// else.
func NewTransport(t Timeouts, allowPrivate []netip.Prefix) http.RoundTripper {
	t.defaults()
	return &bySchemeTransport{
		tls:   newTransport(t, func(a netip.Addr) bool { return publicAddr(a) || inAny(a, allowPrivate) }),
		plain: newTransport(t, func(a netip.Addr) bool { return inAny(a, allowPrivate) }),
	}
}

// bySchemeTransport sends https through one transport and http through
// another that dials nothing public.
type bySchemeTransport struct{ tls, plain *http.Transport }

func (b *bySchemeTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.URL.Scheme == "http" {
		return b.plain.RoundTrip(r)
	}
	return b.tls.RoundTrip(r)
}

// CloseIdleConnections closes both transports' idle connections.
func (b *bySchemeTransport) CloseIdleConnections() {
	b.tls.CloseIdleConnections()
	b.plain.CloseIdleConnections()
}

func inAny(a netip.Addr, prefixes []netip.Prefix) bool {
	for _, p := range prefixes {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

func newTransport(t Timeouts, allowed func(netip.Addr) bool) *http.Transport {
	d := &net.Dialer{
		Timeout:   t.Dial,
		KeepAlive: 30 * time.Second,
		Control: func(_, address string, _ syscall.RawConn) error {
			return checkDial(address, allowed)
		},
	}
	return &http.Transport{
		Proxy:                 nil,
		DialContext:           d.DialContext,
		TLSClientConfig:       &tls.Config{MinVersion: tls.VersionTLS12},
		TLSHandshakeTimeout:   t.TLSHandshake,
		ResponseHeaderTimeout: t.ResponseHeader,
		ExpectContinueTimeout: time.Second,
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          1024,
		MaxIdleConnsPerHost:   256,
		IdleConnTimeout:       90 * time.Second,
		// kve reads usage from response bodies, so it asks upstreams for
		// identity encoding; it must not let the transport undo that.
		DisableCompression: true,
	}
}

func checkAddress(address string, allowPrivate []netip.Prefix) error {
	return checkDial(address, func(a netip.Addr) bool { return publicAddr(a) || inAny(a, allowPrivate) })
}

func checkDial(address string, allowed func(netip.Addr) bool) error {
	ap, err := netip.ParseAddrPort(address)
	if err != nil || !allowed(ap.Addr().Unmap().WithZone("")) {
		return errPrivateAddress
	}
	return nil
}

// nonPublic lists ranges that are not the public internet beyond what
// netip's predicates cover.
var nonPublic = []netip.Prefix{
	netip.MustParsePrefix("0.0.0.0/8"),      // "this network"
	netip.MustParsePrefix("100.64.0.0/10"),  // carrier-grade NAT
	netip.MustParsePrefix("192.0.0.0/24"),   // IETF protocol assignments
	netip.MustParsePrefix("198.18.0.0/15"),  // benchmarking
	netip.MustParsePrefix("240.0.0.0/4"),    // reserved, incl. broadcast
	netip.MustParsePrefix("64:ff9b::/96"),   // NAT64: may embed a private IPv4
	netip.MustParsePrefix("64:ff9b:1::/48"), // local-use NAT64
	netip.MustParsePrefix("2001:db8::/32"),  // documentation
	netip.MustParsePrefix("2002::/16"),      // 6to4: embeds an IPv4
	netip.MustParsePrefix("::/96"),          // IPv4-compatible (deprecated)
}

// publicAddr reports whether a is a routable public unicast address.
func publicAddr(a netip.Addr) bool {
	if !a.IsValid() || a.IsLoopback() || a.IsPrivate() || a.IsUnspecified() || a.IsMulticast() ||
		a.IsLinkLocalUnicast() || a.IsLinkLocalMulticast() || a.IsInterfaceLocalMulticast() {
		return false
	}
	for _, p := range nonPublic {
		if p.Contains(a) {
			return false
		}
	}
	return true
}
