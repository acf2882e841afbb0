package loadbench

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"
)

// Config is one benchmark: which processes, pinned where, how many
// connections, for how long, how many times.
type Config struct {
	Self   string // this program: it serves the upstream, bare and load roles
	KveBin string // the local-mode binary, built from ./functions/local
	// Compare is a second local-mode binary (a candidate fix, say), run as
	// the extra targets "compare" and "compare+limits" in the same
	// rotation, so that both face the same machine noise.
	Compare string
	Profile string // a directory: the proxies write CPU profiles there, kve running as this program's kve role
	// Unmetered adds the target "unmetered": local mode with metering,
	// limits and budgets off (local.Config.NoMetering), which kve's
	// throughput is compared with (issue 6). Both then run as this
	// program's kve role, the same binary.
	Unmetered bool
	ProxyCPUs string // taskset CPU list for the proxies; "" runs unpinned
	LoadCPUs  string // taskset CPU list for the upstream and the load generator
	// Nice is the niceness of every process of the benchmark (0: unchanged;
	// negative, as root, lets them win their CPUs from unrelated work on a
	// shared machine).
	Nice      int
	Conns     []int // connection counts of the throughput runs
	Warmup    time.Duration
	Duration  time.Duration // measured time of each throughput run
	TTFB      time.Duration // measured time of each first-byte run
	Repeats   int
	Scenarios []string // "json", "sse", "ttfb"
	Work      string   // a directory for kve's data
	Log       io.Writer
}

// Fake credentials: the upstream's key and what a client of the bare proxy
// sends in its place.
const (
	upstreamKey = "sk-test-FAKE-loadbench-0123456789abcdefghijklmnop"
	bareClient  = "sk-test-FAKE-bare-client"
)

// Env variables through which the runner hands credentials to its children
// (not argv, which any process can read).
const (
	EnvKey  = "LOADBENCH_KEY"  // the upstream's key
	EnvAuth = "LOADBENCH_AUTH" // the load generator's Authorization header
)

// target is an endpoint the load generator drives.
type target struct {
	name  string
	url   string
	auth  string
	proxy *child // whose CPU is counted; nil for the upstream itself
}

// Run is one load run in a report.
type Run struct {
	Scenario string `json:"scenario"`
	Target   string `json:"target"`
	Repeat   int    `json:"repeat"`
	Result
	ProxyCPU float64 `json:"proxy_cpu_pct"`
	// ProxyCPUPerRequest is the proxy's CPU time per request (µs) over the
	// whole run, warm-up included: unlike req/s it does not depend on how
	// much of its core the proxy got.
	ProxyCPUPerRequest float64 `json:"proxy_cpu_us_per_request"`
	// ProxySyscallsPerRequest counts the proxy's read and write system
	// calls per request, warm-up included.
	ProxySyscallsPerRequest float64            `json:"proxy_syscalls_per_request"`
	UpstreamCPU             float64            `json:"upstream_cpu_pct"`
	LoadCPU                 float64            `json:"load_cpu_pct"`
	CoreBusy                map[string]float64 `json:"core_busy_pct"`
}

// Report is everything a benchmark measured, with the machine it ran on.
type Report struct {
	Date      time.Time `json:"date"`
	CPU       string    `json:"cpu"`
	NumCPU    int       `json:"num_cpu"`
	Go        string    `json:"go"`
	Kernel    string    `json:"kernel"`
	ProxyCPUs string    `json:"proxy_cpus"`
	LoadCPUs  string    `json:"load_cpus"`
	Nice      int       `json:"nice"`
	Warmup    string    `json:"warmup"`
	Duration  string    `json:"duration"`
	TTFB      string    `json:"ttfb_duration"`
	Repeats   int       `json:"repeats"`
	Profile   string    `json:"profile,omitempty"`
	Runs      []Run     `json:"runs"`
}

// Bench starts the upstream, the bare proxy and kve's local mode as
// separate processes (the proxies pinned to ProxyCPUs, the upstream and
// the load generator to LoadCPUs), provisions kve through its management
// API, runs every scenario Repeats times in rotating order, and stops
// everything. A run in which any request failed is an error.
func Bench(ctx context.Context, cfg Config) (*Report, error) {
	rep := &Report{
		Date: time.Now().UTC(), CPU: cpuModel(), NumCPU: runtime.NumCPU(), Go: runtime.Version(), Kernel: kernel(),
		ProxyCPUs: cfg.ProxyCPUs, LoadCPUs: cfg.LoadCPUs, Nice: cfg.Nice, Warmup: cfg.Warmup.String(), Duration: cfg.Duration.String(),
		TTFB: cfg.TTFB.String(), Repeats: cfg.Repeats, Profile: cfg.Profile,
	}
	var children []*child
	defer func() {
		for i := len(children) - 1; i >= 0; i-- {
			if err := children[i].stop(60 * time.Second); err != nil {
				fmt.Fprintf(cfg.Log, "%s: %v\n%s\n", children[i].name, err, children[i].stderr)
			}
		}
	}()
	env := append(os.Environ(), EnvKey+"="+upstreamKey)

	cmd := command(cfg.LoadCPUs, cfg.Nice, cfg.Self, "upstream", "-listen", "127.0.0.1:0")
	cmd.Env = env
	up, err := startServer(ctx, "upstream", cmd)
	if err != nil {
		return nil, err
	}
	children = append(children, up)
	upURL := "http://" + up.addr

	bareArgs := []string{"bare", "-listen", "127.0.0.1:0", "-upstream", upURL}
	if cfg.Profile != "" {
		bareArgs = append(bareArgs, "-cpuprofile", filepath.Join(cfg.Profile, "bare.pprof"))
	}
	cmd = command(cfg.ProxyCPUs, cfg.Nice, cfg.Self, bareArgs...)
	cmd.Env = env
	bare, err := startServer(ctx, "bare proxy", cmd)
	if err != nil {
		return nil, err
	}
	children = append(children, bare)

	targets := []target{{"bare", "http://" + bare.addr + "/v1/chat/completions", "Bearer " + bareClient, bare}}
	kves := []struct{ name, bin string }{{"kve", cfg.KveBin}}
	if cfg.Compare != "" {
		kves = append(kves, struct{ name, bin string }{"compare", cfg.Compare})
	}
	if cfg.Unmetered {
		kves = append(kves, struct{ name, bin string }{"unmetered", ""})
	}
	for _, k := range kves {
		kve, tokens, err := startKve(ctx, cfg, k.name, k.bin, upURL)
		if kve != nil {
			children = append(children, kve)
		}
		if err != nil {
			return nil, err
		}
		u := "http://" + kve.addr + "/openai/v1/chat/completions"
		targets = append(targets, target{k.name, u, "Bearer " + tokens.Off, kve})
		if k.name != "unmetered" { // its limits are off
			targets = append(targets, target{k.name + "+limits", u, "Bearer " + tokens.On, kve})
		}
	}
	direct := target{"upstream", upURL + "/v1/chat/completions", "Bearer " + upstreamKey, nil}

	var failed []string
	for _, sc := range cfg.Scenarios {
		for _, conns := range scenarioConns(sc, cfg.Conns) {
			ts, body, warm, dur := targets, ChatRequest, cfg.Warmup, cfg.Duration
			switch sc {
			case "sse":
				body = StreamRequest
			case "ttfb":
				ts, body, warm, dur = append([]target{direct}, targets...), StreamRequest, time.Second, cfg.TTFB
			}
			for r := range cfg.Repeats {
				for i := range ts {
					t := ts[(i+r)%len(ts)] // rotate, so no target always runs first
					run, err := loadRun(ctx, cfg, up, t, Load{URL: t.url, Body: body, Conns: conns, Warmup: warm, Duration: dur})
					if err != nil {
						return rep, err
					}
					run.Scenario, run.Repeat = sc, r+1
					rep.Runs = append(rep.Runs, run)
					fmt.Fprintf(cfg.Log, "%-4s c=%-3d %-10s #%d  %6.0f req/s  p50 %6.0f µs  p99 %6.0f µs  first byte p50 %6.0f µs  proxy %3.0f%% cpu %4.0f µs/req %4.1f syscalls/req  cpu0 %3.0f%% cpu1 %3.0f%%  errors %d\n",
						sc, conns, t.name, r+1, run.RPS, run.Latency.P50, run.Latency.P99, run.FirstByte.P50,
						run.ProxyCPU, run.ProxyCPUPerRequest, run.ProxySyscallsPerRequest, run.CoreBusy["cpu0"], run.CoreBusy["cpu1"], run.Errors)
					if run.Errors > 0 {
						failed = append(failed, fmt.Sprintf("%s c=%d %s #%d: %d errors, first: %s", sc, conns, t.name, r+1, run.Errors, run.FirstErr))
					}
				}
			}
		}
	}
	if len(failed) > 0 {
		return rep, fmt.Errorf("requests failed:\n%s", strings.Join(failed, "\n"))
	}
	return rep, nil
}

// scenarioConns returns the connection counts a scenario runs with: the
// first-byte scenario measures one request at a time.
func scenarioConns(sc string, conns []int) []int {
	if sc == "ttfb" {
		return []int{1}
	}
	return conns
}

// startKve starts local mode on a fresh data directory, waits until it is
// healthy and provisions it.
func startKve(ctx context.Context, cfg Config, name, bin, upstream string) (*child, Tokens, error) {
	addr, err := freeAddr()
	if err != nil {
		return nil, Tokens{}, err
	}
	data := filepath.Join(cfg.Work, name+"-data")
	args := []string{"--listen", addr, "--data", data, "--allow-private-upstreams", "127.0.0.0/8", "--log-level", "warn"}
	var cmd = command(cfg.ProxyCPUs, cfg.Nice, bin, args...)
	switch {
	case name == "unmetered":
		role := []string{"kve", "-no-metering"}
		if cfg.Profile != "" {
			role = append(role, "-cpuprofile", filepath.Join(cfg.Profile, "unmetered.pprof"))
		}
		cmd = command(cfg.ProxyCPUs, cfg.Nice, cfg.Self, append(append(role, "--"), args...)...)
	case name == "kve" && cfg.Profile != "":
		cmd = command(cfg.ProxyCPUs, cfg.Nice, cfg.Self, append([]string{"kve", "-cpuprofile", filepath.Join(cfg.Profile, "kve.pprof"), "--"}, args...)...)
	case name == "kve" && cfg.Unmetered: // the same binary as unmetered
		cmd = command(cfg.ProxyCPUs, cfg.Nice, cfg.Self, append([]string{"kve", "--"}, args...)...)
	}
	cmd.Stdout = io.Discard // the setup code; it is read from its file
	kve, err := start(name, cmd)
	if err != nil {
		return nil, Tokens{}, err
	}
	kve.addr = addr
	base := "http://" + addr
	client := &http.Client{Timeout: 10 * time.Second}
	ready := func() bool {
		res, err := client.Get(base + "/healthz")
		if err != nil {
			return false
		}
		res.Body.Close()
		return res.StatusCode == http.StatusOK
	}
	deadline := time.Now().Add(30 * time.Second)
	for !ready() {
		if time.Now().After(deadline) || ctx.Err() != nil {
			return kve, Tokens{}, fmt.Errorf("kve not healthy:\n%s", kve.stderr)
		}
		time.Sleep(50 * time.Millisecond) // polling a process we do not control
	}
	code, err := os.ReadFile(filepath.Join(data, "setup-code"))
	if err != nil {
		return kve, Tokens{}, fmt.Errorf("read setup code: %w", err)
	}
	tokens, err := Provision(ctx, client, base, strings.TrimSpace(string(code)), upstream, upstreamKey)
	if err != nil {
		return kve, Tokens{}, fmt.Errorf("provision kve: %w", err)
	}
	return kve, tokens, nil
}

// loadRun runs the load generator as its own pinned process against t and
// accounts the CPU each process used meanwhile.
func loadRun(ctx context.Context, cfg Config, up *child, t target, l Load) (Run, error) {
	cmd := command(cfg.LoadCPUs, cfg.Nice, cfg.Self, "load", "-url", l.URL, "-conns", strconv.Itoa(l.Conns),
		"-warmup", l.Warmup.String(), "-duration", l.Duration.String(), "-stream="+strconv.FormatBool(l.Body == StreamRequest))
	cmd.Env = append(os.Environ(), EnvAuth+"="+t.auth)
	var out strings.Builder
	cmd.Stdout = &out
	pids := map[string]int{"upstream": up.cmd.Process.Pid}
	if t.proxy != nil {
		pids["proxy"] = t.proxy.cmd.Process.Pid
	}
	before := map[string]int64{}
	for k, pid := range pids {
		before[k], _ = cpuTicks(pid)
	}
	var sysBefore int64
	if t.proxy != nil {
		sysBefore, _ = syscalls(t.proxy.cmd.Process.Pid)
	}
	cores, _ := coreTimes()
	began := time.Now()
	c, err := start("load", cmd)
	if err != nil {
		return Run{}, err
	}
	var werr error
	select {
	case werr = <-c.exited:
	case <-ctx.Done():
		c.stop(5 * time.Second)
		return Run{}, ctx.Err()
	}
	wall := time.Since(began).Seconds()
	if werr != nil {
		return Run{}, fmt.Errorf("load run against %s: %v\n%s", t.name, werr, c.stderr)
	}
	var run Run
	if err := json.Unmarshal([]byte(out.String()), &run.Result); err != nil {
		return Run{}, fmt.Errorf("load run against %s: %w: %q", t.name, err, out.String())
	}
	run.Target = t.name
	pct := func(ticks int64) float64 { return 100 * float64(ticks) / ticksPerSecond / wall }
	for k, pid := range pids {
		after, _ := cpuTicks(pid)
		if k == "proxy" {
			run.ProxyCPU = pct(after - before[k])
			if run.Total > 0 {
				run.ProxyCPUPerRequest = float64(after-before[k]) / ticksPerSecond / float64(run.Total) * 1e6
				if n, err := syscalls(pid); err == nil {
					run.ProxySyscallsPerRequest = float64(n-sysBefore) / float64(run.Total)
				}
			}
		} else {
			run.UpstreamCPU = pct(after - before[k])
		}
	}
	st := cmd.ProcessState
	run.LoadCPU = 100 * (st.UserTime() + st.SystemTime()).Seconds() / wall
	if after, err := coreTimes(); err == nil && cores != nil {
		run.CoreBusy = busyPercent(cores, after)
	}
	return run, nil
}

// cpuModel is the "model name" of /proc/cpuinfo.
func cpuModel() string {
	b, _ := os.ReadFile("/proc/cpuinfo")
	for line := range strings.Lines(string(b)) {
		if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return "unknown"
}

func kernel() string {
	b, _ := os.ReadFile("/proc/sys/kernel/osrelease")
	return strings.TrimSpace(string(b))
}
