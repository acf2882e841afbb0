package alerts

import (
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/keyvault-edge/kve/shared/kve"
	"github.com/keyvault-edge/kve/shared/store"
)

// event is a breach event of tok at the clock's time.
func (e *env) event(tok kve.Token, t Type) Event {
	now := e.clock.Now()
	return Event{Type: t, OrgID: tok.OrgID, TokenID: tok.ID, Env: tok.Env, At: now, RequestID: kve.NewID(kve.PrefixRequest, now),
		Origin: "https://evil.example", IP: "203.0.113.9", UserAgent: "curl/8.5.0", Detail: "something bad"}
}

func (e *env) incident(tok kve.Token, t Type) store.Incident {
	e.t.Helper()
	inc, err := e.st.Incident(e.ctx, tok.OrgID, IncidentID(tok.OrgID, tok.ID, t))
	if err != nil {
		e.t.Fatalf("incident %s of %s: %v", t, tok.ID, err)
	}
	return inc
}

// TestFloodIsOneIncident (SECURITY T18): 10,000 bad requests on one token
// are one incident with a count, and one notification per window.
func TestFloodIsOneIncident(t *testing.T) {
	e := newEnv(t)
	pub := &published{}
	r := e.responder(pub)
	tok := e.token(kve.EnvPrd)
	for range 100 { // 100 batches of 100, as a queued recorder would hand them over
		batch := make([]Event, 100)
		for i := range batch {
			batch[i] = e.event(tok, OriginNotAllowed)
		}
		if err := r.Handle(e.ctx, batch); err != nil {
			t.Fatal(err)
		}
		e.clock.Add(time.Second)
	}
	inc := e.incident(tok, OriginNotAllowed)
	if inc.Count != 10_000 || len(inc.Requests) != store.MaxRequestIDs {
		t.Errorf("incident: count %d, %d request ids; want 10000, %d", inc.Count, len(inc.Requests), store.MaxRequestIDs)
	}
	if n := len(pub.all()); n != 1 {
		t.Fatalf("%d notifications in 100 s, want 1", n)
	}
	e.clock.Add(Window) // the window of the first notification is over
	if err := r.Handle(e.ctx, []Event{e.event(tok, OriginNotAllowed)}); err != nil {
		t.Fatal(err)
	}
	ns := pub.all()
	if len(ns) != 2 {
		t.Fatalf("%d notifications after the window, want 2", len(ns))
	}
	var a Alert
	if err := json.Unmarshal(ns[1].Message, &a); err != nil || a.Count != 10_001 {
		t.Errorf("second notification: count %d (%v), want 10001", a.Count, err)
	}
}

// TestOneNotificationAmongConcurrentResponders: 50 execution environments
// answering the same breach at the same instant publish once.
func TestOneNotificationAmongConcurrentResponders(t *testing.T) {
	e := newEnv(t)
	pub := &published{}
	tok := e.token(kve.EnvPrd)
	var wg sync.WaitGroup
	for range 50 {
		r := e.responder(pub) // each its own caches, like separate environments
		wg.Go(func() {
			if err := r.Handle(e.ctx, []Event{e.event(tok, IPNotAllowed)}); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if n := len(pub.all()); n != 1 {
		t.Errorf("%d notifications, want exactly 1", n)
	}
	if inc := e.incident(tok, IPNotAllowed); inc.Count != 50 {
		t.Errorf("count %d, want 50", inc.Count)
	}
}

func TestNotificationContent(t *testing.T) {
	e := newEnv(t)
	pub := &published{}
	r := e.responder(pub)
	tok := e.token(kve.EnvPrd, func(t *kve.Token) { t.Name = "checkout <prod>" })
	ev := e.event(tok, OriginNotAllowed)
	ev.Origin, ev.UserAgent = Sample("https://evil.example\r\nX-Injected: 1"), Sample("<script>alert(1)</script>")
	if err := r.Handle(e.ctx, []Event{ev}); err != nil {
		t.Fatal(err)
	}
	ns := pub.all()
	if len(ns) != 1 {
		t.Fatalf("%d notifications", len(ns))
	}
	n := ns[0]
	want := map[string]string{"org": e.org.ID, "type": "origin_not_allowed", "environment": "prd", "severity": "medium"}
	for k, v := range want {
		if got := n.Attributes()[k]; got != v {
			t.Errorf("attribute %s = %q, want %q", k, got, v)
		}
	}
	if strings.ContainsAny(n.Subject, "\r\n") || len(n.Subject) > 100 || !strings.Contains(n.Subject, "checkout <prod>") {
		t.Errorf("subject %q", n.Subject)
	}
	var a Alert
	if err := json.Unmarshal(n.Message, &a); err != nil {
		t.Fatal(err)
	}
	if a.Kind != KindBreach || a.Token == nil || a.Token.ID != tok.ID || a.Token.Name != tok.Name || a.Env != kve.EnvPrd ||
		a.Count != 1 || a.Sample == nil || a.Sample.Origin != `https://evil.example\u000d\u000aX-Injected: 1` ||
		a.Sample.UserAgent != "<script>alert(1)</script>" || len(a.RequestIDs) != 1 ||
		a.DashboardURL != "https://kve.example.test/o/"+e.org.Slug+"/alerts?incident="+a.IncidentID {
		t.Errorf("alert = %+v", a)
	}
	raw := string(n.Message)
	if strings.Contains(raw, "<script>") || strings.Contains(raw, "kve_") || strings.Contains(raw, string(tok.Hash)) {
		t.Errorf("the message holds unescaped markup, a token value or a hash:\n%s", raw)
	}
}

func TestAlertsOffRecordsOnly(t *testing.T) {
	e := newEnv(t)
	pub := &published{}
	r := e.responder(pub)
	tok := e.token(kve.EnvDev) // alerts off by default below prd
	if err := r.Handle(e.ctx, []Event{e.event(tok, ServerUse)}); err != nil {
		t.Fatal(err)
	}
	if n := len(pub.all()); n != 0 {
		t.Errorf("%d notifications for a token with alerts off", n)
	}
	if inc := e.incident(tok, ServerUse); inc.Count != 1 || !inc.NotifiedAt.IsZero() {
		t.Errorf("incident: count %d, notified %v; want recorded, not notified", inc.Count, inc.NotifiedAt)
	}
}

// TestSuspension: an event that asks for it suspends a token whose
// automatic suspension is on, with an audit event by "system", and is
// always notified (a token that stops working must never do so
// silently), even with the token's alerts off.
func TestSuspension(t *testing.T) {
	e := newEnv(t)
	pub := &published{}
	r := e.responder(pub)
	dev := e.token(kve.EnvDev)
	ev := e.event(dev, EnvMismatch)
	ev.Suspend = true
	if err := r.Handle(e.ctx, []Event{ev}); err != nil {
		t.Fatal(err)
	}
	got, err := e.st.Token(e.ctx, dev.OrgID, dev.ID)
	if err != nil {
		t.Fatal(err)
	}
	if !got.Suspended() || got.Suspension != string(EnvMismatch) || !got.SuspendedAt.Equal(e.clock.Now()) {
		t.Errorf("token: suspended at %v for %q", got.SuspendedAt, got.Suspension)
	}
	events, err := e.st.Events(e.ctx, dev.OrgID, store.EventFilter{Action: "token.suspend"})
	if err != nil || len(events.Items) != 1 || events.Items[0].ActorID != "system" || events.Items[0].Target != dev.ID {
		t.Errorf("audit: %+v, %v", events.Items, err)
	}
	ns := pub.all()
	if len(ns) != 1 || ns[0].Severity != SeverityCritical {
		t.Fatalf("notifications %+v, want one, critical", ns)
	}
	var a Alert
	if err := json.Unmarshal(ns[0].Message, &a); err != nil || !a.Suspended {
		t.Errorf("alert does not say the token was suspended: %+v (%v)", a, err)
	}
	if !e.incident(dev, EnvMismatch).Suspended {
		t.Error("incident does not record the suspension")
	}

	manual := e.token(kve.EnvDev, func(t *kve.Token) { t.AutoSuspend = false })
	ev = e.event(manual, EnvMismatch)
	ev.Suspend = true
	if err := r.Handle(e.ctx, []Event{ev}); err != nil {
		t.Fatal(err)
	}
	if got, _ := e.st.Token(e.ctx, manual.OrgID, manual.ID); got.Suspended() {
		t.Error("a token with automatic suspension off was suspended")
	}
	if inc := e.incident(manual, EnvMismatch); inc.Count != 1 || inc.Suspended {
		t.Errorf("incident without suspension: count %d, suspended %v", inc.Count, inc.Suspended)
	}
}

func TestDeletedOrgGetsNoNotification(t *testing.T) {
	e := newEnv(t)
	pub := &published{}
	r := e.responder(pub)
	tok := e.token(kve.EnvPrd)
	if _, err := e.st.DeleteOrg(e.ctx, e.org.ID, kve.Actor{UserID: "usr_test"}.Event(e.org.ID, "org.delete", e.org.ID, e.clock.Now())); err != nil {
		t.Fatal(err)
	}
	if err := r.Handle(e.ctx, []Event{e.event(tok, RevokedTokenUsed)}); err != nil {
		t.Fatal(err)
	}
	if n := len(pub.all()); n != 0 {
		t.Errorf("%d notifications for a deleted organization", n)
	}
}

func TestPublishFailureIsReported(t *testing.T) {
	e := newEnv(t)
	pub := &published{err: errors.New("topic unreachable")}
	r := e.responder(pub)
	tok := e.token(kve.EnvPrd)
	if err := r.Handle(e.ctx, []Event{e.event(tok, IPNotAllowed)}); err == nil || !strings.Contains(err.Error(), "topic unreachable") {
		t.Errorf("Handle = %v, want the publish error", err)
	}
	if inc := e.incident(tok, IPNotAllowed); inc.Count != 1 {
		t.Errorf("incident count %d: the incident must be recorded whatever the channel does", inc.Count)
	}
}
