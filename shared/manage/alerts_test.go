package manage_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/keyvault-edge/kve/shared/alerts"
	"github.com/keyvault-edge/kve/shared/alerts/snsverify"
	"github.com/keyvault-edge/kve/shared/kve"
	"github.com/keyvault-edge/kve/shared/manage"
	"github.com/keyvault-edge/kve/shared/proxy"
	"github.com/keyvault-edge/kve/shared/store"
)

func TestTokenAlertDefaults(t *testing.T) {
	tm := newTeam(t)
	ctx := t.Context()
	tests := []struct {
		name        string
		p           manage.Principal
		in          manage.TokenInput
		wantAlerts  bool
		wantSuspend bool
		wantKind    kve.Kind
	}{
		{"prd: alerts on", tm.pAdmin, manage.TokenInput{Env: "prd"}, true, true, kve.KindInternal},
		{"stg: alerts off", tm.pAdmin, manage.TokenInput{Env: "stg"}, false, true, kve.KindInternal},
		{"dev: alerts off", tm.pAdmin, manage.TokenInput{Env: "dev"}, false, true, kve.KindInternal},
		{"prd, alerts turned off", tm.pAdmin, manage.TokenInput{Env: "prd", Alerts: ptr(false)}, false, true, kve.KindInternal},
		{"dev, alerts on, no suspension", tm.pAdmin, manage.TokenInput{Env: "dev", Alerts: ptr(true), AutoSuspend: ptr(false)}, true, false, kve.KindInternal},
		{"developer keeps suspension", tm.pDev, manage.TokenInput{Env: "dev", Personal: true, AutoSuspend: ptr(false)}, false, false, kve.KindForbidden},
		{"developer, alerts on", tm.pDev, manage.TokenInput{Env: "dev", Personal: true, Alerts: ptr(true)}, true, true, kve.KindInternal},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := tt.in
			in.Name, in.Key, in.AllowServer = "t", "main", true
			it, err := tm.Service.CreateToken(ctx, tm.Org.Slug, tt.p, in)
			if tt.wantKind != kve.KindInternal {
				wantKind(t, err, tt.wantKind)
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			stored, err := tm.Store.Token(ctx, tm.Org.ID, it.Token.ID)
			if err != nil || stored.Alerts != tt.wantAlerts || stored.AutoSuspend != tt.wantSuspend {
				t.Errorf("stored: alerts %v, auto suspend %v (%v); want %v, %v", stored.Alerts, stored.AutoSuspend, err, tt.wantAlerts, tt.wantSuspend)
			}
		})
	}
}

func TestPatchAlerting(t *testing.T) {
	tm := newTeam(t)
	ctx := t.Context()
	it, err := tm.Service.CreateToken(ctx, tm.Org.Slug, tm.pAdmin, manage.TokenInput{Name: "web", Key: "main", Env: "prd", AllowServer: true})
	if err != nil {
		t.Fatal(err)
	}
	id := it.Token.ID
	got, err := tm.Service.UpdateToken(ctx, tm.Org.Slug, tm.pAdmin, id, manage.TokenPatch{Alerts: ptr(false), AutoSuspend: ptr(false), Suspended: ptr(true)})
	if err != nil {
		t.Fatal(err)
	}
	if got.Alerts || got.AutoSuspend || !got.Suspended() || got.Suspension != "manual" || !got.SuspendedAt.Equal(tm.Clock.Now()) {
		t.Errorf("after patch: %+v", got)
	}
	tm.Clock.Add(time.Minute)
	got, err = tm.Service.UpdateToken(ctx, tm.Org.Slug, tm.pOwner, id, manage.TokenPatch{Suspended: ptr(true)})
	if err != nil || !got.SuspendedAt.Equal(tm.Clock.Now().Add(-time.Minute)) {
		t.Errorf("suspending a suspended token moved its time: %v, %v", got.SuspendedAt, err)
	}
	got, err = tm.Service.UpdateToken(ctx, tm.Org.Slug, tm.pOwner, id, manage.TokenPatch{Suspended: ptr(false)})
	if err != nil || got.Suspended() || got.Suspension != "" {
		t.Errorf("resumed: %+v, %v", got, err)
	}
	_, err = tm.Service.UpdateToken(ctx, tm.Org.Slug, tm.pDev, id, manage.TokenPatch{Suspended: ptr(false)})
	wantKind(t, err, kve.KindForbidden)
	evs, err := tm.Store.Events(ctx, tm.Org.ID, store.EventFilter{Action: "token.update", Target: id})
	if err != nil || len(evs.Items) != 3 || evs.Items[2].Detail["fields"] != "alerts,auto_suspend,suspended" {
		t.Errorf("audit %+v, %v", evs.Items, err)
	}
}

// recordIncident makes a breach incident of a token, as the proxy's
// detector would.
func recordIncident(t *testing.T, tm *team, tokenID string, typ alerts.Type) store.Incident {
	t.Helper()
	r := alerts.NewResponder(tm.Store, nil, alerts.ResponderConfig{Now: tm.Clock.Now})
	now := tm.Clock.Now()
	err := r.Handle(t.Context(), []alerts.Event{{Type: typ, OrgID: tm.Org.ID, TokenID: tokenID, At: now,
		RequestID: kve.NewID(kve.PrefixRequest, now), Origin: "https://evil.example", IP: "203.0.113.9", Detail: "test"}})
	if err != nil {
		t.Fatal(err)
	}
	inc, err := tm.Store.Incident(t.Context(), tm.Org.ID, alerts.IncidentID(tm.Org.ID, tokenID, typ))
	if err != nil {
		t.Fatal(err)
	}
	return inc
}

func TestIncidents(t *testing.T) {
	tm := newTeam(t)
	ctx := t.Context()
	it, err := tm.Service.CreateToken(ctx, tm.Org.Slug, tm.pAdmin, manage.TokenInput{Name: "web", Key: "main", Env: "prd", AllowServer: true})
	if err != nil {
		t.Fatal(err)
	}
	inc := recordIncident(t, tm, it.Token.ID, alerts.OriginNotAllowed)
	for name, p := range map[string]manage.Principal{"owner": tm.pOwner, "admin": tm.pAdmin} {
		page, err := tm.Service.Incidents(ctx, tm.Org.Slug, p, manage.IncidentQuery{})
		if err != nil || len(page.Items) != 1 || page.Items[0].ID != inc.ID || page.Items[0].TokenName != "web" {
			t.Errorf("%s: incidents %+v, %v", name, page.Items, err)
		}
	}
	_, err = tm.Service.Incidents(ctx, tm.Org.Slug, tm.pDev, manage.IncidentQuery{})
	wantKind(t, err, kve.KindForbidden)
	_, err = tm.Service.Incidents(ctx, tm.Org.Slug, tm.pOutsider, manage.IncidentQuery{})
	wantKind(t, err, kve.KindNotFound)

	_, err = tm.Service.AckIncident(ctx, tm.Org.Slug, tm.pDev, inc.ID)
	wantKind(t, err, kve.KindForbidden)
	acked, err := tm.Service.AckIncident(ctx, tm.Org.Slug, tm.pAdmin, inc.ID)
	if err != nil || acked.AckedBy != tm.Admin.ID || !acked.AckedAt.Equal(tm.Clock.Now()) {
		t.Fatalf("ack: %+v, %v", acked, err)
	}
	_, err = tm.Service.AckIncident(ctx, tm.Org.Slug, tm.pOwner, inc.ID)
	wantKind(t, err, kve.KindConflict)
	_, err = tm.Service.AckIncident(ctx, tm.Org.Slug, tm.pOwner, "inc_unknown")
	wantKind(t, err, kve.KindNotFound)
	open, err := tm.Service.Incidents(ctx, tm.Org.Slug, tm.pOwner, manage.IncidentQuery{Open: true})
	if err != nil || len(open.Items) != 0 {
		t.Errorf("open incidents after the ack: %+v, %v", open.Items, err)
	}
	evs, _ := tm.Store.Events(ctx, tm.Org.ID, store.EventFilter{Action: "incident.ack"})
	if len(evs.Items) != 1 || evs.Items[0].Detail["type"] != "origin_not_allowed" {
		t.Errorf("audit %+v", evs.Items)
	}
}

// alertsTeam is a team whose Service delivers alerts through local mode's
// channel to webhooks on loopback, its endpoints served like local mode's.
type alertsTeam struct {
	*team
	svc       *manage.Service
	local     *alerts.Local
	hooks     chan *snsverify.Message // notifications the receiver got
	confirmed chan struct{}           // the receiver confirmed a subscription
	rc        *httptest.Server
}

func newAlertsTeam(t *testing.T) *alertsTeam {
	t.Helper()
	tm := newTeam(t)
	var h http.Handler = http.NotFoundHandler()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { h.ServeHTTP(w, r) }))
	t.Cleanup(srv.Close)
	local, err := alerts.NewLocal(tm.Store, alerts.LocalConfig{BaseURL: srv.URL,
		Transport: proxy.NewTransport(proxy.Timeouts{}, []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}),
		Jitter:    -1, Now: tm.Clock.Now, Logger: tm.Logs.Logger()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(local.Close)
	h = local.Handler()
	cfg := tm.Config
	cfg.AllowInsecureUpstreams = true
	a := &alertsTeam{team: tm, local: local, hooks: make(chan *snsverify.Message, 10), confirmed: make(chan struct{}, 10),
		svc: manage.New(cfg, manage.Deps{Store: tm.Store, Secrets: tm.Secrets, Keyring: tm.Keyring, Alerts: local})}
	v := &snsverify.Verifier{CertURLPrefixes: []string{local.CertURLPrefix()}}
	receive := snsverify.Handler(v, func(_ context.Context, m *snsverify.Message) error {
		a.hooks <- m
		return nil
	})
	a.rc = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		typ := r.Header.Get("X-Amz-Sns-Message-Type")
		receive.ServeHTTP(w, r)
		if typ == snsverify.TypeSubscriptionConfirmation {
			a.confirmed <- struct{}{}
		}
	}))
	t.Cleanup(a.rc.Close)
	return a
}

func (a *alertsTeam) next(t *testing.T) *snsverify.Message {
	t.Helper()
	select {
	case m := <-a.hooks:
		return m
	case <-time.After(10 * time.Second):
		t.Fatal("the receiver got no alert")
		return nil
	}
}

func TestSubscriptions(t *testing.T) {
	a := newAlertsTeam(t)
	ctx := t.Context()
	for _, tt := range []struct {
		name string
		in   manage.SubscriptionInput
		want kve.Kind
	}{
		{"unknown protocol", manage.SubscriptionInput{Protocol: "sms", Endpoint: "+15555550100"}, kve.KindInvalid},
		{"not an address", manage.SubscriptionInput{Protocol: "email", Endpoint: "Ops <ops@example.com>"}, kve.KindInvalid},
		{"scheme mismatch", manage.SubscriptionInput{Protocol: "https", Endpoint: "http://hooks.example.com"}, kve.KindInvalid},
		{"no host", manage.SubscriptionInput{Protocol: "https", Endpoint: "https:///x"}, kve.KindInvalid},
		{"fragment", manage.SubscriptionInput{Protocol: "https", Endpoint: "https://hooks.example.com/#x"}, kve.KindInvalid},
		{"email without mail in local mode", manage.SubscriptionInput{Protocol: "email", Endpoint: "ops@example.com"}, kve.KindInvalid},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := a.svc.Subscribe(ctx, a.Org.Slug, a.pAdmin, tt.in)
			wantKind(t, err, tt.want)
		})
	}
	_, err := a.Service.Subscribe(ctx, a.Org.Slug, a.pAdmin, manage.SubscriptionInput{Protocol: "http", Endpoint: a.rc.URL})
	wantKind(t, err, kve.KindInvalid) // http only where private networks are allowed
	_, err = a.svc.Subscribe(ctx, a.Org.Slug, a.pDev, manage.SubscriptionInput{Protocol: "http", Endpoint: a.rc.URL})
	wantKind(t, err, kve.KindForbidden)

	sub, err := a.svc.Subscribe(ctx, a.Org.Slug, a.pAdmin, manage.SubscriptionInput{Protocol: "HTTP", Endpoint: " " + a.rc.URL + " "})
	if err != nil {
		t.Fatal(err)
	}
	if sub.Confirmed || sub.Protocol != "http" || sub.Endpoint != a.rc.URL {
		t.Errorf("new subscription %+v", sub)
	}
	_, err = a.svc.Subscribe(ctx, a.Org.Slug, a.pOwner, manage.SubscriptionInput{Protocol: "http", Endpoint: a.rc.URL})
	wantKind(t, err, kve.KindConflict)
	// The receiver's handler verifies the confirmation request and
	// confirms; nothing else arrives before.
	select {
	case <-a.confirmed:
	case m := <-a.hooks:
		t.Fatalf("a notification arrived before the confirmation: %+v", m)
	case <-time.After(10 * time.Second):
		t.Fatal("no confirmation request arrived")
	}
	subs, err := a.svc.AlertSubscriptions(ctx, a.Org.Slug, a.pOwner)
	if err != nil || len(subs) != 1 || !subs[0].Confirmed {
		t.Fatalf("subscriptions %+v, %v: not confirmed", subs, err)
	}
	_, err = a.svc.AlertSubscriptions(ctx, a.Org.Slug, a.pDev)
	wantKind(t, err, kve.KindForbidden)

	if err := a.svc.TestAlert(ctx, a.Org.Slug, a.pAdmin); err != nil {
		t.Fatal(err)
	}
	m := a.next(t)
	var alert alerts.Alert
	if err := json.Unmarshal([]byte(m.Message), &alert); err != nil || alert.Kind != alerts.KindTest || alert.Org.ID != a.Org.ID {
		t.Errorf("test alert %+v, %v", alert, err)
	}
	if err := a.svc.TestAlert(ctx, a.Org.Slug, a.pDev); kve.KindOf(err) != kve.KindForbidden {
		t.Errorf("developer test alert: %v", err)
	}

	wantKind(t, a.svc.Unsubscribe(ctx, a.Org.Slug, a.pDev, sub.ID), kve.KindForbidden)
	wantKind(t, a.svc.Unsubscribe(ctx, a.Org.Slug, a.pOutsider, sub.ID), kve.KindNotFound)
	if err := a.svc.Unsubscribe(ctx, a.Org.Slug, a.pOwner, sub.ID); err != nil {
		t.Fatal(err)
	}
	wantKind(t, a.svc.Unsubscribe(ctx, a.Org.Slug, a.pOwner, sub.ID), kve.KindNotFound)
	for _, action := range []string{"alert_subscription.create", "alert.test", "alert_subscription.delete"} {
		if evs, _ := a.Store.Events(ctx, a.Org.ID, store.EventFilter{Action: action}); len(evs.Items) != 1 {
			t.Errorf("audit %s: %+v", action, evs.Items)
		}
	}
}

func TestSubscriptionLimit(t *testing.T) {
	a := newAlertsTeam(t)
	ctx := t.Context()
	for i := range 20 {
		if _, err := a.svc.Subscribe(ctx, a.Org.Slug, a.pOwner, manage.SubscriptionInput{Protocol: "https",
			Endpoint: "https://hooks.example.invalid/kve/" + string(rune('a'+i))}); err != nil {
			t.Fatal(err)
		}
	}
	_, err := a.svc.Subscribe(ctx, a.Org.Slug, a.pOwner, manage.SubscriptionInput{Protocol: "https", Endpoint: "https://hooks.example.invalid/one-more"})
	wantKind(t, err, kve.KindConflict)
}

func TestRedactEndpoint(t *testing.T) {
	for in, want := range map[string]string{
		"https://user:pass-FAKE@hooks.example.com/kve": "https://user:xxxxx@hooks.example.com/kve",
		"https://hooks.example.com/kve":                "https://hooks.example.com/kve",
		"ops@example.com":                              "ops@example.com",
	} {
		if got := manage.RedactEndpoint(in); got != want {
			t.Errorf("RedactEndpoint(%q) = %q, want %q", in, got, want)
		}
	}
}

// scanner is a locally generated P-256 key standing in for GitHub's secret
// scanning key, and the keys list naming it.
type scanner struct {
	id   string
	priv *ecdsa.PrivateKey
	keys *alerts.ScanningKeys
}

func newScanner(t *testing.T) *scanner {
	t.Helper()
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKIXPublicKey(&priv.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	meta, err := json.Marshal(map[string]any{"public_keys": []map[string]any{{"key_identifier": "90a4211",
		"key": string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})), "is_current": true}}})
	if err != nil {
		t.Fatal(err)
	}
	keys, err := alerts.ParseScanningKeys(meta)
	if err != nil {
		t.Fatal(err)
	}
	return &scanner{id: "90a4211", priv: priv, keys: keys}
}

func (s *scanner) sign(t *testing.T, body []byte) string {
	t.Helper()
	sum := sha256.Sum256(body)
	sig, err := ecdsa.SignASN1(rand.Reader, s.priv, sum[:])
	if err != nil {
		t.Fatal(err)
	}
	return base64.StdEncoding.EncodeToString(sig)
}

// TestReportLeaks: a signed report suspends leaked prd and stg tokens,
// records a leak for every kve token it names, labels each report by the
// token's SHA-256, and never writes a token value to the log.
func TestReportLeaks(t *testing.T) {
	sc := newScanner(t)
	tm := newTeam(t, func(c *manage.Config) { c.ScanningKeys = sc.keys })
	ctx := t.Context()
	issue := func(env string) manage.IssuedToken {
		it, err := tm.Service.CreateToken(ctx, tm.Org.Slug, tm.pAdmin, manage.TokenInput{Name: env, Key: "main", Env: env, AllowServer: true})
		if err != nil {
			t.Fatal(err)
		}
		return it
	}
	prd, stg, dev := issue("prd"), issue("stg"), issue("dev")
	unknown := kve.NewTokenValue(kve.TokenShared, kve.EnvPrd).Reveal()
	values := []string{prd.Value.Reveal(), stg.Value.Reveal(), dev.Value.Reveal(), unknown, "kve_not_a_token"}
	var reports []alerts.LeakReport
	for _, v := range values {
		reports = append(reports, alerts.LeakReport{Token: v, Type: "kve_token", URL: "https://github.com/octo/app/blob/1/.env", Source: "content"})
	}
	body, err := json.Marshal(reports)
	if err != nil {
		t.Fatal(err)
	}
	verdicts, err := tm.Service.ReportLeaks(ctx, sc.id, sc.sign(t, body), body)
	if err != nil {
		t.Fatal(err)
	}
	wantLabels := []string{alerts.TruePositive, alerts.TruePositive, alerts.TruePositive, alerts.FalsePositive, alerts.FalsePositive}
	for i, v := range verdicts {
		if v.Label != wantLabels[i] || v.TokenHash != alerts.TokenHash(values[i]) || v.TokenType != "kve_token" {
			t.Errorf("verdict %d: %+v, want %s", i, v, wantLabels[i])
		}
	}
	for _, tt := range []struct {
		it            manage.IssuedToken
		wantSuspended bool
	}{{prd, true}, {stg, true}, {dev, false}} {
		got, err := tm.Store.Token(ctx, tm.Org.ID, tt.it.Token.ID)
		if err != nil || got.Suspended() != tt.wantSuspended || tt.wantSuspended && got.Suspension != string(alerts.LeakReported) {
			t.Errorf("%s token: suspended %v (%q), want %v", got.Env, got.Suspended(), got.Suspension, tt.wantSuspended)
		}
		inc, err := tm.Store.Incident(ctx, tm.Org.ID, alerts.IncidentID(tm.Org.ID, tt.it.Token.ID, alerts.LeakReported))
		if err != nil || inc.Count != 1 || inc.Severity != alerts.SeverityCritical && tt.wantSuspended {
			t.Errorf("%s leak incident: %+v, %v", tt.it.Token.Env, inc, err)
		}
	}
	answer, _ := json.Marshal(verdicts)
	for _, v := range values[:4] {
		if strings.Contains(tm.Logs.String(), v) || strings.Contains(string(answer), v) {
			t.Errorf("a reported token value reached the log or the answer")
		}
	}

	_, err = tm.Service.ReportLeaks(ctx, sc.id, sc.sign(t, body), append(body, ' '))
	wantKind(t, err, kve.KindUnauthenticated)
	_, err = tm.Service.ReportLeaks(ctx, "other", sc.sign(t, body), body)
	wantKind(t, err, kve.KindUnauthenticated)
	notJSON := []byte(`{"token":"x"}`)
	_, err = tm.Service.ReportLeaks(ctx, sc.id, sc.sign(t, notJSON), notJSON)
	wantKind(t, err, kve.KindInvalid)

	plain := newTeam(t)
	_, err = plain.Service.ReportLeaks(ctx, sc.id, sc.sign(t, body), body)
	wantKind(t, err, kve.KindNotFound) // no keys configured: no endpoint
}
