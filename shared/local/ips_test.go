package local_test

import (
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/keyvault-edge/kve/shared/kve"
	"github.com/keyvault-edge/kve/shared/kvetest"
	"github.com/keyvault-edge/kve/shared/store"
)

// TestIPv4MappedClients (SECURITY T12, class c2): on an IPv6 listener that
// also takes IPv4 clients, an IPv4 client's address reaches the IP policy
// unmapped (127.0.0.1, not ::ffff:127.0.0.1), so IPv4 ranges — also written
// in their mapped form — match it and IPv6 ranges do not.
func TestIPv4MappedClients(t *testing.T) {
	t.Parallel()
	if l, err := net.Listen("tcp", "[::1]:0"); err != nil {
		t.Skipf("this machine has no IPv6 loopback (::1): %v", err)
	} else {
		l.Close()
	}
	// [::] is the only listener that sees IPv4 clients as mapped addresses;
	// it is open for the length of this test only.
	e := newEnv(t, kvetest.WithListen("[::]:0"))
	_, port, err := net.SplitHostPort(e.inst.Addr)
	if err != nil {
		t.Fatal(err)
	}
	v4 := "http://127.0.0.1:" + port + "/openai/v1/chat/completions"
	v6 := "http://[::1]:" + port + "/openai/v1/chat/completions"
	tokens := map[string]kvetest.Token{}
	for name, ips := range map[string][]string{
		"v4 range":  {"127.0.0.0/8"},
		"v4 mapped": {"::ffff:127.0.0.1"},
		"v6 range":  {"::1/128"},
		"private":   {"10.0.0.0/8", "::ffff:10.0.0.0/104"},
	} {
		tokens[name] = e.token(t, map[string]any{"ips": ips})
	}
	tests := []struct {
		token, url string
		status     int
	}{
		{"v4 range", v4, 200},
		{"v4 range", v6, 403},
		{"v4 mapped", v4, 200},
		{"v4 mapped", v6, 403},
		{"v6 range", v6, 200},
		{"v6 range", v4, 403},
		{"private", v4, 403},
		{"private", v6, 403},
	}
	for _, tt := range tests {
		t.Run(tt.token+" from "+tt.url[:strings.LastIndex(tt.url, ":")], func(t *testing.T) {
			res, body := post(t, e.inst, tt.url, tokens[tt.token].Value, nil)
			if res.StatusCode != tt.status || tt.status == 403 && errorCode(body) != "ip_not_allowed" {
				t.Errorf("got %d %s, want %d", res.StatusCode, errorCode(body), tt.status)
			}
		})
	}
	t.Run("client address recorded unmapped", func(t *testing.T) {
		var recs []kve.Usage
		kvetest.Eventually(t, 10*time.Second, "every request recorded", func() bool {
			page, err := e.inst.Store(t).UsageRecords(t.Context(), e.org.ID, store.UsageFilter{})
			if err != nil {
				t.Fatalf("read usage: %v", err)
			}
			recs = page.Items
			return len(recs) == len(tests)
		})
		var ips []string
		for _, u := range recs {
			if !slices.Contains(ips, u.ClientIP) {
				ips = append(ips, u.ClientIP)
			}
		}
		slices.Sort(ips)
		if !slices.Equal(ips, []string{"127.0.0.1", "::1"}) {
			t.Errorf("client addresses recorded: %v", ips)
		}
	})
}
