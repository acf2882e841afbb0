package alerts

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/keyvault-edge/kve/shared/kve"
)

// typesOf lists the types of events, for comparing.
func typesOf(evs []Event) []Type {
	out := []Type{}
	for _, ev := range evs {
		out = append(out, ev.Type)
	}
	return out
}

func TestRefusalEvents(t *testing.T) {
	e := newEnv(t)
	d := e.detector()
	tok := e.token(kve.EnvStg)
	tests := []struct {
		reason string
		want   []Type
	}{
		{"origin", []Type{OriginNotAllowed}},
		{"origin_repeated", []Type{OriginNotAllowed}},
		{"server_use", []Type{ServerUse}},
		{"ip", []Type{IPNotAllowed}},
		{"revoked", []Type{RevokedTokenUsed}},
		{"expired", []Type{ExpiredTokenUsed}},
		{"suspended", []Type{SuspendedTokenUsed}},
		{"rate", []Type{}},
		{"budget", []Type{}},
		{"path", []Type{}},
		{"upstream_timeout", []Type{}},
		{"", []Type{}},
	}
	for _, tt := range tests {
		t.Run("reason "+tt.reason, func(t *testing.T) {
			u := e.usage(tok, tt.reason)
			evs := d.Detect(e.ctx, &u)
			if diff := cmp.Diff(tt.want, typesOf(evs)); diff != "" {
				t.Errorf("types (-want +got):\n%s", diff)
			}
			for _, ev := range evs {
				if ev.RequestID != u.RequestID || ev.TokenID != tok.ID || ev.OrgID != tok.OrgID || ev.Detail == "" {
					t.Errorf("event %+v does not describe the record", ev)
				}
			}
		})
	}
	t.Run("unknown token", func(t *testing.T) {
		u := e.usage(tok, "unknown")
		u.TokenID, u.OrgID = "", ""
		if evs := d.Detect(e.ctx, &u); len(evs) != 0 {
			t.Errorf("a record without a token made events %v", typesOf(evs))
		}
	})
}

func TestPrdTokenFromLocalhost(t *testing.T) {
	e := newEnv(t)
	d := e.detector()
	prd, dev := e.token(kve.EnvPrd), e.token(kve.EnvDev)
	tests := []struct {
		name   string
		tok    kve.Token
		origin string
		reason string
		want   []Type
	}{
		{"prd, localhost allowed", prd, "http://localhost:3000", "", []Type{EnvMismatch}},
		{"prd, loopback address", prd, "http://127.0.0.1:5173", "", []Type{EnvMismatch}},
		{"prd, *.localhost", prd, "http://app.localhost", "", []Type{EnvMismatch}},
		{"prd, localhost refused", prd, "http://localhost:3000", "origin", []Type{OriginNotAllowed, EnvMismatch}},
		{"prd, public origin", prd, "https://app.example.com", "", []Type{}},
		{"prd, revoked from localhost", prd, "http://localhost:3000", "revoked", []Type{RevokedTokenUsed}},
		{"dev, localhost", dev, "http://localhost:3000", "", []Type{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			u := e.usage(tt.tok, tt.reason, func(u *kve.Usage) { u.Origin = tt.origin })
			if diff := cmp.Diff(tt.want, typesOf(d.Detect(e.ctx, &u))); diff != "" {
				t.Errorf("types (-want +got):\n%s", diff)
			}
		})
	}
}

// baseline stores perMinute requests of tok in each of the 60 minutes
// before the clock's minute.
func (e *env) baseline(tok kve.Token, perMinute int64) {
	e.t.Helper()
	m := e.clock.Now().Truncate(time.Minute)
	for i := 1; i <= 60; i++ {
		if perMinute == 0 {
			break
		}
		if _, err := e.st.AddRequests(e.ctx, tok.OrgID, tok.ID, m.Add(-time.Duration(i)*time.Minute), perMinute); err != nil {
			e.t.Fatal(err)
		}
	}
}

// TestSpikeRule pins the rule: requests in the minute above
// max(10 × the hour's average per minute, 30).
func TestSpikeRule(t *testing.T) {
	tests := []struct {
		name      string
		perMinute int64 // the hour before
		spikeAt   int   // the request that crosses the threshold
	}{
		{"no history: the floor", 0, 31},
		{"quiet token: the floor", 2, 31},
		{"busy token: ten times its average", 50, 501},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			d := e.detector()
			tok := e.token(kve.EnvPrd)
			e.baseline(tok, tt.perMinute)
			for i := 1; i <= tt.spikeAt; i++ {
				u := e.usage(tok, "")
				evs := d.Detect(e.ctx, &u)
				switch {
				case i < tt.spikeAt && len(evs) > 0:
					t.Fatalf("request %d: events %v, want none below the threshold", i, typesOf(evs))
				case i == tt.spikeAt:
					if diff := cmp.Diff([]Type{UsageSpike}, typesOf(evs)); diff != "" {
						t.Fatalf("request %d: (-want +got):\n%s", i, diff)
					}
					if !strings.Contains(evs[0].Detail, fmt.Sprintf("%d requests in the minute", tt.spikeAt)) || evs[0].Count != 1 {
						t.Errorf("spike event: count %d, detail %q", evs[0].Count, evs[0].Detail)
					}
				}
			}
		})
	}
}

// TestSpikeAcrossEnvironments: two execution environments share the
// store's minute, so their requests add up to a spike neither sees alone.
// Each counts in batches (FlushEvery 10: one write per 10 requests, and
// at once for a token's first request).
func TestSpikeAcrossEnvironments(t *testing.T) {
	e := newEnv(t)
	batched := func(c *DetectorConfig) { c.FlushEvery, c.FlushAfter = 10, time.Hour }
	a, b := e.detector(batched), e.detector(batched)
	tok := e.token(kve.EnvPrd)
	first := -1
	var spike Event
	for i := 0; first < 0 && i < 100; i++ {
		d := a
		if i%2 == 1 {
			d = b
		}
		u := e.usage(tok, "")
		if evs := d.Detect(e.ctx, &u); len(evs) > 0 {
			first, spike = i, evs[0]
		}
	}
	// a flushes 1, then 10 at its 11th and 21st requests; b 1 and 10 at
	// its 11th: 1+1+10+10+10 = 32 > 30 at request 41 (a's 21st).
	if first != 40 || spike.Type != UsageSpike || spike.Count != 10 || !strings.Contains(spike.Detail, "32 requests") {
		t.Fatalf("first event at request %d: %+v; want a spike of 10 at request 41 (32 in the minute)", first+1, spike)
	}
	m := e.clock.Now().Truncate(time.Minute)
	if n, err := e.st.Requests(e.ctx, tok.OrgID, tok.ID, m, m.Add(time.Minute)); err != nil || n != 32 {
		t.Errorf("store's minute = %d, %v; want 32", n, err)
	}
}

// TestSpikeCountsMinutes: a quiet token's requests are added to the store
// after FlushAfter, and a minute's remainder is added when the next
// minute starts, so the baseline misses nothing.
func TestSpikeCountsMinutes(t *testing.T) {
	e := newEnv(t)
	d := e.detector(func(c *DetectorConfig) { c.FlushEvery, c.FlushAfter = 10, 5*time.Second })
	tok := e.token(kve.EnvPrd)
	m := e.clock.Now().Truncate(time.Minute)
	for range 3 {
		u := e.usage(tok, "")
		d.Detect(e.ctx, &u) // the first flushes at once, the others wait
	}
	count := func(minute time.Time) int64 {
		n, err := e.st.Requests(e.ctx, tok.OrgID, tok.ID, minute, minute.Add(time.Minute))
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	if n := count(m); n != 1 {
		t.Errorf("after 3 requests in 5 s: %d counted, want 1", n)
	}
	e.clock.Add(40 * time.Second) // the next minute
	u := e.usage(tok, "")
	d.Detect(e.ctx, &u)
	if n, next := count(m), count(m.Add(time.Minute)); n != 3 || next != 1 {
		t.Errorf("after the minute turned: %d and %d counted, want 3 and 1", n, next)
	}
}

// TestNetworkRule (SECURITY T09, G10): a dev token used from a third
// distinct /24 or /48 within an hour asks for its suspension, whichever
// execution environment sees which request.
func TestNetworkRule(t *testing.T) {
	e := newEnv(t)
	a, b := e.detector(), e.detector()
	dev := e.token(kve.EnvDev)
	steps := []struct {
		d    *Detector
		ip   string
		want []Type
	}{
		{a, "198.51.100.7", []Type{}},
		{b, "198.51.100.99", []Type{}},          // same /24
		{a, "::ffff:198.51.100.8", []Type{}},    // the same, mapped
		{b, "2001:db8:1:2::1", []Type{}},        // a second network
		{a, "2001:db8:1:ffff::9", []Type{}},     // same /48
		{b, "203.0.113.5", []Type{EnvMismatch}}, // the third
	}
	for i, s := range steps {
		u := e.usage(dev, "", func(u *kve.Usage) { u.ClientIP = s.ip; u.Origin = "http://localhost:3000" })
		evs := s.d.Detect(e.ctx, &u)
		if diff := cmp.Diff(s.want, typesOf(evs)); diff != "" {
			t.Fatalf("step %d (%s): (-want +got):\n%s", i, s.ip, diff)
		}
		if len(evs) == 1 && (!evs[0].Suspend || !strings.Contains(evs[0].Detail, "3 client networks")) {
			t.Errorf("event %+v: want a suspension request naming 3 networks", evs[0])
		}
		e.clock.Add(time.Minute)
	}
	prd := e.token(kve.EnvPrd)
	for _, ip := range []string{"198.51.100.7", "2001:db8:1:2::1", "203.0.113.5", "192.0.2.1"} {
		u := e.usage(prd, "", func(u *kve.Usage) { u.ClientIP = ip })
		if evs := a.Detect(e.ctx, &u); len(evs) != 0 {
			t.Errorf("prd token from %s: events %v, want none (the rule is for dev tokens)", ip, typesOf(evs))
		}
	}
}

// TestNetworkWindow: networks older than the window do not count.
func TestNetworkWindow(t *testing.T) {
	e := newEnv(t)
	d := e.detector()
	dev := e.token(kve.EnvDev)
	for i, ip := range []string{"198.51.100.7", "203.0.113.5", "192.0.2.1"} {
		u := e.usage(dev, "", func(u *kve.Usage) { u.ClientIP = ip })
		if evs := d.Detect(e.ctx, &u); len(evs) != 0 {
			t.Errorf("network %d, 31 minutes apart: events %v", i+1, typesOf(evs))
		}
		e.clock.Add(31 * time.Minute)
	}
}

func TestNetwork(t *testing.T) {
	for _, tt := range []struct {
		ip, want string
	}{
		{"198.51.100.7", "198.51.100.0/24"},
		{"::ffff:198.51.100.7", "198.51.100.0/24"},
		{"2001:db8:1:2::1", "2001:db8:1::/48"},
		{"fe80::1%eth0", "fe80::/48"},
		{"not an ip", ""},
		{"", ""},
	} {
		p, ok := Network(tt.ip)
		got := ""
		if ok {
			got = p.String()
		}
		if got != tt.want {
			t.Errorf("Network(%q) = %q, want %q", tt.ip, got, tt.want)
		}
	}
}
