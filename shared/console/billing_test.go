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

	"github.com/keyvault-edge/kve/shared/store"
)

func TestBilling(t *testing.T) {
	s := newSite(t)
	web := issue(t, s, s.Owner, "web", "prd", false)
	laptop := issue(t, s, s.Dev, "dev laptop", "dev", true)
	now := s.Clock.Now()
	use(t, s, web, now, "gpt-4o", 2, 1_000, 500, 1_250_000)
	use(t, s, web, now.Add(-time.Hour), "gpt-4o-mini", 1, 10, 10, 30_000)
	use(t, s, laptop, now, "gpt-4o-mini", 4, 10, 10, 5_000)
	use(t, s, web, now.AddDate(0, -1, 0), "gpt-4o", 1, 1, 1, 9_000_000) // last month
	b := s.owner(t)

	page := b.mustGet("/o/acme-labs/billing")
	for _, want := range []string{
		"<h2>Cost report for 2026-03</h2>", "Spent in 2026-03 (UTC): <strong>$2.55</strong>, no budget set.",
		"<strong>$2.55</strong> for 7 requests.",
		`<a href="/api/v1/orgs/acme-labs/billing/report?format=csv&amp;month=2026-03" download>Download as CSV</a>`,
		"kve's price list of 2026-11-01", `<code>gpt-5</code> <span class="muted">openai</span>`,
	} {
		if !strings.Contains(page, want) {
			t.Errorf("billing page lacks %s", want)
		}
	}
	envs := regexp.MustCompile(`<span class="badge env-([a-z]+)">[a-z]+</span></th><td data-label="Requests">([0-9,]+)</td><td data-label="Cost">([^<]+)</td>`)
	var got [][]string
	for _, m := range envs.FindAllStringSubmatch(page, -1) {
		got = append(got, m[1:])
	}
	if diff := cmp.Diff([][]string{{"dev", "4", "$0.02"}, {"prd", "3", "$2.53"}}, got); diff != "" {
		t.Errorf("cost per environment (-want +got):\n%s", diff)
	}
	report := section(t, page, "report")
	rows := regexp.MustCompile(`<span class="name">([^<]+)</span></a> <span class="badge env-[a-z]+">[a-z]+</span></th>\s*<td data-label="Model"><code>([^<]+)</code>`)
	got = nil
	for _, m := range rows.FindAllStringSubmatch(report, -1) {
		got = append(got, m[1:])
	}
	if diff := cmp.Diff([][]string{{"dev laptop", "gpt-4o-mini"}, {"web", "gpt-4o"}, {"web", "gpt-4o-mini"}}, got); diff != "" {
		t.Errorf("report rows (-want +got):\n%s", diff)
	}
	if last := b.mustGet("/o/acme-labs/billing?month=2026-02"); !strings.Contains(last, "<strong>$9.00</strong> for 1 request.") {
		t.Error("last month's report does not show its cost")
	}
	if res := b.get("/o/acme-labs/billing?month=March"); res.Status != http.StatusUnprocessableEntity {
		t.Errorf("a month manage refuses: status %d, want 422", res.Status)
	}

	t.Run("roles", func(t *testing.T) {
		for _, u := range []*visitor{s.as(t, s.Admin), s.as(t, s.Dev)} {
			if res := u.get("/o/acme-labs/billing"); res.Status != http.StatusForbidden {
				t.Errorf("status %d, want 403", res.Status)
			}
			if res := u.post("/o/acme-labs/billing", url.Values{"budget_usd": {"1"}}); res.Status != http.StatusForbidden {
				t.Errorf("update: status %d, want 403", res.Status)
			}
			if strings.Contains(u.mustGet("/o/acme-labs/tokens"), `href="/o/acme-labs/billing"`) {
				t.Error("the navigation links billing")
			}
		}
		if !strings.Contains(page, `<a href="/o/acme-labs/billing" aria-current="page">Billing</a>`) {
			t.Error("the Owner's navigation does not mark billing")
		}
	})

	t.Run("settings", func(t *testing.T) {
		res := b.post("/o/acme-labs/billing", url.Values{"budget_usd": {"10"}, "email": {" Billing@Example.com "}})
		if res.Status != http.StatusSeeOther || res.location() != "/o/acme-labs/billing?done=billing_updated" {
			t.Fatalf("update: %d to %q\n%s", res.Status, res.location(), res.Body)
		}
		page := b.mustGet(res.location())
		for _, want := range []string{
			"Billing settings saved.", "<strong>$2.55</strong> of $10.00 (25 %)",
			`<meter class="spend" min="0" max="10.00" value="2.55`, `value="billing@example.com"`, `value="10.00"`,
		} {
			if !strings.Contains(page, want) {
				t.Errorf("after the update the page lacks %s", want)
			}
		}
		for _, tt := range []struct {
			name   string
			form   url.Values
			field  string
			msg    string
			status int
		}{
			{"not an amount", url.Values{"budget_usd": {"ten"}}, "budget", "Enter an amount in dollars", 422},
			{"negative", url.Values{"budget_usd": {"-5"}}, "budget", "month_budget_usd must be 0 (none)", 422},
			{"not an address", url.Values{"email": {"billing at example"}}, "email", "contact_email must be an email address", 422},
		} {
			t.Run(tt.name, func(t *testing.T) {
				res := b.post("/o/acme-labs/billing", tt.form)
				want := `<p class="field-error" id="` + tt.field + `-error">`
				i := strings.Index(res.Body, want)
				if res.Status != tt.status || i < 0 || !strings.Contains(res.Body[i:i+len(want)+100], escapeText(tt.msg)) {
					t.Errorf("status %d, want %d with %q at %s", res.Status, tt.status, tt.msg, want)
				}
			})
		}
		// Empty fields clear both.
		if res := b.post("/o/acme-labs/billing", url.Values{"budget_usd": {""}, "email": {""}}); res.Status != http.StatusSeeOther {
			t.Fatalf("clear: status %d", res.Status)
		}
		got, err := s.Service.Billing(t.Context(), "acme-labs", principal(t, s, s.Owner))
		if err != nil || got.MonthBudgetMicro != 0 || got.Contact != "" {
			t.Errorf("after clearing: %+v (%v)", got, err)
		}
		if evs := auditEvents(t, s, store.EventFilter{Action: "billing.update"}); len(evs) != 2 {
			t.Errorf("%d billing.update events, want 2", len(evs))
		}
	})

	t.Run("prices", func(t *testing.T) {
		res := b.post("/o/acme-labs/billing/prices", url.Values{"prices": {"openai gpt-4o 2 1, 8\n\n  anthropic, claude-house-model, 1, 0.1, 5 \n"}})
		if res.Status != http.StatusSeeOther || res.location() != "/o/acme-labs/billing?done=prices_updated#prices" {
			t.Fatalf("set prices: %d to %q\n%s", res.Status, res.location(), res.Body)
		}
		page := b.mustGet("/o/acme-labs/billing")
		for _, want := range []string{
			`<code>gpt-4o</code> <span class="muted">openai</span> <span class="badge personal">override</span></th>
        <td data-label="Input">$2</td>
        <td data-label="Cached input">$1</td>
        <td data-label="Output">$8</td>`,
			`<code>claude-house-model</code> <span class="muted">anthropic</span> <span class="badge personal">override</span>`,
		} {
			if !strings.Contains(page, want) {
				t.Errorf("price table lacks %s", want)
			}
		}
		if text := html.UnescapeString(section(t, page, "prices-text")); !strings.HasSuffix(text, ">openai gpt-4o 2 1 8\nanthropic claude-house-model 1 0.1 5") &&
			!strings.HasSuffix(text, ">anthropic claude-house-model 1 0.1 5\nopenai gpt-4o 2 1 8") {
			t.Errorf("the form does not hold the overrides:\n%s", text)
		}
		for _, tt := range []struct{ name, text, msg string }{
			{"four fields", "openai gpt-4o 2 1", "Line 1: write the provider, the model and three prices"},
			{"not a price", "openai gpt-4o 2 1 8\nopenai gpt-4o-mini 1 x 2", "Line 2: “x” is not a price"},
			{"unknown provider", "stripe charges 1 1 1", `"stripe" is not a provider kve prices`},
			{"twice", "openai gpt-4o 2 1 8\nopenai gpt-4o 3 1 8", `openai "gpt-4o" is listed twice`},
		} {
			t.Run(tt.name, func(t *testing.T) {
				res := b.post("/o/acme-labs/billing/prices", url.Values{"prices": {tt.text}})
				want := `<p class="field-error" id="prices-error">`
				i := strings.Index(res.Body, want)
				if res.Status != http.StatusUnprocessableEntity || i < 0 || !strings.Contains(res.Body[i:i+len(want)+200], escapeText(tt.msg)) {
					t.Errorf("status %d, want 422 with %q", res.Status, tt.msg)
				}
				if !strings.Contains(res.Body, escapeText(tt.text)+"</textarea>") {
					t.Error("the refused form lost what was typed")
				}
			})
		}
		if res := b.post("/o/acme-labs/billing/prices", url.Values{"prices": {""}}); res.Status != http.StatusSeeOther {
			t.Fatalf("clear prices: status %d", res.Status)
		}
		if page := b.mustGet("/o/acme-labs/billing"); strings.Contains(page, "override</span>") {
			t.Error("the overrides are still listed after clearing them")
		}
	})
}
