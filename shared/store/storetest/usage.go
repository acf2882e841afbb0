package storetest

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/keyvault-edge/kve/shared/kve"
	"github.com/keyvault-edge/kve/shared/store"
)

func usageTests() []test {
	return []test{
		{"idempotent by request id", func(t *testing.T, f *fixture) {
			o, _ := f.org("Acme")
			tok := f.token(f.key(o.ID, "main"))
			today := wallClock(t)
			r1, r2 := f.usage(tok, today, 100), f.usage(tok, today, 250)
			ok(t, f.s.RecordUsage(f.ctx, []kve.Usage{r1}))
			ok(t, f.s.RecordUsage(f.ctx, []kve.Usage{r1, r2, r2}))

			p := must(f.s.UsageRecords(f.ctx, o.ID, store.UsageFilter{}))(t)
			same(t, "UsageRecords", p.Items, newestUsageFirst([]kve.Usage{r1, r2}))
			got := must(f.s.TokenByHash(f.ctx, tok.Hash))(t)
			checkDay(t, today)
			if spent := got.Spend.Today(today); spent != 350 {
				t.Errorf("Spend.Today = %d after recording 100 and 250 (with repeats), want 350", spent)
			}
		}},
		{"spend counts today only", func(t *testing.T, f *fixture) {
			o, _ := f.org("Acme")
			k := f.key(o.ID, "main")
			tok, other := f.token(k), f.token(k)
			today := wallClock(t)
			ok(t, f.s.RecordUsage(f.ctx, []kve.Usage{
				f.usage(tok, today, 100),
				f.usage(tok, today.Add(-25*time.Hour), 1000), // yesterday
				f.usage(other, today, 7),
			}))
			ok(t, f.s.RecordUsage(f.ctx, []kve.Usage{f.usage(tok, today, 250)}))

			for _, tc := range []struct {
				name string
				tok  kve.Token
				want int64
			}{
				{"token with records of two days", tok, 350},
				{"another token", other, 7},
			} {
				got := must(f.s.TokenByHash(f.ctx, tc.tok.Hash))(t)
				checkDay(t, today)
				if spent := got.Spend.Today(today); spent != tc.want {
					t.Errorf("%s: Spend.Today = %d, want %d (spend %+v)", tc.name, spent, tc.want, got.Spend)
				}
			}
		}},
		{"last used moves forward", func(t *testing.T, f *fixture) {
			o, _ := f.org("Acme")
			tok := f.token(f.key(o.ID, "main"))
			ok(t, f.s.RecordUsage(f.ctx, []kve.Usage{f.usage(tok, f.at(2*time.Minute), 1)}))
			ok(t, f.s.RecordUsage(f.ctx, []kve.Usage{f.usage(tok, f.at(time.Minute), 1)}))
			for _, read := range []struct {
				name string
				get  func() (kve.Token, error)
			}{
				{"Token", func() (kve.Token, error) { return f.s.Token(f.ctx, o.ID, tok.ID) }},
				{"TokenByHash", func() (kve.Token, error) { return f.s.TokenByHash(f.ctx, tok.Hash) }},
			} {
				got := must(read.get())(t)
				if !got.LastUsed.Equal(f.at(2 * time.Minute)) {
					t.Errorf("%s: LastUsed = %v, want the latest request %v", read.name, got.LastUsed, f.at(2*time.Minute))
				}
			}
		}},
		{"a refusal is no use", func(t *testing.T, f *fixture) {
			o, _ := f.org("Acme")
			tok := f.token(f.key(o.ID, "main"))
			ok(t, f.s.RecordUsage(f.ctx, []kve.Usage{f.usage(tok, f.at(time.Minute), 1)}))
			refused := f.usage(tok, f.at(2*time.Minute), 0)
			refused.Status, refused.Reason, refused.Upstream = 403, "origin", 0
			ok(t, f.s.RecordUsage(f.ctx, []kve.Usage{refused}))
			if got := must(f.s.TokenByHash(f.ctx, tok.Hash))(t); !got.LastUsed.Equal(f.at(time.Minute)) {
				t.Errorf("LastUsed = %v after a refused request, want the last forwarded one %v", got.LastUsed, f.at(time.Minute))
			}
			if p := must(f.s.UsageRecords(f.ctx, o.ID, store.UsageFilter{TokenID: tok.ID}))(t); len(p.Items) != 2 {
				t.Errorf("%d records, want the refusal recorded too", len(p.Items))
			}
		}},
		{"filters", usageFilters},
		{"pages", usagePages},
		{"empty", func(t *testing.T, f *fixture) {
			o, _ := f.org("Acme")
			ok(t, f.s.RecordUsage(f.ctx, nil))
			p := must(f.s.UsageRecords(f.ctx, o.ID, store.UsageFilter{}))(t)
			notNil(t, "UsageRecords", p.Items)
			if len(p.Items) != 0 || p.Next != "" {
				t.Errorf("UsageRecords = %d items, Next %q; want none", len(p.Items), p.Next)
			}
		}},
	}
}

func usageFilters(t *testing.T, f *fixture) {
	o, _ := f.org("Acme")
	other, _ := f.org("Bolt")
	k := f.key(o.ID, "main")
	x, y := f.member(o.ID, kve.RoleDeveloper).UserID, f.member(o.ID, kve.RoleDeveloper).UserID
	tx, ty, shared := f.token(k, personal(x)), f.token(k, personal(y)), f.token(k)
	u1 := f.usage(tx, f.at(time.Minute), 1)
	u2 := f.usage(ty, f.at(2*time.Minute), 2)
	u3 := f.usage(shared, f.at(3*time.Minute), 3)
	u4 := f.usage(tx, f.at(4*time.Minute), 4)
	foreign := f.usage(f.token(f.key(other.ID, "main")), f.at(5*time.Minute), 5)
	ok(t, f.s.RecordUsage(f.ctx, []kve.Usage{u3, u1, foreign, u4, u2}))

	for _, tc := range []struct {
		name   string
		filter store.UsageFilter
		want   []kve.Usage
	}{
		{"no filter", store.UsageFilter{}, []kve.Usage{u4, u3, u2, u1}},
		{"token", store.UsageFilter{TokenID: tx.ID}, []kve.Usage{u4, u1}},
		{"user", store.UsageFilter{UserID: y}, []kve.Usage{u2}},
		{"since is inclusive", store.UsageFilter{Since: f.at(2 * time.Minute)}, []kve.Usage{u4, u3, u2}},
		{"token and since", store.UsageFilter{TokenID: tx.ID, Since: f.at(2 * time.Minute)}, []kve.Usage{u4}},
		{"another org's token", store.UsageFilter{TokenID: foreign.TokenID}, []kve.Usage{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := must(f.s.UsageRecords(f.ctx, o.ID, tc.filter))(t)
			notNil(t, "Items", p.Items)
			same(t, "UsageRecords", p.Items, tc.want)
		})
	}
}

// usagePages walks 25 records, five to each millisecond, ten at a time.
func usagePages(t *testing.T, f *fixture) {
	o, _ := f.org("Acme")
	tok := f.token(f.key(o.ID, "main"))
	var want []kve.Usage
	for i := range 25 {
		want = append(want, f.usage(tok, f.at(time.Duration(i/5)*time.Millisecond), int64(i)))
	}
	ok(t, f.s.RecordUsage(f.ctx, want))
	want = newestUsageFirst(want)
	var got []kve.Usage
	var sizes []int
	filter := store.UsageFilter{TokenID: tok.ID, Limit: 10}
	for range 10 {
		p := must(f.s.UsageRecords(f.ctx, o.ID, filter))(t)
		got = append(got, p.Items...)
		sizes = append(sizes, len(p.Items))
		if p.Next == "" {
			break
		}
		filter.Cursor = p.Next
	}
	same(t, "page sizes", sizes, []int{10, 10, 5})
	same(t, "records over all pages", got, want)
}

// newestUsageFirst sorts records in list order: newest first, ties by
// request id.
func newestUsageFirst(records []kve.Usage) []kve.Usage {
	return slices.SortedFunc(slices.Values(records), func(a, b kve.Usage) int {
		if c := b.At.Compare(a.At); c != 0 {
			return c
		}
		return strings.Compare(b.RequestID, a.RequestID)
	})
}

// wallClock is now by the wall clock, at whole milliseconds: today's spend
// is the one thing a store cannot take from the suite's fixed clock.
func wallClock(t *testing.T) time.Time {
	t.Helper()
	return time.Now().UTC().Truncate(time.Millisecond)
}

// checkDay skips the test when the UTC day changed since today was read: the
// store then counts a day the test did not write.
func checkDay(t *testing.T, today time.Time) {
	t.Helper()
	if time.Now().UTC().Format(time.DateOnly) != today.Format(time.DateOnly) {
		t.Skip("the UTC day changed during the test; spend of a new day is rightly 0")
	}
}
