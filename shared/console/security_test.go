package console_test

import (
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/keyvault-edge/kve/shared/alerts"
	"github.com/keyvault-edge/kve/shared/manage"
	"github.com/keyvault-edge/kve/shared/store"
)

// TestEscaping renders attacker-chosen names on every page that shows them
// (SECURITY T37): an organization name and a token name with markup, which
// also reach the switcher, the page title and the audit log.
func TestEscaping(t *testing.T) {
	s := newSite(t)
	b := s.owner(t)
	const orgName = `<script>alert("org")</script> & Co`
	res := b.post("/o/new", url.Values{"name": {orgName}})
	if res.Status != http.StatusSeeOther {
		t.Fatalf("create org: status %d\n%s", res.Status, res.Body)
	}
	slug := strings.TrimSuffix(strings.TrimPrefix(res.location(), "/o/"), "/tokens?done=org_created")
	if _, err := s.Service.CreateKey(t.Context(), slug, principal(t, s, s.Owner), manage.KeyInput{Name: "main", Provider: "openai", Secret: "sk-test-FAKE-0123456789abcdef"}); err != nil {
		t.Fatal(err)
	}
	const tokenName = `<img src=x onerror=alert(1)>"'`
	created := b.post("/o/"+slug+"/tokens", tokenFields(tokenName))
	pages := map[string]string{"token value page": created.Body}
	// The token is used, and breached by a client whose samples are
	// markup too, so that usage, alerts and billing name it.
	tok, err := s.Store.Token(t.Context(), org(t, s, slug), tokenID(t, b.mustGet("/o/"+slug+"/tokens"), escapeText(tokenName)))
	if err != nil {
		t.Fatal(err)
	}
	use(t, s, tok, s.Clock.Now(), `<b>model</b>`, 1, 1, 1, 1)
	breach(t, s, tok, alerts.OriginNotAllowed, hostileOrigin, hostileAgent)
	for _, path := range []string{"/o/" + slug + "/tokens", "/o/" + slug + "/settings", "/o/" + slug + "/settings/delete",
		"/o/" + slug + "/members", "/o/" + slug + "/audit", "/account", "/o/acme-labs/tokens",
		"/o/" + slug + "/tokens/" + tok.ID, "/o/" + slug + "/usage", "/o/" + slug + "/alerts", "/o/" + slug + "/billing"} {
		pages[path] = b.mustGet(path)
	}
	for name, page := range pages {
		t.Run(name, func(t *testing.T) {
			for _, raw := range []string{"<script>alert", "<img src=x", `alert("org")`, "<b>model", `"><script>`} {
				if strings.Contains(page, raw) {
					t.Errorf("page holds %q unescaped", raw)
				}
			}
			if !strings.Contains(page, "&lt;script&gt;alert(&#34;org&#34;)&lt;/script&gt; &amp; Co") {
				t.Error("page does not show the organization's name, escaped")
			}
		})
	}
	if !strings.Contains(pages["/o/"+slug+"/tokens"], `<span class="name">&lt;img src=x onerror=alert(1)&gt;&#34;&#39;</span>`) {
		t.Error("the token list does not show the token's name, escaped")
	}
	if !strings.Contains(pages["/o/"+slug+"/tokens"], `data-confirm="Revoke the token “&lt;img src=x onerror=alert(1)&gt;&#34;&#39;”?`) {
		t.Error("the revoke dialog's text is not escaped as an attribute")
	}
	if !strings.Contains(pages["/o/"+slug+"/audit"], `name=<code>&lt;img src=x onerror=alert(1)&gt;&#34;&#39;</code>`) {
		t.Error("the audit log does not show the token's name, escaped")
	}
	const escapedName = `<span class="name">&lt;img src=x onerror=alert(1)&gt;&#34;&#39;</span>`
	for path, want := range map[string][]string{
		"/usage":            {escapedName, `<code>&lt;b&gt;model&lt;/b&gt;</code>`, `<option value="` + tok.ID + `">&lt;img src=x onerror=alert(1)&gt;&#34;&#39;</option>`},
		"/alerts":           {escapedName, `origin <code>https://evil.example&#34;&gt;&lt;script&gt;alert(&#34;origin&#34;)&lt;/script&gt;</code>`, `aria-label="Acknowledge Origin not allowed on &lt;img src=x onerror=alert(1)&gt;&#34;&#39;"`},
		"/billing":          {escapedName, `<code>&lt;b&gt;model&lt;/b&gt;</code>`},
		"/tokens/" + tok.ID: {"<h1>Token &lt;img src=x onerror=alert(1)&gt;&#34;&#39;</h1>", `user agent <code>curl/8.5 &#39;x&#39; &lt;script&gt;alert(&#34;ua&#34;)&lt;/script&gt;</code>`},
	} {
		for _, w := range want {
			if !strings.Contains(pages["/o/"+slug+path], w) {
				t.Errorf("%s does not show %s", path, w)
			}
		}
	}
}

// org returns the id of the organization with slug.
func org(t *testing.T, s *site, slug string) string {
	t.Helper()
	m, err := s.Service.Member(t.Context(), slug, principal(t, s, s.Owner))
	if err != nil {
		t.Fatal(err)
	}
	return m.Org.ID
}

// TestCrossOrigin sends state-changing requests as another site would
// (SECURITY T32): refused, and nothing changes.
func TestCrossOrigin(t *testing.T) {
	s := newSite(t)
	b := s.owner(t)
	creds := url.Values{"email": {"owner@example.com"}, "password": {"owner-password-FAKE-1"}}
	for _, tt := range []struct {
		name   string
		header http.Header
		status int
	}{
		{"cross-site fetch metadata", http.Header{"Sec-Fetch-Site": {"cross-site"}}, 403},
		{"same-site, other origin", http.Header{"Sec-Fetch-Site": {"same-site"}}, 403},
		{"foreign Origin without fetch metadata", http.Header{"Origin": {"https://evil.example"}}, 403},
		{"same origin", http.Header{"Sec-Fetch-Site": {"same-origin"}, "Origin": {"http://example.com"}}, 200},
	} {
		t.Run(tt.name, func(t *testing.T) {
			before := len(tokens(t, s))
			res := b.do("POST", "/o/acme-labs/tokens", tokenFields("csrf "+tt.name), tt.header)
			if res.Status != tt.status {
				t.Errorf("create token: status %d, want %d", res.Status, tt.status)
			}
			if created := len(tokens(t, s)) - before; created != map[bool]int{true: 1, false: 0}[tt.status == 200] {
				t.Errorf("%d tokens created", created)
			}
			if tt.status != 403 {
				return
			}
			if !strings.Contains(res.Body, "came from another site") {
				t.Error("the refusal does not say why")
			}
			if res := b.do("POST", "/logout", nil, tt.header); res.Status != 403 {
				t.Errorf("logout: status %d, want 403", res.Status)
			}
			b.mustGet("/account") // still signed in
			if res := newVisitor(t, s.h).do("POST", "/login", creds, tt.header); res.Status != 403 || len(res.Cookies) != 0 {
				t.Errorf("login: status %d with %d cookies, want 403 and none", res.Status, len(res.Cookies))
			}
		})
	}
}

func tokens(t *testing.T, s *site) []string {
	t.Helper()
	page, err := s.Service.Tokens(t.Context(), "acme-labs", principal(t, s, s.Owner), manage.TokenQuery{IncludeRevoked: true})
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, tk := range page.Items {
		ids = append(ids, fmt.Sprintf("%s/%v/%v/%v/%v", tk.ID, tk.RevokedAt, tk.SuspendedAt, tk.Alerts, tk.AutoSuspend))
	}
	return ids
}

// getPages are every page a GET can open, for the Owner of acme-labs with a
// token whose id replaces {id}, a developer whose id replaces {user}, a
// pending invite whose id replaces {invite}, a breach incident of the
// token ({incident}) and an alert subscription ({sub}). The invite link's
// own page is checked in TestInviteWithoutMail.
var getPages = []string{
	"/", "/setup", "/login", "/logout", "/account", "/o/new",
	"/o/acme-labs", "/o/acme-labs/settings", "/o/acme-labs/settings/delete", "/o/acme-labs/tokens",
	"/o/acme-labs/tokens?env=dev&revoked=1", "/o/acme-labs/tokens/{id}/revoke", "/o/acme-labs/keys",
	"/o/acme-labs/keys/main/rotate", "/o/acme-labs/keys/main/delete", "/o/acme-labs/audit?action=token.create",
	"/o/acme-labs/members", "/o/acme-labs/members/{user}/remove", "/o/acme-labs/invites/{invite}/revoke",
	"/o/acme-labs/tokens/{id}", "/o/acme-labs/usage", "/o/acme-labs/usage?since=7d&token={id}",
	"/o/acme-labs/alerts", "/o/acme-labs/alerts?open=1&token={id}", "/o/acme-labs/alerts/subscriptions/{sub}/delete",
	"/o/acme-labs/billing", "/o/acme-labs/billing?month=2026-02",
	// Routes that only POST: a GET must not reach them.
	"/o/acme-labs/tokens/{id}/reveal", "/o/acme-labs/tokens/{id}/policy", "/o/acme-labs/env",
	"/o/acme-labs/settings/rename", "/o/acme-labs/members/{user}/role", "/o/acme-labs/invites",
	"/o/acme-labs/invites/{invite}/resend", "/o/acme-labs/tokens/{id}/alerting", "/o/acme-labs/tokens/{id}/suspend",
	"/o/acme-labs/tokens/{id}/resume", "/o/acme-labs/usage/unused/revoke", "/o/acme-labs/alerts/{incident}/ack",
	"/o/acme-labs/alerts/subscriptions", "/o/acme-labs/alerts/test", "/o/acme-labs/billing/prices",
}

// pageFixture makes what getPages name: a token with usage and an
// incident, a pending invite and an alert subscription; it returns the
// replacer for the page paths.
func pageFixture(t *testing.T, s *site, b *visitor) *strings.Replacer {
	t.Helper()
	b.createToken("acme-labs", tokenFields("svc"))
	id := tokenID(t, b.mustGet("/o/acme-labs/tokens"), "svc")
	tok, err := s.Store.Token(t.Context(), s.Org.ID, id)
	if err != nil {
		t.Fatal(err)
	}
	use(t, s, tok, s.Clock.Now(), "gpt-4o", 1, 10, 10, 100)
	inc := breach(t, s, tok, alerts.IPNotAllowed, "", "curl/8.5")
	owner := principal(t, s, s.Owner)
	invite, err := s.Service.CreateInvite(t.Context(), "acme-labs", owner, manage.InviteInput{Email: "new@example.com", Role: "developer"})
	if err != nil {
		t.Fatal(err)
	}
	sub, err := s.Service.Subscribe(t.Context(), "acme-labs", owner, manage.SubscriptionInput{Protocol: "https", Endpoint: "https://hooks.example.invalid/kve"})
	if err != nil {
		t.Fatal(err)
	}
	return strings.NewReplacer("{id}", id, "{user}", s.Dev.ID, "{invite}", invite.Invite.ID, "{incident}", inc.ID, "{sub}", sub.ID)
}

// TestNoMutationOnGET opens every page and checks that nothing changed: no
// token, key, session or audit event (a GET of a reveal would be one).
func TestNoMutationOnGET(t *testing.T) {
	s := newSite(t)
	b := s.owner(t)
	paths := pageFixture(t, s, b)
	snapshot := func() string {
		evs := auditEvents(t, s, store.EventFilter{})
		keys, err := s.Service.Keys(t.Context(), "acme-labs", principal(t, s, s.Owner))
		if err != nil {
			t.Fatal(err)
		}
		sessions, err := s.Store.Sessions(t.Context(), s.Owner.ID)
		if err != nil {
			t.Fatal(err)
		}
		var b strings.Builder
		for _, e := range evs {
			b.WriteString(e.ID + " ")
		}
		for _, k := range keys {
			b.WriteString(k.Name + k.Version + " ")
		}
		for _, sess := range sessions {
			b.WriteString(sess.ID + " ")
		}
		members, err := s.Store.Members(t.Context(), s.Org.ID)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range members {
			b.WriteString(m.UserID + string(m.Role) + " ")
		}
		invites, err := s.Store.Invites(t.Context(), s.Org.ID)
		if err != nil {
			t.Fatal(err)
		}
		for _, inv := range invites {
			b.WriteString(inv.ID + inv.ExpiresAt.String() + " ")
		}
		org, err := s.Store.Org(t.Context(), s.Org.ID)
		if err != nil {
			t.Fatal(err)
		}
		incidents, err := s.Store.Incidents(t.Context(), s.Org.ID, store.IncidentFilter{})
		if err != nil {
			t.Fatal(err)
		}
		for _, inc := range incidents.Items {
			fmt.Fprintf(&b, "%s %d %v ", inc.ID, inc.Count, inc.AckedAt)
		}
		subs, err := s.Store.Subscriptions(t.Context(), s.Org.ID)
		if err != nil {
			t.Fatal(err)
		}
		for _, sub := range subs {
			b.WriteString(sub.ID + " ")
		}
		billing, err := s.Store.Billing(t.Context(), s.Org.ID)
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&b, "%+v ", billing)
		return b.String() + org.Name + " " + strings.Join(tokens(t, s), " ")
	}
	before := snapshot()
	for _, path := range getPages {
		res := b.get(paths.Replace(path))
		if res.Status >= 500 {
			t.Errorf("GET %s: status %d", path, res.Status)
		}
	}
	if after := snapshot(); after != before {
		t.Errorf("GET requests changed state:\nbefore %s\nafter  %s", before, after)
	}
	if res := b.get(paths.Replace("/o/acme-labs/tokens/{id}/reveal")); res.Status != http.StatusNotFound || tokenValue.MatchString(res.Body) {
		t.Errorf("GET of the reveal route: status %d, want 404 and no value", res.Status)
	}
}

// TestHeaders checks what every answer carries: the CSP of the issue, no
// framing, no sniffing, no caching of pages; and that no page holds inline
// script, inline style or event-handler attributes, which the CSP would
// block anyway.
func TestHeaders(t *testing.T) {
	s := newSite(t)
	b := s.owner(t)
	paths := pageFixture(t, s, b)
	want := map[string]string{
		"Content-Security-Policy": "default-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
		"X-Content-Type-Options":  "nosniff",
		"X-Frame-Options":         "DENY",
		"Cache-Control":           "no-store",
		"Referrer-Policy":         "same-origin",
	}
	scriptTag := regexp.MustCompile(`<script\b[^>]*>`)
	inline := regexp.MustCompile(`(?i)<style\b|\sstyle\s*=|\son[a-z]+\s*=|javascript:`)
	for _, path := range getPages {
		path = paths.Replace(path)
		t.Run(path, func(t *testing.T) {
			res := b.get(path)
			for k, v := range want {
				if got := res.Header.Get(k); got != v {
					t.Errorf("%s: %q, want %q", k, got, v)
				}
			}
			if res.Header.Get("Strict-Transport-Security") != "" {
				t.Error("HSTS over plain HTTP")
			}
			if !strings.HasPrefix(res.Header.Get("Content-Type"), "text/html") {
				return
			}
			for _, tag := range scriptTag.FindAllString(res.Body, -1) {
				if !strings.Contains(tag, ` src="/static/`) {
					t.Errorf("inline or foreign script: %s", tag)
				}
			}
			if m := inline.FindString(res.Body); m != "" {
				t.Errorf("inline style or handler: %q", m)
			}
		})
	}
	b.tls = true
	b.post("/login", url.Values{"email": {"owner@example.com"}, "password": {"owner-password-FAKE-1"}})
	if got := b.get("/account").Header.Get("Strict-Transport-Security"); got != "max-age=31536000" {
		t.Errorf("HSTS over TLS: %q", got)
	}
}

func TestStatic(t *testing.T) {
	s := newSite(t)
	b := newVisitor(t, s.h)
	page := b.mustGet("/login")
	urls := regexp.MustCompile(`(?:href|src)="(/static/([0-9a-f]{16})/([a-z]+\.(css|js)))"`).FindAllStringSubmatch(page, -1)
	if len(urls) != 2 {
		t.Fatalf("login page links %d static files, want app.css and app.js", len(urls))
	}
	types := map[string]string{"css": "text/css; charset=utf-8", "js": "text/javascript; charset=utf-8"}
	for _, m := range urls {
		res := b.get(m[1])
		if res.Status != http.StatusOK || res.Header.Get("Content-Type") != types[m[4]] ||
			res.Header.Get("Cache-Control") != "public, max-age=31536000, immutable" || len(res.Body) < 100 {
			t.Errorf("GET %s: status %d, type %q, cache %q, %d bytes", m[1], res.Status,
				res.Header.Get("Content-Type"), res.Header.Get("Cache-Control"), len(res.Body))
		}
		stale := "/static/0000000000000000/" + m[3]
		if res := b.get(stale); res.Status != http.StatusNotFound || res.Header.Get("Cache-Control") != "no-store" {
			t.Errorf("GET %s: status %d, cache %q; want 404, not cached", stale, res.Status, res.Header.Get("Cache-Control"))
		}
	}
	if res := b.get("/static/x/nope.js"); res.Status != http.StatusNotFound {
		t.Errorf("unknown file: status %d", res.Status)
	}
	if res := b.get("/nowhere"); res.Status != http.StatusNotFound || !strings.Contains(res.Body, "There is no such page.") {
		t.Errorf("unknown page: status %d", res.Status)
	}
}
