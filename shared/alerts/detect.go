package alerts

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"sync"
	"time"

	"github.com/keyvault-edge/kve/shared/kve"
)

// Counters are the store's detection counters: they make the spike and
// network rules hold across execution environments.
type Counters interface {
	AddRequests(ctx context.Context, orgID, tokenID string, minute time.Time, n int64) (int64, error)
	Requests(ctx context.Context, orgID, tokenID string, from, to time.Time) (int64, error)
	AddNetwork(ctx context.Context, orgID, tokenID, network string, at time.Time, window time.Duration) (int, error)
}

// SpikeRule says when a token's traffic is a usage spike: requests in the
// current UTC minute above max(Factor × the token's average per minute over
// the 60 minutes before it, Floor). With the defaults, a token that ran 2
// requests a minute for the last hour spikes at 31 in a minute, one at 50
// a minute spikes at 501.
type SpikeRule struct {
	Factor float64 // default 10
	Floor  int64   // default 30
}

// NetworkRule says when a dev token is used from too many places: its
// Limit-th distinct client network (a /24 for IPv4, a /48 for IPv6) within
// Window raises env_mismatch and asks for its suspension (SECURITY T09,
// G10).
type NetworkRule struct {
	Limit  int           // default 3
	Window time.Duration // default 1 h
}

// DetectorConfig tunes a Detector. Zero values take the defaults noted.
type DetectorConfig struct {
	Spike   SpikeRule
	Network NetworkRule
	// FlushEvery and FlushAfter bound how many requests of a token an
	// execution environment counts before it adds them to the store's
	// minute (default 10), and for how long (default 5 s): the spike rule
	// sees every environment's requests with that delay, for one write
	// per token per 10 requests (or per minute, on a quiet token).
	FlushEvery int64
	FlushAfter time.Duration
	Now        func() time.Time // default time.Now
	Logger     *slog.Logger     // default slog.Default()
}

// Detector turns usage records into breach events. It keeps per-token
// state for the spike and network rules in memory (what is still to be
// counted), and the truth in the store (Counters), so that the rules hold
// across execution environments. It is safe for concurrent use.
type Detector struct {
	counters Counters
	spike    SpikeRule
	network  NetworkRule
	every    int64
	after    time.Duration
	now      func() time.Time
	log      *slog.Logger

	mu    sync.Mutex
	rates map[tokenKey]*rate
	nets  map[tokenKey]map[netip.Prefix]time.Time // networks reported to the store, and when
	swept time.Time
}

type tokenKey struct{ org, token string }

// rate is a token's requests not yet added to the store.
type rate struct {
	minute  time.Time // the UTC minute pending counts
	pending int64
	flushed time.Time // when this environment last added to the store
	// baseline of minute, read once per minute and environment
	baseMinute time.Time
	threshold  int64
	average    float64
	last       kve.Usage // the latest record: the sample of a spike
	stale      []flush   // earlier minutes' remainders, to add at the next flush
	batched    bool      // added to in the batch being detected
}

// netRefresh is how often an environment re-reports a network it already
// reported, so the store's "last seen" stays within the window.
const netRefresh = 10 * time.Minute

// NewDetector returns a Detector counting in c.
func NewDetector(c Counters, cfg DetectorConfig) *Detector {
	d := &Detector{counters: c, spike: cfg.Spike, network: cfg.Network, every: cfg.FlushEvery, after: cfg.FlushAfter,
		now: cfg.Now, log: cfg.Logger, rates: map[tokenKey]*rate{}, nets: map[tokenKey]map[netip.Prefix]time.Time{}}
	if d.spike.Factor <= 0 {
		d.spike.Factor = 10
	}
	if d.spike.Floor <= 0 {
		d.spike.Floor = 30
	}
	if d.network.Limit <= 0 {
		d.network.Limit = 3
	}
	if d.network.Window <= 0 {
		d.network.Window = time.Hour
	}
	if d.every <= 0 {
		d.every = 10
	}
	if d.after <= 0 {
		d.after = 5 * time.Second
	}
	if d.now == nil {
		d.now = time.Now
	}
	if d.log == nil {
		d.log = slog.Default()
	}
	return d
}

// Detect returns the breach events of one usage record: DetectAll of one.
func (d *Detector) Detect(ctx context.Context, u *kve.Usage) []Event {
	return d.DetectAll(ctx, []kve.Usage{*u})
}

// DetectAll returns the breach events of usage records, in order. Records
// without a token (an unknown token is nobody's breach) have none. It
// calls the store only for the spike and network rules, and then rarely:
// a batch's requests of a token are added to the store's minute at most
// once (see DetectorConfig), and a network once per environment and
// netRefresh. A store error costs that rule one round, logged.
func (d *Detector) DetectAll(ctx context.Context, recs []kve.Usage) []Event {
	var evs []Event
	var counted []tokenKey // tokens whose requests this batch added to, in order
	for i := range recs {
		u := &recs[i]
		if u.TokenID == "" || u.OrgID == "" {
			continue
		}
		if t, detail := refusal(u.Reason); t != "" {
			evs = append(evs, d.event(u, t, detail))
		}
		if !valid(u.Reason) {
			continue // a token that no longer works is counted no further
		}
		if u.Env == kve.EnvPrd && u.Origin != "" {
			if o, err := kve.ParseOrigin(u.Origin); err == nil && o.IsLocal() {
				evs = append(evs, d.event(u, EnvMismatch, "A prd token was used from a localhost origin."))
			}
		}
		if k, first := d.add(u); first {
			counted = append(counted, k)
		}
		if u.Env == kve.EnvDev {
			if ev, ok := d.networkEvent(ctx, u); ok {
				evs = append(evs, ev)
			}
		}
	}
	for _, k := range counted {
		if ev, ok := d.flush(ctx, k); ok {
			evs = append(evs, ev)
		}
	}
	return evs
}

// refusal maps the proxy's refusal reasons to breach types.
func refusal(reason string) (Type, string) {
	switch reason {
	case "origin":
		return OriginNotAllowed, "A browser request came from an origin that is not on the token's list."
	case "origin_repeated":
		return OriginNotAllowed, "A request carried more than one Origin header."
	case "server_use":
		return ServerUse, "A request without an Origin (a server or script) used a token that allows browsers only."
	case "ip":
		return IPNotAllowed, "A request came from a client address outside the token's IP ranges."
	case "revoked":
		return RevokedTokenUsed, "A revoked token was presented again."
	case "expired":
		return ExpiredTokenUsed, "An expired token was presented again."
	case "suspended":
		return SuspendedTokenUsed, "A suspended token was presented again."
	}
	return "", ""
}

// valid reports whether a record's token still works: only those count
// toward the spike and network rules.
func valid(reason string) bool {
	switch reason {
	case "revoked", "expired", "suspended", "mismatch":
		return false
	}
	return true
}

func (d *Detector) event(u *kve.Usage, t Type, detail string) Event {
	return Event{Type: t, OrgID: u.OrgID, TokenID: u.TokenID, Env: u.Env, At: u.At, RequestID: u.RequestID,
		Origin: Sample(u.Origin), IP: Sample(u.ClientIP), UserAgent: Sample(u.UserAgent), Detail: detail}
}

// add adds a record to its token's pending count and reports whether it
// is the first of the batch for the token (the caller flushes each such
// token once the batch is added).
func (d *Detector) add(u *kve.Usage) (tokenKey, bool) {
	k := tokenKey{u.OrgID, u.TokenID}
	minute := u.At.UTC().Truncate(time.Minute)
	d.mu.Lock()
	defer d.mu.Unlock()
	d.sweep(d.now())
	r := d.rates[k]
	if r == nil {
		r = &rate{minute: minute}
		d.rates[k] = r
	}
	switch {
	case minute.After(r.minute):
		if r.pending > 0 {
			r.stale = append(r.stale, flush{minute: r.minute, n: r.pending}) // a previous minute's remainder
		}
		r.minute, r.pending = minute, 1
	case minute.Equal(r.minute):
		r.pending++
	}
	r.last = *u
	first := !r.batched
	r.batched = true
	return k, first
}

// flush adds a token's pending requests to the store when a flush is due
// (FlushEvery requests, or FlushAfter since the last) and applies the
// spike rule to the minute's total.
func (d *Detector) flush(ctx context.Context, k tokenKey) (Event, bool) {
	now := d.now()
	d.mu.Lock()
	r := d.rates[k]
	if r == nil {
		d.mu.Unlock()
		return Event{}, false
	}
	r.batched = false
	stale := r.stale
	r.stale = nil
	var due flush
	if r.pending >= d.every || now.Sub(r.flushed) >= d.after {
		due = flush{minute: r.minute, n: r.pending}
		r.pending, r.flushed = 0, now
	}
	sample := r.last
	d.mu.Unlock()

	for _, f := range stale {
		if _, err := d.counters.AddRequests(ctx, k.org, k.token, f.minute, f.n); err != nil {
			d.log.WarnContext(ctx, "spike count failed", "org_id", k.org, "token_id", k.token, "err", err)
		}
	}
	if due.n == 0 {
		return Event{}, false
	}
	total, err := d.counters.AddRequests(ctx, k.org, k.token, due.minute, due.n)
	if err != nil {
		d.log.WarnContext(ctx, "spike count failed", "org_id", k.org, "token_id", k.token, "err", err)
		return Event{}, false
	}
	if total <= d.spike.Floor {
		return Event{}, false // under the floor no baseline can make a spike
	}
	threshold, average, err := d.threshold(ctx, k, due.minute)
	if err != nil {
		d.log.WarnContext(ctx, "spike baseline failed", "org_id", k.org, "token_id", k.token, "err", err)
		return Event{}, false
	}
	if total <= threshold {
		return Event{}, false
	}
	ev := d.event(&sample, UsageSpike, fmt.Sprintf(
		"%d requests in the minute from %s UTC, above this token's spike threshold of %d (10× its average of %.1f a minute over the hour before, at least %d).",
		total, due.minute.Format("15:04"), threshold, average, d.spike.Floor))
	ev.Count = due.n
	return ev, true
}

type flush struct {
	minute time.Time
	n      int64
}

// threshold returns the spike threshold of a token's minute, reading its
// baseline (the 60 minutes before) once per minute and environment.
func (d *Detector) threshold(ctx context.Context, k tokenKey, minute time.Time) (int64, float64, error) {
	d.mu.Lock()
	r := d.rates[k]
	if r != nil && r.baseMinute.Equal(minute) {
		t, a := r.threshold, r.average
		d.mu.Unlock()
		return t, a, nil
	}
	d.mu.Unlock()
	n, err := d.counters.Requests(ctx, k.org, k.token, minute.Add(-time.Hour), minute)
	if err != nil {
		return 0, 0, err
	}
	average := float64(n) / 60
	threshold := max(int64(d.spike.Factor*average), d.spike.Floor)
	d.mu.Lock()
	if r := d.rates[k]; r != nil {
		r.baseMinute, r.threshold, r.average = minute, threshold, average
	}
	d.mu.Unlock()
	return threshold, average, nil
}

// networkEvent applies the network rule to a dev token's record: a network
// new to this environment (or not reported for netRefresh) is added to the
// store, which says how many the token was used from within the window.
func (d *Detector) networkEvent(ctx context.Context, u *kve.Usage) (Event, bool) {
	nw, ok := Network(u.ClientIP)
	if !ok {
		return Event{}, false
	}
	k := tokenKey{u.OrgID, u.TokenID}
	d.mu.Lock()
	seen := d.nets[k]
	if seen == nil {
		seen = map[netip.Prefix]time.Time{}
		d.nets[k] = seen
	}
	last, known := seen[nw]
	if known && u.At.Sub(last) < netRefresh {
		d.mu.Unlock()
		return Event{}, false
	}
	seen[nw] = u.At
	d.mu.Unlock()
	n, err := d.counters.AddNetwork(ctx, u.OrgID, u.TokenID, nw.String(), u.At, d.network.Window)
	if err != nil {
		d.log.WarnContext(ctx, "network count failed", "org_id", u.OrgID, "token_id", u.TokenID, "err", err)
		d.mu.Lock()
		delete(seen, nw) // report it again on the next request
		d.mu.Unlock()
		return Event{}, false
	}
	if n < d.network.Limit {
		return Event{}, false
	}
	ev := d.event(u, EnvMismatch, fmt.Sprintf(
		"A dev token was used from %d client networks within %s (the latest: %s).", n, d.network.Window, nw))
	ev.Suspend = true
	return ev, true
}

// Network returns the client network of an address: its /24 (IPv4) or
// /48 (IPv6), IPv4-mapped addresses unmapped.
func Network(ip string) (netip.Prefix, bool) {
	a, err := netip.ParseAddr(ip)
	if err != nil {
		return netip.Prefix{}, false
	}
	a = a.Unmap().WithZone("")
	bits := 48
	if a.Is4() {
		bits = 24
	}
	p, err := a.Prefix(bits)
	return p, err == nil
}

// sweep forgets tokens idle for a while, once a minute. d.mu is held.
func (d *Detector) sweep(now time.Time) {
	if now.Sub(d.swept) < time.Minute {
		return
	}
	d.swept = now
	for k, r := range d.rates {
		// A quiet token's last few requests may go uncounted: too few to
		// make a spike.
		if now.Sub(r.flushed) > 2*time.Minute && now.Sub(r.minute) > 2*time.Minute {
			delete(d.rates, k)
		}
	}
	for k, seen := range d.nets {
		for nw, at := range seen {
			if now.Sub(at) > d.network.Window {
				delete(seen, nw)
			}
		}
		if len(seen) == 0 {
			delete(d.nets, k)
		}
	}
}
