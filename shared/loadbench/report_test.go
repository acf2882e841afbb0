package loadbench

import (
	"os"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestMedian(t *testing.T) {
	tests := []struct {
		name string
		in   []float64
		want float64
	}{
		{"none", nil, 0},
		{"one", []float64{3}, 3},
		{"odd", []float64{9, 1, 5}, 5},
		{"even", []float64{4, 1, 3, 2}, 2.5},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := median(tt.in); got != tt.want {
				t.Errorf("median(%v) = %v, want %v", tt.in, got, tt.want)
			}
		})
	}
}

func testRun(sc, target string, repeat, conns int, rps, p50 float64) Run {
	return Run{Scenario: sc, Target: target, Repeat: repeat, Result: Result{Conns: conns, RPS: rps, Latency: Summary{P50: p50},
		FirstByte: Summary{P50: p50 / 2}}, ProxyCPU: 90, ProxyCPUPerRequest: 1e6 * 0.9 / rps}
}

// TestReport: rows are medians per scenario, connection count and target;
// the markdown compares each kve row with the bare proxy's and says which
// targets were missed.
func TestReport(t *testing.T) {
	r := &Report{Repeats: 3, ProxyCPUs: "0", LoadCPUs: "1"}
	for i, rps := range []float64{1000, 1100, 900} {
		r.Runs = append(r.Runs, testRun("json", "bare", i, 32, rps, 30000))
		r.Runs = append(r.Runs, testRun("json", "kve", i, 32, rps*0.95, 31000))
		r.Runs = append(r.Runs, testRun("json", "kve+limits", i, 32, rps*0.5, 70000))
		// metering off: a repeat's kve is 0.95 ÷ 1.0, 0.95 ÷ 1.1, 0.95 ÷ 0.9 of it
		r.Runs = append(r.Runs, testRun("json", "unmetered", i, 32, rps*[]float64{1.0, 1.1, 0.9}[i], 30000))
	}
	// The machine slowed down in the second repeat: bare ran before it did,
	// kve after. Paired, kve is 0.9 of bare; the ratio of the medians (880
	// ÷ 1000) would say 0.88.
	for i, f := range []float64{1.0, 0.8, 0.9} {
		rps := []float64{1000, 1100, 900}[i]
		r.Runs = append(r.Runs, testRun("sse", "bare", i, 32, rps, 30000))
		r.Runs = append(r.Runs, testRun("sse", "kve", i, 32, rps*f, 30000/f))
	}
	for i, p50 := range []float64{300, 310, 290} {
		r.Runs = append(r.Runs, testRun("ttfb", "upstream", i, 1, 3000, p50-200))
		r.Runs = append(r.Runs, testRun("ttfb", "bare", i, 1, 3000, p50))
		r.Runs = append(r.Runs, testRun("ttfb", "kve", i, 1, 2000, p50+4000))
	}
	got := map[string][2]float64{}
	for _, row := range r.Rows() {
		got[row.Scenario+" "+row.Target] = [2]float64{row.RPS, row.P50}
	}
	want := map[string][2]float64{
		"json bare": {1000, 30000}, "json kve": {950, 31000}, "json kve+limits": {500, 70000}, "json unmetered": {1000, 30000},
		"ttfb upstream": {3000, 100}, "ttfb bare": {3000, 300}, "ttfb kve": {2000, 4300},
		"sse bare": {1000, 30000}, "sse kve": {880, 33333.333333333336},
	}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("rows (-want +got):\n%s", d)
	}
	var b strings.Builder
	r.Markdown(&b)
	md := b.String()
	for _, line := range []string{
		"| 32 | kve | 950 | 0.95 | 31.00 ms |",
		"- kve, json, 32 conns: throughput 0.95 × bare (0.95–0.95 over 3 repeats; target ≥ 0.90): met; p50 1.03 × bare (target ≤ 1.25): met",
		"- kve+limits, json, 32 conns: throughput 0.50 × bare (0.50–0.50 over 3 repeats; target ≥ 0.90): **missed**; p50 2.33 × bare (target ≤ 1.25): **missed**",
		"- kve, json, 32 conns: throughput 0.95 × unmetered (0.86–1.06; target ≥ 0.90): met; proxy CPU per request 1.05 × unmetered",
		"- kve+limits, json, 32 conns: throughput 0.50 × unmetered (0.45–0.56; target ≥ 0.90): **missed**; proxy CPU per request 2.00 × unmetered",
		"- kve, sse, 32 conns: throughput 0.90 × bare (0.80–1.00 over 3 repeats; target ≥ 0.90): met; p50 1.11 × bare (target ≤ 1.25): met",
		"| 32 | kve | 880 | 0.90 | 33.33 ms |",
		"| kve | 2.15 ms |",
		"- kve, SSE first byte added at p50: +2.00 ms (target ≤ 1 ms): **missed**",
	} {
		if !strings.Contains(md, line) {
			t.Errorf("markdown lacks %q:\n%s", line, md)
		}
	}
}

// TestProcAccounting: the /proc readers parse this machine's files.
func TestProcAccounting(t *testing.T) {
	ticks, err := cpuTicks(os.Getpid())
	if err != nil || ticks < 0 {
		t.Errorf("cpu ticks %d, %v", ticks, err)
	}
	n, err := syscalls(os.Getpid())
	if err != nil || n <= 0 {
		t.Errorf("syscalls %d, %v", n, err)
	}
	cores, err := coreTimes()
	if err != nil || len(cores) == 0 {
		t.Fatalf("core times %v, %v", cores, err)
	}
	for cpu, c := range cores {
		if c[0] < 0 || c[0] > c[1] {
			t.Errorf("%s: busy %d of %d", cpu, c[0], c[1])
		}
	}
}
