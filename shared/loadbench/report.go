package loadbench

import (
	"fmt"
	"io"
	"slices"
)

// Targets of the acceptance criteria (issue 2).
const (
	wantThroughputRatio = 0.9  // kve req/s ≥ 0.9 × bare
	wantP50Ratio        = 1.25 // kve p50 ≤ 1.25 × bare p50
	wantAddedFirstByte  = 1000 // µs of SSE first byte kve may add
	// issue 6: kve req/s ≥ 0.9 × with metering, limits and budgets off
	wantMeteredRatio = 0.9
)

// Row is the median of a target's repeated runs in one scenario.
type Row struct {
	Scenario, Target string
	Conns            int
	Runs             int
	RPS              float64
	P50, P99         float64 // latency, µs
	FirstByteP50     float64 // µs
	FirstByteP99     float64
	ProxyCPU         float64 // %
	CPUPerRequest    float64 // proxy CPU µs per request
	LoadCPU          float64 // % (upstream + load generator)
	Errors           int64

	// The ratios to the bare proxy are paired: the median of each repeat's
	// ratio to the bare run of the same repeat, which ran next to it. On a
	// machine whose speed drifts from minute to minute they are steadier
	// than the ratio of two medians.
	RPSRatio, P50Ratio, CPURatio float64
	RPSRatioMin, RPSRatioMax     float64

	// The ratios to the unmetered target (kve with metering, limits and
	// budgets off), paired the same way; zero without one.
	MeteredRatio, MeteredCPURatio    float64
	MeteredRatioMin, MeteredRatioMax float64
}

// Rows returns the medians of the report's runs, in the order the runs came.
func (r *Report) Rows() []Row {
	type key struct {
		sc, target string
		conns      int
	}
	var order []key
	groups := map[key][]Run{}
	for _, run := range r.Runs {
		k := key{run.Scenario, run.Target, run.Conns}
		if _, ok := groups[k]; !ok {
			order = append(order, k)
		}
		groups[k] = append(groups[k], run)
	}
	rows := make([]Row, 0, len(order))
	for _, k := range order {
		g := groups[k]
		m := func(f func(Run) float64) float64 {
			v := make([]float64, len(g))
			for i, run := range g {
				v[i] = f(run)
			}
			return median(v)
		}
		row := Row{Scenario: k.sc, Target: k.target, Conns: k.conns, Runs: len(g),
			RPS:           m(func(r Run) float64 { return r.RPS }),
			P50:           m(func(r Run) float64 { return r.Latency.P50 }),
			P99:           m(func(r Run) float64 { return r.Latency.P99 }),
			FirstByteP50:  m(func(r Run) float64 { return r.FirstByte.P50 }),
			FirstByteP99:  m(func(r Run) float64 { return r.FirstByte.P99 }),
			ProxyCPU:      m(func(r Run) float64 { return r.ProxyCPU }),
			CPUPerRequest: m(func(r Run) float64 { return r.ProxyCPUPerRequest }),
			LoadCPU:       m(func(r Run) float64 { return r.UpstreamCPU + r.LoadCPU }),
		}
		for _, run := range g {
			row.Errors += run.Errors
		}
		// paired returns each repeat's ratios of g's runs to base's run of
		// the same repeat: throughput, p50 and CPU per request.
		paired := func(base string) (rps, p50, cpu []float64) {
			for _, run := range g {
				for _, b := range groups[key{k.sc, base, k.conns}] {
					if b.Repeat == run.Repeat && b.RPS > 0 && b.Latency.P50 > 0 && b.ProxyCPUPerRequest > 0 {
						rps = append(rps, run.RPS/b.RPS)
						p50 = append(p50, run.Latency.P50/b.Latency.P50)
						cpu = append(cpu, run.ProxyCPUPerRequest/b.ProxyCPUPerRequest)
					}
				}
			}
			return rps, p50, cpu
		}
		if rps, p50, cpu := paired("bare"); len(rps) > 0 {
			row.RPSRatio, row.P50Ratio, row.CPURatio = median(rps), median(p50), median(cpu)
			row.RPSRatioMin, row.RPSRatioMax = slices.Min(rps), slices.Max(rps)
		}
		if k.target == "kve" || k.target == "kve+limits" {
			if rps, _, cpu := paired("unmetered"); len(rps) > 0 {
				row.MeteredRatio, row.MeteredCPURatio = median(rps), median(cpu)
				row.MeteredRatioMin, row.MeteredRatioMax = slices.Min(rps), slices.Max(rps)
			}
		}
		rows = append(rows, row)
	}
	return rows
}

// median returns the middle value (the mean of the two middle ones for an
// even count); 0 for none.
func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := slices.Clone(v)
	slices.Sort(s)
	if n := len(s); n%2 == 0 {
		return (s[n/2-1] + s[n/2]) / 2
	}
	return s[len(s)/2]
}

// Markdown writes the report as the README's tables: one per scenario with
// every target's medians, then the figures the acceptance criteria name.
func (r *Report) Markdown(w io.Writer) {
	fmt.Fprintf(w, "Machine: %d × %s, Linux %s, %s. Date: %s.\n", r.NumCPU, r.CPU, r.Kernel, r.Go, r.Date.Format("2006-01-02 15:04 UTC"))
	pin := "unpinned"
	if r.ProxyCPUs != "" {
		pin = fmt.Sprintf("proxies on CPU %s, upstream and load generator on CPU %s (taskset)", r.ProxyCPUs, r.LoadCPUs)
	}
	if r.Nice != 0 {
		pin += fmt.Sprintf(", every process at nice %d", r.Nice)
	}
	fmt.Fprintf(w, "Pinning: %s. Each figure is the median of %d runs; a ratio to bare is the median of each repeat's ratio to the bare run beside it; throughput runs: %s warm-up + %s measured; first-byte runs: 1 connection, %s.\n",
		pin, r.Repeats, r.Warmup, r.Duration, r.TTFB)
	if r.Profile != "" {
		fmt.Fprintf(w, "Profiled run (CPU profiles in %s; kve ran in-process as local.Main): figures are slightly below an unprofiled run's.\n", r.Profile)
	}
	rows := r.Rows()
	titles := map[string]string{
		"json": "Chat completion (JSON, 672 B response)",
		"sse":  "Streamed chat completion (SSE, 17 events, 4.9 KB)",
		"ttfb": "Stream first byte (SSE, one request at a time)",
	}
	var seen []string
	for _, row := range rows {
		if slices.Contains(seen, row.Scenario) {
			continue
		}
		seen = append(seen, row.Scenario)
		fmt.Fprintf(w, "\n### %s\n\n", titles[row.Scenario])
		if row.Scenario == "ttfb" {
			fmt.Fprintln(w, "| target | first byte p50 | first byte p99 | whole stream p50 | added p50 vs bare | added p50 vs upstream |")
			fmt.Fprintln(w, "|---|---:|---:|---:|---:|---:|")
		} else {
			fmt.Fprintln(w, "| conns | target | req/s | × bare | p50 | p99 | p50 ÷ bare | proxy CPU per request | × bare | proxy CPU | upstream + load CPU | errors |")
			fmt.Fprintln(w, "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
		}
		for _, x := range rows {
			if x.Scenario != row.Scenario {
				continue
			}
			bare := find(rows, x.Scenario, "bare", x.Conns)
			if x.Scenario == "ttfb" {
				up := find(rows, x.Scenario, "upstream", x.Conns)
				fmt.Fprintf(w, "| %s | %s | %s | %s | %s | %s |\n", x.Target, us(x.FirstByteP50), us(x.FirstByteP99), us(x.P50),
					signed(x.FirstByteP50-bare.FirstByteP50), signed(x.FirstByteP50-up.FirstByteP50))
				continue
			}
			fmt.Fprintf(w, "| %d | %s | %.0f | %.2f | %s | %s | %.2f | %s | %.2f | %.0f %% | %.0f %% | %d |\n", x.Conns, x.Target, x.RPS,
				x.RPSRatio, us(x.P50), us(x.P99), x.P50Ratio, us(x.CPUPerRequest), x.CPURatio,
				x.ProxyCPU, x.LoadCPU, x.Errors)
		}
	}
	fmt.Fprintln(w, "\n### Against the targets")
	fmt.Fprintln(w)
	for _, x := range rows {
		if x.Target == "bare" || x.Target == "upstream" || x.Target == "unmetered" { // references
			continue
		}
		bare := find(rows, x.Scenario, "bare", x.Conns)
		if x.Scenario == "ttfb" {
			added := x.FirstByteP50 - bare.FirstByteP50
			fmt.Fprintf(w, "- %s, SSE first byte added at p50: %s (target ≤ 1 ms): %s\n", x.Target, signed(added), verdict(added <= wantAddedFirstByte))
			continue
		}
		ratio, p50 := x.RPSRatio, x.P50Ratio
		fmt.Fprintf(w, "- %s, %s, %d conns: throughput %.2f × bare (%.2f–%.2f over %d repeats; target ≥ %.2f): %s; p50 %.2f × bare (target ≤ %.2f): %s\n",
			x.Target, x.Scenario, x.Conns, ratio, x.RPSRatioMin, x.RPSRatioMax, x.Runs, wantThroughputRatio, verdict(ratio >= wantThroughputRatio),
			p50, wantP50Ratio, verdict(p50 <= wantP50Ratio))
		if x.MeteredRatio > 0 {
			fmt.Fprintf(w, "- %s, %s, %d conns: throughput %.2f × unmetered (%.2f–%.2f; target ≥ %.2f): %s; proxy CPU per request %.2f × unmetered\n",
				x.Target, x.Scenario, x.Conns, x.MeteredRatio, x.MeteredRatioMin, x.MeteredRatioMax, wantMeteredRatio,
				verdict(x.MeteredRatio >= wantMeteredRatio), x.MeteredCPURatio)
		}
	}
}

func find(rows []Row, sc, target string, conns int) Row {
	for _, r := range rows {
		if r.Scenario == sc && r.Target == target && r.Conns == conns {
			return r
		}
	}
	return Row{}
}

func us(v float64) string {
	if v >= 1000 {
		return fmt.Sprintf("%.2f ms", v/1000)
	}
	return fmt.Sprintf("%.0f µs", v)
}

func signed(v float64) string {
	if v >= 0 {
		return "+" + us(v)
	}
	return "−" + us(-v)
}

func verdict(ok bool) string {
	if ok {
		return "met"
	}
	return "**missed**"
}
