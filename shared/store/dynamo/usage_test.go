package dynamo

import (
	"fmt"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/keyvault-edge/kve/shared/kve"
	"github.com/keyvault-edge/kve/shared/store"
)

// TestRecordUsageCalls checks the budget of at most two calls per record:
// one transaction per record, one read per token per call.
func TestRecordUsageCalls(t *testing.T) {
	e := newEnv(t, WithClock(func() time.Time { return testNow }))
	s := e.seed()
	second := e.newToken(s.key)
	e.ok(e.store.CreateToken(e.ctx, second, e.event(s.org.ID, "token.create", second.ID)))

	var records []kve.Usage
	for i := range 6 {
		tok := s.token
		if i%3 == 2 {
			tok = second
		}
		records = append(records, kve.Usage{RequestID: fmt.Sprintf("req_%d", i), At: testNow.Add(time.Duration(i) * time.Second),
			OrgID: s.org.ID, TokenID: tok.ID, CostMicro: 10})
	}
	e.calls.take()
	e.ok(e.store.RecordUsage(e.ctx, records))
	want := map[string]int{"GetItem": 2, "TransactWriteItems": 6}
	if diff := cmp.Diff(want, e.calls.take()); diff != "" {
		t.Errorf("calls for 6 records of 2 tokens (-want +got):\n%s", diff)
	}

	// A retry of the whole batch changes nothing: each record's
	// transaction is cancelled by the record that exists.
	e.ok(e.store.RecordUsage(e.ctx, records))
	if diff := cmp.Diff(want, e.calls.take()); diff != "" {
		t.Errorf("calls for the repeated batch (-want +got):\n%s", diff)
	}
	for _, tc := range []struct {
		tok  kve.Token
		want int64
	}{{s.token, 40}, {second, 20}} {
		got, err := e.store.TokenByHash(e.ctx, tc.tok.Hash)
		if err != nil {
			t.Fatal(err)
		}
		if got.Spend.Micro != tc.want {
			t.Errorf("spend of %s = %d after a repeated batch, want %d", tc.tok.ID, got.Spend.Micro, tc.want)
		}
	}
	page, err := e.store.UsageRecords(e.ctx, s.org.ID, store.UsageFilter{})
	if err != nil || len(page.Items) != len(records) {
		t.Errorf("UsageRecords: %d records, error %v; want %d", len(page.Items), err, len(records))
	}
}

// TestRecordUsageLaterUseMeanwhile races RecordUsage with a writer that
// records a later use of the token: the record still lands, last use
// stays the later one, and it costs one more call.
func TestRecordUsageLaterUseMeanwhile(t *testing.T) {
	e := newEnv(t)
	s := e.seed()
	other := Open(e.client, e.table)
	later := testNow.Add(time.Hour)
	fired := false
	e.calls.before = func(op string) {
		if op == "TransactWriteItems" && !fired {
			fired = true
			e.ok(other.RecordUsage(e.ctx, []kve.Usage{{RequestID: "req_later", At: later, OrgID: s.org.ID, TokenID: s.token.ID, CostMicro: 1}}))
		}
	}
	e.calls.take()
	e.ok(e.store.RecordUsage(e.ctx, []kve.Usage{{RequestID: "req_early", At: testNow, OrgID: s.org.ID, TokenID: s.token.ID, CostMicro: 2}}))
	e.calls.before = nil
	if diff := cmp.Diff(map[string]int{"GetItem": 1, "TransactWriteItems": 2}, e.calls.take()); diff != "" {
		t.Errorf("calls (-want +got):\n%s", diff)
	}
	tok, err := e.store.Token(e.ctx, s.org.ID, s.token.ID)
	if err != nil || !tok.LastUsed.Equal(later) {
		t.Errorf("LastUsed = %v (error %v), want the later use %v", tok.LastUsed, err, later)
	}
	page, err := e.store.UsageRecords(e.ctx, s.org.ID, store.UsageFilter{})
	if err != nil || len(page.Items) != 2 {
		t.Errorf("UsageRecords: %d records, error %v; want both", len(page.Items), err)
	}
}

func TestRecordUsageBadRecords(t *testing.T) {
	e := newEnv(t)
	s := e.seed()
	good := kve.Usage{RequestID: "req_good", At: testNow, OrgID: s.org.ID, TokenID: s.token.ID, CostMicro: 5}
	for _, tc := range []struct {
		name string
		bad  kve.Usage
		want kve.Kind
	}{
		{"unknown token", kve.Usage{RequestID: "req_1", At: testNow, OrgID: s.org.ID, TokenID: "tok_gone"}, kve.KindNotFound},
		{"token of another org", kve.Usage{RequestID: "req_2", At: testNow, OrgID: "org_other", TokenID: s.token.ID}, kve.KindNotFound},
		{"no request id", kve.Usage{At: testNow, OrgID: s.org.ID, TokenID: s.token.ID}, kve.KindInvalid},
		{"negative cost", kve.Usage{RequestID: "req_3", At: testNow, OrgID: s.org.ID, TokenID: s.token.ID, CostMicro: -1}, kve.KindInvalid},
	} {
		t.Run(tc.name, func(t *testing.T) {
			good.RequestID = "req_good_" + tc.name
			err := e.store.RecordUsage(e.ctx, []kve.Usage{tc.bad, good})
			wantKind(t, "RecordUsage", err, tc.want)
			page, err := e.store.UsageRecords(e.ctx, s.org.ID, store.UsageFilter{})
			if err != nil {
				t.Fatal(err)
			}
			found := false
			for _, u := range page.Items {
				found = found || u.RequestID == good.RequestID
				if u.RequestID == tc.bad.RequestID && tc.bad.RequestID != "" {
					t.Errorf("the bad record %s was stored", u.RequestID)
				}
			}
			if !found {
				t.Errorf("the good record after a bad one was not stored")
			}
		})
	}
}
