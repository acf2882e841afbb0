package local_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/keyvault-edge/kve/shared/kve"
	"github.com/keyvault-edge/kve/shared/kvetest"
	"github.com/keyvault-edge/kve/shared/store"
)

// gatedUpstream answers chat completions for gpt-4o (1,000 prompt and
// 1,000 completion tokens: $0.0125) once the test opens the gate, and
// counts the requests it received.
type gatedUpstream struct {
	*httptest.Server
	gate     chan struct{}
	received atomic.Int64
}

const gatedKey = "sk-test-FAKE-gated-0123456789abcdef"

func newGatedUpstream(t *testing.T) *gatedUpstream {
	t.Helper()
	u := &gatedUpstream{gate: make(chan struct{})}
	u.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		u.received.Add(1)
		select {
		case <-u.gate:
		case <-r.Context().Done():
			return
		}
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"id":"chatcmpl-1","object":"chat.completion","model":"gpt-4o-2024-08-06","choices":[],"usage":{"prompt_tokens":1000,"completion_tokens":1000,"total_tokens":2000}}`)
	}))
	t.Cleanup(func() {
		select {
		case <-u.gate:
		default:
			close(u.gate)
		}
		u.Close()
	})
	return u
}

// post sends a chat completion asking for gpt-4o with max_tokens.
func postChat(t *testing.T, inst *kvetest.Instance, token string, maxTokens int) *http.Response {
	t.Helper()
	body := `{"model":"gpt-4o","max_tokens":` + strconv.Itoa(maxTokens) + `,"messages":[{"role":"user","content":"hi"}]}`
	req, err := http.NewRequestWithContext(t.Context(), "POST", inst.URL+"/openai/v1/chat/completions", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	res, err := inst.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, res.Body)
	res.Body.Close()
	return res
}

// TestBudgetUnderConcurrency (SECURITY T17, G7, on the embedded store): 50
// parallel requests against a $2 daily budget with $0.01 left, each
// reserving more than that (16,384 tokens of gpt-4o output, $0.16): one
// reaches the upstream, the others are refused with budget_exceeded before
// it answers, and the day's spend passes the budget by less than that one
// request's cost.
func TestBudgetUnderConcurrency(t *testing.T) {
	t.Parallel()
	up := newGatedUpstream(t)
	inst := kvetest.Start(t)
	inst.Setup(t)
	org := inst.CreateOrg(t, "Acme")
	inst.CreateKey(t, org.Slug, map[string]any{"name": "main", "provider": "openai", "upstream": up.URL, "secret": gatedKey})
	tok := inst.CreateToken(t, org.Slug, map[string]any{"name": "t", "key": "main", "env": "dev", "allow_server": true, "budget_usd": 2})
	const budget, cost = 2_000_000, 12_500
	// $1.99 spent today already, before this process counted anything.
	orgID := org.ID
	if err := inst.Store(t).RecordUsage(t.Context(), []kve.Usage{{RequestID: "req_earlier", At: time.Now().UTC(),
		OrgID: orgID, TokenID: tok.ID, Provider: "openai", Model: "gpt-4o", Status: 200, CostMicro: budget - 10_000}}); err != nil {
		t.Fatal(err)
	}

	var refused, served atomic.Int64
	var wg sync.WaitGroup
	for range 50 {
		wg.Go(func() {
			res := postChat(t, inst, tok.Value, 16384)
			switch {
			case res.StatusCode == 429 && res.Header.Get("X-Kve-Budget-Remaining") == "0" && res.Header.Get("Retry-After") != "":
				refused.Add(1)
			case res.StatusCode == 200:
				served.Add(1)
			default:
				t.Errorf("status %d", res.StatusCode)
			}
		})
	}
	kvetest.Eventually(t, 20*time.Second, "49 requests refused", func() bool { return refused.Load() == 49 })
	if n := up.received.Load(); n != 1 {
		t.Errorf("the upstream received %d requests, want 1", n)
	}
	close(up.gate)
	wg.Wait()
	if served.Load() != 1 {
		t.Fatalf("%d served, want 1", served.Load())
	}
	kvetest.Eventually(t, 10*time.Second, "the served request stored", func() bool {
		sp, err := inst.Store(t).Spend(t.Context(), orgID, tok.ID, time.Now())
		return err == nil && sp.Day > budget-10_000
	})
	sp, err := inst.Store(t).Spend(t.Context(), orgID, tok.ID, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if over := sp.Day - budget; over < 0 || over > cost {
		t.Errorf("the day's spend %d passes the budget by %d, want at most the one request's %d", sp.Day, over, cost)
	}
	var page store.Page[kve.Usage]
	kvetest.Eventually(t, 10*time.Second, "every request recorded", func() bool {
		page, err = inst.Store(t).UsageRecords(t.Context(), orgID, store.UsageFilter{TokenID: tok.ID, Limit: 100})
		return err == nil && len(page.Items) == 51
	})
	reasons := map[string]int{}
	for _, u := range page.Items {
		reasons[u.Reason]++
	}
	if reasons[store.LimitDay] != 49 {
		t.Errorf("records by reason %v, want 49 refusals for the day's budget", reasons)
	}
}
