package console_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime/quotedprintable"
	"net"
	"net/http"
	"net/http/httptest"
	"net/mail"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/browser"
	"github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
	"github.com/emersion/go-smtp"
	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"

	"github.com/keyvault-edge/kve/shared/kvetest"
	"github.com/keyvault-edge/kve/shared/local"
)

// TestBrowser drives Debian's Chromium through the dashboard of a local-mode
// kve, as a new team would use it: the Owner sets kve up, creates an
// organization, adds a real key (a fake upstream's), creates a token, copies
// it with the copy button, and a proxied request with the copied token
// reaches the upstream; the Owner revokes it in the confirmation dialog,
// with the keyboard, and the next proxied request is refused. Then the team:
// the Owner invites a developer, whose invite arrives by mail (kve runs with
// --smtp on an in-process SMTP server); the developer accepts in a second
// browser context, sees the tokens without the Keys page, copies a shared
// token and uses it through the proxy; the Owner removes the developer, and
// the developer's next page load is signed out. Every main page is
// photographed at 1440 and 375 pixels wide and checked for labels,
// overflow, and errors in the browser's console (a CSP violation is one).
func TestBrowser(t *testing.T) {
	exe := chromium(t)
	mails := startMailServer(t)
	in := kvetest.Start(t, kvetest.WithConfig(func(c *local.Config) {
		// The flags a user would give, parsed and checked as kve parses
		// them.
		flags, err := local.ParseConfig([]string{"--smtp", "smtp://" + mails.addr, "--mail-from", "kve@example.com"},
			func(string) string { return "" }, io.Discard)
		if err != nil {
			t.Fatalf("mail flags: %v", err)
		}
		c.SMTP, c.MailFrom = flags.SMTP, flags.MailFrom
	}))
	up := kvetest.NewOpenAI(t)
	b := openBrowser(t, exe, in.URL)

	// A fresh install leads to its setup page; the login page links it too.
	b.open("/")
	b.at("/setup")
	b.open("/login")
	b.at("/setup")
	b.page("setup")
	password := kvetest.Canary("pw-")
	in.Watch("the owner's password", password)
	b.fill("#code", in.SetupCode)
	b.fill("#email", "owner@example.com")
	b.fill("#name", "Olga Owner")
	b.fill("#password", password)
	b.follow(`form[action="/setup"] button[type=submit]`, 200)
	b.at("/o/new")
	b.page("org-new")

	// The organization's name is markup; it must show as text.
	const orgName = `Acme <b>Labs</b> & "Friends"`
	b.fill("#name", orgName)
	b.follow(`form[action="/o/new"] button[type=submit]`, 200)
	b.at("/o/acme-b-labs-b-friends/tokens?done=org_created")
	if got := evaluate[string](b, `document.querySelector('.switcher summary').textContent`); !strings.HasSuffix(got, orgName) {
		t.Errorf("organization switcher shows %q, want the name as text", got)
	}
	if n := evaluate[int](b, `document.querySelectorAll('header b, main b').length`); n != 0 {
		t.Errorf("the organization's name made %d <b> elements", n)
	}
	if !b.has(`a[href="/o/acme-b-labs-b-friends/keys"]`) {
		t.Fatal("no key yet: the tokens page should point to the keys page")
	}

	// A real key: the value field is write-only.
	b.follow(`nav a[href="/o/acme-b-labs-b-friends/keys"]`, 200)
	b.page("keys-empty")
	b.fill("#name", "openai-main")
	b.fill("#provider", "openai")
	b.fill("#upstream", up.URL)
	b.fill("#secret", up.Key)
	b.follow(`form[action="/o/acme-b-labs-b-friends/keys"] button[type=submit]`, 200)
	b.at("/o/acme-b-labs-b-friends/keys?done=key_added")
	if html := evaluate[string](b, `document.documentElement.outerHTML`); strings.Contains(html, up.Key) {
		t.Fatal("the keys page holds the key's value")
	}
	if !b.has(`code`) || !strings.Contains(evaluate[string](b, `document.querySelector('table.keys').textContent`), "…"+up.Key[len(up.Key)-4:]) {
		t.Error("the keys page does not show the key's last four characters")
	}
	b.page("keys")

	// A token, created through the form.
	b.follow(`nav a[href="/o/acme-b-labs-b-friends/tokens"]`, 200)
	b.fill("#name", "web app")
	b.fill("#origins", "http://localhost:3000")
	b.follow(`form[action="/o/acme-b-labs-b-friends/tokens"] button[type=submit]`, 200)
	created := evaluate[string](b, `document.getElementById('token-value').value`)
	if !tokenValue.MatchString(created) {
		t.Fatalf("the created token's page shows no token value")
	}
	in.Watch("the token", created)
	b.page("token-created")

	// The copy button: an audited reveal, into the clipboard.
	b.follow(`main a[href="/o/acme-b-labs-b-friends/tokens"]`, 200)
	b.page("tokens")
	b.do(chromedp.Click(chromedp.CSS(`button[aria-label="Copy token web app"]`)))
	b.wait(`document.querySelector('form[data-copy] .copy-status').textContent === 'Copied'`)
	copied := b.clipboard()
	if copied != created {
		t.Fatalf("the copy button copied something else than the token (%d characters)", len(copied))
	}

	// The copied token works through the proxy, against the fake upstream.
	client := in.OpenAI(copied, option.WithMaxRetries(0))
	chat := openai.ChatCompletionNewParams{
		Model:    "gpt-4o-mini", // the fake upstream answers any model
		Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("Say hello in one word.")},
	}
	if _, err := client.Chat.Completions.New(t.Context(), chat); err != nil {
		t.Fatalf("proxied request with the copied token: %v", err)
	}
	if up.Calls() != 1 {
		t.Fatalf("upstream saw %d calls, want 1", up.Calls())
	}

	// The .env snippet, and its copy button.
	b.do(chromedp.SetValue(chromedp.ID("env-snippet"), "dev"))
	b.follow(`#dotenv button[type=submit]`, 200)
	env := evaluate[string](b, `document.getElementById('env-text').value`)
	if !strings.Contains(env, "OPENAI_API_KEY="+created+"\nOPENAI_BASE_URL="+in.URL+"/openai/v1\n") {
		t.Errorf(".env snippet lacks the token's lines:\n%s", redactTokens(env))
	}
	b.page("env")
	b.do(chromedp.Click(chromedp.CSS(`button[data-copy-from="env-text"]`)))
	b.wait(`document.querySelector('.copy-status').textContent === 'Copied'`)
	if got := b.clipboard(); got != env {
		t.Errorf("the .env copy button copied %d characters, want the %d of the snippet", len(got), len(env))
	}

	// Revoke, with the keyboard: the link opens a modal dialog with focus
	// inside, Escape closes it and gives focus back, and the dialog's
	// button revokes.
	b.follow(`main a[href="/o/acme-b-labs-b-friends/tokens"]`, 200)
	revoke := `a[aria-label="Revoke token web app"]`
	b.do(chromedp.Focus(chromedp.CSS(revoke)), chromedp.KeyEvent("\r"))
	b.wait(`document.getElementById('confirm').open`)
	if !evaluate[bool](b, `document.getElementById('confirm').contains(document.activeElement)`) {
		t.Error("the open dialog does not hold the focus")
	}
	if got := evaluate[string](b, `document.getElementById('confirm-text').textContent`); !strings.Contains(got, "“web app”") {
		t.Errorf("the dialog asks %q, want it to name the token", got)
	}
	b.photo("revoke-dialog")
	b.do(chromedp.KeyEvent("\x1b")) // Escape
	b.wait(`!document.getElementById('confirm').open`)
	if !evaluate[bool](b, `document.activeElement === document.querySelector('`+revoke+`')`) {
		t.Error("closing the dialog did not give the focus back to the revoke link")
	}
	if up.Calls() != 1 || len(b.problems()) != 0 {
		t.Fatalf("after Escape: %d upstream calls, console problems %q", up.Calls(), b.problems())
	}
	b.do(chromedp.KeyEvent("\r"))
	b.wait(`document.getElementById('confirm').open`)
	// Focus starts on the question, so the Enter that opened the dialog
	// pressed nothing; Tab reaches the dialog's revoke button, Enter
	// presses it.
	if got := evaluate[string](b, `document.activeElement.id`); got != "confirm-title" {
		t.Errorf("the dialog opened with the focus on %q, want its question", got)
	}
	b.do(chromedp.KeyEvent("\t"))
	if got := evaluate[string](b, `document.activeElement.textContent`); got != "Revoke token" {
		t.Fatalf("Tab in the dialog focused %q, want its Revoke token button", got)
	}
	b.navigate(chromedp.KeyEvent("\r"), 200)
	b.at("/o/acme-b-labs-b-friends/tokens?done=token_revoked")

	_, err := client.Chat.Completions.New(t.Context(), chat)
	var apiErr *openai.Error
	if !errors.As(err, &apiErr) || apiErr.StatusCode != http.StatusUnauthorized {
		t.Fatalf("proxied request after the revocation: %v, want 401", err)
	}
	if up.Calls() != 1 {
		t.Errorf("the upstream saw the revoked token's request")
	}

	shared := team(t, in, up, mails, b)
	usageAlertsBilling(t, in, shared, b)

	// The audit log has the story; then the remaining main pages.
	b.follow(`nav a[href="/o/acme-b-labs-b-friends/audit"]`, 200)
	log := evaluate[string](b, `document.querySelector('table.audit').textContent`)
	for _, action := range []string{"org.create", "key.create", "token.create", "token.reveal", "token.revoke",
		"invite.create", "member.join", "member.remove"} {
		if !strings.Contains(log, action) {
			t.Errorf("the audit log lacks %s", action)
		}
	}
	b.page("audit")
	b.follow(`nav a[href="/o/acme-b-labs-b-friends/settings"]`, 200)
	b.page("settings")
	b.follow(`.user a[href="/account"]`, 200)
	b.page("account")
	b.follow(`.user form[action="/logout"] button`, 200)
	b.at("/login")
	b.page("login")
	b.open("/o/acme-b-labs-b-friends/tokens")
	b.at("/login?next=%2Fo%2Facme-b-labs-b-friends%2Ftokens")

	if p := b.problems(); len(p) > 0 {
		t.Errorf("the browser's console reported problems:\n%s", strings.Join(p, "\n"))
	}
	t.Logf("screenshots in %s", b.shots)
}

// team is the second part of TestBrowser: a shared token for the team, a
// developer invited by mail who joins in a browser of their own and uses it,
// and their removal. b is the Owner's tab, on the tokens page. It returns
// the team's token.
func team(t *testing.T, in *kvetest.Instance, up *kvetest.Upstream, mails *mailServer, b *tab) string {
	const org = "/o/acme-b-labs-b-friends"
	b.fill("#name", "team dev")
	b.follow(`form[action="`+org+`/tokens"] button[type=submit]`, 200)
	shared := evaluate[string](b, `document.getElementById('token-value').value`)
	in.Watch("the team's token", shared)

	// The invite, by mail.
	b.follow(`nav a[href="`+org+`/members"]`, 200)
	if !b.has(`form[action="`+org+`/invites"]`) || b.has(`#no-mail`) {
		t.Fatal("the members page has no invite form, or says no mail is configured")
	}
	b.fill("#email", "dev@example.com")
	b.do(chromedp.SetValue(chromedp.ID("role"), "developer"))
	b.follow(`form[action="`+org+`/invites"] button[type=submit]`, 200)
	b.at(org + "/members?done=invite_sent")
	if got := evaluate[string](b, `document.querySelector('table.invites').textContent`); !strings.Contains(got, "dev@example.com") {
		t.Errorf("the pending invites do not list dev@example.com: %q", got)
	}
	b.page("members")
	link := mails.inviteLink(t, "dev@example.com", in.URL)
	code := strings.TrimPrefix(link, in.URL)
	in.Watch("the invite code", strings.TrimPrefix(code, "/invite/"))

	// The developer, in a browser of their own, opens the link: a page
	// that keeps the code to itself.
	dev := b.incognito()
	res := dev.navigate(chromedp.Navigate(link), 200)
	if got := res.Headers["Referrer-Policy"]; got != "no-referrer" {
		t.Errorf("the invite page's Referrer-Policy is %v, want no-referrer", got)
	}
	dev.page("invite")
	password := kvetest.Canary("pw-")
	in.Watch("the developer's password", password)
	dev.fill("#name", "Dev One")
	dev.fill("#password", password)
	dev.follow(`form[action="`+code+`"] button[type=submit]`, 200)
	dev.at(org + "/tokens?done=joined")
	dev.page("tokens-developer")

	// The tokens, without the Keys page: no link, and the page refuses.
	if links := evaluate[[]string](dev, `[...document.querySelectorAll('header nav a')].map(a => a.textContent)`); strings.Join(links, ",") != "Tokens,Members,Usage,Settings" {
		t.Errorf("the developer's navigation is %q, want Tokens, Members, Usage and Settings", links)
	}
	if dev.has(`a[href="` + org + `/keys"]`) {
		t.Error("the developer's page links the Keys page")
	}
	// Usage: their own personal tokens only, of which they have none.
	dev.follow(`nav a[href="`+org+`/usage"]`, 200)
	if dev.has(`#member`) || dev.has(`#unused`) || !dev.has(`#per-token .empty`) {
		t.Error("the developer's usage page shows more than their own personal tokens")
	}
	dev.page("usage-developer")
	for _, page := range []string{"/alerts", "/billing"} {
		dev.navigate(chromedp.Navigate(in.URL+org+page), 403)
	}
	dev.forget() // the console reports the 403s the test asked for
	if p := dev.problems(); len(p) > 0 {
		t.Errorf("the developer's browser console reported problems:\n%s", strings.Join(p, "\n"))
	}
	dev.navigate(chromedp.Navigate(in.URL+org+"/keys"), 403)
	dev.forget()
	dev.navigate(chromedp.Navigate(in.URL+org+"/tokens"), 200)

	// The developer copies the shared token; it works through the proxy.
	dev.do(chromedp.Click(chromedp.CSS(`button[aria-label="Copy token team dev"]`)))
	dev.wait(`document.querySelector('form[data-copy] .copy-status').textContent === 'Copied'`)
	if copied := dev.clipboard(); copied != shared {
		t.Fatalf("the developer's copy button copied something else than the team's token (%d characters)", len(copied))
	}
	calls := up.Calls()
	chat := openai.ChatCompletionNewParams{
		Model:    "gpt-4o-mini",
		Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("Say hello in one word.")},
	}
	client := in.OpenAI(shared, option.WithMaxRetries(0))
	if _, err := client.Chat.Completions.New(t.Context(), chat); err != nil {
		t.Fatalf("proxied request with the token the developer copied: %v", err)
	}
	if up.Calls() != calls+1 {
		t.Fatalf("upstream saw %d calls, want %d", up.Calls(), calls+1)
	}

	// The Owner removes the developer, with the keyboard: the confirmation
	// names the shared token they copied, for rotation.
	b.follow(`nav a[href="`+org+`/members"]`, 200)
	b.do(chromedp.Focus(chromedp.CSS(`a[aria-label="Remove Dev One"]`)))
	b.navigate(chromedp.KeyEvent("\r"), 200)
	if got := evaluate[string](b, `document.querySelector('table.revealed').textContent`); !strings.Contains(got, "team dev") {
		t.Errorf("the confirmation does not name the shared token the developer copied: %q", got)
	}
	b.page("member-remove")
	b.do(chromedp.Focus(chromedp.CSS(`main form[action$="/remove"] button[type=submit]`)))
	b.navigate(chromedp.KeyEvent("\r"), 200)
	if got := evaluate[string](b, `document.querySelector('h1').textContent`); got != "Dev One removed" {
		t.Fatalf("after the removal the page says %q", got)
	}
	b.page("member-removed")

	// The developer's next page load is signed out; the shared token keeps
	// working.
	dev.navigate(chromedp.Reload(), 200)
	if got := evaluate[string](dev, `location.pathname`); got != "/login" {
		t.Errorf("the removed developer's next page is %s, want the login page", got)
	}
	if _, err := client.Chat.Completions.New(t.Context(), chat); err != nil {
		t.Errorf("the shared token after the removal: %v", err)
	}
	if p := dev.problems(); len(p) > 0 {
		t.Errorf("the developer's browser console reported problems:\n%s", strings.Join(p, "\n"))
	}
	b.follow(`nav a[href="`+org+`/tokens"]`, 200)
	return shared
}

// usageAlertsBilling is the third part of TestBrowser, after the proxied
// requests of the first two (two with "web app", the second refused as
// revoked; two with the team's token) and one more the team's token makes
// from a page on another site, refused: the Owner reads the usage, revokes
// a forgotten token through the monthly audit's dialog, reads the breach
// with its hostile samples shown as text, subscribes a webhook that
// confirms and gets a test alert, acknowledges the breach, and sets a
// budget. b is the Owner's tab, on the tokens page.
func usageAlertsBilling(t *testing.T, in *kvetest.Instance, shared string, b *tab) {
	const org = "/o/acme-b-labs-b-friends"
	b.fill("#name", "forgotten")
	b.follow(`form[action="`+org+`/tokens"] button[type=submit]`, 200)
	in.Watch("the forgotten token", evaluate[string](b, `document.getElementById('token-value').value`))

	req, err := http.NewRequestWithContext(t.Context(), "POST", in.URL+"/openai/v1/chat/completions",
		strings.NewReader(`{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}]}`))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+shared)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Origin", hostileOrigin)
	req.Header.Set("User-Agent", hostileAgent)
	res, err := in.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusForbidden {
		t.Fatalf("a request from another site's page: status %d, want 403", res.StatusCode)
	}

	// Usage: metering writes as requests complete; the page shows them
	// within seconds.
	requests := func(token string) string {
		return evaluate[string](b, `(() => {
			const row = [...document.querySelectorAll('table.by-token tbody tr')].find(r => r.querySelector('.name').textContent === `+jsString(token)+`);
			return row ? row.querySelector('td[data-label=Requests]').textContent : '';
		})()`)
	}
	kvetest.Eventually(t, 15*time.Second, "the usage page counts the team token's three requests", func() bool {
		b.open(org + "/usage")
		return requests("team dev") == "3"
	})
	if got := requests("web app"); got != "2" {
		t.Errorf("the usage page counts %q requests of web app, want 2", got)
	}
	if n := evaluate[int](b, `document.querySelectorAll('#chart-requests rect.bar').length`); n != 1 {
		t.Errorf("the requests chart has %d bars, want today's", n)
	}
	csv := evaluate[string](b, `fetch(document.querySelector('.downloads a').href).then(r => r.text())`)
	if !strings.HasPrefix(csv, "day,token_id,token_name,") || strings.Count(csv, "\n") != 2 {
		t.Errorf("the CSV by day is not a header and today's line:\n%s", csv)
	}
	if got := evaluate[[]string](b, `[...document.querySelectorAll('#unused .name')].map(e => e.textContent)`); strings.Join(got, ",") != "forgotten" {
		t.Errorf("the monthly audit lists %q, want the forgotten token", got)
	}
	b.page("usage")

	// "Revoke these", confirmed in the dialog with the keyboard.
	b.do(chromedp.Click(chromedp.CSS(`#unused button[type=submit]`)))
	b.wait(`document.getElementById('confirm').open`)
	if got := evaluate[string](b, `document.getElementById('confirm-text').textContent`); !strings.Contains(got, "Revoke the ticked tokens?") {
		t.Errorf("the dialog asks %q", got)
	}
	b.photo("unused-dialog")
	b.do(chromedp.KeyEvent("\t"))
	b.navigate(chromedp.KeyEvent("\r"), 200)
	if got := evaluate[string](b, `document.querySelector('h1').textContent + ': ' + document.querySelector('main ul .name').textContent`); got != "Unused tokens revoked: forgotten" {
		t.Errorf("after the audit's revocation the page says %q", got)
	}
	b.page("unused-revoked")

	// Alerts: the breach of the team's token and the revoked token's.
	kvetest.Eventually(t, 15*time.Second, "the alerts page lists both breaches", func() bool {
		b.open(org + "/alerts")
		return evaluate[int](b, `document.querySelectorAll('table.incidents tbody tr').length`) == 2
	})
	samples := evaluate[[]string](b, `[...document.querySelectorAll('.sample code')].map(c => c.textContent)`)
	if !slices.Contains(samples, hostileOrigin) || !slices.Contains(samples, hostileAgent) {
		t.Errorf("the samples %q do not show the origin and user agent as text", samples)
	}
	if n := evaluate[int](b, `document.querySelectorAll('main script, main img').length`); n != 0 {
		t.Errorf("the samples made %d elements", n)
	}

	// A webhook: it confirms, then gets the test alert.
	hook := startReceiver(t)
	b.fill("#endpoint", hook.URL+"/kve-alerts")
	b.follow(`form[action="`+org+`/alerts/subscriptions"] button[type=submit]`, 200)
	b.at(org + "/alerts?done=subscribed")
	kvetest.Eventually(t, 15*time.Second, "the webhook confirms its subscription", hook.confirmed)
	b.navigate(chromedp.Reload(), 200)
	if got := evaluate[string](b, `document.querySelector('table.subscriptions td[data-label=Status]').textContent`); got != "confirmed" {
		t.Errorf("the subscription's status is %q, want confirmed", got)
	}
	b.follow(`form[action="`+org+`/alerts/test"] button[type=submit]`, 200)
	kvetest.Eventually(t, 15*time.Second, "the webhook gets the test alert", func() bool { return hook.notifications() > 0 })

	// The breach of the team's token, acknowledged.
	ack := `button[aria-label="Acknowledge Origin not allowed on team dev"]`
	b.follow(ack, 200)
	b.at(org + "/alerts?done=incident_acked")
	if b.has(ack) {
		t.Error("the acknowledged breach still has its button")
	}
	b.page("alerts")

	// The token's page, from the breach.
	b.follow(`table.incidents a[href^="`+org+`/tokens/"]`, 200)
	if got := evaluate[string](b, `document.querySelector('h1').textContent`); !strings.HasPrefix(got, "Token ") {
		t.Errorf("the breach's token link leads to %q", got)
	}
	b.page("token")

	// Billing: a budget and a contact; the month's report names the team's
	// token.
	b.follow(`nav a[href="`+org+`/billing"]`, 200)
	b.fill("#budget_usd", "25")
	b.fill("#email", "billing@example.com")
	b.follow(`form[action="`+org+`/billing"] button[type=submit]`, 200)
	b.at(org + "/billing?done=billing_updated")
	if got := evaluate[string](b, `document.querySelector('table.report').textContent`); !strings.Contains(got, "team dev") {
		t.Errorf("the cost report does not name the team's token:\n%s", got)
	}
	b.page("billing")
	b.follow(`nav a[href="`+org+`/tokens"]`, 200)
}

func jsString(s string) string { return strconv.Quote(s) }

// receiver is a team's alert webhook on a loopback port: it confirms its
// subscription by visiting the SubscribeURL, as SNS asks of an endpoint,
// and counts the notifications that follow.
type receiver struct {
	*httptest.Server
	visits sync.WaitGroup

	mu    sync.Mutex
	ok    bool
	notes int
}

func startReceiver(t *testing.T) *receiver {
	t.Helper()
	rc := &receiver{}
	rc.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var m struct{ Type, SubscribeURL string }
		if err := json.NewDecoder(io.LimitReader(r.Body, 1<<20)).Decode(&m); err != nil {
			http.Error(w, "not JSON", http.StatusBadRequest)
			return
		}
		switch m.Type {
		case "SubscriptionConfirmation":
			rc.visits.Go(func() { // after answering, as a receiver would
				res, err := http.Get(m.SubscribeURL)
				if err != nil {
					return
				}
				res.Body.Close()
				rc.mu.Lock()
				rc.ok = res.StatusCode == http.StatusOK
				rc.mu.Unlock()
			})
		case "Notification":
			rc.mu.Lock()
			rc.notes++
			rc.mu.Unlock()
		}
	}))
	t.Cleanup(func() { rc.Close(); rc.visits.Wait() })
	return rc
}

func (rc *receiver) confirmed() bool {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return rc.ok
}

func (rc *receiver) notifications() int {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return rc.notes
}

// mailServer is an in-process SMTP server (emersion/go-smtp) on a loopback
// port, without TLS or authentication, like the mail catcher a developer
// runs; it keeps every message as received.
type mailServer struct {
	addr string

	mu   sync.Mutex
	msgs []mailMessage
}

type mailMessage struct {
	to   []string
	data []byte
}

func startMailServer(t *testing.T) *mailServer {
	t.Helper()
	s := &mailServer{}
	srv := smtp.NewServer(smtp.BackendFunc(func(*smtp.Conn) (smtp.Session, error) { return &mailSession{srv: s}, nil }))
	srv.Domain = "localhost"
	srv.ReadTimeout, srv.WriteTimeout = 10*time.Second, 10*time.Second
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s.addr = l.Addr().String()
	done := make(chan struct{})
	go func() { defer close(done); srv.Serve(l) }()
	t.Cleanup(func() { srv.Close(); <-done })
	return s
}

// inviteLink reads the one message to to, as a mail client would, and
// returns the invite link in it: under base, the configured public URL.
func (s *mailServer) inviteLink(t *testing.T, to, base string) string {
	t.Helper()
	s.mu.Lock()
	msgs := append([]mailMessage(nil), s.msgs...)
	s.mu.Unlock()
	if len(msgs) != 1 || len(msgs[0].to) != 1 || msgs[0].to[0] != to {
		t.Fatalf("the mail server received %d messages, want one to %s", len(msgs), to)
	}
	m, err := mail.ReadMessage(bytes.NewReader(msgs[0].data))
	if err != nil {
		t.Fatalf("read the invite mail: %v", err)
	}
	if got := m.Header.Get("To"); !strings.Contains(got, to) {
		t.Errorf("the invite mail's To is %q", got)
	}
	body := io.Reader(m.Body)
	if strings.EqualFold(m.Header.Get("Content-Transfer-Encoding"), "quoted-printable") {
		body = quotedprintable.NewReader(body)
	}
	text, err := io.ReadAll(body)
	if err != nil {
		t.Fatalf("read the invite mail's body: %v", err)
	}
	link := regexp.MustCompile(regexp.QuoteMeta(base) + `/invite/[A-Z2-7]{26}`).FindString(string(text))
	if link == "" {
		t.Fatalf("no invite link under %s in the mail", base)
	}
	return link
}

type mailSession struct {
	srv *mailServer
	msg mailMessage
}

func (s *mailSession) Mail(string, *smtp.MailOptions) error { s.msg = mailMessage{}; return nil }

func (s *mailSession) Rcpt(to string, _ *smtp.RcptOptions) error {
	s.msg.to = append(s.msg.to, to)
	return nil
}

func (s *mailSession) Data(r io.Reader) error {
	b, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	s.msg.data = b
	s.srv.mu.Lock()
	s.srv.msgs = append(s.srv.msgs, s.msg)
	s.srv.mu.Unlock()
	return nil
}

func (s *mailSession) Reset()        { s.msg = mailMessage{} }
func (s *mailSession) Logout() error { return nil }

// chromium finds Debian's Chromium. Without it the test skips, unless
// KVE_REQUIRE_SERVICES=1 (CI), where a missing browser is a failure.
func chromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("KVE_REQUIRE_SERVICES") == "1" {
		t.Fatal("chromium is not installed (apt-get install -y chromium), and KVE_REQUIRE_SERVICES=1 requires it")
	}
	t.Skip("chromium is not installed: apt-get install -y chromium")
	return ""
}

// tab is one headless Chromium tab on a kve instance.
type tab struct {
	t      *testing.T
	ctx    context.Context
	base   string // the instance's URL
	shots  string // where screenshots go
	prefix string // of this tab's screenshots' names

	mu     sync.Mutex
	issues []string // console errors and uncaught exceptions
}

func openBrowser(t *testing.T, exe, base string) *tab {
	t.Helper()
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(exe),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1440, 900),
	}
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	b := &tab{t: t, base: base, shots: os.Getenv("KVE_SCREENSHOTS")}
	if b.shots == "" {
		b.shots = t.ArtifactDir()
	} else if err := os.MkdirAll(b.shots, 0o755); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := chromedp.NewContext(actx, chromedp.WithListener(b.listen))
	t.Cleanup(func() {
		cancel()
		cancelAlloc()
	})
	b.ctx = ctx
	b.start("start chromium") // the first Run starts the browser
	return b
}

// incognito opens a tab in a new browser context of the same browser: its
// own cookies and storage, as a second person's browser. Its screenshots
// are named with the prefix "second-".
func (b *tab) incognito() *tab {
	b.t.Helper()
	nb := &tab{t: b.t, base: b.base, shots: b.shots, prefix: "second-"}
	ctx, cancel := chromedp.NewContext(b.ctx, chromedp.WithNewBrowserContext(), chromedp.WithListener(nb.listen))
	b.t.Cleanup(cancel)
	nb.ctx = ctx
	nb.start("open a second browser context")
	return nb
}

// start opens the tab (without a deadline: the first Run may start the
// browser) and lets the copy buttons write to the clipboard, and the test
// read it back, in its browser context.
func (b *tab) start(what string) {
	b.t.Helper()
	if err := chromedp.Do(b.ctx, chromedp.EmulateViewport(1440, 900)); err != nil {
		b.t.Fatalf("%s: %v", what, err)
	}
	for _, name := range []string{"clipboard-read", "clipboard-write"} {
		if _, err := chromedp.CallBrowser(b.ctx, browser.SetPermission, browser.SetPermissionParams{
			Permission:       &browser.PermissionDescriptor{Name: name, AllowWithoutSanitization: true},
			Setting:          browser.PermissionSettingGranted,
			Origin:           b.base,
			BrowserContextID: chromedp.FromContext(b.ctx).BrowserContextID,
		}); err != nil {
			b.t.Fatalf("grant %s: %v", name, err)
		}
	}
}

// listen records what the page reports as errors. It runs on chromedp's
// reading goroutine, so it only appends.
func (b *tab) listen(ev any) {
	var issue string
	switch ev := ev.(type) {
	case *runtime.EventExceptionThrown:
		issue = "exception: " + ev.ExceptionDetails.Text
		if ev.ExceptionDetails.Exception != nil {
			issue += " " + ev.ExceptionDetails.Exception.Description
		}
	case *runtime.EventConsoleAPICalled:
		if ev.Type == runtime.ConsoleAPICalledTypeError || ev.Type == runtime.ConsoleAPICalledTypeWarning {
			issue = "console." + string(ev.Type)
		}
	case *log.EventEntryAdded:
		if ev.Entry.Level == log.EntryLevelError || ev.Entry.Level == log.EntryLevelWarning {
			issue = string(ev.Entry.Level) + ": " + ev.Entry.Text + " " + ev.Entry.URL
		}
	}
	if issue != "" {
		b.mu.Lock()
		b.issues = append(b.issues, redactTokens(issue))
		b.mu.Unlock()
	}
}

// forget drops the problems reported so far.
func (b *tab) forget() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.issues = nil
}

func (b *tab) problems() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]string(nil), b.issues...)
}

// do runs actions with a deadline, failing the test on an error.
func (b *tab) do(steps ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 20*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, steps...); err != nil {
		b.t.Fatalf("browser: %v", err)
	}
}

func evaluate[T any](b *tab, expr string) T {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 20*time.Second)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr, chromedp.EvalAwaitPromise))
	if err != nil {
		b.t.Fatalf("evaluate %s: %v", expr, err)
	}
	return v
}

func (b *tab) open(path string) { b.t.Helper(); b.do(chromedp.Navigate(b.base + path)) }

// navigate runs an action that loads a page, checks the status of the
// page it ends on (after redirects), and returns that page's response.
func (b *tab) navigate(action chromedp.Action[chromedp.Void], status int64) *network.Response {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 20*time.Second)
	defer cancel()
	res, err := chromedp.RunResponse(ctx, action)
	if err != nil {
		b.t.Fatalf("browser: %v", err)
	}
	if res.Status != status {
		b.t.Fatalf("%s: status %d, want %d", redactCodes(res.URL), res.Status, status)
	}
	return res
}

// redactCodes hides invite codes in a failure message.
func redactCodes(s string) string {
	return regexp.MustCompile(`/invite/[A-Z2-7]{26}`).ReplaceAllString(s, "/invite/[code]")
}

// follow clicks a link or a submit button and waits for the next page.
func (b *tab) follow(selector string, status int64) {
	b.t.Helper()
	b.navigate(chromedp.Click(chromedp.CSS(selector)), status)
}

func (b *tab) fill(selector, value string) {
	b.t.Helper()
	b.do(chromedp.SetValue(chromedp.CSS(selector), value))
}

func (b *tab) has(selector string) bool {
	b.t.Helper()
	return evaluate[bool](b, fmt.Sprintf(`document.querySelector(%q) !== null`, selector))
}

// at checks the page's path and query.
func (b *tab) at(want string) {
	b.t.Helper()
	if got := evaluate[string](b, `location.pathname + location.search`); got != want {
		b.t.Fatalf("browser is at %s, want %s", redactCodes(got), redactCodes(want))
	}
}

// wait polls a JavaScript condition.
func (b *tab) wait(cond string) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 20*time.Second)
	defer cancel()
	if _, err := chromedp.Run(ctx, chromedp.Poll[bool](cond, chromedp.WithPollingTimeout(10*time.Second))); err != nil {
		b.t.Fatalf("waiting for %s: %v", cond, err)
	}
}

// clipboard reads the system clipboard, as a paste would.
func (b *tab) clipboard() string {
	b.t.Helper()
	return evaluate[string](b, `navigator.clipboard.readText()`)
}

// page checks the current page as a user with assistive technology or a
// phone would meet it, and photographs it at both widths.
func (b *tab) page(name string) {
	b.t.Helper()
	unlabeled := evaluate[[]string](b, `[...document.querySelectorAll('input, select, textarea')]
		.filter(e => e.type !== 'hidden')
		.filter(e => e.labels.length === 0 && !e.getAttribute('aria-label') && !e.getAttribute('aria-labelledby'))
		.map(e => e.outerHTML)`)
	if len(unlabeled) > 0 {
		b.t.Errorf("%s: fields without a label: %q", name, unlabeled)
	}
	nameless := evaluate[[]string](b, `[...document.querySelectorAll('button, a[href], summary')]
		.filter(e => !e.closest('dialog:not([open])'))
		.filter(e => !(e.getAttribute('aria-label') || e.textContent).trim())
		.map(e => e.outerHTML)`)
	if len(nameless) > 0 {
		b.t.Errorf("%s: controls without a name: %q", name, nameless)
	}
	if n := evaluate[int](b, `document.querySelectorAll('h1').length`); n != 1 {
		b.t.Errorf("%s: %d h1 headings, want 1", name, n)
	}
	b.photo(name)
}

// photo takes a full-page screenshot at 1440 and at 375 pixels wide. At
// 375 the page must not scroll sideways.
func (b *tab) photo(name string) {
	b.t.Helper()
	for _, width := range []int64{1440, 375} {
		b.do(chromedp.EmulateViewport(width, 900))
		if width == 375 {
			if over := evaluate[int](b, `document.documentElement.scrollWidth - window.innerWidth`); over > 0 {
				b.t.Errorf("%s at 375 px: %d px wider than the screen", name, over)
			}
		}
		ctx, cancel := context.WithTimeout(b.ctx, 20*time.Second)
		png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
		cancel()
		if err != nil {
			b.t.Fatalf("screenshot %s: %v", name, err)
		}
		if err := os.WriteFile(filepath.Join(b.shots, fmt.Sprintf("%s%s-%d.png", b.prefix, name, width)), png, 0o644); err != nil {
			b.t.Fatal(err)
		}
	}
	b.do(chromedp.EmulateViewport(1440, 900))
}
