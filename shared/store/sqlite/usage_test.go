package sqlite

import (
	"database/sql"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/keyvault-edge/kve/shared/kve"
	"github.com/keyvault-edge/kve/shared/store"
)

// usageAt returns a record of tok at at, costing cost micro-USD.
func usageAt(tok kve.Token, user string, at time.Time, cost int64) kve.Usage {
	return kve.Usage{RequestID: kve.NewID(kve.PrefixRequest, at), At: at, OrgID: tok.OrgID, TokenID: tok.ID,
		UserID: user, Env: tok.Env, Provider: "openai", Method: "POST", Path: "/v1/chat/completions",
		Model: "gpt-test", Status: 200, Duration: 3 * time.Millisecond, Upstream: 2 * time.Millisecond,
		BytesIn: 120, BytesOut: 672, PromptTokens: 19, CompletionTokens: 9, CostMicro: cost, ClientIP: "127.0.0.1"}
}

// listed is records as UsageRecords lists them: stored, newest first.
func listed(records []kve.Usage, keep func(*kve.Usage) bool) []kve.Usage {
	out := []kve.Usage{}
	for _, u := range records {
		if keep(&u) {
			out = append(out, stored(u))
		}
	}
	slices.SortFunc(out, func(a, b kve.Usage) int { return byArrival(&b, &a) })
	return out
}

// allPages walks every page of f and returns the records and page sizes.
func allPages(t *testing.T, s *Store, orgID string, f store.UsageFilter) ([]kve.Usage, []int) {
	t.Helper()
	got, sizes := []kve.Usage{}, []int{}
	for range 10_000 {
		p, err := s.UsageRecords(t.Context(), orgID, f)
		if err != nil {
			t.Fatalf("UsageRecords(%+v): %v", f, err)
		}
		got = append(got, p.Items...)
		sizes = append(sizes, len(p.Items))
		if p.Next == "" {
			return got, sizes
		}
		f.Cursor = p.Next
	}
	t.Fatal("UsageRecords never ended")
	return nil, nil
}

// TestUsageRecordsAcrossChunks lists records stored in many chunks, whose
// times overlap (late records, retried batches, ties within a millisecond
// and across chunks), with every filter and several page sizes, and
// compares each walk of the pages with the records sorted.
func TestUsageRecordsAcrossChunks(t *testing.T) {
	s := openTest(t, filepath.Join(t.TempDir(), "kve.db"))
	org, tokens := seed(t, s, 3)
	other, foreign := seed(t, s, 1)
	users := []string{"usr_a", "usr_b", ""} // the third is a shared token
	base := time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)
	var all []kve.Usage
	batch := func(records ...kve.Usage) []kve.Usage {
		t.Helper()
		if err := s.RecordUsage(t.Context(), records); err != nil {
			t.Fatalf("RecordUsage: %v", err)
		}
		return records
	}
	var first []kve.Usage // 600 records of token 0 over 90 s, and of token 1 every 10th
	for i := range 600 {
		at := base.Add(time.Duration(i) * 150 * time.Millisecond)
		first = append(first, usageAt(tokens[0], users[0], at, int64(i)))
		if i%10 == 0 {
			first = append(first, usageAt(tokens[1], users[1], at, 1))
		}
	}
	all = append(all, batch(first...)...)
	var late []kve.Usage // arrived during the first batch's, and after it; five in one millisecond
	for i := range 40 {
		tok := i % 3
		late = append(late, usageAt(tokens[tok], users[tok], base.Add(time.Duration(i)*2*time.Second+time.Millisecond), 2))
	}
	for range 5 {
		late = append(late, usageAt(tokens[2], "", base.Add(2*time.Minute), 3))
	}
	all = append(all, batch(late...)...)
	for _, ids := range []string{"acegi", "bdfhj"} { // two chunks of one millisecond, their ids interleaved
		var tied []kve.Usage
		for _, c := range ids {
			u := usageAt(tokens[2], "", base.Add(3*time.Minute), 4)
			u.RequestID = "req_tie_" + string(c)
			tied = append(tied, u)
		}
		all = append(all, batch(tied...)...)
	}
	batch(append(late[:10:10], first[:50]...)...) // retried: counts nothing
	batch(usageAt(foreign[0], "", base.Add(time.Minute), 5))

	for _, tc := range []struct {
		name   string
		filter store.UsageFilter
		keep   func(*kve.Usage) bool
	}{
		{"no filter", store.UsageFilter{}, func(*kve.Usage) bool { return true }},
		{"token", store.UsageFilter{TokenID: tokens[0].ID}, func(u *kve.Usage) bool { return u.TokenID == tokens[0].ID }},
		{"user", store.UsageFilter{UserID: users[1]}, func(u *kve.Usage) bool { return u.UserID == users[1] }},
		{"since", store.UsageFilter{Since: base.Add(45 * time.Second)},
			func(u *kve.Usage) bool { return !u.At.Before(base.Add(45 * time.Second)) }},
		{"token and since", store.UsageFilter{TokenID: tokens[2].ID, Since: base.Add(30*time.Second + time.Millisecond)},
			func(u *kve.Usage) bool {
				return u.TokenID == tokens[2].ID && !u.At.Before(base.Add(30*time.Second+time.Millisecond))
			}},
		{"token and user", store.UsageFilter{TokenID: tokens[1].ID, UserID: users[1]},
			func(u *kve.Usage) bool { return u.TokenID == tokens[1].ID }},
		{"token of another user", store.UsageFilter{TokenID: tokens[0].ID, UserID: users[1]},
			func(*kve.Usage) bool { return false }},
		{"another organization's token", store.UsageFilter{TokenID: foreign[0].ID}, func(*kve.Usage) bool { return false }},
	} {
		want := listed(all, tc.keep)
		for _, limit := range []int{1, 7, 100, store.MaxLimit} {
			t.Run(fmt.Sprintf("%s/limit=%d", tc.name, limit), func(t *testing.T) {
				f := tc.filter
				f.Limit = limit
				got, sizes := allPages(t, s, org.ID, f)
				if diff := cmp.Diff(want, got); diff != "" {
					t.Fatalf("records over all pages (-want +got):\n%s", diff)
				}
				for i, n := range sizes[:len(sizes)-1] {
					if n != limit {
						t.Errorf("page %d has %d records, want %d (pages %v)", i, n, limit, sizes)
					}
				}
			})
		}
	}
	if p, err := s.UsageRecords(t.Context(), other.ID, store.UsageFilter{}); err != nil || len(p.Items) != 1 {
		t.Errorf("the other organization's records: %d, %v; want its one", len(p.Items), err)
	}
}

// TestUsageQueryPlans checks with EXPLAIN QUERY PLAN that every filter of
// UsageRecords reads an index in list order: no table scan, no sort.
func TestUsageQueryPlans(t *testing.T) {
	s := openTest(t, filepath.Join(t.TempDir(), "kve.db"))
	for _, tc := range []struct {
		name   string
		filter store.UsageFilter
		index  string
	}{
		{"organization", store.UsageFilter{}, "usage_chunks_by_org"},
		{"since", store.UsageFilter{Since: time.Now()}, "usage_chunks_by_org"},
		{"token", store.UsageFilter{TokenID: "tok_1"}, "usage_chunks_by_token"},
		{"user", store.UsageFilter{UserID: "usr_1"}, "usage_chunks_by_user"},
		{"token and user", store.UsageFilter{TokenID: "tok_1", UserID: "usr_1"}, "usage_chunks_by_"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			q, args := chunksQuery("org_1", tc.filter, cursor{at: time.Now().UnixMilli(), id: "req_1"})
			rows, err := s.read.QueryContext(t.Context(), `EXPLAIN QUERY PLAN `+q, args...)
			if err != nil {
				t.Fatal(err)
			}
			var plan []string
			for rows.Next() {
				var id, parent, unused int
				var detail string
				if err := rows.Scan(&id, &parent, &unused, &detail); err != nil {
					t.Fatal(err)
				}
				plan = append(plan, detail)
			}
			if err := rows.Err(); err != nil {
				t.Fatal(err)
			}
			text := strings.Join(plan, "; ")
			if len(plan) != 1 || !strings.Contains(text, "SEARCH usage_chunks USING INDEX "+tc.index) {
				t.Errorf("plan %q, want one search of index %s", text, tc.index)
			}
		})
	}
}

// TestRetriedBatchCountsOnce settles batches that overlap the ones before
// them and repeat records within, across the sizes of the claim
// statements, and checks records, spend, rollups and last use.
func TestRetriedBatchCountsOnce(t *testing.T) {
	s := openTest(t, filepath.Join(t.TempDir(), "kve.db"))
	org, tokens := seed(t, s, 2)
	day := time.Date(2025, 6, 1, 0, 0, 0, 0, time.UTC)
	var records []kve.Usage
	var want [2]int64
	var last [2]time.Time // the last forwarded request of each token
	for i := range 1000 {
		at := day.Add(time.Duration(i) * time.Second)
		u := usageAt(tokens[i%2], "", at, int64(i+1))
		if i == 999 {
			u.Reason, u.Upstream, u.Status = "origin", 0, 403 // refused: no use
		} else {
			last[i%2] = at
		}
		records = append(records, u)
		want[i%2] += u.CostMicro
	}
	settle := func(records ...kve.Usage) {
		t.Helper()
		batch := make([]store.Settlement, len(records))
		for i := range records {
			batch[i].Usage = records[i]
		}
		if err := s.Settle(t.Context(), batch); err != nil {
			t.Fatalf("Settle: %v", err)
		}
	}
	settle(records[:700]...)
	retry := append(slices.Clone(records[300:]), records[500:573]...)
	settle(retry...)
	settle(retry...)

	got, _ := allPages(t, s, org.ID, store.UsageFilter{Limit: store.MaxLimit})
	if diff := cmp.Diff(listed(records, func(*kve.Usage) bool { return true }), got); diff != "" {
		t.Errorf("records (-want +got):\n%s", diff)
	}
	for i, tok := range tokens {
		sp, err := s.Spend(t.Context(), org.ID, tok.ID, day)
		if err != nil {
			t.Fatal(err)
		}
		if sp.Day != want[i] || sp.Month != want[i] {
			t.Errorf("token %d: spend %+v, want %d for the day and the month", i, sp, want[i])
		}
	}
	rows, err := s.Rollups(t.Context(), org.ID, store.RollupFilter{From: "2025-06-01", To: "2025-06-01"})
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 1 || rows[0].Requests != 1000 || rows[0].Errors != 1 || rows[0].CostMicro != want[0]+want[1] {
		t.Errorf("Rollups = %+v, want 1,000 requests, 1 error, costing %d", rows, want[0]+want[1])
	}
	for i, tok := range tokens {
		if got, err := s.Token(t.Context(), org.ID, tok.ID); err != nil || !got.LastUsed.Equal(last[i]) {
			t.Errorf("token %d: LastUsed = %v, %v; want the last forwarded request's %v", i, got.LastUsed, err, last[i])
		}
	}
}

// TestUpgradeMovesUsageIntoChunks opens a file of schema version 5, whose
// records are rows of the usage table: they are listed as before, the
// table is gone, and storing one of them again counts nothing.
func TestUpgradeMovesUsageIntoChunks(t *testing.T) {
	path := filepath.Join(t.TempDir(), "kve.db")
	stmts := []string{`CREATE TABLE schema_version (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at INTEGER NOT NULL)`}
	for _, m := range mustMigrations(t) {
		if m.version < 6 {
			stmts = append(stmts, m.sql, fmt.Sprintf(`INSERT INTO schema_version VALUES (%d, '%s', 0)`, m.version, m.name))
		}
	}
	stmts = append(stmts,
		`INSERT INTO orgs (id, slug, name, created_at, created_by) VALUES ('org_01', 'acme', 'Acme', 1, 'usr_01')`,
		`INSERT INTO tokens (id, org_id, name, kind, env, owner_id, hint, hash, sealed, key_id, key_version, key_ref,
			policy, created_by, created_at, updated_at, expires_at, revoked_at, last_used, version)
		VALUES ('tok_01', 'org_01', 'ci', 'shared', 'dev', '', 'kve_hb_dev_…', x'01', x'02', 'key_01', 'v1', '{}',
			'{}', 'usr_01', 1, 1, 0, 0, 0, 1)`)
	rawExec(t, path, stmts...)

	full := filledUsage(t)
	full.OrgID, full.TokenID = "org_01", "tok_01"
	records := []kve.Usage{full}
	base := full.At
	for i := range 300 { // more than a chunk holds, over more than a chunk's span
		u := usageAt(kve.Token{ID: "tok_01", OrgID: "org_01"}, "usr_01", base.Add(time.Duration(i)*time.Second), int64(i))
		if i%3 == 0 {
			u.TokenID = "tok_02"
		}
		records = append(records, u)
	}
	records = append(records, usageAt(kve.Token{OrgID: "org_01"}, "", base, 0)) // no token was matched
	db, err := sql.Open("sqlite", dsn(path, time.Second, false))
	if err != nil {
		t.Fatal(err)
	}
	for _, u := range records {
		_, err := db.ExecContext(t.Context(), `INSERT INTO usage (request_id, org_id, token_id, user_id, at, env,
				provider, method, path, model, status, duration_ns, upstream_ns, bytes_in, bytes_out, prompt_tokens,
				completion_tokens, cached_tokens, reasoning_tokens, estimated, cost_micro, client_ip, origin,
				client_aborted, reason)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			u.RequestID, u.OrgID, u.TokenID, u.UserID, millis(u.At), u.Env, u.Provider, u.Method, u.Path, u.Model,
			u.Status, int64(u.Duration), int64(u.Upstream), u.BytesIn, u.BytesOut, u.PromptTokens,
			u.CompletionTokens, u.CachedTokens, u.ReasoningTokens, u.Estimated, u.CostMicro, u.ClientIP, u.Origin,
			u.ClientAborted, u.Reason)
		if err != nil {
			t.Fatal(err)
		}
	}
	db.Close()

	s := openTest(t, path)
	for _, tc := range []struct {
		name   string
		filter store.UsageFilter
		keep   func(*kve.Usage) bool
	}{
		{"all", store.UsageFilter{Limit: 50}, func(*kve.Usage) bool { return true }},
		{"token", store.UsageFilter{TokenID: "tok_02", Limit: 50}, func(u *kve.Usage) bool { return u.TokenID == "tok_02" }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, _ := allPages(t, s, "org_01", tc.filter)
			if diff := cmp.Diff(listed(records, tc.keep), got); diff != "" {
				t.Errorf("records (-want +got):\n%s", diff)
			}
		})
	}
	var tables int
	if err := s.read.QueryRowContext(t.Context(), `SELECT count(*) FROM sqlite_master WHERE name = 'usage'`).Scan(&tables); err != nil || tables != 0 {
		t.Errorf("usage table: %d, %v; want it dropped", tables, err)
	}
	again, fresh := records[2], usageAt(kve.Token{ID: "tok_01", OrgID: "org_01"}, "usr_01", base, 7)
	if err := s.RecordUsage(t.Context(), []kve.Usage{again, fresh}); err != nil {
		t.Fatal(err)
	}
	records = append(records, fresh)
	rows, err := s.Rollups(t.Context(), "org_01", store.RollupFilter{From: "2000-01-01", To: "2100-01-01"})
	if err != nil || len(rows) != 1 || rows[0].Requests != 1 || rows[0].CostMicro != fresh.CostMicro {
		t.Errorf("Rollups after storing a moved record again with a new one = %+v, %v; want the new one only", rows, err)
	}
	if got, _ := allPages(t, s, "org_01", store.UsageFilter{Limit: store.MaxLimit}); len(got) != len(records) {
		t.Errorf("%d records after storing a moved record again with a new one, want %d", len(got), len(records))
	}
}
