package alerts

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/keyvault-edge/kve/shared/alerts/snsverify"
	"github.com/keyvault-edge/kve/shared/kve"
	"github.com/keyvault-edge/kve/shared/mail"
	"github.com/keyvault-edge/kve/shared/proxy"
	"github.com/keyvault-edge/kve/shared/store"
)

// receiver is a webhook endpoint on loopback that keeps what it receives
// and answers with the statuses a test queues (200 when none is queued).
type receiver struct {
	*httptest.Server
	mu       sync.Mutex
	reqs     []receivedReq
	statuses []func(w http.ResponseWriter)
	got      chan struct{}
}

type receivedReq struct {
	header http.Header
	body   []byte
}

func newReceiver(t *testing.T) *receiver {
	t.Helper()
	rc := &receiver{got: make(chan struct{}, 100)}
	rc.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		rc.mu.Lock()
		rc.reqs = append(rc.reqs, receivedReq{header: r.Header.Clone(), body: b})
		var answer func(http.ResponseWriter)
		if len(rc.statuses) > 0 {
			answer, rc.statuses = rc.statuses[0], rc.statuses[1:]
		}
		rc.mu.Unlock()
		if answer != nil {
			answer(w)
		}
		rc.got <- struct{}{}
	}))
	t.Cleanup(rc.Close)
	return rc
}

func status(code int, header ...string) func(http.ResponseWriter) {
	return func(w http.ResponseWriter) {
		for i := 0; i+1 < len(header); i += 2 {
			w.Header().Set(header[i], header[i+1])
		}
		w.WriteHeader(code)
	}
}

func (rc *receiver) answer(fs ...func(http.ResponseWriter)) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	rc.statuses = append(rc.statuses, fs...)
}

func (rc *receiver) received() []receivedReq {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return append([]receivedReq(nil), rc.reqs...)
}

// message decodes the i-th request as an SNS message.
func (rc *receiver) message(t *testing.T, i int) *snsverify.Message {
	t.Helper()
	reqs := rc.received()
	if len(reqs) <= i {
		t.Fatalf("receiver got %d requests, want at least %d", len(reqs), i+1)
	}
	var m snsverify.Message
	if err := json.Unmarshal(reqs[i].body, &m); err != nil {
		t.Fatalf("request %d is not an SNS message: %v\n%s", i, err, reqs[i].body)
	}
	return &m
}

// localEnv is Local on an env, its endpoints served on loopback, its
// worker stopped so that the test drives deliveries (DeliverDue).
type localEnv struct {
	*env
	l   *Local
	kve *httptest.Server // serves LocalPath
	v   *snsverify.Verifier
}

var loopback = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")}

func newLocalEnv(t *testing.T, mods ...func(*LocalConfig)) *localEnv {
	t.Helper()
	e := newEnv(t)
	var h http.Handler = http.NotFoundHandler()
	var mu sync.Mutex
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		hh := h
		mu.Unlock()
		hh.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	cfg := LocalConfig{BaseURL: srv.URL, Dir: t.TempDir(), Transport: proxy.NewTransport(proxy.Timeouts{}, loopback),
		Jitter: -1, Now: e.clock.Now, Logger: e.log}
	for _, m := range mods {
		m(&cfg)
	}
	l, err := NewLocal(e.st, cfg)
	if err != nil {
		t.Fatal(err)
	}
	l.Close() // the test drives deliveries
	mu.Lock()
	h = l.Handler()
	mu.Unlock()
	return &localEnv{env: e, l: l, kve: srv,
		v: &snsverify.Verifier{CertURLPrefixes: []string{l.CertURLPrefix()}, TopicARNs: []string{l.TopicARN()}}}
}

// subscribe subscribes endpoint for the env's organization, as manage does.
func (le *localEnv) subscribe(t *testing.T, orgID, protocol, endpoint string) store.Subscription {
	t.Helper()
	now := le.clock.Now()
	sub := store.Subscription{ID: kve.NewID("sub_", now), OrgID: orgID, Protocol: protocol, Endpoint: endpoint,
		CreatedBy: "usr_test", CreatedAt: now}
	sub, err := le.l.Subscribe(le.ctx, sub)
	if err != nil {
		t.Fatal(err)
	}
	if err := le.st.CreateSubscription(le.ctx, sub, kve.Actor{UserID: "usr_test"}.Event(orgID, "alert_subscription.create", sub.ID, now)); err != nil {
		t.Fatal(err)
	}
	if err := le.l.Subscribed(le.ctx, sub); err != nil {
		t.Fatal(err)
	}
	return sub
}

func (le *localEnv) deliver(t *testing.T) {
	t.Helper()
	if err := le.l.DeliverDue(le.ctx); err != nil {
		t.Fatal(err)
	}
}

func (le *localEnv) publish(t *testing.T, orgID string) Notification {
	t.Helper()
	n, err := NewTestNotification(kve.Org{ID: orgID, Slug: "acme"}, "https://kve.example.test", le.clock.Now())
	if err != nil {
		t.Fatal(err)
	}
	if err := le.l.Publish(le.ctx, n); err != nil {
		t.Fatal(err)
	}
	return n
}

// confirmed subscribes a webhook and confirms it the way a receiver does:
// verify the SubscriptionConfirmation, visit its SubscribeURL.
func (le *localEnv) confirmed(t *testing.T, rc *receiver) store.Subscription {
	t.Helper()
	sub := le.subscribe(t, le.org.ID, "http", rc.URL)
	le.deliver(t)
	m := rc.message(t, len(rc.received())-1)
	if err := le.v.Verify(le.ctx, m); err != nil {
		t.Fatalf("confirmation does not verify: %v", err)
	}
	if err := le.v.Confirm(le.ctx, m); err != nil {
		t.Fatalf("confirm: %v", err)
	}
	got, err := le.st.Subscription(le.ctx, sub.OrgID, sub.ID)
	if err != nil || got.ConfirmedAt.IsZero() {
		t.Fatalf("subscription not confirmed: %+v, %v", got, err)
	}
	return got
}

func TestLocalWebhook(t *testing.T) {
	le := newLocalEnv(t)
	rc := newReceiver(t)
	sub := le.subscribe(t, le.org.ID, "http", rc.URL)
	le.deliver(t)
	c := rc.message(t, 0)
	if c.Type != snsverify.TypeSubscriptionConfirmation || !strings.HasPrefix(c.SubscribeURL, le.kve.URL+LocalPath) ||
		c.SigningCertURL != le.l.CertURL() || c.SignatureVersion != "2" {
		t.Errorf("confirmation %+v", c)
	}
	if got := rc.received()[0].header.Get("X-Amz-Sns-Message-Type"); got != snsverify.TypeSubscriptionConfirmation {
		t.Errorf("message type header %q", got)
	}
	// Nothing but the confirmation goes to an unconfirmed endpoint.
	le.publish(t, le.org.ID)
	le.deliver(t)
	if n := len(rc.received()); n != 1 {
		t.Fatalf("an unconfirmed endpoint got %d requests, want only the confirmation", n)
	}
	if err := le.v.Verify(le.ctx, c); err != nil {
		t.Fatal(err)
	}
	if err := le.v.Confirm(le.ctx, c); err != nil {
		t.Fatal(err)
	}
	if got, _ := le.st.Subscription(le.ctx, sub.OrgID, sub.ID); got.ConfirmedAt.IsZero() {
		t.Fatal("visiting the SubscribeURL did not confirm the subscription")
	}

	other := newReceiver(t)
	otherOrg := le.newOrg("Other Corp")
	le.subscribe(t, otherOrg.ID, "http", other.URL)
	le.deliver(t)
	n := le.publish(t, le.org.ID)
	le.deliver(t)
	m := rc.message(t, 1)
	if err := le.v.Verify(le.ctx, m); err != nil {
		t.Fatalf("notification does not verify: %v", err)
	}
	h := rc.received()[1].header
	if m.Type != snsverify.TypeNotification || m.Message != string(n.Message) || m.Subject != n.Subject ||
		m.MessageAttributes["org"].Value != le.org.ID || m.UnsubscribeURL == "" ||
		h.Get("X-Amz-Sns-Message-Id") != m.MessageID || h.Get("X-Amz-Sns-Subscription-Arn") != sub.ARN ||
		h.Get("Content-Type") != "application/json" {
		t.Errorf("notification %+v, headers %v", m, h)
	}
	var a Alert
	if err := json.Unmarshal([]byte(m.Message), &a); err != nil || a.Kind != KindTest || a.Org.ID != le.org.ID {
		t.Errorf("alert %+v, %v", a, err)
	}
	if got := len(other.received()); got != 1 {
		t.Errorf("another organization's endpoint got %d requests, want its confirmation only", got)
	}
}

func TestLocalEndpoints(t *testing.T) {
	le := newLocalEnv(t)
	rc := newReceiver(t)
	le.subscribe(t, le.org.ID, "http", rc.URL)
	le.deliver(t)
	c := rc.message(t, 0)
	get := func(u string) int {
		t.Helper()
		res, err := http.Get(u)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		return res.StatusCode
	}
	for name, u := range map[string]string{
		"forged token":   strings.Replace(c.SubscribeURL, c.Token[len(c.Token)-8:], "00000000", 1),
		"other topic":    strings.Replace(c.SubscribeURL, "kve-alerts", "other", 1),
		"no token":       le.kve.URL + LocalPath + "?Action=ConfirmSubscription",
		"unknown action": le.kve.URL + LocalPath + "?Action=DeleteTopic",
		"other path":     le.kve.URL + LocalPath + "nope",
	} {
		if code := get(u); code != http.StatusNotFound && code != http.StatusBadRequest {
			t.Errorf("%s: %d", name, code)
		}
	}
	if subs, _ := le.st.Subscriptions(le.ctx, le.org.ID); !subs[0].ConfirmedAt.IsZero() {
		t.Error("a forged confirmation confirmed the subscription")
	}
	res, err := http.Post(c.SubscribeURL, "text/plain", nil)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("POST SubscribeURL: %d", res.StatusCode)
	}
	if code := get(le.l.CertURL()); code != http.StatusOK {
		t.Errorf("certificate: %d", code)
	}
}

func TestLocalUnsubscribeURL(t *testing.T) {
	le := newLocalEnv(t)
	rc := newReceiver(t)
	sub := le.confirmed(t, rc)
	le.publish(t, le.org.ID)
	le.deliver(t)
	m := rc.message(t, 1)
	res, err := http.Get(m.UnsubscribeURL)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusOK {
		t.Fatalf("UnsubscribeURL: %d", res.StatusCode)
	}
	if _, err := le.st.Subscription(le.ctx, sub.OrgID, sub.ID); kve.KindOf(err) != kve.KindNotFound {
		t.Errorf("subscription after unsubscribe: %v", err)
	}
	evs, _ := le.st.Events(le.ctx, sub.OrgID, store.EventFilter{Action: "alert_subscription.delete"})
	if len(evs.Items) != 1 || evs.Items[0].ActorID != "system" {
		t.Errorf("audit %+v", evs.Items)
	}
}

// TestLocalRetries (SECURITY T40): failed attempts are retried on the
// schedule, a Retry-After is honoured, the message (and its MessageId)
// is the same on every attempt.
func TestLocalRetries(t *testing.T) {
	le := newLocalEnv(t)
	rc := newReceiver(t)
	le.confirmed(t, rc)
	rc.answer(status(http.StatusInternalServerError), status(http.StatusTooManyRequests, "Retry-After", "900"), status(http.StatusOK))
	le.publish(t, le.org.ID)
	le.deliver(t)
	pending := func() []store.Delivery {
		ds, err := le.st.DueDeliveries(le.ctx, le.clock.Now().Add(100*time.Hour), 10)
		if err != nil {
			t.Fatal(err)
		}
		return ds
	}
	ds := pending()
	if len(ds) != 1 || ds[0].Attempts != 1 || !ds[0].NextAt.Equal(le.clock.Now().Add(5*time.Second)) || ds[0].LastError != "status 500" {
		t.Fatalf("after a 500: %+v", ds)
	}
	le.deliver(t) // not due yet
	if n := len(rc.received()); n != 2 {
		t.Fatalf("retried before its time: %d requests", n)
	}
	le.clock.Add(5 * time.Second)
	le.deliver(t)
	if ds = pending(); len(ds) != 1 || ds[0].Attempts != 2 || !ds[0].NextAt.Equal(le.clock.Now().Add(15*time.Minute)) {
		t.Fatalf("after a 429 with Retry-After 900: %+v, want the next attempt in 15 min", ds)
	}
	le.clock.Add(15 * time.Minute)
	le.deliver(t)
	if ds = pending(); len(ds) != 0 {
		t.Fatalf("delivered, yet still queued: %+v", ds)
	}
	reqs := rc.received()
	if len(reqs) != 4 {
		t.Fatalf("%d requests, want the confirmation and 3 attempts", len(reqs))
	}
	id := reqs[1].header.Get("X-Amz-Sns-Message-Id")
	for i, r := range reqs[1:] {
		if r.header.Get("X-Amz-Sns-Message-Id") != id || string(r.body) != string(reqs[1].body) {
			t.Errorf("attempt %d differs from the first", i+1)
		}
	}
}

func TestLocalGone(t *testing.T) {
	le := newLocalEnv(t)
	rc := newReceiver(t)
	sub := le.confirmed(t, rc)
	rc.answer(status(http.StatusGone))
	le.publish(t, le.org.ID)
	le.deliver(t)
	got, err := le.st.Subscription(le.ctx, sub.OrgID, sub.ID)
	if err != nil || !got.ConfirmedAt.IsZero() {
		t.Errorf("after 410 Gone: %+v, %v; want the subscription unconfirmed", got, err)
	}
	if ds, _ := le.st.DueDeliveries(le.ctx, le.clock.Now().Add(100*time.Hour), 10); len(ds) != 0 {
		t.Errorf("a delivery to a gone endpoint stays queued: %+v", ds)
	}
	le.publish(t, le.org.ID)
	le.deliver(t)
	if n := len(rc.received()); n != 2 {
		t.Errorf("%d requests: a gone endpoint still gets alerts", n)
	}
}

// TestLocalRedirectNotFollowed: a 3xx is a failed attempt; its Location
// gets nothing.
func TestLocalRedirectNotFollowed(t *testing.T) {
	le := newLocalEnv(t)
	rc := newReceiver(t)
	target := newReceiver(t)
	le.confirmed(t, rc)
	rc.answer(status(http.StatusTemporaryRedirect, "Location", target.URL))
	le.publish(t, le.org.ID)
	le.deliver(t)
	if n := len(target.received()); n != 0 {
		t.Errorf("the redirect was followed: its target got %d requests", n)
	}
	ds, _ := le.st.DueDeliveries(le.ctx, le.clock.Now().Add(time.Hour), 10)
	if len(ds) != 1 || ds[0].LastError != "status 307" {
		t.Errorf("after a redirect: %+v, want a retry", ds)
	}
}

// TestLocalGivesUp: after the whole schedule fails the delivery is dropped,
// the webhook disabled (it needs confirming again) and the Owners told by
// mail (SECURITY G9).
func TestLocalGivesUp(t *testing.T) {
	box := newSMTPBox(t)
	sender, err := mail.NewSMTP("smtp://"+box.addr, "kve@example.test")
	if err != nil {
		t.Fatal(err)
	}
	le := newLocalEnv(t, func(c *LocalConfig) {
		c.Schedule = []time.Duration{time.Second, time.Second}
		c.Mail = sender
	})
	rc := newReceiver(t)
	le.confirmed(t, rc)
	rc.answer(status(500), status(502), status(503))
	le.publish(t, le.org.ID)
	for range 3 {
		le.deliver(t)
		le.clock.Add(time.Second)
	}
	if ds, _ := le.st.DueDeliveries(le.ctx, le.clock.Now().Add(time.Hour), 10); len(ds) != 0 {
		t.Errorf("still queued after the schedule: %+v", ds)
	}
	if n := len(rc.received()); n != 4 {
		t.Errorf("%d requests, want the confirmation and 3 attempts", n)
	}
	if !strings.Contains(le.logs.String(), "alert delivery given up") {
		t.Error("giving up was not logged")
	}
	subs, _ := le.st.Subscriptions(le.ctx, le.org.ID)
	if len(subs) != 1 || !subs[0].ConfirmedAt.IsZero() {
		t.Errorf("subscription after giving up: %+v, want it disabled", subs)
	}
	msgs := box.all()
	if len(msgs) != 1 {
		t.Fatalf("%d mails, want one to the owner", len(msgs))
	}
	if subject, text := mailText(t, msgs[0]); !strings.Contains(subject, "disabled") || !strings.Contains(text, rc.URL) {
		t.Errorf("mail %q:\n%s", subject, text)
	}
}

// TestLocalPrivateAddress (SECURITY T14, DESIGN §4): without the
// deployment's allowance, local delivery cannot reach a private address.
func TestLocalPrivateAddress(t *testing.T) {
	le := newLocalEnv(t, func(c *LocalConfig) { c.Transport = proxy.NewTransport(proxy.Timeouts{}, nil) })
	rc := newReceiver(t)
	le.subscribe(t, le.org.ID, "http", rc.URL)
	le.deliver(t)
	if n := len(rc.received()); n != 0 {
		t.Fatalf("a loopback endpoint got %d requests", n)
	}
	ds, _ := le.st.DueDeliveries(le.ctx, le.clock.Now().Add(time.Hour), 10)
	if len(ds) != 1 || !strings.Contains(ds[0].LastError, "private") {
		t.Errorf("queued: %+v, want a retry after a refused dial", ds)
	}
}

// TestLocalSurvivesRestart (SECURITY T40): a delivery queued when kve
// stops is made after it starts again, signed with the same key.
func TestLocalSurvivesRestart(t *testing.T) {
	dir := t.TempDir()
	le := newLocalEnv(t, func(c *LocalConfig) { c.Dir = dir })
	rc := newReceiver(t)
	le.confirmed(t, rc)
	rc.answer(status(http.StatusServiceUnavailable))
	n := le.publish(t, le.org.ID)
	le.deliver(t)
	again, err := NewLocal(le.st, LocalConfig{BaseURL: le.kve.URL, Dir: dir, Transport: proxy.NewTransport(proxy.Timeouts{}, loopback),
		Jitter: -1, Now: le.clock.Now, Logger: le.log})
	if err != nil {
		t.Fatal(err)
	}
	again.Close()
	le.clock.Add(time.Minute)
	if err := again.DeliverDue(le.ctx); err != nil {
		t.Fatal(err)
	}
	m := rc.message(t, 2)
	if err := le.v.Verify(le.ctx, m); err != nil || m.Message != string(n.Message) {
		t.Errorf("after the restart: %v, message %q", err, m.Message)
	}
}

// smtpBox is an SMTP server on loopback (emersion/go-smtp) keeping every
// message.
type smtpBox struct {
	addr string
	mu   sync.Mutex
	msgs []string
	got  chan struct{}
}

func (b *smtpBox) all() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]string(nil), b.msgs...)
}

func TestLocalEmail(t *testing.T) {
	box := newSMTPBox(t)
	sender, err := mail.NewSMTP("smtp://"+box.addr, "kve@example.test")
	if err != nil {
		t.Fatal(err)
	}
	le := newLocalEnv(t, func(c *LocalConfig) { c.Mail = sender })
	sub := le.subscribe(t, le.org.ID, "email", "ops@example.test")
	le.deliver(t)
	msgs := box.all()
	if len(msgs) != 1 {
		t.Fatalf("%d mails, want the confirmation", len(msgs))
	}
	subject, text := mailText(t, msgs[0])
	link := ""
	for _, line := range strings.Split(text, "\n") {
		if line = strings.TrimSpace(line); strings.HasPrefix(line, le.kve.URL+LocalPath) {
			link = line
		}
	}
	if subject != confirmSubject || link == "" {
		t.Fatalf("confirmation mail %q:\n%s", subject, text)
	}
	res, err := http.Get(link)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if got, _ := le.st.Subscription(le.ctx, sub.OrgID, sub.ID); res.StatusCode != http.StatusOK || got.ConfirmedAt.IsZero() {
		t.Fatalf("confirming by the mail's link: %d, confirmed at %v", res.StatusCode, got.ConfirmedAt)
	}
	n := le.publish(t, le.org.ID)
	le.deliver(t)
	msgs = box.all()
	if len(msgs) != 2 {
		t.Fatalf("%d mails, want the confirmation and the alert", len(msgs))
	}
	subject, text = mailText(t, msgs[1])
	if subject != n.Subject || !strings.HasPrefix(text, string(n.Message)) || !strings.Contains(text, "Action=Unsubscribe") {
		t.Errorf("alert mail %q:\n%s", subject, text)
	}
}

func TestLocalEmailNeedsMail(t *testing.T) {
	le := newLocalEnv(t)
	_, err := le.l.Subscribe(le.ctx, store.Subscription{ID: "sub_1", OrgID: le.org.ID, Protocol: "email", Endpoint: "ops@example.test"})
	if kve.KindOf(err) != kve.KindInvalid {
		t.Errorf("email subscription without mail: %v, want KindInvalid", err)
	}
}
