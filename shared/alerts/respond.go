package alerts

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/keyvault-edge/kve/shared/kve"
	"github.com/keyvault-edge/kve/shared/store"
)

// ResponderConfig tunes a Responder. Zero values take the defaults noted.
type ResponderConfig struct {
	PublicURL string           // the dashboard's base URL, for links in messages
	Window    time.Duration    // flood control, default Window
	Now       func() time.Time // default time.Now
	Logger    *slog.Logger     // default slog.Default()
	// CacheTTL bounds how stale the token settings (alerts on, automatic
	// suspension) and organization slugs read for a decision may be;
	// default 30 s. A suspension always reads the token fresh.
	CacheTTL time.Duration
}

// Responder turns breach events into incidents, suspensions and
// notifications. It is safe for concurrent use.
type Responder struct {
	store     Store
	pub       Publisher // nil: incidents are recorded, nothing is sent
	publicURL string
	window    time.Duration
	ttl       time.Duration
	now       func() time.Time
	log       *slog.Logger

	mu     sync.Mutex
	tokens map[string]cached[kve.Token] // by org id + "/" + token id
	orgs   map[string]cached[kve.Org]
	swept  time.Time
}

type cached[T any] struct {
	v  T
	at time.Time
}

// NewResponder returns a Responder over st, notifying through pub.
func NewResponder(st Store, pub Publisher, cfg ResponderConfig) *Responder {
	r := &Responder{store: st, pub: pub, publicURL: cfg.PublicURL, window: cfg.Window, ttl: cfg.CacheTTL,
		now: cfg.Now, log: cfg.Logger, tokens: map[string]cached[kve.Token]{}, orgs: map[string]cached[kve.Org]{}}
	if r.window <= 0 {
		r.window = Window
	}
	if r.ttl <= 0 {
		r.ttl = 30 * time.Second
	}
	if r.now == nil {
		r.now = time.Now
	}
	if r.log == nil {
		r.log = slog.Default()
	}
	return r
}

// Handle responds to events of one (organization, token, type): it
// suspends the token when an event asks for it and the token allows it,
// adds the events to their incident, and publishes the incident when the
// token's alerts are on (or kve just suspended it: a token that stops
// working must never do so silently) and the store grants this caller the
// window's notification. The last event's samples stand for all.
func (r *Responder) Handle(ctx context.Context, evs []Event) error {
	if len(evs) == 0 {
		return nil
	}
	last := &evs[len(evs)-1]
	tok, err := r.token(ctx, last.OrgID, last.TokenID)
	if err != nil {
		return fmt.Errorf("respond to %s: %w", last.Type, err)
	}
	suspended := false
	for i := range evs {
		if evs[i].Suspend && tok.AutoSuspend && !tok.Suspended() && !tok.Revoked() {
			if suspended, err = r.suspend(ctx, &evs[i]); err != nil {
				return err
			}
			break
		}
	}
	occ := store.Occurrence{
		ID: IncidentID(last.OrgID, last.TokenID, last.Type), OrgID: last.OrgID, TokenID: last.TokenID,
		TokenName: tok.Name, Env: tok.Env, Type: string(last.Type), Severity: last.Type.Severity(), At: last.At,
		Origin: last.Origin, IP: last.IP, UserAgent: last.UserAgent, Detail: last.Detail, Suspended: suspended,
	}
	if occ.Env == "" {
		occ.Env = last.Env
	}
	if suspended {
		occ.Severity = SeverityCritical
	}
	for i := range evs {
		occ.Count += evs[i].count()
		if id := evs[i].RequestID; id != "" {
			occ.Requests = append(occ.Requests, id)
		}
	}
	if (tok.Alerts || suspended) && r.pub != nil {
		occ.Window = r.window
	}
	inc, notify, err := r.store.RecordIncident(ctx, occ)
	if err != nil {
		return fmt.Errorf("record %s incident: %w", last.Type, err)
	}
	if !notify {
		return nil
	}
	return r.publish(ctx, &inc)
}

// suspend suspends the token for ev, with an audit event by "system". It
// reports whether this call suspended it (false when someone else did, or
// it was revoked, meanwhile).
func (r *Responder) suspend(ctx context.Context, ev *Event) (bool, error) {
	at := r.now().UTC()
	audit := system.Event(ev.OrgID, "token.suspend", ev.TokenID, at).
		With("type", string(ev.Type)).With("incident", IncidentID(ev.OrgID, ev.TokenID, ev.Type))
	_, err := r.store.UpdateToken(ctx, ev.OrgID, ev.TokenID, func(t *kve.Token) error {
		if t.Suspended() || t.Revoked() || !t.AutoSuspend {
			return errUnchanged
		}
		t.SuspendedAt, t.Suspension, t.UpdatedAt = at, string(ev.Type), at
		return nil
	}, audit)
	r.forget(ev.OrgID, ev.TokenID)
	switch {
	case errors.Is(err, errUnchanged):
		return false, nil
	case err != nil:
		return false, fmt.Errorf("suspend token %s: %w", ev.TokenID, err)
	}
	r.log.WarnContext(ctx, "token_suspended", "org_id", ev.OrgID, "token_id", ev.TokenID, "type", string(ev.Type))
	return true, nil
}

var errUnchanged = errors.New("token needs no suspension")

// publish sends the incident's notification. An organization that is gone
// gets none.
func (r *Responder) publish(ctx context.Context, inc *store.Incident) error {
	org, err := r.org(ctx, inc.OrgID)
	if kve.KindOf(err) == kve.KindNotFound {
		return nil
	}
	if err != nil {
		return fmt.Errorf("publish %s incident: %w", inc.Type, err)
	}
	n, err := NewNotification(inc, org, r.publicURL)
	if err != nil {
		return err
	}
	if err := r.pub.Publish(ctx, n); err != nil {
		return fmt.Errorf("publish %s incident %s: %w", inc.Type, inc.ID, err)
	}
	r.log.InfoContext(ctx, "alert_published", "org_id", inc.OrgID, "token_id", inc.TokenID,
		"incident_id", inc.ID, "type", inc.Type, "count", inc.Count)
	return nil
}

// token reads a token through the cache.
func (r *Responder) token(ctx context.Context, orgID, id string) (kve.Token, error) {
	k := orgID + "/" + id
	now := r.now()
	r.mu.Lock()
	c, ok := r.tokens[k]
	r.mu.Unlock()
	if ok && now.Sub(c.at) < r.ttl {
		return c.v, nil
	}
	t, err := r.store.Token(ctx, orgID, id)
	if err != nil {
		return kve.Token{}, fmt.Errorf("read token %s: %w", id, err)
	}
	t.Hash, t.Sealed = nil, nil // never needed here
	r.mu.Lock()
	r.sweep(now)
	r.tokens[k] = cached[kve.Token]{v: t, at: now}
	r.mu.Unlock()
	return t, nil
}

func (r *Responder) forget(orgID, id string) {
	r.mu.Lock()
	delete(r.tokens, orgID+"/"+id)
	r.mu.Unlock()
}

// org reads an organization through the cache.
func (r *Responder) org(ctx context.Context, id string) (kve.Org, error) {
	now := r.now()
	r.mu.Lock()
	c, ok := r.orgs[id]
	r.mu.Unlock()
	if ok && now.Sub(c.at) < r.ttl {
		return c.v, nil
	}
	o, err := r.store.Org(ctx, id)
	if err != nil {
		return kve.Org{}, err
	}
	r.mu.Lock()
	r.orgs[id] = cached[kve.Org]{v: o, at: now}
	r.mu.Unlock()
	return o, nil
}

// sweep drops stale cache entries once a minute, so the caches hold only
// the tokens and organizations seen lately. r.mu is held.
func (r *Responder) sweep(now time.Time) {
	if now.Sub(r.swept) < time.Minute {
		return
	}
	r.swept = now
	for k, c := range r.tokens {
		if now.Sub(c.at) >= r.ttl {
			delete(r.tokens, k)
		}
	}
	for k, c := range r.orgs {
		if now.Sub(c.at) >= r.ttl {
			delete(r.orgs, k)
		}
	}
}
