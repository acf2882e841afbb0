package manage

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/keyvault-edge/kve/shared/alerts"
	"github.com/keyvault-edge/kve/shared/kve"
	"github.com/keyvault-edge/kve/shared/mail"
	"github.com/keyvault-edge/kve/shared/store"
)

// Breach alerts: the incident log, subscriptions to the alert channel (SNS
// on AWS, local mode's own delivery), test alerts, and leak reports from a
// secret-scanning service. Owners and Admins only (DESIGN §8), except leak
// reports, which the report's signature authenticates.

// initAlerts sets up breach alerting from the configuration.
func (s *Service) initAlerts(cfg Config, deps Deps) {
	s.alerts, s.scanning = deps.Alerts, cfg.ScanningKeys
	envs := cfg.LeakSuspendEnvs
	if envs == nil {
		envs = []kve.Env{kve.EnvStg, kve.EnvPrd}
	}
	s.leakSuspend = map[kve.Env]bool{}
	for _, e := range envs {
		s.leakSuspend[e] = true
	}
	var pub alerts.Publisher
	if deps.Alerts != nil {
		pub = deps.Alerts
	}
	s.responder = alerts.NewResponder(deps.Store, pub, alerts.ResponderConfig{PublicURL: s.publicURL, Now: s.now, Logger: s.log})
}

// tokenAlerting returns a new token's alert settings: alerts on by default
// for prd tokens, automatic suspension on by default, and never off for a
// Developer's token (its blast radius rests on it, SECURITY G10).
func tokenAlerting(env kve.Env, developer bool, alertsOn, autoSuspend *bool) (bool, bool, error) {
	on, suspend := env == kve.EnvPrd, true
	if alertsOn != nil {
		on = *alertsOn
	}
	if autoSuspend != nil {
		suspend = *autoSuspend
	}
	if developer && !suspend {
		return false, false, kve.Errorf(kve.KindForbidden, "forbidden", "developer tokens keep automatic suspension on")
	}
	return on, suspend, nil
}

// applyAlerting applies a patch's alert fields to a token.
func applyAlerting(t *kve.Token, in TokenPatch, now time.Time) {
	if in.Alerts != nil {
		t.Alerts = *in.Alerts
	}
	if in.AutoSuspend != nil {
		t.AutoSuspend = *in.AutoSuspend
	}
	switch {
	case in.Suspended == nil:
	case *in.Suspended && !t.Suspended():
		t.SuspendedAt, t.Suspension = now.UTC(), "manual"
	case !*in.Suspended:
		t.SuspendedAt, t.Suspension = time.Time{}, ""
	}
}

// IncidentQuery narrows the breach alert log.
type IncidentQuery struct {
	TokenID string
	Open    bool // only incidents nobody acknowledged
	Cursor  string
	Limit   int
}

// Incidents lists an organization's breach incidents, most recently seen
// first (Owner, Admin).
func (s *Service) Incidents(ctx context.Context, orgRef string, p Principal, q IncidentQuery) (store.Page[store.Incident], error) {
	m, err := s.Authorize(ctx, orgRef, p, managers...)
	if err != nil {
		return store.Page[store.Incident]{}, err
	}
	page, err := s.store.Incidents(ctx, m.Org.ID, store.IncidentFilter{TokenID: q.TokenID, Open: q.Open, Cursor: q.Cursor, Limit: q.Limit})
	if err != nil {
		return store.Page[store.Incident]{}, fmt.Errorf("list incidents: %w", err)
	}
	return page, nil
}

var errNoIncident = kve.Errorf(kve.KindNotFound, "not_found", "incident not found")

// AckIncident records that the caller acknowledged an incident (Owner,
// Admin); the next breach of its token and type reopens it.
func (s *Service) AckIncident(ctx context.Context, orgRef string, p Principal, id string) (store.Incident, error) {
	m, err := s.Authorize(ctx, orgRef, p, managers...)
	if err != nil {
		return store.Incident{}, err
	}
	now := s.now()
	inc, err := s.store.Incident(ctx, m.Org.ID, id)
	if err != nil {
		if kve.KindOf(err) == kve.KindNotFound {
			return store.Incident{}, errNoIncident
		}
		return store.Incident{}, fmt.Errorf("read incident: %w", err)
	}
	ev := p.Event(m.Org.ID, "incident.ack", id, now).With("type", inc.Type).With("token", inc.TokenID).
		With("count", fmt.Sprint(inc.Count))
	inc, err = s.store.AckIncident(ctx, m.Org.ID, id, p.UserID, now.UTC(), ev)
	if err != nil {
		if kve.KindOf(err) == kve.KindNotFound {
			return store.Incident{}, errNoIncident
		}
		return store.Incident{}, fmt.Errorf("acknowledge incident: %w", err)
	}
	return inc, nil
}

// SubscriptionInput subscribes an endpoint to an organization's alerts.
type SubscriptionInput struct {
	Protocol string `json:"protocol"` // https, http (deployments that allow private networks), email
	Endpoint string `json:"endpoint"` // the webhook URL or the address
}

// AlertSubscription is a subscription and whether its endpoint confirmed
// it (SNS, or local mode, sends a confirmation request first).
type AlertSubscription struct {
	store.Subscription
	Confirmed bool
}

// maxSubscriptions bounds an organization's alert subscriptions.
const maxSubscriptions = 20

var errNoAlerts = kve.Errorf(kve.KindUnavailable, "alerts_not_configured", "breach alert delivery is not configured on this kve")

// AlertSubscriptions lists an organization's subscriptions with their
// state (Owner, Admin).
func (s *Service) AlertSubscriptions(ctx context.Context, orgRef string, p Principal) ([]AlertSubscription, error) {
	m, err := s.Authorize(ctx, orgRef, p, managers...)
	if err != nil {
		return nil, err
	}
	if s.alerts == nil {
		return nil, errNoAlerts
	}
	subs, err := s.store.Subscriptions(ctx, m.Org.ID)
	if err != nil {
		return nil, fmt.Errorf("list subscriptions: %w", err)
	}
	out := make([]AlertSubscription, 0, len(subs))
	for _, sub := range subs {
		ok, err := s.alerts.Confirmed(ctx, sub)
		if err != nil {
			return nil, fmt.Errorf("subscription state: %w", err)
		}
		out = append(out, AlertSubscription{Subscription: sub, Confirmed: ok})
	}
	return out, nil
}

// Subscribe subscribes an endpoint to the organization's alerts (Owner,
// Admin): an SNS subscription filtered to the organization, or local
// mode's own. The endpoint gets a confirmation request first and nothing
// else until it confirms.
func (s *Service) Subscribe(ctx context.Context, orgRef string, p Principal, in SubscriptionInput) (AlertSubscription, error) {
	m, err := s.Authorize(ctx, orgRef, p, managers...)
	if err != nil {
		return AlertSubscription{}, err
	}
	if s.alerts == nil {
		return AlertSubscription{}, errNoAlerts
	}
	protocol, endpoint, err := s.checkEndpoint(in)
	if err != nil {
		return AlertSubscription{}, err
	}
	subs, err := s.store.Subscriptions(ctx, m.Org.ID)
	if err != nil {
		return AlertSubscription{}, fmt.Errorf("list subscriptions: %w", err)
	}
	if len(subs) >= maxSubscriptions {
		return AlertSubscription{}, kve.Errorf(kve.KindConflict, "too_many", "an organization has at most %d alert subscriptions", maxSubscriptions)
	}
	for _, sub := range subs {
		// Checked before SNS is asked: it answers an endpoint subscribed
		// already with that subscription, which a failed insert would
		// then unsubscribe.
		if sub.Endpoint == endpoint {
			return AlertSubscription{}, kve.Errorf(kve.KindConflict, "conflict", "this endpoint is subscribed already")
		}
	}
	now := s.now()
	sub := store.Subscription{ID: kve.NewID("sub_", now), OrgID: m.Org.ID, Protocol: protocol, Endpoint: endpoint,
		CreatedBy: p.UserID, CreatedAt: now.UTC()}
	if sub, err = s.alerts.Subscribe(ctx, sub); err != nil {
		return AlertSubscription{}, err
	}
	ev := p.Event(m.Org.ID, "alert_subscription.create", sub.ID, now).With("protocol", protocol).
		With("endpoint", RedactEndpoint(endpoint))
	if err := s.store.CreateSubscription(ctx, sub, ev); err != nil {
		if kve.KindOf(err) != kve.KindConflict {
			if uerr := s.alerts.Unsubscribe(context.WithoutCancel(ctx), sub); uerr != nil {
				s.log.ErrorContext(ctx, "subscription left behind", "org_id", m.Org.ID, "subscription_id", sub.ID, "err", uerr)
			}
		}
		return AlertSubscription{}, fmt.Errorf("create subscription: %w", err)
	}
	if err := s.alerts.Subscribed(ctx, sub); err != nil {
		return AlertSubscription{}, fmt.Errorf("request confirmation: %w", err)
	}
	confirmed, err := s.alerts.Confirmed(ctx, sub)
	if err != nil {
		return AlertSubscription{}, fmt.Errorf("subscription state: %w", err)
	}
	s.log.InfoContext(ctx, "alert_subscribed", "org_id", m.Org.ID, "subscription_id", sub.ID, "protocol", protocol)
	return AlertSubscription{Subscription: sub, Confirmed: confirmed}, nil
}

// checkEndpoint validates a subscription's protocol and endpoint: https
// webhooks (http only where the deployment allows private networks, as
// for upstreams), or a bare email address. Which addresses a webhook may
// reach is decided when it is dialled (local mode) or by SNS.
func (s *Service) checkEndpoint(in SubscriptionInput) (string, string, error) {
	protocol := strings.ToLower(strings.TrimSpace(in.Protocol))
	endpoint := strings.TrimSpace(in.Endpoint)
	if len(endpoint) > 2048 {
		return "", "", kve.Errorf(kve.KindInvalid, "invalid_endpoint", "an endpoint is at most 2048 characters")
	}
	switch protocol {
	case "email":
		a, err := mail.Address(endpoint)
		if err != nil {
			return "", "", kve.Errorf(kve.KindInvalid, "invalid_endpoint", "endpoint must be a bare email address (ops@example.com)")
		}
		return protocol, a.Address, nil
	case "http", "https":
		if protocol == "http" && !s.insecure {
			return "", "", kve.Errorf(kve.KindInvalid, "invalid_endpoint", "webhooks must use https")
		}
		u, err := url.Parse(endpoint)
		if err != nil || u.Scheme != protocol || u.Hostname() == "" || u.Fragment != "" || u.Opaque != "" {
			return "", "", kve.Errorf(kve.KindInvalid, "invalid_endpoint", "endpoint must be a %s:// URL with a host", protocol)
		}
		return protocol, u.String(), nil
	}
	return "", "", kve.Errorf(kve.KindInvalid, "invalid_protocol", "protocol must be https, http or email")
}

// RedactEndpoint shows an endpoint without the password a webhook URL may
// carry (https://user:pass@host/…, which SNS supports).
func RedactEndpoint(endpoint string) string {
	u, err := url.Parse(endpoint)
	if err != nil || u.User == nil {
		return endpoint
	}
	return u.Redacted()
}

var errNoSubscription = kve.Errorf(kve.KindNotFound, "not_found", "subscription not found")

// Unsubscribe ends a subscription (Owner, Admin).
func (s *Service) Unsubscribe(ctx context.Context, orgRef string, p Principal, id string) error {
	m, err := s.Authorize(ctx, orgRef, p, managers...)
	if err != nil {
		return err
	}
	if s.alerts == nil {
		return errNoAlerts
	}
	sub, err := s.store.Subscription(ctx, m.Org.ID, id)
	if err != nil {
		if kve.KindOf(err) == kve.KindNotFound {
			return errNoSubscription
		}
		return fmt.Errorf("read subscription: %w", err)
	}
	if err := s.alerts.Unsubscribe(ctx, sub); err != nil {
		return err
	}
	ev := p.Event(m.Org.ID, "alert_subscription.delete", id, s.now()).With("protocol", sub.Protocol).
		With("endpoint", RedactEndpoint(sub.Endpoint))
	if err := s.store.DeleteSubscription(ctx, m.Org.ID, id, ev); err != nil {
		if kve.KindOf(err) == kve.KindNotFound {
			return errNoSubscription
		}
		return fmt.Errorf("delete subscription: %w", err)
	}
	return nil
}

// TestAlert sends a test alert to every confirmed subscription of the
// organization (Owner, Admin), and records that it did.
func (s *Service) TestAlert(ctx context.Context, orgRef string, p Principal) error {
	m, err := s.Authorize(ctx, orgRef, p, managers...)
	if err != nil {
		return err
	}
	if s.alerts == nil {
		return errNoAlerts
	}
	now := s.now()
	n, err := alerts.NewTestNotification(m.Org, s.publicURL, now)
	if err != nil {
		return err
	}
	if err := s.store.AddEvent(ctx, p.Event(m.Org.ID, "alert.test", m.Org.ID, now)); err != nil {
		return fmt.Errorf("record test alert: %w", err)
	}
	if err := s.alerts.Publish(ctx, n); err != nil {
		return fmt.Errorf("send test alert: %w", err)
	}
	return nil
}

// maxLeakReports bounds one secret-scanning request.
const maxLeakReports = 1000

// ReportLeaks answers a secret-scanning service (GitHub's partner
// program): the body must be signed by one of the configured keys; every
// reported kve_ token that kve knows, by its HMAC, is a leak_reported
// event of its token, which suspends it when its environment is one of
// LeakSuspendEnvs (and its automatic suspension is on). The answer labels
// each report by the token's SHA-256, never echoing a token.
func (s *Service) ReportLeaks(ctx context.Context, keyID, signature string, body []byte) ([]alerts.LeakVerdict, error) {
	if s.scanning == nil {
		return nil, kve.Errorf(kve.KindNotFound, "no_route", "no such route")
	}
	if err := s.scanning.Verify(keyID, signature, body); err != nil {
		return nil, kve.Wrap(kve.KindUnauthenticated, "invalid_signature", "the report's signature does not verify", err)
	}
	var reports []alerts.LeakReport
	if err := json.Unmarshal(body, &reports); err != nil {
		return nil, kve.Wrap(kve.KindInvalid, "invalid_json", "the report is not a JSON array of matches", err)
	}
	if len(reports) > maxLeakReports {
		return nil, kve.Errorf(kve.KindTooLarge, "request_too_large", "at most %d matches per report", maxLeakReports)
	}
	now := s.now()
	verdicts := make([]alerts.LeakVerdict, 0, len(reports))
	found := 0
	for _, r := range reports {
		v := alerts.LeakVerdict{TokenHash: alerts.TokenHash(r.Token), TokenType: r.Type, Label: alerts.FalsePositive}
		if _, _, ok := kve.ParseTokenValue(r.Token); ok {
			tok, err := s.store.TokenByHash(ctx, s.keyring.Hash(r.Token))
			switch {
			case kve.KindOf(err) == kve.KindNotFound:
			case err != nil:
				return nil, fmt.Errorf("look up reported token: %w", err)
			default:
				v.Label = alerts.TruePositive
				found++
				ev := alerts.Event{Type: alerts.LeakReported, OrgID: tok.OrgID, TokenID: tok.ID, Env: tok.Env, At: now,
					Detail: alerts.Sample(fmt.Sprintf("Secret scanning found the token in public (%s): %s",
						kve.Truncate(r.Source, 40), kve.Truncate(r.URL, 300))),
					Suspend: s.leakSuspend[tok.Env]}
				if err := s.responder.Handle(ctx, []alerts.Event{ev}); err != nil {
					return nil, fmt.Errorf("respond to leaked token %s: %w", tok.ID, err)
				}
			}
		}
		verdicts = append(verdicts, v)
	}
	s.log.InfoContext(ctx, "leak_reports", "reports", len(reports), "true_positives", found)
	return verdicts, nil
}

// unsubscribeAll ends an organization's subscriptions on the channel,
// before the organization is deleted; failures are logged (SNS drops a
// subscription whose endpoint keeps failing, local mode's end with the
// store's rows).
func (s *Service) unsubscribeAll(ctx context.Context, orgID string) {
	if s.alerts == nil {
		return
	}
	subs, err := s.store.Subscriptions(ctx, orgID)
	if err != nil {
		s.log.ErrorContext(ctx, "subscriptions of a deleted org", "org_id", orgID, "err", err)
		return
	}
	for _, sub := range subs {
		if err := s.alerts.Unsubscribe(ctx, sub); err != nil && !errors.Is(err, context.Canceled) {
			s.log.ErrorContext(ctx, "subscription left behind", "org_id", orgID, "subscription_id", sub.ID, "err", err)
		}
	}
}
