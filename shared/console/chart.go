package console

import (
	"math"
	"strconv"
	"strings"
	"time"
)

// Charts are server-rendered SVG bar charts: no chart library and no
// script, and no inline style either (the CSP forbids it): the geometry is
// attributes, the colours come from app.css by class. Each bar carries a
// <title> (a tooltip, and what a screen reader meets), and every chart has
// its figures as a table beside it.

// Chart geometry, in the units of the SVG's viewBox: the chart scales to
// the width of its container, text and all.
const (
	chartWidth  = 640
	chartHeight = 188
	chartTop    = 22 // room for the scale's label
	chartBottom = 26 // room for the first and last day
	plotHeight  = chartHeight - chartTop - chartBottom
)

// chart is one metric per day, ready for the template.
type chart struct {
	ID, Title   string // the SVG's id prefix and its heading ("Requests")
	Desc        string // what it shows, in a sentence, for assistive technology
	Top         string // the value at the top of the scale, formatted
	First, Last string // the first and last day
	Bars        []bar
	Empty       bool // every day is zero
	Width       int
	Height      int
	TopY        string // y of the scale's top line
	ScaleY      string // y of its label
	Baseline    string // y of the axis
	LabelY      string // y of the day labels
}

// bar is one day's bar; a day of zero has none.
type bar struct {
	X, Y, W, H string
	Label      string // "2026-03-01: 1,204 requests"
}

// series is one metric's values per day, in day order.
type series struct {
	id, title string
	unit      string               // "requests", "tokens", or "" when format says it ($)
	format    func(v int64) string // how values read: counts, dollars
}

// newChart draws values (one per day of days) as bars scaled to a round
// maximum.
func newChart(s series, days []string, values []int64) chart {
	c := chart{ID: s.id, Title: s.title, Width: chartWidth, Height: chartHeight, TopY: coord(chartTop),
		ScaleY: coord(chartTop - 5), Baseline: coord(chartTop + plotHeight), LabelY: coord(chartHeight - 5)}
	if len(days) == 0 {
		c.Empty = true
		return c
	}
	c.First, c.Last = days[0], days[len(days)-1]
	var most, total int64
	mostDay := ""
	for i, v := range values {
		total += v
		if v > most {
			most, mostDay = v, days[i]
		}
	}
	top := roundUp(most)
	c.Top = s.format(top)
	c.Empty = most == 0
	c.Desc = s.title + " per day from " + c.First + " to " + c.Last + ": " + s.format(total) + " in total"
	if !c.Empty {
		c.Desc += ", most on " + mostDay + " (" + s.format(most) + ")"
	}
	c.Desc += "."
	slot := float64(chartWidth) / float64(len(days))
	width := math.Max(slot*0.8, 1)
	for i, v := range values {
		if v <= 0 {
			continue
		}
		h := math.Max(float64(v)/float64(top)*plotHeight, 1) // a small day stays visible
		label := days[i] + ": " + s.format(v)
		if s.unit != "" && v == 1 {
			label += " " + strings.TrimSuffix(s.unit, "s")
		} else if s.unit != "" {
			label += " " + s.unit
		}
		c.Bars = append(c.Bars, bar{
			X: coord(float64(i)*slot + (slot-width)/2), Y: coord(chartTop + plotHeight - h),
			W: coord(width), H: coord(h), Label: label,
		})
	}
	return c
}

// coord writes a coordinate with at most one decimal.
func coord[T int | float64](v T) string {
	return strconv.FormatFloat(math.Round(float64(v)*10)/10, 'f', -1, 64)
}

// roundUp returns the smallest of 1, 2, 2.5 or 5 times a power of ten that
// is at least n (at least 1), so that the scale's top reads as a round
// number.
func roundUp(n int64) int64 {
	if n <= 1 {
		return 1
	}
	for p := int64(1); p <= math.MaxInt64/50; p *= 10 {
		for _, m := range []int64{10, 20, 25, 50} {
			if v := p * m / 10; v >= n {
				return v
			}
		}
	}
	return n
}

// dayRange lists the UTC days from one day to another, both included.
func dayRange(from, to string) []string {
	f, err1 := time.Parse(time.DateOnly, from)
	t, err2 := time.Parse(time.DateOnly, to)
	if err1 != nil || err2 != nil || t.Before(f) {
		return nil
	}
	var out []string
	for d := f; !d.After(t); d = d.AddDate(0, 0, 1) {
		out = append(out, d.Format(time.DateOnly))
	}
	return out
}

// count formats a count with thousands separators: 1,234,567.
func count(n int64) string {
	s := strconv.FormatInt(max(n, 0), 10)
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	return b.String()
}

// usd formats a cost in micro-USD as dollars, $1,234.56, with more digits
// for amounts under a cent, so that a cheap day does not read as nothing.
func usd(micro int64) string {
	if micro > 0 && micro < 10_000 {
		return "$" + dollars(micro)
	}
	cents := (max(micro, 0) + 5_000) / 10_000
	return "$" + count(cents/100) + "." + strconv.FormatInt(cents%100+100, 10)[1:]
}
