package console_test

import (
	"html"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/keyvault-edge/kve/shared/kve"
	"github.com/keyvault-edge/kve/shared/manage"
	"github.com/keyvault-edge/kve/shared/manage/managetest"
	"github.com/keyvault-edge/kve/shared/store"
)

// issue creates a token as u through manage: shared unless personal.
func issue(t *testing.T, s *site, u managetest.User, name, env string, personal bool) kve.Token {
	t.Helper()
	it, err := s.Service.CreateToken(t.Context(), "acme-labs", principal(t, s, u),
		manage.TokenInput{Name: name, Key: "main", Env: env, AllowServer: true, Personal: personal})
	if err != nil {
		t.Fatalf("create token %s: %v", name, err)
	}
	return it.Token
}

// use records requests of a token as the proxy would, one record per
// request, at at: prompt and completion tokens and cost per request.
func use(t *testing.T, s *site, tok kve.Token, at time.Time, model string, requests int, prompt, completion, costMicro int64) {
	t.Helper()
	records := make([]kve.Usage, 0, requests)
	for range requests {
		records = append(records, kve.Usage{RequestID: kve.NewID(kve.PrefixRequest, at), At: at, OrgID: tok.OrgID,
			TokenID: tok.ID, UserID: tok.OwnerID, Env: tok.Env, Provider: "openai", Method: "POST",
			Path: "/v1/chat/completions", Model: model, Status: 200, PromptTokens: prompt, CompletionTokens: completion,
			CostMicro: costMicro, ClientIP: "203.0.113.7"})
	}
	if err := s.Store.RecordUsage(t.Context(), records); err != nil {
		t.Fatalf("record usage: %v", err)
	}
}

// usageTeam is the team with a shared token and a personal token of each
// developer, used on three days.
type usageTeam struct {
	*site
	shared, dev, dev2 kve.Token
}

func newUsageTeam(t *testing.T) *usageTeam {
	t.Helper()
	s := newSite(t)
	u := &usageTeam{site: s,
		shared: issue(t, s, s.Owner, "web", "dev", false),
		dev:    issue(t, s, s.Dev, "dev laptop", "dev", true),
		dev2:   issue(t, s, s.Dev2, "dev2 laptop", "dev", true),
	}
	now := s.Clock.Now()
	use(t, s, u.shared, now, "gpt-4o", 3, 100, 50, 1_500)
	use(t, s, u.shared, now.Add(-24*time.Hour), "gpt-4o-mini", 1, 1_000, 2_000, 2_500_000)
	use(t, s, u.dev, now, "gpt-4o-mini", 2, 10, 5, 7)
	use(t, s, u.dev2, now.Add(-3*24*time.Hour), "gpt-4o-mini", 1, 1, 1, 1)
	return u
}

// section returns the element of a page with id, from its start tag to
// the first end tag of its name ("" if the page has none): a part of the
// page to look for something in.
func section(t *testing.T, page, id string) string {
	t.Helper()
	i := strings.Index(page, ` id="`+id+`"`)
	if i < 0 {
		return ""
	}
	start := strings.LastIndexByte(page[:i], '<')
	name, _, _ := strings.Cut(page[start+1:i], " ")
	j := strings.Index(page[i:], "</"+name+">")
	if j < 0 {
		t.Fatalf("element %s has no end", id)
	}
	return page[start : i+j]
}

var (
	tokenRowName = regexp.MustCompile(`<th scope="row" data-label="Token"><a href="/o/acme-labs/tokens/tok_[0-9a-z]{26}"><span class="name">([^<]*)</span>`)
	barTitle     = regexp.MustCompile(`<rect class="bar" x="[0-9.]+" y="[0-9.]+" width="[0-9.]+" height="([0-9.]+)"><title>([^<]*)</title></rect>`)
)

// names lists what a pattern's first group matched, in order.
func names(re *regexp.Regexp, page string) []string {
	var out []string
	for _, m := range re.FindAllStringSubmatch(page, -1) {
		out = append(out, m[1])
	}
	return out
}

func TestUsage(t *testing.T) {
	u := newUsageTeam(t)
	owner := u.owner(t)
	for _, tt := range []struct {
		name     string
		who      *visitor
		query    string
		tokens   []string // per-token table, most expensive first
		requests string   // the total
		bars     []string // the requests chart's bars
		manager  bool
	}{
		{"owner, everything", owner, "", []string{"web", "dev laptop", "dev2 laptop"}, "7",
			[]string{"2026-02-27: 1 request", "2026-03-01: 1 request", "2026-03-02: 5 requests"}, true},
		{"admin, everything", u.as(t, u.Admin), "", []string{"web", "dev laptop", "dev2 laptop"}, "7",
			[]string{"2026-02-27: 1 request", "2026-03-01: 1 request", "2026-03-02: 5 requests"}, true},
		{"owner, one token", owner, "?token=" + u.shared.ID, []string{"web"}, "4",
			[]string{"2026-03-01: 1 request", "2026-03-02: 3 requests"}, true},
		{"owner, a member's personal tokens", owner, "?member=" + u.Dev2.ID, []string{"dev2 laptop"}, "1",
			[]string{"2026-02-27: 1 request"}, true},
		{"owner, two days", owner, "?since=2d", []string{"web", "dev laptop"}, "6",
			[]string{"2026-03-01: 1 request", "2026-03-02: 5 requests"}, true},
		{"developer, their own", u.as(t, u.Dev), "", []string{"dev laptop"}, "2",
			[]string{"2026-03-02: 2 requests"}, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			page := tt.who.mustGet("/o/acme-labs/usage" + tt.query)
			if diff := cmp.Diff(tt.tokens, names(tokenRowName, section(t, page, "per-token"))); diff != "" {
				t.Errorf("per-token rows (-want +got):\n%s", diff)
			}
			if want := "<dt>Requests</dt><dd>" + tt.requests + "</dd>"; !strings.Contains(page, want) {
				t.Errorf("the total is not %s requests", tt.requests)
			}
			var bars []string
			for _, m := range barTitle.FindAllStringSubmatch(section(t, page, "chart-requests"), -1) {
				bars = append(bars, m[2])
			}
			if diff := cmp.Diff(tt.bars, bars); diff != "" {
				t.Errorf("requests chart (-want +got):\n%s", diff)
			}
			for what, present := range map[string]bool{
				`<select id="member" name="member">`: tt.manager,
				`id="unused"`:                        tt.manager,
				`<a href="/o/acme-labs/usage" aria-current="page">Usage</a>`: true,
			} {
				if strings.Contains(page, what) != present {
					t.Errorf("page has %s: %v, want %v", what, !present, present)
				}
			}
		})
	}

	t.Run("figures", func(t *testing.T) {
		page := owner.mustGet("/o/acme-labs/usage")
		models := regexp.MustCompile(`<th scope="row" data-label="Model"><code>([^<]*)</code></th>\s*<td data-label="Requests">([0-9,]+)</td>\s*<td data-label="Prompt tokens">([0-9,]+)</td>\s*<td data-label="Completion tokens">([0-9,]+)</td>\s*<td data-label="Cost">([^<]*)</td>`)
		var got [][]string
		for _, m := range models.FindAllStringSubmatch(page, -1) {
			got = append(got, m[1:])
		}
		want := [][]string{{"gpt-4o", "3", "300", "150", "$0.0045"}, {"gpt-4o-mini", "4", "1,021", "2,011", "$2.50"}}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("per-model rows (-want +got):\n%s", diff)
		}
		for _, want := range []string{"<dt>Tokens</dt><dd>3,482</dd>", "<dt>Cost</dt><dd>$2.50</dd>",
			// The cost chart's scale rounds up to $2.50, the tallest day, a
			// bar of the plot's whole 140 units; a day of under a cent
			// still shows, one unit high.
			`height="140"><title>2026-03-01: $2.50</title>`, "scale to $2.50",
			`height="1"><title>2026-03-02: $0.004514</title>`,
			`<th scope="row" data-label="Day">2026-02-01</th>`, // 30 days, days without use too
		} {
			if !strings.Contains(page, want) {
				t.Errorf("usage page lacks %s", want)
			}
		}
	})

	t.Run("csv links", func(t *testing.T) {
		page := html.UnescapeString(owner.mustGet("/o/acme-labs/usage?token=" + u.shared.ID))
		for _, by := range []string{"day", "token", "model"} {
			want := `href="/api/v1/orgs/acme-labs/usage?by=` + by + `&format=csv&since=30d&token=` + u.shared.ID + `" download`
			if !strings.Contains(page, want) {
				t.Errorf("no CSV link %s", want)
			}
		}
	})

	t.Run("refused", func(t *testing.T) {
		dev := u.as(t, u.Dev)
		for _, tt := range []struct {
			name, path string
			status     int
		}{
			{"a developer asks for a shared token", "/o/acme-labs/usage?token=" + u.shared.ID, http.StatusForbidden},
			{"a developer asks for another's tokens", "/o/acme-labs/usage?member=" + u.Dev2.ID, http.StatusForbidden},
			{"a period manage refuses", "/o/acme-labs/usage?since=forever", http.StatusUnprocessableEntity},
		} {
			t.Run(tt.name, func(t *testing.T) {
				who := owner
				if strings.HasPrefix(tt.name, "a developer") {
					who = dev
				}
				if res := who.get(tt.path); res.Status != tt.status {
					t.Errorf("status %d, want %d", res.Status, tt.status)
				}
			})
		}
	})
}

func TestUnusedAudit(t *testing.T) {
	s := newSite(t)
	idle := issue(t, s, s.Owner, "idle", "prd", false)
	old := issue(t, s, s.Owner, "old", "stg", false)
	busy := issue(t, s, s.Owner, "busy", "prd", false)
	use(t, s, old, s.Clock.Now(), "gpt-4o", 1, 1, 1, 1)
	s.Clock.Add(35 * 24 * time.Hour)
	use(t, s, busy, s.Clock.Now(), "gpt-4o", 1, 1, 1, 1)
	owner := s.owner(t)

	audit := section(t, owner.mustGet("/o/acme-labs/usage"), "unused")
	listed := regexp.MustCompile(`<input type="checkbox" name="id" value="(tok_[0-9a-z]{26})"`)
	if diff := cmp.Diff([]string{idle.ID, old.ID}, names(listed, audit)); diff != "" {
		t.Fatalf("the audit lists (-want +got):\n%s", diff)
	}
	if !strings.Contains(audit, `<span class="muted">never</span>`) {
		t.Error("the never-used token does not say so")
	}
	chosen := url.Values{"since": {"30d"}, "id": {idle.ID, old.ID}}
	revoked := func() []string {
		t.Helper()
		var out []string
		for _, tok := range []kve.Token{idle, old, busy} {
			got, err := s.Store.Token(t.Context(), s.Org.ID, tok.ID)
			if err != nil {
				t.Fatal(err)
			}
			if got.Revoked() {
				out = append(out, got.Name)
			}
		}
		return out
	}

	// Without the script, the form leads to a confirmation page: a POST
	// that changes nothing.
	res := owner.post("/o/acme-labs/usage/unused/revoke", chosen)
	if res.Status != http.StatusOK || !strings.Contains(res.Body, "<h1>Revoke unused tokens</h1>") ||
		!strings.Contains(res.Body, `<button type="submit" class="danger">Revoke 2 tokens</button>`) {
		t.Fatalf("confirmation: status %d\n%s", res.Status, res.Body)
	}
	if got := revoked(); len(got) != 0 {
		t.Fatalf("asking revoked %v", got)
	}
	confirmed := url.Values{"confirm": {"yes"}}
	for _, id := range names(regexp.MustCompile(`<input type="hidden" name="id" value="(tok_[0-9a-z]{26})">`), res.Body) {
		confirmed.Add("id", id)
	}
	if diff := cmp.Diff([]string{idle.ID, old.ID}, confirmed["id"], cmpopts.SortSlices(func(a, b string) bool { return a < b })); diff != "" {
		t.Fatalf("the confirmation carries (-want +got):\n%s", diff)
	}

	for _, tt := range []struct {
		name   string
		who    *visitor
		header http.Header
		status int
	}{
		{"a developer", s.as(t, s.Dev), nil, http.StatusForbidden},
		{"another site", owner, http.Header{"Sec-Fetch-Site": {"cross-site"}}, http.StatusForbidden},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if res := tt.who.do("POST", "/o/acme-labs/usage/unused/revoke", confirmed, tt.header); res.Status != tt.status {
				t.Errorf("status %d, want %d", res.Status, tt.status)
			}
			if got := revoked(); len(got) != 0 {
				t.Errorf("revoked %v", got)
			}
		})
	}

	// Between the page and the confirmation, an app uses "old": it is
	// no longer unused, and stays.
	use(t, s, old, s.Clock.Now(), "gpt-4o", 1, 1, 1, 1)
	res = owner.post("/o/acme-labs/usage/unused/revoke", confirmed)
	if res.Status != http.StatusOK || !strings.Contains(res.Body, "<h1>Unused tokens revoked</h1>") {
		t.Fatalf("revoke: status %d\n%s", res.Status, res.Body)
	}
	if diff := cmp.Diff([]string{"idle"}, revoked()); diff != "" {
		t.Errorf("revoked (-want +got):\n%s", diff)
	}
	if !strings.Contains(res.Body, "Left alone") || !strings.Contains(res.Body[strings.Index(res.Body, "Left alone"):], `<span class="name">old</span>`) {
		t.Error("the result does not say that old was left alone")
	}
	if evs := auditEvents(t, s, store.EventFilter{Action: "token.revoke"}); len(evs) != 1 || evs[0].Target != idle.ID {
		t.Errorf("token.revoke events %+v, want one for idle", evs)
	}
	if audit := section(t, owner.mustGet("/o/acme-labs/usage"), "unused"); !strings.Contains(audit, "None: every live token was used since") {
		t.Error("after the audit, tokens are still listed as unused")
	}
}
