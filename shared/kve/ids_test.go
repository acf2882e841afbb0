package kve_test

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/keyvault-edge/kve/shared/kve"
)

var idPrefixes = []string{kve.PrefixOrg, kve.PrefixUser, kve.PrefixToken, kve.PrefixKey,
	kve.PrefixSession, kve.PrefixInvite, kve.PrefixEvent, kve.PrefixRequest}

// crockford is the id alphabet: Crockford's base32 in lower case (no i, l, o, u).
const crockford = "0123456789abcdefghjkmnpqrstvwxyz"

// idMillis reads the timestamp back out of an id body: its first ten base32
// digits are 50 bits, two zero bits and the 48-bit millisecond time.
func idMillis(t *testing.T, body string) int64 {
	t.Helper()
	var v int64
	for _, c := range body[:10] {
		d := strings.IndexRune(crockford, c)
		if d < 0 {
			t.Fatalf("id body holds %q", c)
		}
		v = v<<5 | int64(d)
	}
	return v
}

func TestNewID(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 123_000_000, time.UTC)
	for _, prefix := range idPrefixes {
		t.Run(prefix, func(t *testing.T) {
			id := kve.NewID(prefix, now)
			if !strings.HasPrefix(id, prefix) || len(id) != len(prefix)+26 {
				t.Fatalf("NewID = %q, want %q + 26 characters", id, prefix)
			}
			if !kve.ValidID(prefix, id) {
				t.Errorf("ValidID(%q, %q) = false", prefix, id)
			}
			for _, other := range idPrefixes {
				if other != prefix && kve.ValidID(other, id) {
					t.Errorf("ValidID(%q, %q) = true for another kind of id", other, id)
				}
			}
			if got := idMillis(t, id[len(prefix):]); got != now.UnixMilli() {
				t.Errorf("id carries time %d, want %d", got, now.UnixMilli())
			}
		})
	}
}

// TestNewIDValidOverTimeRange: every id NewID makes passes ValidID, whatever
// the 48-bit millisecond timestamp (until the year 10889).
func TestNewIDValidOverTimeRange(t *testing.T) {
	times := []time.Time{
		time.UnixMilli(0),
		time.UnixMilli(1),
		time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC),
		time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC),
		time.Date(2100, 1, 1, 0, 0, 0, 0, time.UTC),
		time.UnixMilli(1<<45 - 1),
		time.UnixMilli(1 << 45),
		time.UnixMilli(1<<47 - 1),
		time.UnixMilli(1 << 47),
		time.UnixMilli(1<<48 - 1),
	}
	for _, now := range times {
		t.Run(now.UTC().Format(time.RFC3339Nano), func(t *testing.T) {
			id := kve.NewID(kve.PrefixToken, now)
			if !kve.ValidID(kve.PrefixToken, id) {
				t.Errorf("ValidID(NewID at %d ms) = false for %q", now.UnixMilli(), id)
			}
			if got := idMillis(t, id[len(kve.PrefixToken):]); got != now.UnixMilli() {
				t.Errorf("id carries time %d, want %d", got, now.UnixMilli())
			}
		})
	}
}

// TestNewIDSortsByTime: DynamoDB sort keys rely on ids made at later
// milliseconds comparing greater as strings.
func TestNewIDSortsByTime(t *testing.T) {
	base := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	var steps []time.Duration
	for i := range 2000 {
		steps = append(steps, time.Duration(i)*time.Millisecond)
	}
	steps = append(steps, 3*time.Second, time.Minute, time.Hour, 24*time.Hour, 365*24*time.Hour, 50*365*24*time.Hour)
	ids := make([]string, len(steps))
	for i, d := range steps {
		ids[i] = kve.NewID(kve.PrefixEvent, base.Add(d))
	}
	for i := 1; i < len(ids); i++ {
		if ids[i-1] >= ids[i] {
			t.Fatalf("id at +%v does not sort before the id at +%v", steps[i-1], steps[i])
		}
	}
	shuffled := slices.Clone(ids)
	slices.Reverse(shuffled)
	slices.Sort(shuffled)
	if !slices.Equal(shuffled, ids) {
		t.Error("sorting the ids does not restore creation order")
	}
}

func TestNewIDUnique(t *testing.T) {
	const n = 100_000
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC) // one millisecond: only the random bits differ
	seen := make(map[string]bool, n)
	for range n {
		id := kve.NewID(kve.PrefixRequest, now)
		if seen[id] {
			t.Fatalf("repeated id after %d ids", len(seen))
		}
		seen[id] = true
	}
}

func TestValidID(t *testing.T) {
	good := kve.NewID(kve.PrefixToken, time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC))
	body := good[len(kve.PrefixToken):]
	tests := []struct {
		name string
		id   string
		want bool
	}{
		{"fresh", good, true},
		{"all zeros", "tok_" + strings.Repeat("0", 26), true},
		{"wrong prefix", "key_" + body, false},
		{"no prefix", body, false},
		{"empty", "", false},
		{"short", good[:len(good)-1], false},
		{"long", good + "0", false},
		{"upper case", "tok_" + strings.ToUpper(body), false},
		{"letter i", "tok_0" + strings.Repeat("i", 25), false},
		{"letter l", "tok_0" + strings.Repeat("l", 25), false},
		{"letter o", "tok_0" + strings.Repeat("o", 25), false},
		{"letter u", "tok_0" + strings.Repeat("u", 25), false},
		{"punctuation", "tok_0" + strings.Repeat("-", 25), false},
		{"over 128 bits", "tok_8" + strings.Repeat("0", 25), false},
		{"far over 128 bits", "tok_z" + strings.Repeat("0", 25), false},
		{"non-ASCII", "tok_" + body[:24] + "é", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := kve.ValidID(kve.PrefixToken, tc.id); got != tc.want {
				t.Errorf("ValidID(%q) = %v, want %v", tc.id, got, tc.want)
			}
		})
	}
}
