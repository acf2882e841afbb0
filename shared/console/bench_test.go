package console_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/keyvault-edge/kve/shared/console"
	"github.com/keyvault-edge/kve/shared/kve"
	"github.com/keyvault-edge/kve/shared/manage"
	"github.com/keyvault-edge/kve/shared/manage/managetest"
)

// BenchmarkTokensPage renders the first and a deep page of the token list
// of an organization with 10,000 tokens and 100 members, its members page
// and its usage page, as the Owner: the whole request, session check and store reads
// included. The bound is 50 ms.
func BenchmarkTokensPage(b *testing.B) {
	tm := managetest.NewTeam(b)
	ctx := context.Background()
	owner := tm.Principal(b, tm.Owner, "192.0.2.1")
	for i := range 96 { // and the team's 4
		u := tm.AddUser(b, fmt.Sprintf("member%02d@example.com", i), fmt.Sprintf("Member %02d", i))
		tm.AddMember(b, tm.Org.ID, u, kve.RoleDeveloper)
	}
	var last string
	for i := range 10_000 {
		in := manage.TokenInput{Name: fmt.Sprintf("service %05d", i), Key: "main", Env: []string{"dev", "stg", "prd"}[i%3],
			Origins: []string{"https://app.example.com"}, AllowServer: i%2 == 0, IPs: []string{"203.0.113.0/24"}}
		it, err := tm.Service.CreateToken(ctx, "acme-labs", owner, in)
		if err != nil {
			b.Fatal(err)
		}
		if i == 5_000 {
			last = it.Token.ID
		}
		tm.Clock.Add(time.Millisecond)
	}
	h := console.New(tm.Service, console.Config{PublicURL: publicURL, Now: tm.Clock.Now,
		Logger: tm.Logs.Logger()})
	session := kve.NewSessionID()
	now := tm.Clock.Now()
	if err := tm.Store.CreateSession(ctx, kve.Session{ID: kve.NewID(kve.PrefixSession, now), UserID: tm.Owner.ID,
		Kind: kve.SessionBrowser, Hash: tm.Keyring.Hash(session.Reveal()), CreatedAt: now, ExpiresAt: now.Add(12 * time.Hour), LastSeen: now}); err != nil {
		b.Fatal(err)
	}
	// A cursor into the middle of the list, as the "next page" links make.
	page, err := tm.Service.Tokens(ctx, "acme-labs", owner, manage.TokenQuery{Limit: 1000})
	if err != nil {
		b.Fatal(err)
	}
	for page.Next != "" && !containsToken(page.Items, last) {
		if page, err = tm.Service.Tokens(ctx, "acme-labs", owner, manage.TokenQuery{Limit: 1000, Cursor: page.Next}); err != nil {
			b.Fatal(err)
		}
	}
	for _, bb := range []struct{ name, path string }{
		{"first", "/o/acme-labs/tokens"},
		{"deep", "/o/acme-labs/tokens?cursor=" + page.Next},
		{"env filter", "/o/acme-labs/tokens?env=prd"},
		{"members", "/o/acme-labs/members"},
		{"usage", "/o/acme-labs/usage"}, // the audit of unused tokens reads all 10,000
	} {
		b.Run(bb.name, func(b *testing.B) {
			b.ReportAllocs()
			var worst time.Duration
			for b.Loop() {
				r := httptest.NewRequest("GET", bb.path, nil)
				r.AddCookie(&http.Cookie{Name: console.PlainCookie, Value: session.Reveal()})
				w := httptest.NewRecorder()
				start := time.Now()
				h.ServeHTTP(w, r)
				worst = max(worst, time.Since(start))
				if w.Code != http.StatusOK {
					b.Fatalf("status %d", w.Code)
				}
			}
			b.ReportMetric(float64(worst.Microseconds())/1000, "worst-ms")
		})
	}
}

// BenchmarkUsagePage renders the usage page of an organization with 1,000
// tokens, each used every day of the last 30 with one of three models, as
// the Owner (the monthly audit included, which reads every token) and
// filtered to one token. The bound is 50 ms.
func BenchmarkUsagePage(b *testing.B) {
	tm := managetest.NewTeam(b)
	ctx := context.Background()
	owner := tm.Principal(b, tm.Owner, "192.0.2.1")
	now := tm.Clock.Now()
	models := []string{"gpt-4o", "gpt-4o-mini", "gpt-5"}
	var first string
	records := make([]kve.Usage, 0, 30*100)
	for i := range 1_000 {
		it, err := tm.Service.CreateToken(ctx, "acme-labs", owner, manage.TokenInput{Name: fmt.Sprintf("service %04d", i),
			Key: "main", Env: []string{"stg", "prd"}[i%2], AllowServer: true})
		if err != nil {
			b.Fatal(err)
		}
		if i == 0 {
			first = it.Token.ID
		}
		for day := range 30 {
			at := now.AddDate(0, 0, -day)
			records = append(records, kve.Usage{RequestID: kve.NewID(kve.PrefixRequest, at), At: at, OrgID: tm.Org.ID,
				TokenID: it.Token.ID, Env: it.Token.Env, Provider: "openai", Method: "POST", Path: "/v1/chat/completions",
				Model: models[(i+day)%3], Status: 200, PromptTokens: 100, CompletionTokens: 40, CostMicro: 1_000})
		}
		if len(records) == cap(records) {
			if err := tm.Store.RecordUsage(ctx, records); err != nil {
				b.Fatal(err)
			}
			records = records[:0]
		}
	}
	h := console.New(tm.Service, console.Config{PublicURL: publicURL, Now: tm.Clock.Now, Logger: tm.Logs.Logger()})
	session := kve.NewSessionID()
	if err := tm.Store.CreateSession(ctx, kve.Session{ID: kve.NewID(kve.PrefixSession, now), UserID: tm.Owner.ID,
		Kind: kve.SessionBrowser, Hash: tm.Keyring.Hash(session.Reveal()), CreatedAt: now, ExpiresAt: now.Add(12 * time.Hour), LastSeen: now}); err != nil {
		b.Fatal(err)
	}
	for _, bb := range []struct{ name, path string }{
		{"organization", "/o/acme-labs/usage"},
		{"one token", "/o/acme-labs/usage?token=" + first},
	} {
		b.Run(bb.name, func(b *testing.B) {
			b.ReportAllocs()
			var worst time.Duration
			for b.Loop() {
				r := httptest.NewRequest("GET", bb.path, nil)
				r.AddCookie(&http.Cookie{Name: console.PlainCookie, Value: session.Reveal()})
				w := httptest.NewRecorder()
				start := time.Now()
				h.ServeHTTP(w, r)
				worst = max(worst, time.Since(start))
				if w.Code != http.StatusOK {
					b.Fatalf("status %d", w.Code)
				}
			}
			b.ReportMetric(float64(worst.Microseconds())/1000, "worst-ms")
		})
	}
}

func containsToken(ts []kve.Token, id string) bool {
	for _, t := range ts {
		if t.ID == id {
			return true
		}
	}
	return false
}
