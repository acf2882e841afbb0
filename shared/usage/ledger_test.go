package usage

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/keyvault-edge/kve/shared/kve"
	"github.com/keyvault-edge/kve/shared/store"
)

var testNow = time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)

// seeds is a store's spend, counting the reads.
type seeds struct {
	sp    store.Spend
	reads atomic.Int64
}

func (s *seeds) seed(context.Context, string, string, time.Time) (store.Spend, error) {
	s.reads.Add(1)
	return s.sp, nil
}

func TestLedgerBudgets(t *testing.T) {
	for _, tc := range []struct {
		name     string
		seeded   store.Spend
		b        budgets
		micro    int64
		wantCode string // "" admitted
		wantLeft int64
	}{
		{"no budget", store.Spend{}, budgets{}, 500, "", -1},
		{"within the day", store.Spend{Day: 100}, budgets{day: 1000}, 500, "", 400},
		{"the last request of the day", store.Spend{Day: 999}, budgets{day: 1000}, 500, "", 0},
		{"day spent", store.Spend{Day: 1000}, budgets{day: 1000}, 1, store.LimitDay, 0},
		{"month spent", store.Spend{Day: 10, Month: 5000}, budgets{day: 1000, month: 5000}, 1, store.LimitMonth, 0},
		{"organization spent", store.Spend{OrgMonth: 7}, budgets{orgMonth: 7}, 1, store.LimitOrgMonth, 0},
		{"the tightest budget left", store.Spend{Day: 100, Month: 4800, OrgMonth: 10}, budgets{day: 1000, month: 5000, orgMonth: 100_000}, 50, "", 150},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := &seeds{sp: tc.seeded}
			l := newLedger(s.seed)
			h, left, err := l.take(t.Context(), "org_1", "tok_1", testNow, tc.b, tc.micro)
			if tc.wantCode != "" {
				if kve.KindOf(err) != kve.KindRateLimited || kve.CodeOf(err) != tc.wantCode {
					t.Fatalf("take = %v, want code %s", err, tc.wantCode)
				}
				return
			}
			if err != nil || h == nil || left != tc.wantLeft {
				t.Fatalf("take = %v, left %d; want admitted, %d left", err, left, tc.wantLeft)
			}
		})
	}
}

func TestLedgerSettleAndSeed(t *testing.T) {
	s := &seeds{sp: store.Spend{Day: 100, Month: 1000, OrgMonth: 5000}}
	l := newLedger(s.seed)
	ctx := t.Context()
	b := budgets{day: 1_000_000}
	h1, _, err := l.take(ctx, "org_1", "tok_1", testNow, b, 300)
	if err != nil {
		t.Fatal(err)
	}
	h2, _, err := l.take(ctx, "org_1", "tok_1", testNow.Add(time.Minute), b, 300)
	if err != nil {
		t.Fatal(err)
	}
	l.settle(h1, 50)
	l.settle(h2, 0)
	_, left, err := l.take(ctx, "org_1", "tok_1", testNow.Add(2*time.Minute), b, 0)
	if err != nil || left != 1_000_000-150 {
		t.Errorf("left %d (%v) after two settled requests of 50 and 0 over 100 seeded, want %d", left, err, 1_000_000-150)
	}
	if n := s.reads.Load(); n != 1 {
		t.Errorf("the store was read %d times for one token's day, want once", n)
	}
	// Another token of the organization shares its month: it seeds its own
	// day and month, and finds the organization's counter in memory.
	orgBudget := budgets{orgMonth: 5000 + 50 + 1}
	if _, _, err := l.take(ctx, "org_1", "tok_2", testNow, orgBudget, 1); err != nil {
		t.Errorf("the organization's 5,050 of 5,051: %v", err)
	}
	if _, _, err := l.take(ctx, "org_1", "tok_2", testNow, orgBudget, 0); err == nil {
		t.Errorf("admitted past the organization's budget")
	}
}

// TestLedgerParallel (SECURITY T17, G7): 50 concurrent requests with $0.01
// left of $2 a day, each reserving $0.50: exactly one is admitted.
func TestLedgerParallel(t *testing.T) {
	s := &seeds{sp: store.Spend{Day: 1_990_000}}
	l := newLedger(s.seed)
	var admitted atomic.Int64
	var holds sync.Map
	var wg sync.WaitGroup
	for i := range 50 {
		wg.Go(func() {
			h, _, err := l.take(t.Context(), "org_1", "tok_1", testNow, budgets{day: 2_000_000}, 500_000)
			switch {
			case err == nil:
				admitted.Add(1)
				holds.Store(i, h)
			case kve.CodeOf(err) != store.LimitDay:
				t.Errorf("refused with %v", err)
			}
		})
	}
	wg.Wait()
	if n := admitted.Load(); n != 1 {
		t.Fatalf("%d admitted with $0.01 left, want 1", n)
	}
	holds.Range(func(_, h any) bool {
		l.settle(h.(*hold), 12_500)
		return true
	})
	_, _, err := l.take(t.Context(), "org_1", "tok_1", testNow, budgets{day: 2_000_000}, 0)
	if kve.CodeOf(err) != store.LimitDay {
		t.Errorf("after the one request: %v, want the day spent (1,990,000 + 12,500)", err)
	}
}
