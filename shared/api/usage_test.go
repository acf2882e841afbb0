package api

import (
	"encoding/csv"
	"net/http"
	"strings"
	"testing"

	"github.com/keyvault-edge/kve/shared/kve"
	"github.com/keyvault-edge/kve/shared/manage"
)

// usageAPITeam is an API team with usage recorded on a shared token and on
// a developer's personal token.
func usageAPITeam(t *testing.T) (*apiTeam, kve.Token, kve.Token) {
	t.Helper()
	a := newAPITeam(t)
	ctx := t.Context()
	issue := func(p manage.Principal, name string, personal bool) kve.Token {
		it, err := a.Service.CreateToken(ctx, a.Org.ID, p, manage.TokenInput{Name: name, Key: "main", Env: "dev", AllowServer: true, Personal: personal})
		if err != nil {
			t.Fatal(err)
		}
		return it.Token
	}
	shared := issue(a.Principal(t, a.Owner, "192.0.2.1"), "=HYPERLINK(\"http://evil.example\")", false)
	mine := issue(a.Principal(t, a.Dev, "192.0.2.2"), "dev laptop", true)
	now := a.Clock.Now()
	var recs []kve.Usage
	for i, r := range []struct {
		tok   kve.Token
		model string
		cost  int64
	}{{shared, "gpt-4o", 1_500_000}, {shared, "gpt-4o-mini", 250}, {mine, "gpt-4o-mini", 10}} {
		recs = append(recs, kve.Usage{RequestID: kve.NewID(kve.PrefixRequest, now) + string(rune('a'+i)), At: now,
			OrgID: a.Org.ID, TokenID: r.tok.ID, UserID: r.tok.OwnerID, Env: r.tok.Env, Provider: "openai",
			Method: "POST", Path: "/v1/chat/completions", Model: r.model, Status: 200, PromptTokens: 7, CostMicro: r.cost})
	}
	if err := a.Store.RecordUsage(ctx, recs); err != nil {
		t.Fatal(err)
	}
	return a, shared, mine
}

func TestUsageAPI(t *testing.T) {
	a, shared, mine := usageAPITeam(t)
	org := "/api/v1/orgs/" + a.Org.Slug

	rec := a.call(t, "GET", org+"/usage?by=model", a.Owner.Token, "")
	rep := decodeBody[usageReportView](t, rec)
	if rec.Code != 200 || rep.By != "model" || len(rep.Items) != 2 || rep.Total.CostUSD != 1.50026 || rep.Total.Requests != 3 {
		t.Fatalf("by model: %d %+v", rec.Code, rep)
	}

	records := decodeBody[list[usageView]](t, a.call(t, "GET", org+"/usage?limit=2", a.Owner.Token, ""))
	if len(records.Items) != 2 || records.Next == "" || records.Items[0].PromptTokens != 7 {
		t.Errorf("records page: %+v", records)
	}

	// A developer gets their own personal token's usage only.
	mineOnly := decodeBody[list[usageView]](t, a.call(t, "GET", org+"/usage", a.Dev.Token, ""))
	if len(mineOnly.Items) != 1 || mineOnly.Items[0].TokenID != mine.ID {
		t.Errorf("a developer's records: %+v", mineOnly.Items)
	}
	wantError(t, a.call(t, "GET", org+"/usage?token="+shared.ID, a.Dev.Token, ""), http.StatusForbidden, "forbidden")
	wantError(t, a.call(t, "GET", org+"/usage?by=hour", a.Owner.Token, ""), http.StatusBadRequest, "invalid_by")
	wantError(t, a.call(t, "GET", org+"/usage?format=xml", a.Owner.Token, ""), http.StatusBadRequest, "invalid_format")

	// CSV, with a token name that a spreadsheet would run as a formula
	// quoted as text.
	rec = a.call(t, "GET", org+"/usage?by=token&format=csv", a.Owner.Token, "")
	if rec.Code != 200 || !strings.HasPrefix(rec.Header().Get("Content-Type"), "text/csv") {
		t.Fatalf("csv: %d %s", rec.Code, rec.Header().Get("Content-Type"))
	}
	rows, err := csv.NewReader(rec.Body).ReadAll()
	if err != nil || len(rows) != 3 || rows[0][2] != "token_name" {
		t.Fatalf("csv rows %v (%v)", rows, err)
	}
	if rows[1][2] != `'=HYPERLINK("http://evil.example")` || rows[1][15] != "1.50025" {
		t.Errorf("most expensive token's line: %v", rows[1])
	}
}

func TestUnusedAndBulkRevokeAPI(t *testing.T) {
	a, shared, mine := usageAPITeam(t)
	org := "/api/v1/orgs/" + a.Org.Slug
	idle, err := a.Service.CreateToken(t.Context(), a.Org.ID, a.Principal(t, a.Owner, "192.0.2.1"),
		manage.TokenInput{Name: "idle", Key: "main", Env: "stg", AllowServer: true})
	if err != nil {
		t.Fatal(err)
	}
	unused := decodeBody[unusedView](t, a.call(t, "GET", org+"/usage/unused?since=30d", a.Admin.Token, ""))
	if len(unused.Items) != 1 || unused.Items[0].ID != idle.Token.ID || !unused.Items[0].LastUsedAt.IsZero() {
		t.Fatalf("unused: %+v", unused.Items)
	}
	rec := a.call(t, "POST", org+"/tokens/revoke", a.Admin.Token, `{"ids":["`+idle.Token.ID+`","`+shared.ID+`","tok_nope"]}`)
	rev := decodeBody[revocationView](t, rec)
	if rec.Code != 200 || len(rev.Revoked) != 2 || len(rev.Failed) != 1 || rev.Failed[0].Code != "not_found" {
		t.Fatalf("revoke: %d %+v", rec.Code, rev)
	}
	wantError(t, a.call(t, "POST", org+"/tokens/revoke", a.Dev.Token, `{"ids":["`+mine.ID+`"]}`), http.StatusForbidden, "forbidden")
	wantError(t, a.call(t, "POST", org+"/tokens/revoke", a.Admin.Token, `{"ids":[],"all":true}`), http.StatusBadRequest, "unknown_field")
}

func TestBillingAPI(t *testing.T) {
	a, _, _ := usageAPITeam(t)
	org := "/api/v1/orgs/" + a.Org.Slug
	rec := a.call(t, "PATCH", org+"/billing", a.Owner.Token, `{"month_budget_usd":100,"contact_email":"billing@example.com"}`)
	b := decodeBody[billingView](t, rec)
	if rec.Code != 200 || b.MonthBudgetUSD != 100 || b.ContactEmail != "billing@example.com" || b.MonthSpendUSD != 1.50026 {
		t.Fatalf("billing: %d %+v", rec.Code, b)
	}
	rec = a.call(t, "PUT", org+"/billing/prices", a.Owner.Token, `{"overrides":[{"provider":"openai","model":"gpt-4o","input":2,"cached":1,"output":8}]}`)
	prices := decodeBody[priceListView](t, rec)
	if rec.Code != 200 || len(prices.Overrides) != 1 || !prices.Overrides[0].Override || prices.Overrides[0].MaxOutput != 16384 {
		t.Fatalf("prices: %d %+v", rec.Code, prices.Overrides)
	}
	month := a.Clock.Now().UTC().Format("2006-01")
	rep := decodeBody[reportView](t, a.call(t, "GET", org+"/billing/report?month="+month, a.Owner.Token, ""))
	if rep.Month != month || len(rep.Items) != 3 || rep.Total.CostUSD != 1.50026 {
		t.Errorf("report: %+v", rep)
	}
	rec = a.call(t, "GET", org+"/billing/report?month="+month+"&format=csv", a.Owner.Token, "")
	rows, err := csv.NewReader(rec.Body).ReadAll()
	if err != nil || len(rows) != 4 || rows[0][0] != "month" || rows[1][0] != month {
		t.Errorf("report csv %v (%v)", rows, err)
	}
	if !strings.Contains(rec.Header().Get("Content-Disposition"), "kve-cost-"+month+".csv") {
		t.Errorf("Content-Disposition %q", rec.Header().Get("Content-Disposition"))
	}
	wantError(t, a.call(t, "GET", org+"/billing/report?month=soon", a.Owner.Token, ""), http.StatusBadRequest, "invalid_month")
	wantError(t, a.call(t, "PATCH", org+"/billing", a.Owner.Token, `{"month_budget_usd":-1}`), http.StatusBadRequest, "invalid_budget")
}
