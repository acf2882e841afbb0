package console_test

import (
	"fmt"
	"html"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/keyvault-edge/kve/shared/alerts"
	"github.com/keyvault-edge/kve/shared/console"
	"github.com/keyvault-edge/kve/shared/kve"
	"github.com/keyvault-edge/kve/shared/manage"
	"github.com/keyvault-edge/kve/shared/store"
)

// Samples a client chose, as a breach records them: markup and quotes in
// the Origin and User-Agent headers (SECURITY T37).
const (
	hostileOrigin = `https://evil.example"><script>alert("origin")</script>`
	hostileAgent  = `curl/8.5 'x' <script>alert("ua")</script>`
)

// breach records a breach of a token as the proxy's detector does, with
// the samples cleaned by alerts.Sample, and returns its incident.
func breach(t *testing.T, s *site, tok kve.Token, typ alerts.Type, origin, agent string) store.Incident {
	t.Helper()
	r := alerts.NewResponder(s.Store, nil, alerts.ResponderConfig{Now: s.Clock.Now})
	now := s.Clock.Now()
	err := r.Handle(t.Context(), []alerts.Event{{Type: typ, OrgID: tok.OrgID, TokenID: tok.ID, Env: tok.Env, At: now,
		RequestID: kve.NewID(kve.PrefixRequest, now), Origin: alerts.Sample(origin), IP: "203.0.113.9",
		UserAgent: alerts.Sample(agent), Detail: "test breach"}})
	if err != nil {
		t.Fatal(err)
	}
	inc, err := s.Store.Incident(t.Context(), tok.OrgID, alerts.IncidentID(tok.OrgID, tok.ID, typ))
	if err != nil {
		t.Fatal(err)
	}
	return inc
}

var incidentRow = regexp.MustCompile(`<tr id="incident-(inc_[0-9a-z]+)"`)

func TestAlerts(t *testing.T) {
	s := newSite(t)
	web := issue(t, s, s.Owner, "web", "prd", false)
	old := issue(t, s, s.Owner, "old", "dev", false)
	spoofed := breach(t, s, web, alerts.OriginNotAllowed, hostileOrigin, hostileAgent)
	s.Clock.Add(time.Minute)
	revoked := breach(t, s, old, alerts.RevokedTokenUsed, "", strings.Repeat("A", 300))
	owner := s.owner(t)

	page := owner.mustGet("/o/acme-labs/alerts")
	if diff := cmp.Diff([]string{revoked.ID, spoofed.ID}, names(incidentRow, page)); diff != "" {
		t.Errorf("incidents, latest first (-want +got):\n%s", diff)
	}
	for _, want := range []string{
		`<a href="/o/acme-labs/tokens/` + web.ID + `"><span class="name">web</span></a> <span class="badge env-prd">prd</span>`,
		`<span class="badge severity-medium">medium</span> Origin not allowed`,
		`origin <code>https://evil.example&#34;&gt;&lt;script&gt;alert(&#34;origin&#34;)&lt;/script&gt;</code>`,
		`user agent <code>curl/8.5 &#39;x&#39; &lt;script&gt;alert(&#34;ua&#34;)&lt;/script&gt;</code>`,
		`IP <code>203.0.113.9</code>`,
		`Revoked token used`,
		`aria-label="Acknowledge Origin not allowed on web"`,
		"user agent <code>" + strings.Repeat("A", 120) + "…</code>", // cut for the table
	} {
		if !strings.Contains(page, want) {
			t.Errorf("alerts page lacks %s", want)
		}
	}
	if strings.Contains(page, "<script>alert") {
		t.Error("a sample reached the page unescaped")
	}

	t.Run("roles", func(t *testing.T) {
		if body := s.as(t, s.Admin).mustGet("/o/acme-labs/alerts"); len(names(incidentRow, body)) != 2 {
			t.Error("an Admin does not see the incidents")
		}
		dev := s.as(t, s.Dev)
		if res := dev.get("/o/acme-labs/alerts"); res.Status != http.StatusForbidden || strings.Contains(res.Body, "evil.example") {
			t.Errorf("a developer opens the alerts: status %d, want 403", res.Status)
		}
		if nav := dev.mustGet("/o/acme-labs/tokens"); strings.Contains(nav, `href="/o/acme-labs/alerts"`) {
			t.Error("a developer's navigation links the alerts")
		}
		if res := dev.post("/o/acme-labs/alerts/"+spoofed.ID+"/ack", url.Values{}); res.Status != http.StatusForbidden {
			t.Errorf("a developer acknowledges: status %d, want 403", res.Status)
		}
	})

	t.Run("acknowledge", func(t *testing.T) {
		res := owner.post("/o/acme-labs/alerts/"+spoofed.ID+"/ack", url.Values{"back": {"open=1&next=https://evil.example"}})
		if res.Status != http.StatusSeeOther || res.location() != "/o/acme-labs/alerts?done=incident_acked&open=1" {
			t.Fatalf("ack: %d to %q", res.Status, res.location())
		}
		open := owner.mustGet(res.location())
		if diff := cmp.Diff([]string{revoked.ID}, names(incidentRow, open)); diff != "" {
			t.Errorf("unacknowledged incidents (-want +got):\n%s", diff)
		}
		all := owner.mustGet("/o/acme-labs/alerts")
		row := section(t, all, "incident-"+spoofed.ID)
		if !strings.Contains(row, "by you") || strings.Contains(row, "Acknowledge</button>") {
			t.Errorf("the acknowledged incident's row:\n%s", row)
		}
		if evs := auditEvents(t, s, store.EventFilter{Action: "incident.ack"}); len(evs) != 1 || evs[0].Target != spoofed.ID {
			t.Errorf("incident.ack events %+v", evs)
		}
		if res := owner.post("/o/acme-labs/alerts/inc_nope/ack", url.Values{}); res.Status != http.StatusNotFound {
			t.Errorf("ack of no incident: status %d, want 404", res.Status)
		}
	})

	t.Run("one token", func(t *testing.T) {
		body := owner.mustGet("/o/acme-labs/alerts?token=" + old.ID)
		if diff := cmp.Diff([]string{revoked.ID}, names(incidentRow, body)); diff != "" {
			t.Errorf("incidents of old (-want +got):\n%s", diff)
		}
	})
}

func TestSubscriptions(t *testing.T) {
	s := newSite(t)
	b := s.owner(t)
	if page := b.mustGet("/o/acme-labs/alerts"); !strings.Contains(page, "No subscriptions yet") || strings.Contains(page, "Send a test alert") {
		t.Error("a new organization's alerts page does not say it has no subscriptions")
	}
	subscribe := func(kind, endpoint string) *response {
		t.Helper()
		return b.post("/o/acme-labs/alerts/subscriptions", url.Values{"kind": {kind}, "endpoint": {endpoint}})
	}
	res := subscribe("webhook", "https://hooks.example.invalid/kve")
	if res.Status != http.StatusSeeOther || res.location() != "/o/acme-labs/alerts?done=subscribed#subscriptions" {
		t.Fatalf("subscribe: %d to %q\n%s", res.Status, res.location(), res.Body)
	}
	// A password in a webhook URL is for SNS to send, not for the page.
	if res := subscribe("webhook", "https://kve:hook-pass-FAKE@hooks.example.invalid/other"); res.Status != http.StatusSeeOther {
		t.Fatalf("subscribe with a password: status %d", res.Status)
	}
	page := b.mustGet("/o/acme-labs/alerts?done=subscribed")
	if !strings.Contains(page, "Subscription added.") {
		t.Error("the alerts page does not confirm the subscription")
	}
	subs := section(t, page, "subscriptions")
	for _, want := range []string{
		`<code class="endpoint">https://hooks.example.invalid/kve</code>`,
		`<code class="endpoint">https://kve:xxxxx@hooks.example.invalid/other</code>`,
		"by you", "Send a test alert",
	} {
		if !strings.Contains(subs, want) {
			t.Errorf("the subscriptions lack %s", want)
		}
	}
	if n := strings.Count(subs, `<span class="badge">waiting for confirmation</span>`); n != 2 {
		t.Errorf("%d subscriptions wait for confirmation, want 2", n)
	}
	if strings.Contains(page, "hook-pass-FAKE") {
		t.Error("the page shows a webhook's password")
	}
	list, err := s.Service.AlertSubscriptions(t.Context(), "acme-labs", principal(t, s, s.Owner))
	if err != nil || len(list) != 2 {
		t.Fatalf("subscriptions %v (%v), want 2", list, err)
	}
	if _, err := s.Store.ConfirmSubscription(t.Context(), s.Org.ID, list[0].ID, s.Clock.Now()); err != nil {
		t.Fatal(err)
	}
	if subs = section(t, b.mustGet("/o/acme-labs/alerts"), "subscriptions"); strings.Count(subs, `<span class="badge ok">confirmed</span>`) != 1 {
		t.Errorf("the confirmed subscription does not show so:\n%s", subs)
	}

	for _, tt := range []struct {
		name, kind, endpoint string
		field, msg           string // "" field: the top of the form
	}{
		{"plain http", "webhook", "http://hooks.example.invalid/kve", "endpoint", "webhooks must use https"},
		{"not a URL", "webhook", "hooks", "endpoint", "endpoint must be a https:// URL with a host"},
		{"no mail here", "email", "ops@example.com", "kind", "start local mode with --smtp"},
		{"not an address", "email", "ops at example", "endpoint", "endpoint must be a bare email address"},
		{"twice", "webhook", "https://hooks.example.invalid/kve", "", "this endpoint is subscribed already"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			res := subscribe(tt.kind, tt.endpoint)
			if res.Status != http.StatusUnprocessableEntity && res.Status != http.StatusConflict {
				t.Fatalf("status %d, want a refusal\n%s", res.Status, res.Body)
			}
			want := `<p class="field-error" id="` + tt.field + `-error">`
			if tt.field == "" {
				want = `<p class="error" role="alert">`
			}
			i := strings.Index(res.Body, want)
			if i < 0 || !strings.Contains(res.Body[i:min(len(res.Body), i+len(want)+200)], escapeText(tt.msg)) {
				t.Errorf("no message %q at %q", tt.msg, want)
			}
			if !strings.Contains(res.Body, `value="`+escapeText(tt.endpoint)+`"`) {
				t.Error("the refused form lost the endpoint")
			}
		})
	}

	t.Run("test alert", func(t *testing.T) {
		res := b.post("/o/acme-labs/alerts/test", url.Values{})
		if res.Status != http.StatusSeeOther || res.location() != "/o/acme-labs/alerts?done=alert_tested#subscriptions" {
			t.Fatalf("test alert: %d to %q", res.Status, res.location())
		}
		if evs := auditEvents(t, s, store.EventFilter{Action: "alert.test"}); len(evs) != 1 {
			t.Errorf("%d alert.test events, want 1", len(evs))
		}
		if res := s.as(t, s.Dev).post("/o/acme-labs/alerts/test", url.Values{}); res.Status != http.StatusForbidden {
			t.Errorf("a developer's test alert: status %d, want 403", res.Status)
		}
	})

	t.Run("delete", func(t *testing.T) {
		id := list[0].ID
		confirm := b.mustGet("/o/acme-labs/alerts/subscriptions/" + id + "/delete")
		if !strings.Contains(confirm, `<code class="endpoint">`+manage.RedactEndpoint(list[0].Endpoint)+`</code>`) {
			t.Error("the confirmation does not name the endpoint")
		}
		if got, _ := s.Service.AlertSubscriptions(t.Context(), "acme-labs", principal(t, s, s.Owner)); len(got) != 2 {
			t.Fatal("opening the confirmation deleted the subscription")
		}
		if res := s.as(t, s.Dev).post("/o/acme-labs/alerts/subscriptions/"+id+"/delete", url.Values{}); res.Status != http.StatusForbidden {
			t.Errorf("a developer deletes: status %d, want 403", res.Status)
		}
		res := b.post("/o/acme-labs/alerts/subscriptions/"+id+"/delete", url.Values{})
		if res.Status != http.StatusSeeOther || res.location() != "/o/acme-labs/alerts?done=unsubscribed#subscriptions" {
			t.Fatalf("delete: %d to %q", res.Status, res.location())
		}
		got, err := s.Service.AlertSubscriptions(t.Context(), "acme-labs", principal(t, s, s.Owner))
		if err != nil || len(got) != 1 || got[0].ID == id {
			t.Errorf("after the delete: %v (%v)", got, err)
		}
		if res := b.get("/o/acme-labs/alerts/subscriptions/" + id + "/delete"); res.Status != http.StatusNotFound {
			t.Errorf("confirmation of a deleted subscription: status %d, want 404", res.Status)
		}
	})
}

// TestAlertsWithoutDelivery runs the dashboard over a kve whose alerts
// have no channel: incidents still show, subscriptions cannot be made.
func TestAlertsWithoutDelivery(t *testing.T) {
	s := newSite(t)
	svc := manage.New(s.Config, manage.Deps{Store: s.Store, Secrets: s.Secrets, Keyring: s.Keyring})
	s.h = console.New(svc, console.Config{Logger: s.Logs.Logger(), PublicURL: publicURL, Now: s.Clock.Now})
	inc := breach(t, s, issue(t, s, s.Owner, "web", "prd", false), alerts.UsageSpike, "", "")
	page := s.owner(t).mustGet("/o/acme-labs/alerts")
	if diff := cmp.Diff([]string{inc.ID}, names(incidentRow, page)); diff != "" {
		t.Errorf("incidents (-want +got):\n%s", diff)
	}
	if !strings.Contains(page, "Alert delivery is not configured on this kve") || strings.Contains(page, `id="subscribe"`) {
		t.Error("the page does not say that delivery is not configured, or offers to subscribe")
	}
}

// TestAlertsPages pages through more incidents than one page lists.
func TestAlertsPages(t *testing.T) {
	s := newSite(t)
	types := []alerts.Type{alerts.OriginNotAllowed, alerts.ServerUse, alerts.IPNotAllowed, alerts.RevokedTokenUsed,
		alerts.ExpiredTokenUsed, alerts.SuspendedTokenUsed, alerts.EnvMismatch, alerts.UsageSpike, alerts.LeakReported}
	want := map[string]bool{}
	for i := range 6 {
		tok := issue(t, s, s.Owner, fmt.Sprintf("svc %d", i), "stg", false)
		for _, typ := range types {
			want[breach(t, s, tok, typ, "", "").ID] = true
			s.Clock.Add(time.Second)
		}
	}
	b := s.owner(t)
	first := b.mustGet("/o/acme-labs/alerts")
	next := regexp.MustCompile(`<a href="([^"]+)" rel="next">Older →</a>`).FindStringSubmatch(first)
	if next == nil {
		t.Fatal("the first page has no link to older incidents")
	}
	second := b.mustGet(html.UnescapeString(next[1]))
	got := append(names(incidentRow, first), names(incidentRow, second)...)
	if len(names(incidentRow, first)) != 50 || len(got) != len(want) {
		t.Errorf("pages of %d and %d incidents, want 50 and %d", len(names(incidentRow, first)), len(got)-50, len(want)-50)
	}
	for _, id := range got {
		if !want[id] {
			t.Errorf("incident %s listed twice or unknown", id)
		}
		delete(want, id)
	}
	if !strings.Contains(second, `<a href="/o/acme-labs/alerts">← Latest</a>`) {
		t.Error("the second page has no link back to the latest")
	}
}
