package sqlite

import (
	"path/filepath"
	"testing"
)

// BenchmarkTokenByHash measures the proxy's lookup among 1,000 tokens.
func BenchmarkTokenByHash(b *testing.B) {
	s := openTest(b, filepath.Join(b.TempDir(), "kve.db"))
	_, tokens := seed(b, s, 1000)
	ctx := b.Context()
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if _, err := s.TokenByHash(ctx, tokens[i%len(tokens)].Hash); err != nil {
			b.Fatal(err)
		}
		i++
	}
}
