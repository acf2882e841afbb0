package console_test

import (
	"fmt"
	"html"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/keyvault-edge/kve/shared/alerts"
	"github.com/keyvault-edge/kve/shared/kve"
	"github.com/keyvault-edge/kve/shared/manage"
	"github.com/keyvault-edge/kve/shared/store"
)

func TestTokens(t *testing.T) {
	s := newSite(t)
	b := s.owner(t)
	form := tokenFields("web app")
	form.Set("origins", "https://app.example.com\n\n  http://localhost:*  \n")
	form.Set("ips", "203.0.113.0/24")
	form.Set("rpm", "30")
	form.Set("budget_usd", "1.5")
	value := b.createToken("acme-labs", form)
	if k, env, ok := kve.ParseTokenValue(value); !ok || k != kve.TokenShared || env != kve.EnvDev {
		t.Fatalf("created token: kind %q env %q valid %v, want a shared dev token", k, env, ok)
	}

	page := b.mustGet("/o/acme-labs/tokens")
	for _, want := range []string{
		`<span class="name">web app</span>`, `<span class="badge env-dev">dev</span>`, `<span class="badge">shared</span>`,
		`<code class="origin">https://app.example.com</code>`, `<code class="origin">http://localhost:*</code>`,
		`allowed from <code>203.0.113.0/24</code>`, `30 / min, $1.50 / day`, `by you`,
	} {
		if !strings.Contains(page, want) {
			t.Errorf("token list lacks %s", want)
		}
	}
	if strings.Contains(page, value) {
		t.Error("the token list shows a token value; only its hint belongs there")
	}
	id := tokenID(t, page, "web app")

	// The copy button's script asks for the value as text; every copy is an
	// audit event.
	res := b.do("POST", "/o/acme-labs/tokens/"+id+"/reveal", url.Values{}, http.Header{"Accept": {"text/plain"}})
	if res.Status != http.StatusOK || res.Body != value || res.Header.Get("Content-Type") != "text/plain; charset=utf-8" {
		t.Errorf("reveal as text: status %d, type %q, body is the value: %v", res.Status, res.Header.Get("Content-Type"), res.Body == value)
	}
	if res.Header.Get("Cache-Control") != "no-store" {
		t.Errorf("reveal Cache-Control %q, want no-store", res.Header.Get("Cache-Control"))
	}
	res = b.post("/o/acme-labs/tokens/"+id+"/reveal", url.Values{})
	if res.Status != http.StatusOK || !strings.Contains(res.Body, `id="token-value" class="mono" type="text" readonly autocomplete="off" spellcheck="false" value="`+value+`"`) {
		t.Errorf("reveal as a page: status %d, want the value in its field\n%s", res.Status, res.Body)
	}
	reveals := auditEvents(t, s, store.EventFilter{Action: "token.reveal", Target: id})
	if len(reveals) != 2 || reveals[0].ActorID != s.Owner.ID {
		t.Errorf("reveal events %+v, want 2 by the Owner", reveals)
	}

	// Edit the rules: origins, server use, IP ranges, limits.
	res = b.post("/o/acme-labs/tokens/"+id+"/policy", url.Values{"origins": {"https://*.example.com"}, "rpm": {""}, "budget_usd": {"3"}})
	if res.Status != http.StatusSeeOther || res.location() != "/o/acme-labs/tokens?done=token_updated" {
		t.Fatalf("update: %d to %q\n%s", res.Status, res.location(), res.Body)
	}
	page = b.mustGet(res.location())
	for _, want := range []string{"Token updated.", `<code class="origin">https://*.example.com</code>`, "not allowed", "unlimited, $3.00 / day"} {
		if !strings.Contains(page, want) {
			t.Errorf("after the edit the list lacks %s", want)
		}
	}

	// Revoke: the link asks first (GET changes nothing), the POST revokes.
	if body := b.mustGet("/o/acme-labs/tokens/" + id + "/revoke"); !strings.Contains(body, "Revoke the token <strong>web app</strong>") {
		t.Error("the revoke confirmation page does not name the token")
	}
	if !strings.Contains(b.mustGet("/o/acme-labs/tokens"), id) {
		t.Fatal("opening the confirmation page revoked the token")
	}
	res = b.post("/o/acme-labs/tokens/"+id+"/revoke", url.Values{})
	if res.Status != http.StatusSeeOther || res.location() != "/o/acme-labs/tokens?done=token_revoked" {
		t.Fatalf("revoke: %d to %q", res.Status, res.location())
	}
	if page := b.mustGet("/o/acme-labs/tokens"); strings.Contains(page, id) {
		t.Error("a revoked token is still listed")
	}
	if page := b.mustGet("/o/acme-labs/tokens?revoked=1"); !strings.Contains(page, `<span class="badge bad">revoked</span>`) {
		t.Error("the list with revoked tokens does not mark it revoked")
	}
	if res := b.do("POST", "/o/acme-labs/tokens/"+id+"/reveal", url.Values{}, http.Header{"Accept": {"text/plain"}}); res.Status != http.StatusGone {
		t.Errorf("reveal of a revoked token: status %d, want 410", res.Status)
	}
}

func TestTokenValidation(t *testing.T) {
	for _, tt := range []struct {
		name   string
		change func(url.Values)
		status int
		field  string // the field whose message is shown ("" for the top of the form)
		msg    string
	}{
		{"no name", func(f url.Values) { f.Set("name", " ") }, 422, "name", "name must be 1 to 64 characters"},
		{"bad origin", func(f url.Values) { f.Set("origins", "ftp://files.example.com") }, 422, "origins", `"ftp://files.example.com" is not a valid origin`},
		{"unusable", func(f url.Values) { f.Del("allow_server") }, 422, "origins", "Add at least one browser origin, or allow server use"},
		{"bad IP range", func(f url.Values) { f.Set("ips", "10.0.0.0/33") }, 422, "ips", `"10.0.0.0/33" is not an IP network`},
		{"rpm not a number", func(f url.Values) { f.Set("rpm", "lots") }, 422, "rpm", "Enter a whole number"},
		{"budget not a number", func(f url.Values) { f.Set("budget_usd", "$5") }, 422, "budget_usd", "Enter an amount in dollars"},
		{"budget negative", func(f url.Values) { f.Set("budget_usd", "-1") }, 422, "budget_usd", "budget_usd must be 0 (unlimited)"},
		{"dev token for a year", func(f url.Values) { f.Set("expires_in", "365d") }, 422, "expires_in", "a dev token expires within 30 days"},
		{"unknown key", func(f url.Values) { f.Set("key", "nope") }, 422, "key", `no key named "nope"`},
		{"unknown env", func(f url.Values) { f.Set("env", "qa") }, 422, "env", "env must be dev, stg or prd"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			s := newSite(t)
			b := s.owner(t)
			form := tokenFields("<b>svc</b>")
			form.Set("ips", "192.0.2.0/24")
			tt.change(form)
			res := b.post("/o/acme-labs/tokens", form)
			if res.Status != tt.status {
				t.Fatalf("status %d, want %d\n%s", res.Status, tt.status, res.Body)
			}
			want := `<p class="field-error" id="` + tt.field + `-error">`
			if tt.field == "budget_usd" {
				want = `<p class="field-error" id="budget-error">`
			}
			if tt.field == "expires_in" {
				want = `<p class="field-error" id="expires-error">`
			}
			i := strings.Index(res.Body, want)
			if i < 0 || !strings.Contains(res.Body[i:i+len(want)+200], escapeText(tt.msg)) {
				t.Errorf("no message %q beside field %s\n%s", tt.msg, tt.field, res.Body)
			}
			if tt.name != "no name" && !strings.Contains(res.Body, `value="&lt;b&gt;svc&lt;/b&gt;"`) {
				t.Error("the refused form lost the name (or rendered it unescaped)")
			}
			page, err := s.Service.Tokens(t.Context(), "acme-labs", principal(t, s, s.Owner), manage.TokenQuery{})
			if err != nil || len(page.Items) != 0 {
				t.Errorf("tokens after a refused create: %d (%v), want none", len(page.Items), err)
			}
		})
	}
}

// escapeText is how html/template writes a message into a page.
func escapeText(s string) string {
	return strings.NewReplacer(`"`, "&#34;", "<", "&lt;", ">", "&gt;", "'", "&#39;").Replace(s)
}

// TestRoles checks that each role sees the buttons DESIGN §8 allows it and
// no others, and that the server refuses what the page does not offer.
func TestRoles(t *testing.T) {
	s := newSite(t)
	owner := s.owner(t)
	owner.createToken("acme-labs", tokenFields("team shared"))
	ownerList := owner.mustGet("/o/acme-labs/tokens")
	sharedID := tokenID(t, ownerList, "team shared")

	dev := s.as(t, s.Dev)
	personal := tokenFields("dev laptop")
	personal.Set("env", "prd") // the form offers only dev; the server insists
	if res := dev.post("/o/acme-labs/tokens", personal); res.Status != http.StatusForbidden ||
		!strings.Contains(res.Body, "developers may create only personal dev tokens") {
		t.Errorf("developer creating a prd token: status %d, want 403 with the reason", res.Status)
	}
	personal.Set("env", "dev")
	value := dev.createToken("acme-labs", personal)
	if k, _, _ := kve.ParseTokenValue(value); k != kve.TokenPersonal {
		t.Errorf("a developer's token is %q, want personal", k)
	}
	devList := dev.mustGet("/o/acme-labs/tokens")
	personalID := tokenID(t, devList, "dev laptop")

	for _, tt := range []struct {
		name    string
		page    string
		present []string
		absent  []string
	}{
		{"owner", ownerList,
			[]string{`href="/o/acme-labs/keys"`, `href="/o/acme-labs/audit"`, `aria-label="Revoke token team shared"`, "Edit the rules of team shared", `<select id="key" name="key"`},
			nil},
		{"admin", s.as(t, s.Admin).mustGet("/o/acme-labs/tokens"),
			[]string{`href="/o/acme-labs/audit"`, `aria-label="Revoke token team shared"`, "Edit the rules of team shared", `<select id="key" name="key"`},
			[]string{`href="/o/acme-labs/keys"`}},
		{"developer", devList,
			[]string{`aria-label="Copy token team shared"`, `aria-label="Revoke token dev laptop"`, `<input type="hidden" name="personal" value="on">`,
				`<option value="main">main</option>`},
			[]string{`href="/o/acme-labs/keys"`, `href="/o/acme-labs/audit"`, `aria-label="Revoke token team shared"`, "Edit the rules"}},
		{"other developer", s.as(t, s.Dev2).mustGet("/o/acme-labs/tokens"),
			[]string{`aria-label="Copy token team shared"`},
			[]string{"dev laptop"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			envs := createEnvs.FindStringSubmatch(tt.page)
			if envs == nil {
				t.Fatal("no environment field in the create form")
			}
			if dev := tt.name == "developer" || tt.name == "other developer"; dev != !strings.Contains(envs[1], `"prd"`) {
				t.Errorf("create form offers %s; want prd offered only to Owners and Admins", envs[1])
			}
			for _, want := range tt.present {
				if !strings.Contains(tt.page, want) {
					t.Errorf("page lacks %s", want)
				}
			}
			for _, unwanted := range tt.absent {
				if strings.Contains(tt.page, unwanted) {
					t.Errorf("page has %s", unwanted)
				}
			}
		})
	}

	for _, tt := range []struct {
		name   string
		who    *visitor
		method string
		path   string
		form   url.Values
		status int
	}{
		{"developer opens keys", dev, "GET", "/o/acme-labs/keys", nil, 403},
		{"developer adds a key", dev, "POST", "/o/acme-labs/keys", url.Values{"name": {"x"}, "provider": {"openai"}, "secret": {"sk-test-FAKE-x-0123456789"}}, 403},
		{"developer opens rotate", dev, "GET", "/o/acme-labs/keys/main/rotate", nil, 403},
		{"developer deletes a key", dev, "POST", "/o/acme-labs/keys/main/delete", url.Values{}, 403},
		{"developer opens the audit log", dev, "GET", "/o/acme-labs/audit", nil, 403},
		{"developer edits a token", dev, "POST", "/o/acme-labs/tokens/" + personalID + "/policy", url.Values{"allow_server": {"on"}}, 403},
		{"developer revokes a shared token", dev, "POST", "/o/acme-labs/tokens/" + sharedID + "/revoke", url.Values{}, 403},
		{"other developer reveals a personal token", s.as(t, s.Dev2), "POST", "/o/acme-labs/tokens/" + personalID + "/reveal", url.Values{}, 404},
		{"admin opens keys", s.as(t, s.Admin), "GET", "/o/acme-labs/keys", nil, 403},
		{"outsider opens tokens", s.as(t, s.Outsider), "GET", "/o/acme-labs/tokens", nil, 404},
		{"outsider reveals", s.as(t, s.Outsider), "POST", "/o/acme-labs/tokens/" + sharedID + "/reveal", url.Values{}, 404},
		{"no such organization", owner, "GET", "/o/no-such-org/tokens", nil, 404},
		{"developer revokes own dev token", dev, "POST", "/o/acme-labs/tokens/" + personalID + "/revoke", url.Values{}, 303},
	} {
		t.Run(tt.name, func(t *testing.T) {
			res := tt.who.do(tt.method, tt.path, tt.form, nil)
			if res.Status != tt.status {
				t.Errorf("%s %s: status %d, want %d", tt.method, tt.path, res.Status, tt.status)
			}
		})
	}
	if page, err := s.Service.Tokens(t.Context(), "acme-labs", principal(t, s, s.Owner), manage.TokenQuery{}); err != nil || len(page.Items) != 1 {
		t.Errorf("live tokens after the refused calls: %d (%v), want only the shared one", len(page.Items), err)
	}
}

var createEnvs = regexp.MustCompile(`(?s)<select id="env" name="env">(.*?)</select>`)

func TestEnvSnippet(t *testing.T) {
	s := newSite(t)
	b := s.owner(t)
	ctx, owner := t.Context(), principal(t, s, s.Owner)
	if _, err := s.Service.CreateKey(ctx, "acme-labs", owner, manage.KeyInput{Name: "claude", Provider: "anthropic", Secret: "sk-ant-test-FAKE-0123456789"}); err != nil {
		t.Fatal(err)
	}
	b.createToken("acme-labs", tokenFields("older openai"))
	s.Clock.Add(time.Second) // the newest token of a provider goes into the snippet
	newer := b.createToken("acme-labs", tokenFields("newer openai"))
	claude := tokenFields("claude dev")
	claude.Set("key", "claude")
	anthropic := b.createToken("acme-labs", claude)
	personal := tokenFields("mine")
	personal.Set("personal", "on")
	b.createToken("acme-labs", personal)
	prd := tokenFields("production")
	prd.Set("env", "prd")
	b.createToken("acme-labs", prd)

	// manage.Env writes the file (and its tests pin the format); the page
	// and the copy button's text must be exactly what it wrote, for the
	// right tokens.
	before := len(auditEvents(t, s, store.EventFilter{Action: "token.reveal"}))
	res := b.do("POST", "/o/acme-labs/env", url.Values{"env": {"dev"}}, http.Header{"Accept": {"text/plain"}})
	if res.Status != http.StatusOK || res.Header.Get("Content-Type") != "text/plain; charset=utf-8" {
		t.Fatalf("env: status %d, type %q", res.Status, res.Header.Get("Content-Type"))
	}
	got := tokenValue.FindAllString(res.Body, -1)
	slices.Sort(got)
	want := []string{anthropic, newer}
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf(".env holds the wrong tokens (want the newest shared dev token of each provider):\n%s", redactTokens(res.Body))
	}
	for _, line := range []string{"ANTHROPIC_API_KEY=" + anthropic + "\n", "OPENAI_API_KEY=" + newer + "\n", "OPENAI_BASE_URL=" + publicURL + "/openai/v1\n"} {
		if !strings.Contains(res.Body, line) {
			t.Errorf(".env lacks %s", redactTokens(line))
		}
	}
	if got := len(auditEvents(t, s, store.EventFilter{Action: "token.reveal"})) - before; got != 2 {
		t.Errorf("%d reveals recorded, want one per token shown (2)", got)
	}
	page := b.post("/o/acme-labs/env", url.Values{"env": {"dev"}})
	if page.Status != http.StatusOK || !strings.Contains(page.Body, `readonly spellcheck="false">`+html.EscapeString(res.Body)+`</textarea>`) {
		t.Errorf("env page: status %d, want the same text in the field\n%s", page.Status, page.Body)
	}
	if res := b.post("/o/acme-labs/env", url.Values{"env": {"qa"}}); res.Status != http.StatusUnprocessableEntity {
		t.Errorf("env qa: status %d, want 422", res.Status)
	}
}

// redactTokens hides token values in a failure message.
func redactTokens(s string) string { return tokenValue.ReplaceAllString(s, "kve_[token]") }

func TestPagination(t *testing.T) {
	s := newSite(t)
	ctx, owner := t.Context(), principal(t, s, s.Owner)
	for i := range 120 {
		in := manage.TokenInput{Name: fmt.Sprintf("token %03d", i), Key: "main", Env: "stg", AllowServer: true}
		if _, err := s.Service.CreateToken(ctx, "acme-labs", owner, in); err != nil {
			t.Fatal(err)
		}
		s.Clock.Add(time.Millisecond) // creation time orders the list
	}
	b := s.owner(t)
	next := regexp.MustCompile(`<a href="([^"]+)" rel="next">`)
	rows := regexp.MustCompile(`<span class="name">token (\d{3})</span>`)
	var got []int
	path := "/o/acme-labs/tokens?env=stg"
	for pages := 0; path != ""; pages++ {
		if pages == 5 {
			t.Fatal("more than 5 pages for 120 tokens")
		}
		body := b.mustGet(path)
		for _, m := range rows.FindAllStringSubmatch(body, -1) {
			n, _ := strconv.Atoi(m[1])
			got = append(got, n)
		}
		path = ""
		if m := next.FindStringSubmatch(body); m != nil {
			path = strings.ReplaceAll(m[1], "&amp;", "&")
		}
	}
	want := make([]int, 120)
	for i := range want {
		want[i] = 119 - i // newest first
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("tokens over all pages (-want +got):\n%s", diff)
	}
}

func TestTokenEditRefused(t *testing.T) {
	s := newSite(t)
	b := s.owner(t)
	b.createToken("acme-labs", tokenFields("svc"))
	id := tokenID(t, b.mustGet("/o/acme-labs/tokens"), "svc")
	res := b.post("/o/acme-labs/tokens/"+id+"/policy", url.Values{"origins": {"not an origin"}, "allow_server": {"on"}})
	if res.Status != http.StatusUnprocessableEntity {
		t.Fatalf("status %d, want 422", res.Status)
	}
	for _, want := range []string{
		`<details open>`, `id="origins-` + id + `-error">&#34;not an origin&#34; is not a valid origin`,
		`>not an origin</textarea>`,
	} {
		if !strings.Contains(res.Body, want) {
			t.Errorf("the refused edit's row lacks %s\n%s", want, res.Body)
		}
	}
}

func auditEvents(t *testing.T, s *site, f store.EventFilter) []kve.Event {
	t.Helper()
	f.Limit = store.MaxLimit
	page, err := s.Service.Events(t.Context(), "acme-labs", principal(t, s, s.Owner), f)
	if err != nil {
		t.Fatal(err)
	}
	return page.Items
}

// TestTokenPage opens a token's own page as each role: its rules, and for
// Owners and Admins its breach alert settings, suspension and incidents.
func TestTokenPage(t *testing.T) {
	s := newSite(t)
	web := issue(t, s, s.Owner, "web", "prd", false)
	laptop := issue(t, s, s.Dev, "dev laptop", "dev", true)
	other := issue(t, s, s.Dev2, "dev2 laptop", "dev", true)
	breach(t, s, web, alerts.OriginNotAllowed, hostileOrigin, hostileAgent)
	owner := s.owner(t)
	path := "/o/acme-labs/tokens/" + web.ID

	page := owner.mustGet(path)
	for _, want := range []string{
		"<h1>Token web</h1>", `<input id="alerts" name="alerts" type="checkbox" checked`,
		`<input id="auto_suspend" name="auto_suspend" type="checkbox" checked`,
		`action="/o/acme-labs/tokens/` + web.ID + `/suspend"`, "Origin not allowed",
		`origin <code>https://evil.example&#34;&gt;&lt;script&gt;alert(&#34;origin&#34;)&lt;/script&gt;</code>`,
		`href="/o/acme-labs/usage?token=` + web.ID + `"`, `href="/o/acme-labs/alerts?token=` + web.ID + `"`,
	} {
		if !strings.Contains(page, want) {
			t.Errorf("token page lacks %s", want)
		}
	}
	if strings.Contains(page, "<script>alert") {
		t.Error("a breach sample reached the token page unescaped")
	}
	stored := func() kve.Token {
		t.Helper()
		got, err := s.Store.Token(t.Context(), s.Org.ID, web.ID)
		if err != nil {
			t.Fatal(err)
		}
		return got
	}

	// Alerts off, automatic suspension kept: an unticked box is off.
	res := owner.post(path+"/alerting", url.Values{"auto_suspend": {"on"}})
	if res.Status != http.StatusSeeOther || res.location() != path+"?done=token_alerting" {
		t.Fatalf("alerting: %d to %q", res.Status, res.location())
	}
	if got := stored(); got.Alerts || !got.AutoSuspend {
		t.Errorf("after the change: alerts %v, auto suspend %v; want off, on", got.Alerts, got.AutoSuspend)
	}
	if page := owner.mustGet(res.location()); !strings.Contains(page, "Breach alert settings saved.") ||
		!strings.Contains(page, `<input id="alerts" name="alerts" type="checkbox" aria-describedby`) {
		t.Error("the page does not show alerts off")
	}

	// Suspend and resume.
	if res := owner.post(path+"/suspend", url.Values{}); res.Status != http.StatusSeeOther || res.location() != path+"?done=token_suspended" {
		t.Fatalf("suspend: %d to %q", res.Status, res.location())
	}
	if got := stored(); !got.Suspended() || got.Suspension != "manual" {
		t.Errorf("after suspend: %v %q", got.SuspendedAt, got.Suspension)
	}
	page = owner.mustGet(path)
	if !strings.Contains(page, "This token is suspended (manual)") || !strings.Contains(page, `action="`+path+`/resume"`) {
		t.Error("the token page does not show the suspension with a resume button")
	}
	if list := owner.mustGet("/o/acme-labs/tokens"); !strings.Contains(list, `<a class="badge bad" href="`+path+`">suspended</a>`) {
		t.Error("the token list has no suspended badge")
	}
	if res := owner.post(path+"/resume", url.Values{}); res.Status != http.StatusSeeOther {
		t.Errorf("resume: status %d", res.Status)
	}
	if got := stored(); got.Suspended() {
		t.Errorf("resumed, still suspended since %v", got.SuspendedAt)
	}

	t.Run("admin", func(t *testing.T) {
		if page := s.as(t, s.Admin).mustGet(path); !strings.Contains(page, `action="`+path+`/alerting"`) {
			t.Error("an Admin has no alert settings form")
		}
	})
	t.Run("developer", func(t *testing.T) {
		dev := s.as(t, s.Dev)
		page := dev.mustGet(path) // a shared token: visible, its usage and incidents not
		for _, absent := range []string{"/alerting", "/suspend", `id="incidents"`, "/usage?token="} {
			if strings.Contains(page, absent) {
				t.Errorf("a developer's view of a shared token has %s", absent)
			}
		}
		if page := dev.mustGet("/o/acme-labs/tokens/" + laptop.ID); !strings.Contains(page, `href="/o/acme-labs/usage?token=`+laptop.ID+`"`) {
			t.Error("a developer's own token page does not link its usage")
		}
		if res := dev.get("/o/acme-labs/tokens/" + other.ID); res.Status != http.StatusNotFound {
			t.Errorf("another developer's token: status %d, want 404", res.Status)
		}
		for _, action := range []string{"/alerting", "/suspend", "/resume"} {
			if res := dev.post("/o/acme-labs/tokens/"+laptop.ID+action, url.Values{}); res.Status != http.StatusForbidden {
				t.Errorf("a developer posts %s on their own token: status %d, want 403", action, res.Status)
			}
		}
	})
	t.Run("revoked", func(t *testing.T) {
		if _, err := s.Service.RevokeToken(t.Context(), "acme-labs", principal(t, s, s.Owner), web.ID); err != nil {
			t.Fatal(err)
		}
		page := owner.mustGet(path)
		if !strings.Contains(page, `<span class="badge bad">revoked</span>`) || strings.Contains(page, "/alerting") || strings.Contains(page, "/suspend") {
			t.Error("a revoked token's page offers alert settings, or does not say it is revoked")
		}
		if res := owner.post(path+"/suspend", url.Values{}); res.Status != http.StatusGone {
			t.Errorf("suspending a revoked token: status %d, want 410", res.Status)
		}
	})
}
