// Package loadbench is kve's load benchmark: local mode against a bare
// httputil.ReverseProxy that only swaps the Authorization header, both in
// front of the same fast upstream, driven by the same closed-loop load
// generator with the same connections and CPU pinning.
//
// Every role is a separate process started by one program,
// cmd/loadbench: the upstream and the load generator pinned to one CPU, each
// proxy to the other, so that a proxy's figures are those of one core and
// nothing it does is hidden on the other. kve is the real local-mode binary
// built from ./functions/local, provisioned through its management API.
//
// It is a command, not a test, so that `go test ./...` never runs it (a run
// takes minutes and wants a quiet machine); its unit tests check the
// pieces. See README.md for how to run it and the figures.
package loadbench

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/keyvault-edge/kve/shared/local"
)

// Main runs the command line args (without the program name) and returns
// the exit code. With no role it runs the benchmark; the roles upstream,
// bare, load and kve are what the benchmark starts as its children.
func Main(args []string, stdout, stderr io.Writer) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	role := ""
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		role, args = args[0], args[1:]
	}
	var err error
	switch role {
	case "":
		err = bench(ctx, args, stdout, stderr)
	case "upstream":
		err = serveUpstream(ctx, args, stdout, stderr)
	case "bare":
		err = serveBare(ctx, args, stdout, stderr)
	case "load":
		err = load(ctx, args, stdout, stderr)
	case "kve":
		err = serveKve(ctx, args, stdout, stderr)
	default:
		err = fmt.Errorf("unknown role %q (want upstream, bare, load or kve)", role)
	}
	switch {
	case errors.Is(err, flag.ErrHelp):
		return 2
	case err != nil:
		fmt.Fprintln(stderr, "loadbench:", err)
		return 1
	}
	return 0
}

func bench(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("loadbench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfg := Config{Log: stderr}
	conns := fs.String("conns", "1,32", "connection counts of the throughput runs, comma-separated")
	scenarios := fs.String("scenarios", "json,sse,ttfb", "json: chat completions; sse: streamed completions; ttfb: first byte of a stream, one request at a time")
	fs.DurationVar(&cfg.Warmup, "warmup", 2*time.Second, "load before each measured run")
	fs.DurationVar(&cfg.Duration, "duration", 10*time.Second, "measured time of each throughput run")
	fs.DurationVar(&cfg.TTFB, "ttfb", 5*time.Second, "measured time of each first-byte run")
	fs.IntVar(&cfg.Repeats, "repeats", 3, "runs of each target; the report gives medians")
	fs.StringVar(&cfg.ProxyCPUs, "proxy-cpus", "0", "taskset CPU list for kve and the bare proxy")
	fs.StringVar(&cfg.LoadCPUs, "load-cpus", "1", "taskset CPU list for the upstream and the load generator")
	noPin := fs.Bool("no-pin", false, "do not pin processes with taskset")
	fs.IntVar(&cfg.Nice, "nice", 0, "run every process at this niceness (e.g. -10 as root on a shared machine)")
	fs.StringVar(&cfg.KveBin, "kve", "", "local-mode binary (default: go build ./functions/local)")
	fs.StringVar(&cfg.Compare, "compare", "", "a second local-mode binary to run as the targets compare and compare+limits (an A/B test of a change)")
	fs.StringVar(&cfg.Profile, "cpuprofile", "", "write CPU profiles of the proxies to kve.pprof and bare.pprof in this directory (kve then runs in-process: local.Main under this program)")
	fs.BoolVar(&cfg.Unmetered, "unmetered", false, "also run local mode with metering, limits and budgets off, as the target unmetered (both kve and it then run in-process: local.Main under this program)")
	jsonOut := fs.String("json", "", "also write every run as JSON to this file")
	if err := fs.Parse(args); err != nil {
		return err
	}
	for _, s := range strings.Split(*conns, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n < 1 {
			return fmt.Errorf("-conns: %q is not a connection count", s)
		}
		cfg.Conns = append(cfg.Conns, n)
	}
	cfg.Scenarios = strings.Split(*scenarios, ",")
	for _, s := range cfg.Scenarios {
		if !slices.Contains([]string{"json", "sse", "ttfb"}, s) {
			return fmt.Errorf("-scenarios: unknown scenario %q", s)
		}
	}
	if *noPin {
		cfg.ProxyCPUs, cfg.LoadCPUs = "", ""
	} else if _, err := exec.LookPath("taskset"); err != nil {
		return errors.New("taskset not found (util-linux); install it or pass -no-pin")
	}
	var err error
	if cfg.Self, err = os.Executable(); err != nil {
		return err
	}
	if cfg.Work, err = os.MkdirTemp("", "loadbench-"); err != nil {
		return err
	}
	defer os.RemoveAll(cfg.Work)
	if cfg.Profile != "" {
		if cfg.Profile, err = filepath.Abs(cfg.Profile); err != nil {
			return err
		}
		if err := os.MkdirAll(cfg.Profile, 0o755); err != nil {
			return err
		}
	} else if cfg.KveBin == "" {
		cfg.KveBin = filepath.Join(cfg.Work, "kve-local")
		fmt.Fprintln(stderr, "building ./functions/local")
		build := exec.CommandContext(ctx, "go", "build", "-o", cfg.KveBin, "github.com/keyvault-edge/kve/functions/local")
		build.Stdout, build.Stderr = stderr, stderr
		if err := build.Run(); err != nil {
			return fmt.Errorf("build local mode: %w", err)
		}
	}
	rep, err := Bench(ctx, cfg)
	if rep != nil {
		if *jsonOut != "" {
			b, jerr := json.MarshalIndent(rep, "", "  ")
			if jerr == nil {
				jerr = os.WriteFile(*jsonOut, b, 0o644)
			}
			err = errors.Join(err, jerr)
		}
		rep.Markdown(stdout)
	}
	return err
}

// serve listens on addr, prints "ready <addr>" for the runner, and serves h
// until ctx ends. Like kve's server it has no write timeout.
func serve(ctx context.Context, addr string, h http.Handler, stdout io.Writer) error {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 120 * time.Second,
		ErrorLog: slog.NewLogLogger(slog.DiscardHandler, slog.LevelError)}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(l) }()
	fmt.Fprintf(stdout, "ready %s gomaxprocs=%d\n", l.Addr(), runtime.GOMAXPROCS(0))
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return srv.Shutdown(sctx)
}

func serveUpstream(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("loadbench upstream", flag.ContinueOnError)
	fs.SetOutput(stderr)
	listen := fs.String("listen", "127.0.0.1:0", "address to listen on")
	if err := fs.Parse(args); err != nil {
		return err
	}
	key := os.Getenv(EnvKey)
	if key == "" {
		return errors.New(EnvKey + " is not set")
	}
	return serve(ctx, *listen, Upstream(key), stdout)
}

func serveBare(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("loadbench bare", flag.ContinueOnError)
	fs.SetOutput(stderr)
	listen := fs.String("listen", "127.0.0.1:0", "address to listen on")
	upstream := fs.String("upstream", "", "upstream base URL")
	profile := fs.String("cpuprofile", "", "write a CPU profile to this file")
	if err := fs.Parse(args); err != nil {
		return err
	}
	stop, err := startProfile(*profile)
	if err != nil {
		return err
	}
	defer stop()
	u, err := url.Parse(*upstream)
	if err != nil || u.Host == "" {
		return fmt.Errorf("-upstream: want a URL, got %q", *upstream)
	}
	key := os.Getenv(EnvKey)
	if key == "" {
		return errors.New(EnvKey + " is not set")
	}
	return serve(ctx, *listen, Bare(u, key), stdout)
}

// load runs the load generator once and prints its Result as JSON.
func load(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("loadbench load", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var l Load
	fs.StringVar(&l.URL, "url", "", "URL to POST chat completion requests to")
	fs.IntVar(&l.Conns, "conns", 32, "connections")
	fs.DurationVar(&l.Warmup, "warmup", 2*time.Second, "load before the measured time")
	fs.DurationVar(&l.Duration, "duration", 10*time.Second, "measured time")
	stream := fs.Bool("stream", false, "ask for a streamed completion")
	if err := fs.Parse(args); err != nil {
		return err
	}
	l.Body = ChatRequest
	if *stream {
		l.Body = StreamRequest
	}
	// What an OpenAI SDK sends besides the body.
	l.Header = http.Header{
		"Content-Type":                {"application/json"},
		"Accept":                      {"application/json"},
		"User-Agent":                  {"OpenAI/Python 1.99.9"},
		"X-Stainless-Lang":            {"python"},
		"X-Stainless-Package-Version": {"1.99.9"},
		"X-Stainless-Retry-Count":     {"0"},
	}
	if auth := os.Getenv(EnvAuth); auth != "" {
		l.Header.Set("Authorization", auth)
	}
	res, err := l.Run(ctx)
	if err != nil {
		return err
	}
	return json.NewEncoder(stdout).Encode(res)
}

// serveKve runs local mode in this process, as functions/local does, with
// a CPU profile of the whole run written when it ends: the profile of the
// hot path under load, without adding anything to kve's own code.
func serveKve(ctx context.Context, args []string, _, stderr io.Writer) error {
	fs := flag.NewFlagSet("loadbench kve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	profile := fs.String("cpuprofile", "", "write a CPU profile to this file")
	noMetering := fs.Bool("no-metering", false, "metering, limits and budgets off (local.Config.NoMetering)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	cfg, err := local.ParseConfig(fs.Args(), os.Getenv, stderr)
	if err != nil {
		return err
	}
	cfg.NoMetering = *noMetering
	stop, err := startProfile(*profile)
	if err != nil {
		return err
	}
	defer stop()
	m := &local.Main{Config: cfg, Stdout: io.Discard}
	return m.Run(ctx)
}

// startProfile starts a CPU profile written to path ("" for none) and
// returns what stops it.
func startProfile(path string) (stop func(), err error) {
	if path == "" {
		return func() {}, nil
	}
	f, err := os.Create(path)
	if err != nil {
		return nil, err
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, err
	}
	return func() {
		pprof.StopCPUProfile()
		f.Close()
	}, nil
}
