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

// TestLedgerPeriods: a new UTC day starts the token's day counter afresh
// (seeded from the store) while the month's keeps counting; a new month
// starts both; counters of past periods are forgotten an hour on, unless a
// request still holds them.
func TestLedgerPeriods(t *testing.T) {
	s := &seeds{}
	l := newLedger(s.seed)
	b := budgets{day: 1000, month: 1500}
	take := func(at time.Time, micro int64) (*hold, int64) {
		t.Helper()
		h, left, err := l.take(t.Context(), "org_1", "tok_1", at, b, micro)
		if err != nil {
			t.Fatal(err)
		}
		return h, left
	}
	lateNov27 := time.Date(2026, 11, 27, 23, 59, 0, 0, time.UTC)
	open, _ := take(lateNov27, 900) // still streaming when the day turns
	done, left := take(lateNov27.Add(2*time.Minute), 100)
	if left != 1500-900-100 { // the day's 900 left is not the least
		t.Errorf("first request of Nov 28: %d left, want the month's %d", left, 1500-900-100)
	}
	l.settle(done, 100)
	dec, left := take(time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC), 10)
	if left != 990 {
		t.Errorf("first request of December: %d left, want 990", left)
	}
	l.settle(dec, 10)
	take(time.Date(2026, 12, 1, 2, 0, 0, 0, time.UTC), 1) // sweeps, then holds
	if s.reads.Load() != 3 {
		t.Errorf("%d seeds from the store, want 3 (Nov 27, Nov 28, December)", s.reads.Load())
	}
	l.mu.Lock()
	kept := len(l.counters)
	l.mu.Unlock()
	// December's day, month and organization month, and the open
	// request's Nov 27 day, November month and organization month.
	if kept != 6 {
		t.Errorf("%d counters after the sweep, want 6", kept)
	}
	l.settle(open, 800)
	if open.day.micro != 800 || open.month.micro != 800+100 {
		t.Errorf("settled late: day %d, month %d", open.day.micro, open.month.micro)
	}
}
