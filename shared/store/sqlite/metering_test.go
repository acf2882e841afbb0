package sqlite

import (
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/keyvault-edge/kve/shared/kve"
	"github.com/keyvault-edge/kve/shared/store"
)

// BenchmarkSettle measures what local mode's batcher pays to settle usage
// records in the store: one Settle per batch (the batcher's 4,096, or a
// small one), its records spread over 10 or 1,000 tokens, each with its
// rollups, spend and last use. An op is a batch; records/s, µs/record and
// cpu-µs/record (the process's CPU time, the writes' checkpoints and GC
// included) are per record. Records arrive a millisecond apart, as under
// load, so the store grows as it would.
func BenchmarkSettle(b *testing.B) {
	for _, bc := range []struct{ batch, tokens int }{{4096, 10}, {4096, 1000}, {256, 10}} {
		b.Run(fmt.Sprintf("batch=%d/tokens=%d", bc.batch, bc.tokens), func(b *testing.B) {
			s := openTest(b, filepath.Join(b.TempDir(), "kve.db"))
			org, tokens := seed(b, s, bc.tokens)
			at := time.Now().UTC()
			batch := make([]store.Settlement, bc.batch)
			b.ReportAllocs()
			cpu0 := processCPU()
			n := 0
			for b.Loop() {
				for j := range batch {
					tok := tokens[n%len(tokens)]
					at = at.Add(time.Millisecond)
					batch[j] = store.Settlement{Usage: kve.Usage{RequestID: kve.NewID(kve.PrefixRequest, at), At: at,
						OrgID: org.ID, TokenID: tok.ID, Env: tok.Env, Provider: "openai", Method: "POST",
						Path: "/v1/chat/completions", Model: "gpt-4o-mini-2024-07-18", Status: 200,
						Duration: 3 * time.Millisecond, Upstream: 2 * time.Millisecond, BytesIn: 120, BytesOut: 672,
						PromptTokens: 19, CompletionTokens: 9, CostMicro: 9, ClientIP: "127.0.0.1"}}
					n++
				}
				// Records come in as requests complete, not as they began:
				// 32 at a time in flight, out of order.
				for j := 0; j+32 <= len(batch); j += 32 {
					rand.Shuffle(32, func(x, y int) { batch[j+x], batch[j+y] = batch[j+y], batch[j+x] })
				}
				if err := s.Settle(b.Context(), batch); err != nil {
					b.Fatal(err)
				}
			}
			cpu := processCPU() - cpu0
			b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "records/s")
			b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(n), "µs/record")
			b.ReportMetric(float64(cpu.Microseconds())/float64(n), "cpu-µs/record")
		})
	}
}

func TestDayCache(t *testing.T) {
	var days dayCache
	midnight := time.Date(2026, 11, 28, 0, 0, 0, 0, time.UTC)
	for _, at := range []time.Time{
		midnight.Add(-time.Millisecond),
		midnight,
		midnight.Add(-time.Nanosecond),
		midnight.In(time.FixedZone("UTC-5", -5*3600)),
		time.Unix(-1, 0),
		time.Unix(0, 0),
		{},
		midnight.AddDate(0, 1, 0),
	} {
		if got, want := days.of(at), at.UTC().Format(time.DateOnly); got != want {
			t.Errorf("day of %v = %s, want %s", at, got, want)
		}
	}
}

// processCPU is the CPU time this process has used, user and system.
func processCPU() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkUsageRecords measures a page of 100 records, the dashboard's
// list, of an organization with 200,000 records of 10 tokens stored as
// the batcher stores them under load (batches of 4,096 records, 10,000
// requests a second): the newest page, the newest of one token, and a
// page half-way down the list.
func BenchmarkUsageRecords(b *testing.B) {
	s := openTest(b, filepath.Join(b.TempDir(), "kve.db"))
	org, tokens := seed(b, s, 10)
	at := time.Now().UTC().Add(-time.Hour)
	var middle kve.Usage
	batch := make([]kve.Usage, 4096)
	for n := 0; n < 200_000; {
		for j := range batch {
			tok := tokens[n%len(tokens)]
			at = at.Add(100 * time.Microsecond)
			batch[j] = kve.Usage{RequestID: kve.NewID(kve.PrefixRequest, at), At: at, OrgID: org.ID, TokenID: tok.ID,
				Env: tok.Env, Provider: "openai", Method: "POST", Path: "/v1/chat/completions", Model: "gpt-4o-mini",
				Status: 200, PromptTokens: 19, CompletionTokens: 9, CostMicro: 9, ClientIP: "127.0.0.1"}
			if n == 100_000 {
				middle = batch[j]
			}
			n++
		}
		if err := s.RecordUsage(b.Context(), batch); err != nil {
			b.Fatal(err)
		}
	}
	for _, bc := range []struct {
		name   string
		filter store.UsageFilter
	}{
		{"newest", store.UsageFilter{}},
		{"newest of a token", store.UsageFilter{TokenID: tokens[3].ID}},
		{"half-way", store.UsageFilter{Cursor: cursor{millis(middle.At), middle.RequestID}.String()}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				p, err := s.UsageRecords(b.Context(), org.ID, bc.filter)
				if err != nil || len(p.Items) != store.DefaultLimit {
					b.Fatalf("%d records, %v; want a page of %d", len(p.Items), err, store.DefaultLimit)
				}
			}
		})
	}
}

// TestRollupsByMonth: reports that read whole months from
// usage_monthly_token (migration 0007) sum exactly what the days of
// usage_daily_token hold, for periods that start and end anywhere: inside
// a month, on its first or last day, across a year, ending before or after
// the last day used, filtered by token and member or not.
func TestRollupsByMonth(t *testing.T) {
	s := openTest(t, filepath.Join(t.TempDir(), "kve.db"))
	org, tokens := seed(t, s, 3)
	// Use on most days from 2026-10-10 to 2027-01-20, none on the 5th of a month.
	start := time.Date(2026, 10, 10, 15, 0, 0, 0, time.UTC)
	var batch []store.Settlement
	n := 0
	for at := start; at.Before(time.Date(2027, 1, 21, 0, 0, 0, 0, time.UTC)); at = at.Add(7 * time.Hour) {
		if at.Day() == 5 {
			continue
		}
		tok := tokens[n%len(tokens)]
		n++
		batch = append(batch, store.Settlement{Usage: kve.Usage{RequestID: kve.NewID(kve.PrefixRequest, at), At: at,
			OrgID: org.ID, TokenID: tok.ID, UserID: tok.OwnerID, Env: tok.Env, Provider: "openai", Model: "gpt-4o",
			Status: 200 + 300*(n%5/4), PromptTokens: int64(n), CompletionTokens: 2, CostMicro: int64(n % 17)}})
	}
	if err := s.Settle(t.Context(), batch); err != nil {
		t.Fatal(err)
	}
	// The reference: the same query summed from the days alone.
	daily := func(f store.RollupFilter) []store.Rollup {
		t.Helper()
		f.By |= store.ByDay
		rows, err := s.Rollups(t.Context(), org.ID, f)
		if err != nil {
			t.Fatal(err)
		}
		sums := map[string]*store.Rollup{}
		var order []string
		for _, r := range rows {
			k := r.TokenID + "/" + r.UserID
			if sums[k] == nil {
				sums[k] = &store.Rollup{TokenID: r.TokenID, UserID: r.UserID, Env: r.Env, Provider: r.Provider}
				order = append(order, k)
			}
			merge(map[[3]string]*store.Rollup{{}: sums[k]}, [3]string{}, &r)
		}
		slices.Sort(order) // as Rollups sorts: by token, then member
		out := []store.Rollup{}
		for _, k := range order {
			out = append(out, *sums[k])
		}
		return out
	}
	periods := [][2]string{
		{"2026-10-01", "2026-10-31"}, {"2026-10-12", "2026-11-10"}, {"2026-11-01", "2026-11-30"},
		{"2026-11-01", "2026-11-04"}, {"2026-11-01", "2026-11-05"}, {"2026-11-06", "2027-01-04"},
		{"2026-12-01", "2027-01-31"}, {"2026-12-01", "2027-01-20"}, {"2027-01-01", "2027-01-19"},
		{"2026-09-01", "2027-02-28"}, {"2026-11-30", "2026-12-01"}, {"2026-11-15", "2026-11-15"},
		{"2027-01-21", "2027-01-31"}, {"2026-12-10", "2026-11-10"},
		{"2016-11-01", "2027-01-31"}, {"2000-01-01", "2030-12-31"}, // 123 and 372 months: the days
	}
	for _, p := range periods {
		for _, f := range []store.RollupFilter{
			{By: store.ByToken},
			{By: store.ByToken, TokenID: tokens[1].ID},
			{By: store.ByUser, UserID: tokens[2].OwnerID},
			{By: store.ByToken | store.ByUser},
		} {
			f.From, f.To = p[0], p[1]
			got, err := s.Rollups(t.Context(), org.ID, f)
			if err != nil {
				t.Fatal(err)
			}
			want := daily(f)
			for i := range got {
				got[i].Env, got[i].Provider = "", "" // ByUser alone leaves them out
			}
			for i := range want {
				want[i].Env, want[i].Provider, want[i].Day = "", "", ""
				if f.By&store.ByToken == 0 {
					want[i].TokenID = ""
				}
			}
			if f.By&store.ByToken == 0 { // one row per member: sum the tokens' rows
				want = sumAll(want)
			}
			if d := cmp.Diff(want, got); d != "" {
				t.Errorf("%s to %s, filter %+v (-days +months):\n%s", f.From, f.To, f, d)
			}
		}
	}
}

func sumAll(rows []store.Rollup) []store.Rollup {
	if len(rows) == 0 {
		return rows
	}
	sum := &store.Rollup{UserID: rows[0].UserID}
	for i := range rows {
		merge(map[[3]string]*store.Rollup{{}: sum}, [3]string{}, &rows[i])
	}
	return []store.Rollup{*sum}
}
