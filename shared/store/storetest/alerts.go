package storetest

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/keyvault-edge/kve/shared/kve"
	"github.com/keyvault-edge/kve/shared/store"
)

func alertTests() []test {
	return []test{
		{"token alert settings and suspension", tokenAlertSettings},
		{"incident counts and samples", incidentCounts},
		{"incident request ids are bounded", incidentRequests},
		{"notification window", notificationWindow},
		{"one claim among concurrent writers", concurrentClaims},
		{"acknowledge and reopen", ackAndReopen},
		{"incident list", incidentList},
		{"invalid occurrence", invalidOccurrence},
		{"request counts", requestCounts},
		{"client networks", clientNetworks},
		{"subscriptions", subscriptions},
		{"subscriptions of a deleted org", subscriptionsDeletedOrg},
	}
}

// occurrence returns an occurrence of typ on tok at at.
func (f *fixture) occurrence(tok kve.Token, typ string, at time.Time) store.Occurrence {
	return store.Occurrence{
		ID: "inc_" + tok.ID + "_" + typ, OrgID: tok.OrgID, TokenID: tok.ID, TokenName: tok.Name, Env: tok.Env,
		Type: typ, Severity: "high", At: at, Count: 1,
		Origin: "https://evil.example.test", IP: "203.0.113.9", UserAgent: "curl/8.5.0",
		Detail:   "a request from an origin not on the token's list",
		Requests: []string{kve.NewID(kve.PrefixRequest, at)},
	}
}

func tokenAlertSettings(t *testing.T, f *fixture) {
	o, _ := f.org("Acme")
	tok := f.token(f.key(o.ID, "main"), func(tk *kve.Token) {
		tk.Env, tk.Alerts, tk.AutoSuspend = kve.EnvPrd, true, true
	})
	for name, got := range map[string]kve.Token{
		"TokenByHash": must(f.s.TokenByHash(f.ctx, tok.Hash))(t),
		"Token":       must(f.s.Token(f.ctx, o.ID, tok.ID))(t),
	} {
		same(t, name, got, tok, ignoreTokenState)
	}
	suspended := must(f.s.UpdateToken(f.ctx, o.ID, tok.ID, func(tk *kve.Token) error {
		tk.SuspendedAt, tk.Suspension, tk.Alerts = f.at(time.Minute), "leak_reported", false
		return nil
	}, f.event(o.ID, "token.suspend", tok.ID)))(t)
	want := tok
	want.SuspendedAt, want.Suspension, want.Alerts = f.at(time.Minute), "leak_reported", false
	same(t, "UpdateToken", suspended, want, ignoreTokenState)
	same(t, "TokenByHash after suspension", must(f.s.TokenByHash(f.ctx, tok.Hash))(t), want, ignoreTokenState)
	resumed := must(f.s.UpdateToken(f.ctx, o.ID, tok.ID, func(tk *kve.Token) error {
		tk.SuspendedAt, tk.Suspension, tk.AutoSuspend = time.Time{}, "", false
		return nil
	}, f.event(o.ID, "token.resume", tok.ID)))(t)
	want.SuspendedAt, want.Suspension, want.AutoSuspend = time.Time{}, "", false
	same(t, "UpdateToken resume", resumed, want, ignoreTokenState)
	same(t, "Token after resume", must(f.s.Token(f.ctx, o.ID, tok.ID))(t), want, ignoreTokenState)
}

func incidentCounts(t *testing.T, f *fixture) {
	o, _ := f.org("Acme")
	tok := f.token(f.key(o.ID, "main"))
	first := f.occurrence(tok, "origin_not_allowed", f.at(time.Second))
	inc, notify := mustRecord(t, f, first)
	if notify {
		t.Error("notify without a window asked")
	}
	want := store.Incident{ID: first.ID, OrgID: o.ID, TokenID: tok.ID, TokenName: tok.Name, Env: tok.Env,
		Type: first.Type, Severity: "high", FirstSeen: first.At, LastSeen: first.At, Count: 1,
		Origin: first.Origin, IP: first.IP, UserAgent: first.UserAgent, Detail: first.Detail, Requests: first.Requests}
	same(t, "first", inc, want)

	second := f.occurrence(tok, "origin_not_allowed", f.at(time.Minute))
	second.Count, second.Origin, second.UserAgent, second.Suspended = 41, "null", "python-requests/2.32", true
	inc, _ = mustRecord(t, f, second)
	want.LastSeen, want.Count, want.Origin, want.UserAgent, want.Suspended = second.At, 42, "null", "python-requests/2.32", true
	want.Requests = append(append([]string{}, first.Requests...), second.Requests...)
	same(t, "after a second occurrence", inc, want)
	same(t, "Incident", must(f.s.Incident(f.ctx, o.ID, first.ID))(t), want)

	other := f.occurrence(tok, "ip_not_allowed", f.at(2*time.Minute))
	mustRecord(t, f, other)
	if got := must(f.s.Incident(f.ctx, o.ID, first.ID))(t).Count; got != 42 {
		t.Errorf("another type changed the count to %d", got)
	}
	b, _ := f.org("Bolt")
	_, err := f.s.Incident(f.ctx, b.ID, first.ID)
	wantKind(t, "Incident of another organization", err, kve.KindNotFound)
}

func incidentRequests(t *testing.T, f *fixture) {
	o, _ := f.org("Acme")
	tok := f.token(f.key(o.ID, "main"))
	var all []string
	var inc store.Incident
	for i := range 3*store.MaxRequestIDs + 1 {
		oc := f.occurrence(tok, "server_use", f.at(time.Duration(i)*time.Second))
		all = append(all, oc.Requests...)
		inc, _ = mustRecord(t, f, oc)
		if n := len(inc.Requests); n > store.MaxRequestIDs {
			t.Fatalf("after %d occurrences: %d request ids, want at most %d", i+1, n, store.MaxRequestIDs)
		}
	}
	same(t, "request ids", inc.Requests, all[len(all)-store.MaxRequestIDs:])
	same(t, "Incident request ids", must(f.s.Incident(f.ctx, o.ID, inc.ID))(t).Requests, all[len(all)-store.MaxRequestIDs:])
}

func notificationWindow(t *testing.T, f *fixture) {
	o, _ := f.org("Acme")
	tok := f.token(f.key(o.ID, "main"))
	window := 5 * time.Minute
	for _, step := range []struct {
		at     time.Duration
		window time.Duration
		want   bool
	}{
		{0, window, true},
		{time.Second, window, false},
		{window - time.Millisecond, window, false},
		{window, 0, false}, // no claim asked
		{window, window, true},
		{window + time.Minute, window, false},
		{2*window + time.Second, window, true},
	} {
		oc := f.occurrence(tok, "usage_spike", f.at(step.at))
		oc.Window = step.window
		inc, notify := mustRecord(t, f, oc)
		if notify != step.want {
			t.Errorf("at +%v: notify = %v, want %v", step.at, notify, step.want)
		}
		if notify && !inc.NotifiedAt.Equal(oc.At) {
			t.Errorf("at +%v: NotifiedAt = %v, want the claim's time", step.at, inc.NotifiedAt)
		}
	}
}

// concurrentClaims: a flood of writers on one incident at one instant
// counts every occurrence and grants the notification once (SECURITY T18).
func concurrentClaims(t *testing.T, f *fixture) {
	o, _ := f.org("Acme")
	tok := f.token(f.key(o.ID, "main"))
	const writers = 50
	var mu sync.Mutex
	granted := 0
	var wg sync.WaitGroup
	for range writers {
		wg.Go(func() {
			oc := f.occurrence(tok, "origin_not_allowed", f.at(time.Second))
			oc.Window = 5 * time.Minute
			_, notify, err := f.s.RecordIncident(f.ctx, oc)
			if err != nil {
				t.Errorf("RecordIncident: %v", err)
				return
			}
			if notify {
				mu.Lock()
				granted++
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if granted != 1 {
		t.Errorf("%d of %d concurrent writers were told to notify, want exactly 1", granted, writers)
	}
	inc := must(f.s.Incident(f.ctx, o.ID, "inc_"+tok.ID+"_origin_not_allowed"))(t)
	if inc.Count != writers {
		t.Errorf("Count = %d, want %d", inc.Count, writers)
	}
}

func ackAndReopen(t *testing.T, f *fixture) {
	o, _ := f.org("Acme")
	tok := f.token(f.key(o.ID, "main"))
	oc := f.occurrence(tok, "revoked_token_used", f.at(time.Second))
	oc.Count, oc.Window = 3, 5*time.Minute
	mustRecord(t, f, oc)
	ev := f.event(o.ID, "incident.ack", oc.ID)
	acked := must(f.s.AckIncident(f.ctx, o.ID, oc.ID, f.actor().UserID, f.at(time.Minute), ev))(t)
	if acked.AckedBy != f.actor().UserID || !acked.AckedAt.Equal(f.at(time.Minute)) || acked.Count != 3 {
		t.Errorf("AckIncident = by %q at %v, count %d", acked.AckedBy, acked.AckedAt, acked.Count)
	}
	same(t, "Incident after ack", must(f.s.Incident(f.ctx, o.ID, oc.ID))(t), acked)
	same(t, "ack event", must(f.s.Events(f.ctx, o.ID, store.EventFilter{Action: "incident.ack"}))(t).Items, []kve.Event{ev})
	_, err := f.s.AckIncident(f.ctx, o.ID, oc.ID, f.actor().UserID, f.at(2*time.Minute), f.event(o.ID, "incident.ack", oc.ID))
	wantKind(t, "second AckIncident", err, kve.KindConflict)
	_, err = f.s.AckIncident(f.ctx, o.ID, "inc_missing", f.actor().UserID, f.at(2*time.Minute), f.event(o.ID, "incident.ack", "x"))
	wantKind(t, "AckIncident of an unknown incident", err, kve.KindNotFound)
	b, _ := f.org("Bolt")
	_, err = f.s.AckIncident(f.ctx, b.ID, oc.ID, f.actor().UserID, f.at(2*time.Minute), f.event(b.ID, "incident.ack", oc.ID))
	wantKind(t, "AckIncident from another organization", err, kve.KindNotFound)

	// The same breach after the acknowledgement reopens the incident: same
	// id, counting again from the new occurrence; the notification window
	// of the first claim still holds.
	again := f.occurrence(tok, "revoked_token_used", f.at(3*time.Minute))
	again.Window = 5 * time.Minute
	inc, notify := mustRecord(t, f, again)
	if notify {
		t.Error("a reopened incident notified within the window of the last notification")
	}
	if inc.ID != oc.ID || inc.Count != 1 || !inc.FirstSeen.Equal(again.At) || inc.AckedBy != "" || !inc.AckedAt.IsZero() {
		t.Errorf("reopened: id %q, count %d, first seen %v, acked by %q at %v", inc.ID, inc.Count, inc.FirstSeen, inc.AckedBy, inc.AckedAt)
	}
	same(t, "reopened request ids", inc.Requests, again.Requests)
}

func incidentList(t *testing.T, f *fixture) {
	o, _ := f.org("Acme")
	b, _ := f.org("Bolt")
	k := f.key(o.ID, "main")
	t1, t2 := f.token(k), f.token(k)
	var order []string // incident ids, most recently seen first
	for i, r := range []struct {
		tok kve.Token
		typ string
	}{{t1, "origin_not_allowed"}, {t2, "usage_spike"}, {t1, "ip_not_allowed"}, {t2, "server_use"}, {t1, "server_use"}} {
		oc := f.occurrence(r.tok, r.typ, f.at(time.Duration(i+1)*time.Minute))
		mustRecord(t, f, oc)
		order = append([]string{oc.ID}, order...)
	}
	mustRecord(t, f, f.occurrence(f.token(f.key(b.ID, "main")), "usage_spike", f.at(time.Hour)))
	incID := func(inc store.Incident) string { return inc.ID }

	p := must(f.s.Incidents(f.ctx, o.ID, store.IncidentFilter{}))(t)
	same(t, "Incidents", ids(p.Items, incID), order)
	notNil(t, "Incidents", p.Items)

	var got []string
	cursor := ""
	for range 5 {
		p := must(f.s.Incidents(f.ctx, o.ID, store.IncidentFilter{Limit: 2, Cursor: cursor}))(t)
		got = append(got, ids(p.Items, incID)...)
		if cursor = p.Next; cursor == "" {
			break
		}
	}
	same(t, "Incidents by pages of 2", got, order)

	byToken := must(f.s.Incidents(f.ctx, o.ID, store.IncidentFilter{TokenID: t2.ID}))(t).Items
	same(t, "Incidents of one token", ids(byToken, incID), []string{order[1], order[3]})

	ok(t, func() error {
		_, err := f.s.AckIncident(f.ctx, o.ID, order[0], f.actor().UserID, f.at(time.Hour), f.event(o.ID, "incident.ack", order[0]))
		return err
	}())
	open := must(f.s.Incidents(f.ctx, o.ID, store.IncidentFilter{Open: true}))(t).Items
	same(t, "open Incidents", ids(open, incID), order[1:])

	empty := must(f.s.Incidents(f.ctx, kve.NewID(kve.PrefixOrg, f.now), store.IncidentFilter{}))(t)
	notNil(t, "Incidents of an organization without any", empty.Items)
	_, err := f.s.Incidents(f.ctx, o.ID, store.IncidentFilter{Cursor: "not a cursor!"})
	wantKind(t, "Incidents with a bad cursor", err, kve.KindInvalid)
}

func invalidOccurrence(t *testing.T, f *fixture) {
	o, _ := f.org("Acme")
	tok := f.token(f.key(o.ID, "main"))
	for name, mod := range map[string]func(*store.Occurrence){
		"no id":      func(oc *store.Occurrence) { oc.ID = "" },
		"no org":     func(oc *store.Occurrence) { oc.OrgID = "" },
		"no token":   func(oc *store.Occurrence) { oc.TokenID = "" },
		"no type":    func(oc *store.Occurrence) { oc.Type = "" },
		"no time":    func(oc *store.Occurrence) { oc.At = time.Time{} },
		"zero count": func(oc *store.Occurrence) { oc.Count = 0 },
	} {
		oc := f.occurrence(tok, "server_use", f.now)
		mod(&oc)
		_, _, err := f.s.RecordIncident(f.ctx, oc)
		wantKind(t, "RecordIncident with "+name, err, kve.KindInvalid)
	}
}

func requestCounts(t *testing.T, f *fixture) {
	o, _ := f.org("Acme")
	tok := f.token(f.key(o.ID, "main"))
	m := f.now.Truncate(time.Minute)
	add := func(minute time.Time, n, want int64) {
		t.Helper()
		if got := must(f.s.AddRequests(f.ctx, o.ID, tok.ID, minute, n))(t); got != want {
			t.Errorf("AddRequests(%v, %d) = %d, want %d", minute.Format(time.TimeOnly), n, got, want)
		}
	}
	add(m, 3, 3)
	add(m, 4, 7)
	add(m.Add(-time.Minute), 10, 10)
	add(m.Add(-59*time.Minute), 100, 100)
	add(m.Add(-61*time.Minute), 1000, 1000)
	other := f.token(f.key(o.ID, "other"))
	if got := must(f.s.AddRequests(f.ctx, o.ID, other.ID, m, 5))(t); got != 5 {
		t.Errorf("another token's minute = %d, want 5", got)
	}
	for _, r := range []struct {
		from, to time.Time
		want     int64
	}{
		{m, m.Add(time.Minute), 7},
		{m.Add(-time.Hour), m, 110},
		{m.Add(-2 * time.Hour), m.Add(time.Minute), 1117},
		{m.Add(time.Minute), m.Add(2 * time.Minute), 0},
	} {
		if got := must(f.s.Requests(f.ctx, o.ID, tok.ID, r.from, r.to))(t); got != r.want {
			t.Errorf("Requests(%v, %v) = %d, want %d", r.from.Sub(m), r.to.Sub(m), got, r.want)
		}
	}
	b, _ := f.org("Bolt")
	if got := must(f.s.Requests(f.ctx, b.ID, tok.ID, m.Add(-time.Hour), m.Add(time.Minute)))(t); got != 0 {
		t.Errorf("Requests through another organization = %d, want 0", got)
	}
}

func clientNetworks(t *testing.T, f *fixture) {
	o, _ := f.org("Acme")
	tok := f.token(f.key(o.ID, "main"))
	window := time.Hour
	for i, step := range []struct {
		network string
		at      time.Duration
		want    int
	}{
		{"198.51.100.0/24", 0, 1},
		{"198.51.100.0/24", time.Minute, 1},
		{"2001:db8:1::/48", 2 * time.Minute, 2},
		{"203.0.113.0/24", 3 * time.Minute, 3},
		{"192.0.2.0/24", window + 2*time.Minute + time.Second, 2}, // the first two fell out of the window
		{"198.51.100.0/24", window + 3*time.Minute, 2},            // so did the third: seen exactly a window ago
	} {
		got := must(f.s.AddNetwork(f.ctx, o.ID, tok.ID, step.network, f.at(step.at), window))(t)
		if got != step.want {
			t.Errorf("step %d: AddNetwork(%s) = %d networks, want %d", i, step.network, got, step.want)
		}
	}
	other := f.token(f.key(o.ID, "other"))
	if got := must(f.s.AddNetwork(f.ctx, o.ID, other.ID, "198.51.100.0/24", f.at(time.Hour), window))(t); got != 1 {
		t.Errorf("another token's networks = %d, want 1", got)
	}
}

func (f *fixture) subscription(orgID, protocol, endpoint string, at time.Time) store.Subscription {
	id := kve.NewID("sub_", at)
	return store.Subscription{ID: id, OrgID: orgID, Protocol: protocol, Endpoint: endpoint,
		ARN: "arn:aws:sns:us-east-1:111122223333:kve-alerts:" + id, CreatedBy: f.actor().UserID, CreatedAt: at}
}

func subscriptions(t *testing.T, f *fixture) {
	o, _ := f.org("Acme")
	b, _ := f.org("Bolt")
	hook := f.subscription(o.ID, "https", "https://hooks.example.test/kve", f.at(time.Second))
	hook.ConfirmHash = randomBytes(32)
	mail := f.subscription(o.ID, "email", "ops@example.test", f.at(2*time.Second))
	ev := f.event(o.ID, "alert_subscription.create", hook.ID)
	ok(t, f.s.CreateSubscription(f.ctx, hook, ev))
	ok(t, f.s.CreateSubscription(f.ctx, mail, f.event(o.ID, "alert_subscription.create", mail.ID)))
	same(t, "event", must(f.s.Events(f.ctx, o.ID, store.EventFilter{Target: hook.ID}))(t).Items, []kve.Event{ev})
	same(t, "Subscription", must(f.s.Subscription(f.ctx, o.ID, hook.ID))(t), hook)
	same(t, "Subscriptions", must(f.s.Subscriptions(f.ctx, o.ID))(t), []store.Subscription{hook, mail})
	notNil(t, "Subscriptions of another organization", must(f.s.Subscriptions(f.ctx, b.ID))(t))
	_, err := f.s.Subscription(f.ctx, b.ID, hook.ID)
	wantKind(t, "Subscription from another organization", err, kve.KindNotFound)

	dup := f.subscription(o.ID, "https", hook.Endpoint, f.at(3*time.Second))
	wantKind(t, "a second subscription of an endpoint",
		f.s.CreateSubscription(f.ctx, dup, f.event(o.ID, "alert_subscription.create", dup.ID)), kve.KindConflict)
	elsewhere := f.subscription(b.ID, "https", hook.Endpoint, f.at(3*time.Second))
	ok(t, f.s.CreateSubscription(f.ctx, elsewhere, f.event(b.ID, "alert_subscription.create", elsewhere.ID)))

	confirmed := must(f.s.ConfirmSubscription(f.ctx, o.ID, hook.ID, f.at(time.Minute)))(t)
	hook.ConfirmedAt = f.at(time.Minute)
	same(t, "ConfirmSubscription", confirmed, hook)
	same(t, "Subscription after confirmation", must(f.s.Subscription(f.ctx, o.ID, hook.ID))(t), hook)
	hook.ConfirmedAt = time.Time{}
	same(t, "ConfirmSubscription with the zero time", must(f.s.ConfirmSubscription(f.ctx, o.ID, hook.ID, time.Time{}))(t), hook)
	_, err = f.s.ConfirmSubscription(f.ctx, b.ID, hook.ID, f.at(time.Minute))
	wantKind(t, "ConfirmSubscription from another organization", err, kve.KindNotFound)

	wantKind(t, "DeleteSubscription from another organization",
		f.s.DeleteSubscription(f.ctx, b.ID, hook.ID, f.event(b.ID, "alert_subscription.delete", hook.ID)), kve.KindNotFound)
	del := f.event(o.ID, "alert_subscription.delete", hook.ID)
	ok(t, f.s.DeleteSubscription(f.ctx, o.ID, hook.ID, del))
	_, err = f.s.Subscription(f.ctx, o.ID, hook.ID)
	wantKind(t, "Subscription after delete", err, kve.KindNotFound)
	same(t, "Subscriptions after delete", must(f.s.Subscriptions(f.ctx, o.ID))(t), []store.Subscription{mail})
	same(t, "delete event", must(f.s.Events(f.ctx, o.ID, store.EventFilter{Action: "alert_subscription.delete"}))(t).Items, []kve.Event{del})
	// The endpoint is free again.
	again := f.subscription(o.ID, "https", hook.Endpoint, f.at(4*time.Second))
	ok(t, f.s.CreateSubscription(f.ctx, again, f.event(o.ID, "alert_subscription.create", again.ID)))
}

func subscriptionsDeletedOrg(t *testing.T, f *fixture) {
	o, _ := f.org("Acme")
	_, err := f.s.DeleteOrg(f.ctx, o.ID, f.event(o.ID, "org.delete", o.ID))
	ok(t, err)
	sub := f.subscription(o.ID, "https", "https://hooks.example.test/kve", f.now)
	err = f.s.CreateSubscription(f.ctx, sub, f.event(o.ID, "alert_subscription.create", sub.ID))
	wantKind(t, "CreateSubscription in a deleted organization", err, kve.KindNotFound)
}

// mustRecord records oc and fails the test on an error.
func mustRecord(t *testing.T, f *fixture, oc store.Occurrence) (store.Incident, bool) {
	t.Helper()
	inc, notify, err := f.s.RecordIncident(f.ctx, oc)
	if err != nil {
		t.Fatalf("RecordIncident(%s at %v): %v", oc.Type, oc.At, err)
	}
	return inc, notify
}

// RunOutbox runs the outbox suite on a store that has one (the embedded
// store: on AWS, SNS delivers). open returns a fresh, empty store.
func RunOutbox(t *testing.T, open func(t *testing.T) store.Outbox) {
	now := time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)
	delivery := func(i int, next time.Time) store.Delivery {
		return store.Delivery{ID: fmt.Sprintf("dlv_%02d", i), OrgID: "org_1", SubscriptionID: "sub_1",
			Subject: "kve alert", Body: []byte(fmt.Sprintf(`{"n":%d}`, i)), NextAt: next, CreatedAt: now}
	}
	t.Run("due in order, retried, finished", func(t *testing.T) {
		o := open(t)
		ctx := t.Context()
		a, b, c := delivery(1, now), delivery(2, now.Add(-time.Second)), delivery(3, now.Add(time.Minute))
		ok(t, o.EnqueueDeliveries(ctx, []store.Delivery{a, b, c}))
		same(t, "due now", must(o.DueDeliveries(ctx, now, 10))(t), []store.Delivery{b, a})
		same(t, "due now, one", must(o.DueDeliveries(ctx, now, 1))(t), []store.Delivery{b})
		ok(t, o.RetryDelivery(ctx, b.ID, 1, now.Add(2*time.Minute), "status 500"))
		b.Attempts, b.NextAt, b.LastError = 1, now.Add(2*time.Minute), "status 500"
		same(t, "due now after a retry", must(o.DueDeliveries(ctx, now, 10))(t), []store.Delivery{a})
		ok(t, o.FinishDelivery(ctx, a.ID))
		ok(t, o.FinishDelivery(ctx, a.ID)) // gone already: no error
		same(t, "due in 3 minutes", must(o.DueDeliveries(ctx, now.Add(3*time.Minute), 10))(t), []store.Delivery{c, b},
			cmpopts.EquateEmpty())
		wantKind(t, "RetryDelivery of a finished delivery", o.RetryDelivery(ctx, a.ID, 2, now, ""), kve.KindNotFound)
		notNil(t, "DueDeliveries before any", must(o.DueDeliveries(ctx, now.Add(-time.Hour), 10))(t))
	})
}
