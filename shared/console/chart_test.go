package console

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestRoundUp(t *testing.T) {
	for _, tt := range []struct{ in, want int64 }{
		{0, 1}, {1, 1}, {2, 2}, {3, 5}, {6, 10}, {11, 20}, {21, 25}, {26, 50}, {51, 100},
		{999, 1000}, {2_500_000, 2_500_000}, {2_500_001, 5_000_000}, {9_000_000_000_000_000_000, 9_000_000_000_000_000_000},
	} {
		if got := roundUp(tt.in); got != tt.want {
			t.Errorf("roundUp(%d) = %d, want %d", tt.in, got, tt.want)
		}
	}
}

func TestFormats(t *testing.T) {
	for _, tt := range []struct {
		name string
		got  string
		want string
	}{
		{"count zero", count(0), "0"},
		{"count thousands", count(1_234_567), "1,234,567"},
		{"count hundreds", count(999), "999"},
		{"usd zero", usd(0), "$0.00"},
		{"usd under a cent", usd(4_514), "$0.004514"},
		{"usd a cent", usd(10_000), "$0.01"},
		{"usd rounds to cents", usd(2_500_015), "$2.50"},
		{"usd thousands", usd(1_234_567_890), "$1,234.57"},
	} {
		if tt.got != tt.want {
			t.Errorf("%s: %q, want %q", tt.name, tt.got, tt.want)
		}
	}
}

func TestDayRange(t *testing.T) {
	if diff := cmp.Diff([]string{"2026-02-27", "2026-02-28", "2026-03-01"}, dayRange("2026-02-27", "2026-03-01")); diff != "" {
		t.Errorf("across a month (-want +got):\n%s", diff)
	}
	for _, bad := range [][2]string{{"2026-03-02", "2026-03-01"}, {"yesterday", "2026-03-01"}} {
		if got := dayRange(bad[0], bad[1]); got != nil {
			t.Errorf("dayRange(%q, %q) = %v, want none", bad[0], bad[1], got)
		}
	}
}

func TestChart(t *testing.T) {
	requests := series{id: "requests", title: "Requests", unit: "requests", format: count}
	days := []string{"2026-03-01", "2026-03-02", "2026-03-03", "2026-03-04"}
	c := newChart(requests, days, []int64{1, 0, 30, 12})
	// Four slots of 160 units; bars 80 % of a slot, centred; heights of
	// the 140-unit plot against a scale to 50.
	want := []bar{
		{X: "16", Y: "159.2", W: "128", H: "2.8", Label: "2026-03-01: 1 request"},
		{X: "336", Y: "78", W: "128", H: "84", Label: "2026-03-03: 30 requests"},
		{X: "496", Y: "128.4", W: "128", H: "33.6", Label: "2026-03-04: 12 requests"},
	}
	if diff := cmp.Diff(want, c.Bars); diff != "" {
		t.Errorf("bars (-want +got):\n%s", diff)
	}
	if c.Top != "50" || c.First != "2026-03-01" || c.Last != "2026-03-04" || c.Empty {
		t.Errorf("scale %q, days %s to %s, empty %v", c.Top, c.First, c.Last, c.Empty)
	}
	if want := "Requests per day from 2026-03-01 to 2026-03-04: 43 in total, most on 2026-03-03 (30)."; c.Desc != want {
		t.Errorf("description %q, want %q", c.Desc, want)
	}
	if c := newChart(requests, days, make([]int64, 4)); !c.Empty || len(c.Bars) != 0 || c.Top != "1" {
		t.Errorf("no use: empty %v, %d bars, scale %q", c.Empty, len(c.Bars), c.Top)
	}
	// Ninety days draw ninety thin bars; a day far below the largest
	// stays visible.
	many := make([]string, 90)
	values := make([]int64, 90)
	for i := range many {
		many[i], values[i] = "d", 1
	}
	values[0] = 1_000_000
	c = newChart(requests, many, values)
	if len(c.Bars) != 90 || c.Bars[1].H != "1" || c.Bars[0].H != "140" {
		t.Errorf("90 days: %d bars, heights %s and %s", len(c.Bars), c.Bars[0].H, c.Bars[1].H)
	}
}
