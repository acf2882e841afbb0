package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"time"

	"github.com/keyvault-edge/kve/shared/kve"
	"github.com/keyvault-edge/kve/shared/store"
)

const incidentColumns = `id, org_id, token_id, token_name, env, type, severity, first_seen, last_seen, count,
	origin, ip, user_agent, detail, requests, suspended, notified_at, acked_by, acked_at`

func scanIncident(row scanner) (store.Incident, error) {
	var inc store.Incident
	var first, last, notified, acked int64
	var requests string
	err := row.Scan(&inc.ID, &inc.OrgID, &inc.TokenID, &inc.TokenName, &inc.Env, &inc.Type, &inc.Severity,
		&first, &last, &inc.Count, &inc.Origin, &inc.IP, &inc.UserAgent, &inc.Detail, &requests,
		&inc.Suspended, &notified, &inc.AckedBy, &acked)
	if err != nil {
		return store.Incident{}, err
	}
	if err := json.Unmarshal([]byte(requests), &inc.Requests); err != nil {
		return store.Incident{}, fmt.Errorf("decode request ids of incident %s: %w", inc.ID, err)
	}
	inc.FirstSeen, inc.LastSeen = fromMillis(first), fromMillis(last)
	inc.NotifiedAt, inc.AckedAt = fromMillis(notified), fromMillis(acked)
	return inc, nil
}

// RecordIncident implements store.Alerts. The read, the merge and the
// write run in one write transaction, and the store has one write
// connection, so concurrent callers are serialized: the first to find the
// notification window open claims it, the others find it claimed.
func (s *Store) RecordIncident(ctx context.Context, o store.Occurrence) (store.Incident, bool, error) {
	if err := checkOccurrence(&o); err != nil {
		return store.Incident{}, false, err
	}
	var out store.Incident
	var notify bool
	err := s.inTx(ctx, "record incident", func(tx *sql.Tx) error {
		cur, err := scanIncident(tx.QueryRowContext(ctx, `SELECT `+incidentColumns+` FROM incidents
			WHERE org_id = ? AND id = ?`, o.OrgID, o.ID))
		exists := err == nil
		if err != nil && err != sql.ErrNoRows {
			return classify("record incident", "", err)
		}
		out, notify = mergeOccurrence(cur, exists, &o)
		requests, err := json.Marshal(out.Requests)
		if err != nil {
			return fmt.Errorf("record incident: %w", err)
		}
		_, err = tx.ExecContext(ctx, `INSERT OR REPLACE INTO incidents (`+incidentColumns+`)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			out.ID, out.OrgID, out.TokenID, out.TokenName, out.Env, out.Type, out.Severity,
			millis(out.FirstSeen), millis(out.LastSeen), out.Count, out.Origin, out.IP, out.UserAgent, out.Detail,
			string(requests), out.Suspended, millis(out.NotifiedAt), out.AckedBy, millis(out.AckedAt))
		return classify("record incident", "", err)
	})
	if err != nil {
		return store.Incident{}, false, err
	}
	return out, notify, nil
}

// checkOccurrence refuses an occurrence that names no incident.
func checkOccurrence(o *store.Occurrence) error {
	if o.ID == "" || o.OrgID == "" || o.TokenID == "" || o.Type == "" || o.At.IsZero() || o.Count < 1 {
		return kve.Errorf(kve.KindInvalid, "invalid_occurrence",
			"an occurrence needs an incident id, an organization, a token, a type, a time and a count of at least 1")
	}
	return nil
}

// mergeOccurrence applies o to the incident as stored (cur, when exists)
// and says whether o's caller claimed the notification.
func mergeOccurrence(cur store.Incident, exists bool, o *store.Occurrence) (store.Incident, bool) {
	inc := cur
	if !exists || !cur.AckedAt.IsZero() {
		// New, or reopened after an acknowledgement: counting starts again.
		inc = store.Incident{ID: o.ID, OrgID: o.OrgID, TokenID: o.TokenID, Type: o.Type,
			FirstSeen: o.At, NotifiedAt: cur.NotifiedAt}
	}
	inc.TokenName, inc.Env, inc.Severity = o.TokenName, o.Env, o.Severity
	inc.Count += o.Count
	if o.At.After(inc.LastSeen) {
		inc.LastSeen = o.At
	}
	inc.Origin, inc.IP, inc.UserAgent, inc.Detail = o.Origin, o.IP, o.UserAgent, o.Detail
	inc.Suspended = inc.Suspended || o.Suspended
	inc.Requests = append(append([]string{}, inc.Requests...), o.Requests...)
	if n := len(inc.Requests); n > store.MaxRequestIDs {
		inc.Requests = inc.Requests[n-store.MaxRequestIDs:]
	}
	notify := o.Window > 0 && (inc.NotifiedAt.IsZero() || !inc.NotifiedAt.After(o.At.Add(-o.Window)))
	if notify {
		inc.NotifiedAt = o.At
	}
	return inc, notify
}

// Incident implements store.Alerts.
func (s *Store) Incident(ctx context.Context, orgID, id string) (store.Incident, error) {
	inc, err := scanIncident(s.read.QueryRowContext(ctx, `SELECT `+incidentColumns+` FROM incidents
		WHERE org_id = ? AND id = ?`, orgID, id))
	return inc, classify("read incident", "", err)
}

// Incidents implements store.Alerts: most recently seen first.
func (s *Store) Incidents(ctx context.Context, orgID string, f store.IncidentFilter) (store.Page[store.Incident], error) {
	after, err := parseCursor(f.Cursor)
	if err != nil {
		return store.Page[store.Incident]{}, err
	}
	limit := store.Limit(f.Limit)
	rows, err := s.read.QueryContext(ctx, `SELECT `+incidentColumns+` FROM incidents
		WHERE org_id = ?1
		  AND (?2 = '' OR token_id = ?2)
		  AND (NOT ?3 OR acked_at = 0)
		  AND (last_seen, id) < (?4, ?5)
		ORDER BY last_seen DESC, id DESC LIMIT ?6`,
		orgID, f.TokenID, f.Open, after.at, after.id, limit+1)
	if err != nil {
		return store.Page[store.Incident]{}, classify("list incidents", "", err)
	}
	items, err := collect(rows, scanIncident)
	if err != nil {
		return store.Page[store.Incident]{}, classify("list incidents", "", err)
	}
	return page(items, limit, func(inc *store.Incident) cursor { return cursor{millis(inc.LastSeen), inc.ID} }), nil
}

var errAcked = kve.Errorf(kve.KindConflict, "incident_acknowledged", "the incident is acknowledged already")

// AckIncident implements store.Alerts.
func (s *Store) AckIncident(ctx context.Context, orgID, id, userID string, at time.Time, ev kve.Event) (store.Incident, error) {
	var out store.Incident
	err := s.inTx(ctx, "acknowledge incident", func(tx *sql.Tx) error {
		inc, err := scanIncident(tx.QueryRowContext(ctx, `SELECT `+incidentColumns+` FROM incidents
			WHERE org_id = ? AND id = ?`, orgID, id))
		if err != nil {
			return classify("acknowledge incident", "", err)
		}
		if !inc.AckedAt.IsZero() {
			return errAcked
		}
		if _, err := tx.ExecContext(ctx, `UPDATE incidents SET acked_by = ?, acked_at = ? WHERE org_id = ? AND id = ?`,
			userID, millis(at), orgID, id); err != nil {
			return classify("acknowledge incident", "", err)
		}
		inc.AckedBy, inc.AckedAt = userID, at
		out = inc
		return insertEvent(ctx, tx, ev)
	})
	return out, err
}

// counterTTL is how long detection counters are kept: the spike rule reads
// an hour back, the network rule its window (an hour by default).
const counterTTL = 2 * time.Hour

// AddRequests implements store.Alerts; it prunes the token's minutes older
// than counterTTL in the same transaction.
func (s *Store) AddRequests(ctx context.Context, orgID, tokenID string, minute time.Time, n int64) (int64, error) {
	m := minute.Unix() / 60
	var count int64
	err := s.inTx(ctx, "add requests", func(tx *sql.Tx) error {
		err := tx.QueryRowContext(ctx, `INSERT INTO token_minutes (org_id, token_id, minute, count) VALUES (?, ?, ?, ?)
			ON CONFLICT (org_id, token_id, minute) DO UPDATE SET count = count + excluded.count
			RETURNING count`, orgID, tokenID, m, n).Scan(&count)
		if err != nil {
			return classify("add requests", "", err)
		}
		_, err = tx.ExecContext(ctx, `DELETE FROM token_minutes WHERE org_id = ? AND token_id = ? AND minute < ?`,
			orgID, tokenID, m-int64(counterTTL/time.Minute))
		return classify("prune request counts", "", err)
	})
	return count, err
}

// Requests implements store.Alerts.
func (s *Store) Requests(ctx context.Context, orgID, tokenID string, from, to time.Time) (int64, error) {
	var n int64
	err := s.read.QueryRowContext(ctx, `SELECT coalesce(sum(count), 0) FROM token_minutes
		WHERE org_id = ? AND token_id = ? AND minute >= ? AND minute < ?`,
		orgID, tokenID, from.Unix()/60, (to.Unix()+59)/60).Scan(&n)
	return n, classify("count requests", "", err)
}

// AddNetwork implements store.Alerts; networks not seen within the window
// are pruned in the same transaction.
func (s *Store) AddNetwork(ctx context.Context, orgID, tokenID, network string, at time.Time, window time.Duration) (int, error) {
	var n int
	err := s.inTx(ctx, "add network", func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `INSERT INTO token_networks (org_id, token_id, network, seen) VALUES (?, ?, ?, ?)
			ON CONFLICT (org_id, token_id, network) DO UPDATE SET seen = max(seen, excluded.seen)`,
			orgID, tokenID, network, millis(at)); err != nil {
			return classify("add network", "", err)
		}
		since := millis(at.Add(-window))
		if _, err := tx.ExecContext(ctx, `DELETE FROM token_networks WHERE org_id = ? AND token_id = ? AND seen <= ?`,
			orgID, tokenID, since); err != nil {
			return classify("prune networks", "", err)
		}
		err := tx.QueryRowContext(ctx, `SELECT count(*) FROM token_networks WHERE org_id = ? AND token_id = ?`,
			orgID, tokenID).Scan(&n)
		return classify("count networks", "", err)
	})
	return n, err
}

const subscriptionColumns = `id, org_id, protocol, endpoint, arn, confirm_hash, confirmed_at, created_by, created_at`

func scanSubscription(row scanner) (store.Subscription, error) {
	var sub store.Subscription
	var confirmed, created int64
	if err := row.Scan(&sub.ID, &sub.OrgID, &sub.Protocol, &sub.Endpoint, &sub.ARN, &sub.ConfirmHash,
		&confirmed, &sub.CreatedBy, &created); err != nil {
		return store.Subscription{}, err
	}
	sub.ConfirmedAt, sub.CreatedAt = fromMillis(confirmed), fromMillis(created)
	return sub, nil
}

// CreateSubscription implements store.Alerts; the organization must not be
// deleted.
func (s *Store) CreateSubscription(ctx context.Context, sub store.Subscription, ev kve.Event) error {
	return s.inTx(ctx, "create subscription", func(tx *sql.Tx) error {
		if _, err := liveOrg(ctx, tx, sub.OrgID); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, `INSERT INTO alert_subscriptions (`+subscriptionColumns+`)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			sub.ID, sub.OrgID, sub.Protocol, sub.Endpoint, sub.ARN, sub.ConfirmHash, millis(sub.ConfirmedAt),
			sub.CreatedBy, millis(sub.CreatedAt))
		if err != nil {
			return classify("create subscription", "this endpoint is subscribed already", err)
		}
		return insertEvent(ctx, tx, ev)
	})
}

// Subscription implements store.Alerts.
func (s *Store) Subscription(ctx context.Context, orgID, id string) (store.Subscription, error) {
	sub, err := scanSubscription(s.read.QueryRowContext(ctx, `SELECT `+subscriptionColumns+`
		FROM alert_subscriptions WHERE org_id = ? AND id = ?`, orgID, id))
	return sub, classify("read subscription", "", err)
}

// Subscriptions implements store.Alerts: oldest first.
func (s *Store) Subscriptions(ctx context.Context, orgID string) ([]store.Subscription, error) {
	rows, err := s.read.QueryContext(ctx, `SELECT `+subscriptionColumns+` FROM alert_subscriptions
		WHERE org_id = ? ORDER BY created_at, id`, orgID)
	if err != nil {
		return nil, classify("list subscriptions", "", err)
	}
	subs, err := collect(rows, scanSubscription)
	return subs, classify("list subscriptions", "", err)
}

// ConfirmSubscription implements store.Alerts.
func (s *Store) ConfirmSubscription(ctx context.Context, orgID, id string, at time.Time) (store.Subscription, error) {
	var out store.Subscription
	err := s.inTx(ctx, "confirm subscription", func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE alert_subscriptions SET confirmed_at = ? WHERE org_id = ? AND id = ?`,
			millis(at), orgID, id)
		if err != nil {
			return classify("confirm subscription", "", err)
		}
		if err := mustChange("confirm subscription", res); err != nil {
			return err
		}
		out, err = scanSubscription(tx.QueryRowContext(ctx, `SELECT `+subscriptionColumns+`
			FROM alert_subscriptions WHERE org_id = ? AND id = ?`, orgID, id))
		return classify("confirm subscription", "", err)
	})
	return out, err
}

// DeleteSubscription implements store.Alerts; the subscription's pending
// deliveries go with it.
func (s *Store) DeleteSubscription(ctx context.Context, orgID, id string, ev kve.Event) error {
	return s.inTx(ctx, "delete subscription", func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `DELETE FROM alert_subscriptions WHERE org_id = ? AND id = ?`, orgID, id)
		if err != nil {
			return classify("delete subscription", "", err)
		}
		if err := mustChange("delete subscription", res); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM alert_outbox WHERE org_id = ? AND subscription_id = ?`, orgID, id); err != nil {
			return classify("delete subscription deliveries", "", err)
		}
		return insertEvent(ctx, tx, ev)
	})
}
