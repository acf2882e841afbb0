package dynamo

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/keyvault-edge/kve/shared/kve"
	"github.com/keyvault-edge/kve/shared/store"
)

// Breach alerting's items (the access patterns are listed in table.go):
//
//	incidents of an org        alerts#<org>            incident#<id>        UpdateItem (ADD count), Query
//	requests per token minute  detect#<org>#<token>    minute#<unix minute> UpdateItem ADD; Query range; TTL 2 h
//	networks a token used      detect#<org>#<token>    net#<network>        UpdateItem SET seen; Query; TTL window + 1 h
//	org → subscriptions        org#<org>               subscription#<id>    transaction with its endpoint claim
//	endpoint subscribed once   org#<org>               subendpoint#<sha256> written with the subscription
//
// An incident is hit by every request of a flood, from many execution
// environments at once: it is written with UpdateItem, which DynamoDB
// serializes on the item (concurrent transactions on it would cancel each
// other), with ADD for the count. The notification claim is a second,
// conditional UpdateItem, made only when the first answer shows the
// window open, so a flood costs one write per request plus one claim per
// window and environment.

const (
	prefixIncident     = "incident#"
	prefixMinute       = "minute#"
	prefixNetwork      = "net#"
	prefixSubscription = "subscription#"
	prefixSubEndpoint  = "subendpoint#"
)

func alertsPK(orgID string) string          { return "alerts#" + orgID }
func detectPK(orgID, tokenID string) string { return "detect#" + orgID + "#" + tokenID }
func minuteSK(t time.Time) string           { return fmt.Sprintf("%s%012d", prefixMinute, t.Unix()/60) }
func subEndpointSK(endpoint string) string {
	sum := sha256.Sum256([]byte(endpoint))
	return prefixSubEndpoint + hex.EncodeToString(sum[:])
}

// counterTTL is how long request counts are kept: the spike rule reads an
// hour back.
const counterTTL = 2 * time.Hour

// errCondition marks an UpdateItem whose condition failed.
var errCondition = errors.New("condition failed")

// updateOne runs one UpdateItem and returns the item as written. A failed
// condition is errCondition, with the item as it was (nil when missing).
func (s *Store) updateOne(ctx context.Context, k item, e *expr, upd, cond string) (item, item, error) {
	out, err := s.db.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName: s.table, Key: k, UpdateExpression: &upd, ConditionExpression: optional(cond),
		ExpressionAttributeNames: e.Names(), ExpressionAttributeValues: e.Values(),
		ReturnValues:                        types.ReturnValueAllNew,
		ReturnValuesOnConditionCheckFailure: types.ReturnValuesOnConditionCheckFailureAllOld,
	})
	var ccf *types.ConditionalCheckFailedException
	if errors.As(err, &ccf) {
		return nil, ccf.Item, errCondition
	}
	if err != nil {
		return nil, nil, translate(err)
	}
	return out.Attributes, nil, nil
}

func strs(list []string) types.AttributeValue {
	l := make([]types.AttributeValue, len(list))
	for i, v := range list {
		l[i] = str(v)
	}
	return &types.AttributeValueMemberL{Value: l}
}

func decodeStrs(av types.AttributeValue) ([]string, error) {
	switch v := av.(type) {
	case nil:
		return nil, nil
	case *types.AttributeValueMemberL:
		out := make([]string, 0, len(v.Value))
		for _, e := range v.Value {
			s, ok := e.(*types.AttributeValueMemberS)
			if !ok {
				return nil, errors.New("a list element is not a string")
			}
			out = append(out, s.Value)
		}
		return out, nil
	}
	return nil, errors.New("not a list")
}

func decodeIncident(it item) (store.Incident, error) {
	f := fields{it: it}
	inc := store.Incident{
		ID:         f.str("id"),
		OrgID:      f.str("org_id"),
		TokenID:    f.str("token_id"),
		TokenName:  f.str("token_name"),
		Env:        kve.Env(f.str("env")),
		Type:       f.str("type"),
		Severity:   f.str("severity"),
		FirstSeen:  f.time("first_seen"),
		LastSeen:   f.time("last_seen"),
		Count:      f.num("count"),
		Origin:     f.str("origin"),
		IP:         f.str("ip"),
		UserAgent:  f.str("user_agent"),
		Detail:     f.str("detail"),
		Suspended:  f.flag("suspended"),
		NotifiedAt: f.time("notified_at"),
		AckedBy:    f.str("acked_by"),
		AckedAt:    f.time("acked_at"),
	}
	if f.err != nil {
		return store.Incident{}, fmt.Errorf("decode incident: %w", f.err)
	}
	var err error
	if inc.Requests, err = decodeStrs(it["requests"]); err != nil {
		return store.Incident{}, fmt.Errorf("decode incident: requests: %w", err)
	}
	if n := len(inc.Requests); n > store.MaxRequestIDs {
		inc.Requests = inc.Requests[n-store.MaxRequestIDs:] // the stored list runs up to twice as long
	}
	return inc, nil
}

// occurrenceSet is the SET part that every write of an occurrence makes:
// identity, names and the latest samples.
func occurrenceSet(e *expr, o *store.Occurrence) string {
	set := ""
	for _, kv := range []struct {
		name string
		v    types.AttributeValue
	}{
		{"id", str(o.ID)}, {"org_id", str(o.OrgID)}, {"token_id", str(o.TokenID)}, {"type", str(o.Type)},
		{"token_name", str(o.TokenName)}, {"env", str(string(o.Env))}, {"severity", str(o.Severity)},
		{"origin", str(o.Origin)}, {"ip", str(o.IP)}, {"user_agent", str(o.UserAgent)}, {"detail", str(o.Detail)},
		{"last_seen", stamp(o.At)},
	} {
		set += sep(set) + e.name(kv.name) + " = " + e.value(kv.v)
	}
	if o.Suspended {
		set += ", " + e.name("suspended") + " = " + e.value(flag(true))
	}
	return set
}

// notAcked holds for a missing item and for an open incident.
func notAcked(e *expr) string {
	n := e.name("acked_at")
	return "(attribute_not_exists(" + n + ") OR " + n + " = " + e.value(str("")) + ")"
}

// RecordIncident implements store.Alerts: one UpdateItem adds the
// occurrence to the open incident (creating it when missing); an
// acknowledged one is reopened by a second, conditional on the
// acknowledgement read. Then, when the window looks open, the claim.
func (s *Store) RecordIncident(ctx context.Context, o store.Occurrence) (store.Incident, bool, error) {
	if o.ID == "" || o.OrgID == "" || o.TokenID == "" || o.Type == "" || o.At.IsZero() || o.Count < 1 {
		return store.Incident{}, false, kve.Errorf(kve.KindInvalid, "invalid_occurrence",
			"an occurrence needs an incident id, an organization, a token, a type, a time and a count of at least 1")
	}
	k := primaryKey(alertsPK(o.OrgID), prefixIncident+o.ID)
	var it item
	for attempt := 1; it == nil; attempt++ {
		var e expr
		upd := "SET " + occurrenceSet(&e, &o) +
			", " + e.name("first_seen") + " = if_not_exists(" + e.name("first_seen") + ", " + e.value(stamp(o.At)) + ")"
		if len(o.Requests) > 0 {
			upd += ", " + e.name("requests") + " = list_append(if_not_exists(" + e.name("requests") + ", " +
				e.value(strs(nil)) + "), " + e.value(strs(o.Requests)) + ")"
		}
		upd += " ADD " + e.name("count") + " " + e.value(num(o.Count))
		written, old, err := s.updateOne(ctx, k, &e, upd, notAcked(&e))
		switch {
		case err == nil:
			it = written
			continue
		case !errors.Is(err, errCondition):
			return store.Incident{}, false, fmt.Errorf("record incident: %w", err)
		}
		// Acknowledged: reopen it, unless another writer did meanwhile.
		if old["acked_at"] == nil {
			continue // the item changed under the condition: write again
		}
		var r expr
		reqs := o.Requests
		if n := len(reqs); n > store.MaxRequestIDs {
			reqs = reqs[n-store.MaxRequestIDs:]
		}
		upd = "SET " + occurrenceSet(&r, &o) +
			", " + r.name("first_seen") + " = " + r.value(stamp(o.At)) +
			", " + r.name("count") + " = " + r.value(num(o.Count)) +
			", " + r.name("requests") + " = " + r.value(strs(reqs)) +
			", " + r.name("suspended") + " = " + r.value(flag(o.Suspended)) +
			", " + r.name("acked_by") + " = " + r.value(str("")) +
			", " + r.name("acked_at") + " = " + r.value(str(""))
		written, _, err = s.updateOne(ctx, k, &r, upd, r.name("acked_at")+" = "+r.value(old["acked_at"]))
		switch {
		case err == nil:
			it = written
		case !errors.Is(err, errCondition):
			return store.Incident{}, false, fmt.Errorf("record incident: %w", err)
		case attempt == staleAttempts:
			return store.Incident{}, false, fmt.Errorf("record incident: %w", errStale)
		}
	}
	inc, err := decodeIncident(it)
	if err != nil {
		return store.Incident{}, false, fmt.Errorf("record incident: %w", err)
	}
	if stored, _ := decodeStrs(it["requests"]); len(stored) > 2*store.MaxRequestIDs {
		// The list grows by appends; one writer in MaxRequestIDs cuts it
		// back. An append racing the cut may be lost: the list is a sample.
		var e expr
		if _, _, err := s.updateOne(ctx, k, &e, "SET "+e.name("requests")+" = "+e.value(strs(inc.Requests)), e.exists()); err != nil {
			return store.Incident{}, false, fmt.Errorf("record incident: trim request ids: %w", err)
		}
	}
	if o.Window <= 0 || inc.NotifiedAt.After(o.At.Add(-o.Window)) {
		return inc, false, nil
	}
	var c expr
	n := c.name("notified_at")
	cond := "(attribute_not_exists(" + n + ") OR " + n + " = " + c.value(str("")) + " OR " + n + " <= " +
		c.value(stamp(o.At.Add(-o.Window))) + ")"
	switch _, _, err := s.updateOne(ctx, k, &c, "SET "+n+" = "+c.value(stamp(o.At)), cond); {
	case errors.Is(err, errCondition):
		return inc, false, nil // another writer claimed this window
	case err != nil:
		return store.Incident{}, false, fmt.Errorf("record incident: claim notification: %w", err)
	}
	inc.NotifiedAt = o.At
	return inc, true, nil
}

// Incident implements store.Alerts.
func (s *Store) Incident(ctx context.Context, orgID, id string) (store.Incident, error) {
	it, err := s.get(ctx, alertsPK(orgID), prefixIncident+id)
	if err != nil {
		return store.Incident{}, fmt.Errorf("read incident: %w", err)
	}
	return decodeIncident(it)
}

// Incidents implements store.Alerts. An organization has at most one
// incident per (token, type), so the list is read whole and ordered by
// last seen here; the cursor is the (last seen, id) of a page's last item.
func (s *Store) Incidents(ctx context.Context, orgID string, f store.IncidentFilter) (store.Page[store.Incident], error) {
	after, err := decodeIncidentCursor(f.Cursor)
	if err != nil {
		return store.Page[store.Incident]{}, err
	}
	items, err := s.all(ctx, newQuery(alertsPK(orgID)).prefix(prefixIncident))
	if err != nil {
		return store.Page[store.Incident]{}, fmt.Errorf("list incidents: %w", err)
	}
	list := []store.Incident{}
	for _, it := range items {
		inc, err := decodeIncident(it)
		if err != nil {
			return store.Page[store.Incident]{}, fmt.Errorf("list incidents: %w", err)
		}
		if f.TokenID != "" && inc.TokenID != f.TokenID || f.Open && !inc.AckedAt.IsZero() {
			continue
		}
		if after != nil && !before(inc, after) {
			continue
		}
		list = append(list, inc)
	}
	slices.SortFunc(list, func(a, b store.Incident) int {
		if c := b.LastSeen.Compare(a.LastSeen); c != 0 {
			return c
		}
		return strings.Compare(b.ID, a.ID)
	})
	limit := store.Limit(f.Limit)
	if len(list) <= limit {
		return store.Page[store.Incident]{Items: list}, nil
	}
	last := list[limit-1]
	return store.Page[store.Incident]{Items: list[:limit], Next: encodeIncidentCursor(&last)}, nil
}

// before reports whether inc sorts after the cursor's item (newest first).
func before(inc store.Incident, c *store.Incident) bool {
	if !inc.LastSeen.Equal(c.LastSeen) {
		return inc.LastSeen.Before(c.LastSeen)
	}
	return inc.ID < c.ID
}

func encodeIncidentCursor(inc *store.Incident) string {
	return base64.RawURLEncoding.EncodeToString([]byte(strconv.FormatInt(inc.LastSeen.UnixNano(), 10) + "|" + inc.ID))
}

func decodeIncidentCursor(s string) (*store.Incident, error) {
	if s == "" {
		return nil, nil
	}
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return nil, errBadCursor
	}
	at, id, ok := strings.Cut(string(b), "|")
	ns, err := strconv.ParseInt(at, 10, 64)
	if !ok || err != nil || id == "" {
		return nil, errBadCursor
	}
	return &store.Incident{ID: id, LastSeen: time.Unix(0, ns).UTC()}, nil
}

var errAcked = kve.Errorf(kve.KindConflict, "incident_acknowledged", "the incident is acknowledged already")

// AckIncident implements store.Alerts: the acknowledgement, on condition
// that there was none, with its audit event in one transaction.
func (s *Store) AckIncident(ctx context.Context, orgID, id, userID string, at time.Time, ev kve.Event) (store.Incident, error) {
	audit, err := s.auditWrites(orgID, ev)
	if err != nil {
		return store.Incident{}, fmt.Errorf("acknowledge incident: %w", err)
	}
	inc, err := s.Incident(ctx, orgID, id)
	if err != nil {
		return store.Incident{}, fmt.Errorf("acknowledge incident: %w", err)
	}
	if !inc.AckedAt.IsZero() {
		return store.Incident{}, errAcked
	}
	var e expr
	w := s.update(primaryKey(alertsPK(orgID), prefixIncident+id), &e,
		"SET "+e.name("acked_by")+" = "+e.value(str(userID))+", "+e.name("acked_at")+" = "+e.value(stamp(at)),
		e.exists()+" AND "+notAcked(&e), nil)
	w.op.Update.ReturnValuesOnConditionCheckFailure = "ALL_OLD"
	w.failWith = func(old item) error {
		if len(old) == 0 {
			return kve.ErrNotFound
		}
		return errAcked
	}
	if err := s.transact(ctx, append([]write{w}, audit...)...); err != nil {
		return store.Incident{}, fmt.Errorf("acknowledge incident: %w", err)
	}
	inc.AckedBy, inc.AckedAt = userID, at
	return inc, nil
}

// AddRequests implements store.Alerts with one UpdateItem (ADD), which
// answers the minute's count.
func (s *Store) AddRequests(ctx context.Context, orgID, tokenID string, minute time.Time, n int64) (int64, error) {
	var e expr
	upd := "SET " + e.name(AttrTTL) + " = " + e.value(epoch(minute.Add(counterTTL))) +
		" ADD " + e.name("count") + " " + e.value(num(n))
	it, _, err := s.updateOne(ctx, primaryKey(detectPK(orgID, tokenID), minuteSK(minute)), &e, upd, "")
	if err != nil {
		return 0, fmt.Errorf("add requests: %w", err)
	}
	f := fields{it: it}
	count := f.num("count")
	if f.err != nil {
		return 0, fmt.Errorf("add requests: %w", f.err)
	}
	return count, nil
}

// Requests implements store.Alerts: one Query over the minutes' range.
func (s *Store) Requests(ctx context.Context, orgID, tokenID string, from, to time.Time) (int64, error) {
	last := time.Unix((to.Unix()+59)/60*60-60, 0)
	if last.Before(from) {
		return 0, nil
	}
	items, err := s.all(ctx, newQuery(detectPK(orgID, tokenID)).between(minuteSK(from), minuteSK(last)))
	if err != nil {
		return 0, fmt.Errorf("count requests: %w", err)
	}
	var n int64
	for _, it := range items {
		f := fields{it: it}
		n += f.num("count")
		if f.err != nil {
			return 0, fmt.Errorf("count requests: %w", f.err)
		}
	}
	return n, nil
}

// AddNetwork implements store.Alerts: an UpdateItem records the network,
// then a Query counts the networks seen within the window (older ones
// expire by TTL, and are skipped until they do).
func (s *Store) AddNetwork(ctx context.Context, orgID, tokenID, network string, at time.Time, window time.Duration) (int, error) {
	pk := detectPK(orgID, tokenID)
	var e expr
	upd := "SET " + e.name("seen") + " = " + e.value(stamp(at)) + ", " + e.name(AttrTTL) + " = " + e.value(epoch(at.Add(window+time.Hour)))
	if _, _, err := s.updateOne(ctx, primaryKey(pk, prefixNetwork+network), &e, upd, ""); err != nil {
		return 0, fmt.Errorf("add network: %w", err)
	}
	q := newQuery(pk).prefix(prefixNetwork)
	q.where(q.name("seen") + " > " + q.value(stamp(at.Add(-window))))
	items, err := s.all(ctx, q)
	if err != nil {
		return 0, fmt.Errorf("count networks: %w", err)
	}
	return len(items), nil
}

func subscriptionItem(sub *store.Subscription) item {
	it := item{}
	it.setStr("id", sub.ID)
	it.setStr("org_id", sub.OrgID)
	it.setStr("protocol", sub.Protocol)
	it.setStr("endpoint", sub.Endpoint)
	it.setStr("arn", sub.ARN)
	it.setBytes("confirm_hash", sub.ConfirmHash)
	it.setTime("confirmed_at", sub.ConfirmedAt)
	it.setStr("created_by", sub.CreatedBy)
	it.setTime("created_at", sub.CreatedAt)
	return it.with(orgPK(sub.OrgID), prefixSubscription+sub.ID)
}

func decodeSubscription(it item) (store.Subscription, error) {
	f := fields{it: it}
	sub := store.Subscription{
		ID:          f.str("id"),
		OrgID:       f.str("org_id"),
		Protocol:    f.str("protocol"),
		Endpoint:    f.str("endpoint"),
		ARN:         f.str("arn"),
		ConfirmHash: f.bytes("confirm_hash"),
		ConfirmedAt: f.time("confirmed_at"),
		CreatedBy:   f.str("created_by"),
		CreatedAt:   f.time("created_at"),
	}
	if f.err != nil {
		return store.Subscription{}, fmt.Errorf("decode subscription: %w", f.err)
	}
	return sub, nil
}

var errSubscribed = kve.Errorf(kve.KindConflict, "conflict", "this endpoint is subscribed already")

// CreateSubscription implements store.Alerts: the subscription, its
// endpoint's claim (unique per organization), a check that the
// organization is live, and the audit event, in one transaction.
func (s *Store) CreateSubscription(ctx context.Context, sub store.Subscription, ev kve.Event) error {
	audit, err := s.auditWrites(sub.OrgID, ev)
	if err != nil {
		return fmt.Errorf("create subscription: %w", err)
	}
	claim := item{}
	claim.setStr("id", sub.ID)
	ws := append([]write{
		s.create(subscriptionItem(&sub), errSubscribed),
		s.create(claim.with(orgPK(sub.OrgID), subEndpointSK(sub.Endpoint)), errSubscribed),
		s.orgGuard(sub.OrgID, false, 0),
	}, audit...)
	if err := s.transact(ctx, ws...); err != nil {
		return fmt.Errorf("create subscription: %w", err)
	}
	return nil
}

// Subscription implements store.Alerts.
func (s *Store) Subscription(ctx context.Context, orgID, id string) (store.Subscription, error) {
	it, err := s.get(ctx, orgPK(orgID), prefixSubscription+id)
	if err != nil {
		return store.Subscription{}, fmt.Errorf("read subscription: %w", err)
	}
	return decodeSubscription(it)
}

// Subscriptions implements store.Alerts: ids sort by creation time.
func (s *Store) Subscriptions(ctx context.Context, orgID string) ([]store.Subscription, error) {
	items, err := s.all(ctx, newQuery(orgPK(orgID)).prefix(prefixSubscription))
	if err != nil {
		return nil, fmt.Errorf("list subscriptions: %w", err)
	}
	out := make([]store.Subscription, 0, len(items))
	for _, it := range items {
		sub, err := decodeSubscription(it)
		if err != nil {
			return nil, fmt.Errorf("list subscriptions: %w", err)
		}
		out = append(out, sub)
	}
	return out, nil
}

// ConfirmSubscription implements store.Alerts.
func (s *Store) ConfirmSubscription(ctx context.Context, orgID, id string, at time.Time) (store.Subscription, error) {
	var e expr
	v := str("")
	if !at.IsZero() {
		v = stamp(at)
	}
	it, _, err := s.updateOne(ctx, primaryKey(orgPK(orgID), prefixSubscription+id), &e,
		"SET "+e.name("confirmed_at")+" = "+e.value(v), e.exists())
	switch {
	case errors.Is(err, errCondition):
		return store.Subscription{}, fmt.Errorf("confirm subscription: %w", kve.ErrNotFound)
	case err != nil:
		return store.Subscription{}, fmt.Errorf("confirm subscription: %w", err)
	}
	return decodeSubscription(it)
}

// DeleteSubscription implements store.Alerts: the subscription and its
// endpoint's claim, with the audit event.
func (s *Store) DeleteSubscription(ctx context.Context, orgID, id string, ev kve.Event) error {
	audit, err := s.auditWrites(orgID, ev)
	if err != nil {
		return fmt.Errorf("delete subscription: %w", err)
	}
	sub, err := s.Subscription(ctx, orgID, id)
	if err != nil {
		return fmt.Errorf("delete subscription: %w", err)
	}
	var e expr
	ws := append([]write{
		s.remove(primaryKey(orgPK(orgID), prefixSubscription+id), &e, e.exists(), kve.ErrNotFound),
		s.remove(primaryKey(orgPK(orgID), subEndpointSK(sub.Endpoint)), &expr{}, "", nil),
	}, audit...)
	if err := s.transact(ctx, ws...); err != nil {
		return fmt.Errorf("delete subscription: %w", err)
	}
	return nil
}
