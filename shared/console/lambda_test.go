package console_test

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/aws/aws-lambda-go/events"

	"github.com/keyvault-edge/kve/shared/alerts"
	"github.com/keyvault-edge/kve/shared/console"
	"github.com/keyvault-edge/kve/shared/kve"
	"github.com/keyvault-edge/kve/shared/lambdahttp"
	"github.com/keyvault-edge/kve/shared/manage"
	"github.com/keyvault-edge/kve/shared/manage/managetest"
)

// Placeholders in the console fixtures of events/ (see its README), which
// the test replaces with what it holds: a session cookie's value, an invite
// link's code, a member's user id, a token's id and an incident's id.
const (
	sessionPlaceholder  = "SESSIONPLACEHOLDER0000000000000000000000000"
	invitePlaceholder   = "INVITECODEPLACEHOLDER22222"
	userPlaceholder     = "usr_userplaceholder00000000000"
	tokenPlaceholder    = "tok_tokenplaceholder0000000000"
	incidentPlaceholder = "inc_incidentplaceholder0000000"
)

// stagedURL is a deployment without a custom domain: API Gateway's default
// endpoint, where the stage is part of every URL the browser sees but not
// of the path the function gets.
const stagedURL = "https://a1b2c3d4e5.execute-api.us-east-1.amazonaws.com/prod"

var sessionCookie = regexp.MustCompile(`^__Host-kve_session=([0-9A-Za-z]{43}); Path=/; HttpOnly; Secure; SameSite=Lax$`)

// TestLambda runs every dashboard fixture of events/ through the Lambda
// adapter, in the order a new Owner would meet the pages: cookies and
// redirects travel in API Gateway's multi-value headers, and every link
// carries the stage.
func TestLambda(t *testing.T) {
	e := managetest.New(t, func(c *manage.Config) {
		c.SetupCode = func(context.Context) (kve.Secret, error) { return "setup-FAKE-2f9c1e", nil } // as in the fixture
		c.PublicURL = stagedURL                                                                     // invite links carry the stage too
	})
	fn := lambdahttp.Buffered(console.New(e.Service, console.Config{
		Logger: e.Logs.Logger(), PublicURL: stagedURL, Now: e.Clock.Now,
	}))
	var session, code, userID, tokenID, incidentID string
	setCookie := func(t *testing.T, res events.APIGatewayProxyResponse) string {
		t.Helper()
		cookies := res.MultiValueHeaders["Set-Cookie"]
		if len(cookies) != 1 {
			t.Fatalf("Set-Cookie %q, want one session cookie", cookies)
		}
		m := sessionCookie.FindStringSubmatch(cookies[0])
		if m == nil {
			t.Fatalf("Set-Cookie %q is not a __Host- session cookie with Secure, HttpOnly and SameSite=Lax", cookies[0])
		}
		return m[1]
	}

	for _, step := range []struct {
		fixture  string
		status   int
		location string
		referrer string // the Referrer-Policy, "same-origin" if empty
		body     []string
		then     func(t *testing.T, res events.APIGatewayProxyResponse)
	}{
		// A fresh install sends everyone to its setup page.
		{fixture: "console-home.json", status: 303, location: "/prod/setup"},
		{fixture: "console-setup.json", status: 200, body: []string{`action="/prod/setup"`, `href="/prod/static/`, `src="/prod/static/`}},
		{fixture: "console-setup-post.json", status: 303, location: "/prod/o/new", then: func(t *testing.T, res events.APIGatewayProxyResponse) {
			session = setCookie(t, res)
		}},
		{fixture: "console-login-post.json", status: 303, location: "/prod/o/acme/tokens", then: func(t *testing.T, res events.APIGatewayProxyResponse) {
			next := setCookie(t, res)
			if next == session {
				t.Error("login kept the session id")
			}
			session = next
			// The organization and key the next fixtures show, as the Owner
			// would have made them on the pages before.
			p := sessionPrincipal(t, e, session)
			if _, err := e.Service.CreateOrg(t.Context(), p, manage.OrgInput{Name: "Acme"}); err != nil {
				t.Fatal(err)
			}
			if _, err := e.Service.CreateKey(t.Context(), "acme", p, manage.KeyInput{Name: "openai-main", Provider: "openai", Secret: "sk-test-FAKE-lambda-0123456789"}); err != nil {
				t.Fatal(err)
			}
		}},
		{fixture: "console-org-new.json", status: 200, body: []string{`action="/prod/o/new"`, `href="/prod/o/acme/tokens"`}},
		{fixture: "console-token-create.json", status: 200, body: []string{"Token created", `id="token-value"`}},
		{fixture: "console-tokens.json", status: 200, body: []string{
			`<span class="name">web app</span>`, `<code class="origin">https://app.example.com</code>`,
			`<code class="origin">http://localhost:*</code>`, `action="/prod/o/acme/tokens/tok_`, `href="/prod/o/acme/keys"`,
		}, then: func(t *testing.T, res events.APIGatewayProxyResponse) {
			// The token is used; another is not, and a client breaks its
			// rules: what the usage, token and alerts pages show.
			m := regexp.MustCompile(`action="/prod/o/acme/tokens/(tok_[0-9a-z]{26})/reveal"`).FindStringSubmatch(res.Body)
			if m == nil {
				t.Fatal("no token on the page")
			}
			p := sessionPrincipal(t, e, session)
			web, err := e.Service.Token(t.Context(), "acme", p, m[1])
			if err != nil {
				t.Fatal(err)
			}
			now := e.Clock.Now()
			if err := e.Store.RecordUsage(t.Context(), []kve.Usage{{RequestID: kve.NewID(kve.PrefixRequest, now), At: now,
				OrgID: web.OrgID, TokenID: web.ID, Env: web.Env, Provider: "openai", Method: "POST", Path: "/v1/chat/completions",
				Model: "gpt-4o-mini", Status: 200, PromptTokens: 12, CompletionTokens: 30, CostMicro: 20}}); err != nil {
				t.Fatal(err)
			}
			idle, err := e.Service.CreateToken(t.Context(), "acme", p, manage.TokenInput{Name: "old svc", Key: "openai-main", Env: "prd", AllowServer: true})
			if err != nil {
				t.Fatal(err)
			}
			tokenID = idle.Token.ID
			responder := alerts.NewResponder(e.Store, nil, alerts.ResponderConfig{Now: e.Clock.Now})
			if err := responder.Handle(t.Context(), []alerts.Event{{Type: alerts.OriginNotAllowed, OrgID: web.OrgID, TokenID: tokenID,
				At: now, Origin: alerts.Sample(`https://evil.example/"><script>`), IP: "203.0.113.9"}}); err != nil {
				t.Fatal(err)
			}
			incidentID = alerts.IncidentID(web.OrgID, tokenID, alerts.OriginNotAllowed)
		}},
		{fixture: "console-keys.json", status: 200, body: []string{`<span class="name">openai-main</span>`, `action="/prod/o/acme/keys"`}},
		{fixture: "console-audit.json", status: 200, body: []string{"<code>token.create</code>"}},
		{fixture: "console-usage.json", status: 200, body: []string{
			`<span class="name">web app</span>`, `<dt>Requests</dt><dd>1</dd>`, `<title>2026-03-02: 1 request</title>`,
			`href="/prod/api/v1/orgs/acme/usage?by=day&amp;format=csv&amp;since=30d"`,
			`action="/prod/o/acme/usage/unused/revoke"`, `value="` + tokenPlaceholder + `" id="unused-` + tokenPlaceholder + `"`,
		}},
		{fixture: "console-usage-unused-revoke.json", status: 200, body: []string{
			"<h1>Revoke unused tokens</h1>", `<input type="hidden" name="id" value="` + tokenPlaceholder + `">`, "Revoke 1 token",
		}},
		{fixture: "console-token.json", status: 200, body: []string{
			"<h1>Token old svc</h1>", `action="/prod/o/acme/tokens/` + tokenPlaceholder + `/alerting"`, "Origin not allowed",
		}},
		{fixture: "console-alerts.json", status: 200, body: []string{
			`<tr id="incident-` + incidentPlaceholder + `" class="open">`, `<code>https://evil.example/&#34;&gt;&lt;script&gt;</code>`,
			`action="/prod/o/acme/alerts/` + incidentPlaceholder + `/ack"`, `action="/prod/o/acme/alerts/subscriptions"`,
		}},
		{fixture: "console-alerts-ack.json", status: 303, location: "/prod/o/acme/alerts?done=incident_acked"},
		{fixture: "console-alerts-subscribe.json", status: 303, location: "/prod/o/acme/alerts?done=subscribed#subscriptions"},
		{fixture: "console-billing.json", status: 200, body: []string{
			"<h2>Cost report for 2026-03</h2>", `<span class="name">web app</span>`,
			`href="/prod/api/v1/orgs/acme/billing/report?format=csv&amp;month=2026-03"`, `action="/prod/o/acme/billing/prices"`,
		}},
		{fixture: "console-billing-post.json", status: 303, location: "/prod/o/acme/billing?done=billing_updated"},
		{fixture: "console-account.json", status: 200, body: []string{"owner@example.com", "Olivia Owner", `<span class="badge">this browser</span>`}},
		{fixture: "console-members.json", status: 200, body: []string{
			`<span class="name">Olivia Owner</span>`, `action="/prod/o/acme/invites"`, "No mail is configured",
		}},
		{fixture: "console-invite-create.json", status: 200, body: []string{"Invite link for dev@example.com"}, then: func(t *testing.T, res events.APIGatewayProxyResponse) {
			m := regexp.MustCompile(`value="` + regexp.QuoteMeta(stagedURL) + `/invite/([A-Z2-7]{26})"`).FindStringSubmatch(res.Body)
			if m == nil {
				t.Fatal("the page shows no invite link under the stage")
			}
			code = m[1]
		}},
		// The invitee opens the link from their mail, and accepts.
		{fixture: "console-invite.json", status: 200, referrer: "no-referrer", body: []string{
			"<h1>Join Acme</h1>", `action="/prod/invite/` + invitePlaceholder + `"`, "Create account and join",
		}},
		{fixture: "console-invite-accept.json", status: 303, referrer: "no-referrer", location: "/prod/o/acme/tokens?done=joined", then: func(t *testing.T, res events.APIGatewayProxyResponse) {
			if setCookie(t, res) == session {
				t.Error("the new member got the Owner's session")
			}
			u, err := e.Store.UserByEmail(t.Context(), "dev@example.com")
			if err != nil {
				t.Fatal(err)
			}
			userID = u.ID
		}},
		{fixture: "console-member-remove.json", status: 200, body: []string{"<h1>Remove Dev One</h1>", `action="/prod/o/acme/members/` + userPlaceholder + `/remove"`}},
		{fixture: "console-member-remove-post.json", status: 200, body: []string{"<h1>Dev One removed</h1>"}},
		{fixture: "console-settings.json", status: 200, body: []string{`action="/prod/o/acme/settings/rename"`, `href="/prod/o/acme/settings/delete"`}},
		{fixture: "console-org-rename.json", status: 303, location: "/prod/o/acme/settings?done=org_renamed"},
		{fixture: "console-account-sessions.json", status: 303, location: "/prod/account?done=sessions_ended"},
		{fixture: "console-org-delete.json", status: 200, body: []string{"<h1>Delete Acme Labs</h1>", `action="/prod/o/acme/settings/delete"`}},
		{fixture: "console-org-delete-post.json", status: 303, location: "/prod/?done=org_deleted"},
		// A browser that still holds a cookie of the plain name (local
		// mode's) is not signed in over TLS.
		{fixture: "console-login.json", status: 200, body: []string{`name="next" value="/orgs/acme/tokens"`, `action="/prod/login"`}},
		{fixture: "console-logout.json", status: 303, location: "/prod/login", then: func(t *testing.T, res events.APIGatewayProxyResponse) {
			if got := res.MultiValueHeaders["Set-Cookie"]; len(got) != 1 || !strings.Contains(got[0], "__Host-kve_session=; Path=/; Max-Age=0; HttpOnly; Secure; SameSite=Lax") {
				t.Errorf("logout Set-Cookie %q, want the session cookie removed", got)
			}
		}},
		// The session ended server-side: the same cookie now leads to the
		// login page, and back to the tokens after it.
		{fixture: "console-tokens.json", status: 303, location: "/prod/login?next=%2Fo%2Facme%2Ftokens%3Fenv%3Ddev"},
	} {
		t.Run(step.fixture, func(t *testing.T) {
			raw, err := os.ReadFile(filepath.Join("..", "..", "events", step.fixture))
			if err != nil {
				t.Fatal(err)
			}
			for placeholder, value := range map[string]string{sessionPlaceholder: session, invitePlaceholder: code, userPlaceholder: userID,
				tokenPlaceholder: tokenID, incidentPlaceholder: incidentID} {
				if value != "" {
					raw = bytes.ReplaceAll(raw, []byte(placeholder), []byte(value))
				}
			}
			var ev events.APIGatewayProxyRequest
			if err := json.Unmarshal(raw, &ev); err != nil {
				t.Fatalf("decode %s: %v", step.fixture, err)
			}
			res, err := fn(t.Context(), ev)
			if err != nil {
				t.Fatal(err)
			}
			if res.StatusCode != step.status {
				t.Fatalf("status %d, want %d\n%s", res.StatusCode, step.status, res.Body)
			}
			if len(res.Headers) != 0 {
				t.Errorf("single-value headers %v: a second Set-Cookie would be lost there", res.Headers)
			}
			h := http.Header(res.MultiValueHeaders)
			if got := h.Get("Location"); got != step.location {
				t.Errorf("Location %q, want %q", got, step.location)
			}
			if h.Get("Content-Security-Policy") == "" || h.Get("Cache-Control") != "no-store" {
				t.Errorf("security headers lost: CSP %q, Cache-Control %q", h.Get("Content-Security-Policy"), h.Get("Cache-Control"))
			}
			if want := cmp.Or(step.referrer, "same-origin"); h.Get("Referrer-Policy") != want {
				t.Errorf("Referrer-Policy %q, want %q", h.Get("Referrer-Policy"), want)
			}
			for _, want := range step.body {
				want = strings.NewReplacer(invitePlaceholder, code, userPlaceholder, userID, tokenPlaceholder, tokenID,
					incidentPlaceholder, incidentID).Replace(want)
				if !strings.Contains(res.Body, want) {
					t.Errorf("page lacks %s", want)
				}
			}
			if step.then != nil {
				step.then(t, res)
			}
		})
	}
}

// sessionPrincipal is the Owner signed in with the session the fixtures carry.
func sessionPrincipal(t *testing.T, e *managetest.Env, session string) manage.Principal {
	t.Helper()
	p, err := e.Service.Authenticate(t.Context(), kve.SessionBrowser, kve.Secret(session), "192.0.2.44")
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// TestLambdaStatic serves an asset through the adapter: the hashed URL of
// a page, with the stage, is the path the function gets without it.
func TestLambdaStatic(t *testing.T) {
	e := managetest.New(t)
	fn := lambdahttp.Buffered(console.New(e.Service, console.Config{Logger: e.Logs.Logger(), PublicURL: stagedURL}))
	raw, err := os.ReadFile(filepath.Join("..", "..", "events", "console-setup.json"))
	if err != nil {
		t.Fatal(err)
	}
	var ev events.APIGatewayProxyRequest
	if err := json.Unmarshal(raw, &ev); err != nil {
		t.Fatal(err)
	}
	page, err := fn(t.Context(), ev)
	if err != nil {
		t.Fatal(err)
	}
	css := regexp.MustCompile(`href="/prod(/static/[0-9a-f]{16}/app\.css)"`).FindStringSubmatch(page.Body)
	if css == nil {
		t.Fatal("the setup page links no stylesheet under the stage")
	}
	ev.Path, ev.RequestContext.Path = css[1], "/prod"+css[1]
	res, err := fn(t.Context(), ev)
	if err != nil {
		t.Fatal(err)
	}
	h := http.Header(res.MultiValueHeaders)
	if res.StatusCode != 200 || res.IsBase64Encoded || h.Get("Content-Type") != "text/css; charset=utf-8" ||
		h.Get("Cache-Control") != "public, max-age=31536000, immutable" || !strings.Contains(res.Body, ":root") {
		t.Errorf("stylesheet: status %d, type %q, cache %q", res.StatusCode, h.Get("Content-Type"), h.Get("Cache-Control"))
	}
}
