package sqlite

import (
	"fmt"
	"path/filepath"
	"syscall"
	"testing"
	"time"

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
