package alerts

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/keyvault-edge/kve/shared/kve"
	"github.com/keyvault-edge/kve/shared/proxy"
)

// benchKeys is the proxy's key source: the one fake key.
type benchKeys struct{}

func (benchKeys) Value(context.Context, string, string) (kve.Secret, error) {
	return "sk-test-FAKE-bench-0123456789", nil
}

func benchHash(v string) []byte {
	m := hmac.New(sha256.New, []byte("bench-pepper-FAKE-0123456789abcd"))
	m.Write([]byte(v))
	return m.Sum(nil)
}

// BenchmarkOtherTokensDuringFlood measures one served request of a token
// (through the whole proxy, on the SQLite store, to a loopback upstream)
// while another token of the same organization is flooded with refused
// requests (a bad Origin) at 10,000 a second:
//
//   - quiet: no flood;
//   - flood: the flood, with a recorder that keeps nothing;
//   - flood_alerts: the flood with breach detection (Queued, as local mode
//     runs it) in front of that recorder.
//
// flood_alerts against flood is what breach alerting costs other tokens
// during a flood (SECURITY T18: within 10 %): its store writes (which also
// end the SQLite store's token cache) and its CPU. Both pay for the
// flood's own CPU. Figures: shared/alerts/README.md.
func BenchmarkOtherTokensDuringFlood(b *testing.B) {
	const floodPerMs = 10
	for _, mode := range []string{"quiet", "flood", "flood_alerts"} {
		b.Run(mode, func(b *testing.B) {
			e := newEnv(b)
			up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				io.Copy(io.Discard, r.Body)
				w.Header().Set("Content-Type", "application/json")
				io.WriteString(w, `{"id":"c1","object":"chat.completion","model":"gpt-4o-mini","choices":[],"usage":{"prompt_tokens":9,"completion_tokens":2,"total_tokens":11}}`)
			}))
			defer up.Close()
			e.key.Upstream = up.URL
			good := kve.NewTokenValue(kve.TokenShared, kve.EnvPrd).Reveal()
			bad := kve.NewTokenValue(kve.TokenShared, kve.EnvPrd).Reveal()
			origin, err := kve.ParseOriginPattern("https://app.example.com")
			if err != nil {
				b.Fatal(err)
			}
			e.token(kve.EnvPrd, func(t *kve.Token) { t.Hash, t.Key.Upstream = benchHash(good), up.URL })
			e.token(kve.EnvPrd, func(t *kve.Token) {
				t.Hash, t.Key.Upstream = benchHash(bad), up.URL
				t.Policy = kve.Policy{Origins: []kve.Origin{origin}}
			})
			quiet := slog.New(slog.DiscardHandler)
			var rec proxy.Recorder = &counting{}
			var detector *Recorder
			if mode == "flood_alerts" {
				e.log = quiet
				detector = Queued(rec, e.detector(func(c *DetectorConfig) { c.FlushEvery = 10 }), e.responder(&published{}), quiet)
				rec = detector
			}
			h := proxy.New(proxy.Config{AllowPrivate: loopback}, proxy.Deps{Tokens: e.st, Keys: benchKeys{}, Hash: benchHash, Recorder: rec})
			request := func(token, origin string) *http.Request {
				r := httptest.NewRequest(http.MethodPost, "/openai/v1/chat/completions",
					strings.NewReader(`{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}]}`))
				r.Header.Set("Authorization", "Bearer "+token)
				r.Header.Set("Content-Type", "application/json")
				if origin != "" {
					r.Header.Set("Origin", origin)
				}
				return r
			}
			stop := make(chan struct{})
			var flooded atomic.Int64
			var wg sync.WaitGroup
			if mode != "quiet" {
				wg.Go(func() {
					// 10,000 requests a second (SECURITY T18), paced by
					// the millisecond: the same load in both modes.
					tick := time.NewTicker(time.Millisecond)
					defer tick.Stop()
					start := time.Now()
					for {
						select {
						case <-stop:
							return
						case <-tick.C:
						}
						due := int64(time.Since(start)/time.Millisecond)*floodPerMs - flooded.Load()
						for range due {
							w := httptest.NewRecorder()
							h.ServeHTTP(w, request(bad, "https://evil.example"))
							if w.Code != http.StatusForbidden {
								b.Errorf("flood request: %d", w.Code)
								return
							}
							flooded.Add(1)
						}
					}
				})
			}
			b.ReportAllocs()
			for b.Loop() {
				w := httptest.NewRecorder()
				h.ServeHTTP(w, request(good, ""))
				if w.Code != http.StatusOK {
					b.Fatalf("served request: %d %s", w.Code, w.Body)
				}
			}
			close(stop)
			wg.Wait()
			b.ReportMetric(float64(flooded.Load())/b.Elapsed().Seconds(), "flood/s")
			if detector != nil {
				detector.Close()
			}
		})
	}
}
