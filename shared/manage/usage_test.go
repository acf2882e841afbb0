package manage_test

import (
	"slices"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/keyvault-edge/kve/shared/kve"
	"github.com/keyvault-edge/kve/shared/manage"
	"github.com/keyvault-edge/kve/shared/manage/managetest"
	"github.com/keyvault-edge/kve/shared/store"
)

// usageTeam is a team with three tokens and usage recorded on them: a
// shared one, and one personal token each of Dev and Dev2.
type usageTeam struct {
	*managetest.Team
	shared, dev, dev2 kve.Token
}

func newUsageTeam(t *testing.T) *usageTeam {
	t.Helper()
	tm := managetest.NewTeam(t)
	ut := &usageTeam{Team: tm}
	issue := func(u managetest.User, personal bool) kve.Token {
		it, err := tm.Service.CreateToken(t.Context(), tm.Org.ID, tm.Principal(t, u, "192.0.2.1"),
			manage.TokenInput{Name: "t-" + u.Name, Key: "main", Env: "dev", AllowServer: true, Personal: personal})
		if err != nil {
			t.Fatal(err)
		}
		return it.Token
	}
	ut.shared, ut.dev, ut.dev2 = issue(tm.Owner, false), issue(tm.Dev, true), issue(tm.Dev2, true)
	now := tm.Clock.Now()
	var records []kve.Usage
	for i, r := range []struct {
		tok   kve.Token
		ago   time.Duration
		model string
		cost  int64
	}{
		{ut.shared, 0, "gpt-4o", 1000},
		{ut.shared, 24 * time.Hour, "gpt-4o-mini", 100},
		{ut.dev, 0, "gpt-4o-mini", 10},
		{ut.dev2, 2 * time.Hour, "gpt-4o-mini", 1},
		{ut.shared, 40 * 24 * time.Hour, "gpt-4o", 100_000}, // outside 30 days
	} {
		records = append(records, kve.Usage{RequestID: kve.NewID(kve.PrefixRequest, now) + string(rune('a'+i)),
			At: now.Add(-r.ago), OrgID: tm.Org.ID, TokenID: r.tok.ID, UserID: r.tok.OwnerID, Env: r.tok.Env,
			Provider: "openai", Method: "POST", Path: "/v1/chat/completions", Model: r.model, Status: 200, CostMicro: r.cost})
	}
	if err := tm.Store.RecordUsage(t.Context(), records); err != nil {
		t.Fatal(err)
	}
	return ut
}

func TestUsageReports(t *testing.T) {
	ut := newUsageTeam(t)
	ctx := t.Context()
	owner := ut.Principal(t, ut.Owner, "192.0.2.1")
	dev := ut.Principal(t, ut.Dev, "192.0.2.2")
	costs := func(rep manage.UsageReport, key func(manage.UsageRow) string) map[string]int64 {
		out := map[string]int64{}
		for _, r := range rep.Rows {
			out[key(r)] = r.CostMicro
		}
		return out
	}
	for _, tc := range []struct {
		name string
		p    manage.Principal
		q    manage.UsageQuery
		key  func(manage.UsageRow) string
		want map[string]int64
	}{
		{"by model, 30 days", owner, manage.UsageQuery{By: "model"}, func(r manage.UsageRow) string { return r.Model },
			map[string]int64{"gpt-4o": 1000, "gpt-4o-mini": 111}},
		{"by token", owner, manage.UsageQuery{By: "token"}, func(r manage.UsageRow) string { return r.TokenName },
			map[string]int64{"t-Olga Owner": 1100, "t-Dev One": 10, "t-Dev Two": 1}},
		{"by day, one token", owner, manage.UsageQuery{By: "day", TokenID: ut.shared.ID, Since: "2d"}, func(r manage.UsageRow) string { return r.Day },
			map[string]int64{"2026-03-02": 1000, "2026-03-01": 100}},
		{"60 days", owner, manage.UsageQuery{By: "model", Since: "60d"}, func(r manage.UsageRow) string { return r.Model },
			map[string]int64{"gpt-4o": 101_000, "gpt-4o-mini": 111}},
		{"a member's personal tokens", owner, manage.UsageQuery{By: "token", Member: ut.Dev2.ID}, func(r manage.UsageRow) string { return r.TokenName },
			map[string]int64{"t-Dev Two": 1}},
		{"a developer sees their own", dev, manage.UsageQuery{By: "model"}, func(r manage.UsageRow) string { return r.Model },
			map[string]int64{"gpt-4o-mini": 10}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rep, err := ut.Service.Usage(ctx, ut.Org.Slug, tc.p, tc.q)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, costs(rep, tc.key)); diff != "" {
				t.Errorf("costs (-want +got):\n%s", diff)
			}
			var total int64
			for _, c := range tc.want {
				total += c
			}
			if rep.Total.CostMicro != total {
				t.Errorf("total %d, want %d", rep.Total.CostMicro, total)
			}
		})
	}
	// The dashboard's table: the most expensive tokens, named by a read
	// each, the rest counted, the total of all.
	rep, err := ut.Service.Usage(ctx, ut.Org.Slug, owner, manage.UsageQuery{By: "token", Top: 2})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, r := range rep.Rows {
		names = append(names, r.TokenName)
	}
	if diff := cmp.Diff([]string{"t-Olga Owner", "t-Dev One"}, names); diff != "" || rep.Omitted != 1 || rep.Total.CostMicro != 1111 {
		t.Errorf("top 2: omitted %d, total %d (-want +got):\n%s", rep.Omitted, rep.Total.CostMicro, diff)
	}
}

func TestUsageScopes(t *testing.T) {
	ut := newUsageTeam(t)
	ctx := t.Context()
	dev := ut.Principal(t, ut.Dev, "192.0.2.2")
	for _, tc := range []struct {
		name string
		q    manage.UsageQuery
		want kve.Kind
	}{
		{"another member", manage.UsageQuery{Member: ut.Dev2.ID}, kve.KindForbidden},
		{"a shared token", manage.UsageQuery{TokenID: ut.shared.ID}, kve.KindForbidden},
		{"another's personal token", manage.UsageQuery{TokenID: ut.dev2.ID}, kve.KindForbidden},
		{"no such token", manage.UsageQuery{TokenID: "tok_nope"}, kve.KindNotFound},
		{"bad since", manage.UsageQuery{Since: "forever"}, kve.KindInvalid},
		{"too far back", manage.UsageQuery{Since: "401d"}, kve.KindInvalid},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ut.Service.UsageRecords(ctx, ut.Org.Slug, dev, tc.q)
			if kve.KindOf(err) != tc.want {
				t.Errorf("UsageRecords = %v, want kind %v", err, tc.want)
			}
		})
	}
	page, err := ut.Service.UsageRecords(ctx, ut.Org.Slug, dev, manage.UsageQuery{})
	if err != nil || len(page.Items) != 1 || page.Items[0].TokenID != ut.dev.ID {
		t.Errorf("a developer's records: %+v (%v), want their one", page.Items, err)
	}
	if _, err := ut.Service.Usage(ctx, ut.Org.Slug, dev, manage.UsageQuery{By: "week"}); kve.KindOf(err) != kve.KindInvalid {
		t.Errorf("by=week: %v", err)
	}
	outsider := ut.Principal(t, ut.Outsider, "192.0.2.5")
	if _, err := ut.Service.Usage(ctx, ut.Org.Slug, outsider, manage.UsageQuery{By: "day"}); kve.KindOf(err) != kve.KindNotFound {
		t.Errorf("an outsider: %v, want not found", err)
	}
}

// TestUnusedTokens: the monthly audit lists what nobody used in the period,
// never-used tokens included, and revokes them in one call.
func TestUnusedTokens(t *testing.T) {
	ut := newUsageTeam(t)
	ctx := t.Context()
	owner := ut.Principal(t, ut.Owner, "192.0.2.1")
	idle, err := ut.Service.CreateToken(ctx, ut.Org.ID, owner, manage.TokenInput{Name: "idle", Key: "main", Env: "prd", AllowServer: true})
	if err != nil {
		t.Fatal(err)
	}
	got, err := ut.Service.UnusedTokens(ctx, ut.Org.Slug, owner, "1d") // today only: dev2's 2 h ago counts
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{idle.Token.ID}, tokenIDs(got.Tokens)); diff != "" {
		t.Errorf("unused today (-want +got):\n%s", diff)
	}
	// Never used either, but expired twenty days later: no candidate.
	if _, err := ut.Service.CreateToken(ctx, ut.Org.ID, owner, manage.TokenInput{Name: "short-lived", Key: "main", Env: "prd",
		AllowServer: true, ExpiresIn: "10d"}); err != nil {
		t.Fatal(err)
	}
	// Twenty days later (dev tokens live 30: an expired one is no
	// candidate), nothing was used in the last 15.
	ut.Clock.Add(20 * 24 * time.Hour)
	got, err = ut.Service.UnusedTokens(ctx, ut.Org.Slug, owner, "15d")
	if err != nil {
		t.Fatal(err)
	}
	// Never used first, then by last use (dev2's 2 h before the others'),
	// ties by id.
	tied := []string{ut.shared.ID, ut.dev.ID}
	slices.Sort(tied)
	want := append([]string{idle.Token.ID, ut.dev2.ID}, tied...)
	if diff := cmp.Diff(want, tokenIDs(got.Tokens)); diff != "" {
		t.Errorf("unused in 15 days (-want +got):\n%s", diff)
	}
	// A page of the audit: the first two, and the count of all. A store
	// that cannot list unused tokens itself (the SQLite store without its
	// UnusedTokens) gets the same from the whole list.
	whole := manage.New(ut.Config, manage.Deps{Store: struct{ store.Store }{ut.Store}, Secrets: ut.Secrets,
		Keyring: ut.Keyring, Alerts: ut.Alerts})
	for name, svc := range map[string]*manage.Service{"the store's query": ut.Service, "the whole list": whole} {
		first, err := svc.FirstUnusedTokens(ctx, ut.Org.Slug, owner, "15d", 2)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(want[:2], tokenIDs(first.Tokens)); diff != "" || first.Total != 4 {
			t.Errorf("%s: first 2 of %d (-want +got):\n%s", name, first.Total, diff)
		}
		all, err := svc.UnusedTokens(ctx, ut.Org.Slug, owner, "15d")
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(want, tokenIDs(all.Tokens)); diff != "" || all.Total != 4 {
			t.Errorf("%s: all %d (-want +got):\n%s", name, all.Total, diff)
		}
		for _, tok := range all.Tokens {
			if tok.Sealed != nil {
				t.Errorf("%s: token %s listed with its sealed value", name, tok.ID)
			}
		}
	}
	if _, err := ut.Service.UnusedTokens(ctx, ut.Org.Slug, ut.Principal(t, ut.Dev, "192.0.2.2"), ""); kve.KindOf(err) != kve.KindForbidden {
		t.Errorf("a developer runs the audit: %v", err)
	}

	rev, err := ut.Service.RevokeTokens(ctx, ut.Org.Slug, ut.Principal(t, ut.Admin, "192.0.2.3"),
		append(tokenIDs(got.Tokens), ut.shared.ID, "tok_nope"))
	if err != nil {
		t.Fatal(err)
	}
	if len(rev.Revoked) != 4 || len(rev.Failed) != 1 || kve.KindOf(rev.Failed["tok_nope"]) != kve.KindNotFound {
		t.Errorf("revoked %d, failed %v; want 4 and tok_nope not found", len(rev.Revoked), rev.Failed)
	}
	left, err := ut.Service.UnusedTokens(ctx, ut.Org.Slug, owner, "15d")
	if err != nil || len(left.Tokens) != 0 {
		t.Errorf("unused after revoking them: %v (%v)", tokenIDs(left.Tokens), err)
	}
	events, err := ut.Store.Events(ctx, ut.Org.ID, store.EventFilter{Action: "token.revoke"})
	if err != nil || len(events.Items) != 4 {
		t.Errorf("%d token.revoke events (%v), want one per token", len(events.Items), err)
	}
	if _, err := ut.Service.RevokeTokens(ctx, ut.Org.Slug, owner, nil); kve.KindOf(err) != kve.KindInvalid {
		t.Errorf("no ids: %v", err)
	}
}

func tokenIDs(ts []kve.Token) []string {
	out := make([]string, len(ts))
	for i, t := range ts {
		out[i] = t.ID
	}
	return out
}
