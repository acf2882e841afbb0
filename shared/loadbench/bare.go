package loadbench

import (
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"time"
)

// Bare is the baseline kve is measured against: an httputil.ReverseProxy
// whose Rewrite only points the request at upstream and swaps the
// Authorization header for the real key. No policy, no metering, no
// logging. Its transport pools connections as kve's does (proxy.NewTransport:
// 256 idle connections per host, no compression, same timeouts), so the two
// differ by their handlers, not by how often they dial.
func Bare(upstream *url.URL, key string) http.Handler {
	auth := "Bearer " + key
	return &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(upstream)
			pr.Out.Header.Set("Authorization", auth)
		},
		Transport: &http.Transport{
			Proxy:                 nil,
			DialContext:           (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
			ResponseHeaderTimeout: 300 * time.Second,
			ExpectContinueTimeout: time.Second,
			MaxIdleConns:          1024,
			MaxIdleConnsPerHost:   256,
			IdleConnTimeout:       90 * time.Second,
			DisableCompression:    true,
		},
		ErrorLog: log.New(io.Discard, "", 0),
	}
}
