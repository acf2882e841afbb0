package sqlite

import (
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/keyvault-edge/kve/shared/kve"
	"github.com/keyvault-edge/kve/shared/store"
)

// BenchmarkRecordUsage measures what local mode's batcher pays per record:
// batches of 4,096 records (its batch size) of 10 tokens, each record
// inserted with its rollups, spend and last use. ns/op and cpu-ns/op (the
// process's CPU time, the writes' checkpoints and GC included) are per
// record.
func BenchmarkRecordUsage(b *testing.B) {
	s := openTest(b, filepath.Join(b.TempDir(), "kve.db"))
	org, tokens := seed(b, s, 10)
	at := time.Now().UTC()
	batch := make([]store.Settlement, 0, 4096)
	flush := func() {
		if err := s.Settle(b.Context(), batch); err != nil {
			b.Fatal(err)
		}
		batch = batch[:0]
	}
	b.ReportAllocs()
	var ru0, ru1 syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru0)
	defer func() {
		syscall.Getrusage(syscall.RUSAGE_SELF, &ru1)
		cpu := time.Duration(ru1.Utime.Nano() + ru1.Stime.Nano() - ru0.Utime.Nano() - ru0.Stime.Nano())
		b.ReportMetric(float64(cpu.Nanoseconds())/float64(b.N), "cpu-ns/op")
	}()
	i := 0
	for b.Loop() {
		tok := tokens[i%len(tokens)]
		batch = append(batch, store.Settlement{Usage: kve.Usage{RequestID: kve.NewID(kve.PrefixRequest, at), At: at,
			OrgID: org.ID, TokenID: tok.ID, Env: tok.Env, Provider: "openai", Method: "POST", Path: "/v1/chat/completions",
			Model: "gpt-4o-mini-2024-07-18", Status: 200, Duration: 3 * time.Millisecond, Upstream: 2 * time.Millisecond,
			BytesIn: 120, BytesOut: 672, PromptTokens: 19, CompletionTokens: 9, CostMicro: 9, ClientIP: "127.0.0.1"}})
		if len(batch) == cap(batch) {
			flush()
		}
		i++
	}
	flush()
}
