package loadbench

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// child is a process of the benchmark: the upstream, a proxy or a load run.
type child struct {
	name   string
	cmd    *exec.Cmd
	addr   string      // where it listens, for servers
	stderr *tailBuffer // the end of what it printed, shown when it fails
	exited chan error  // receives Wait's result once
	done   bool
	mu     sync.Mutex
}

// command returns bin with args, pinned to the CPUs in cpus with taskset
// unless cpus is empty, and run at niceness nice unless it is 0. nice and
// taskset exec what they run, so the pid is bin's.
func command(cpus string, nice int, bin string, args ...string) *exec.Cmd {
	argv := append([]string{bin}, args...)
	if cpus != "" {
		argv = append([]string{"taskset", "-c", cpus}, argv...)
	}
	if nice != 0 {
		argv = append([]string{"nice", "-n", strconv.Itoa(nice)}, argv...)
	}
	return exec.Command(argv[0], argv[1:]...)
}

// startServer starts one of this program's server roles and waits for the
// "ready <addr>" line it prints once it listens.
func startServer(ctx context.Context, name string, cmd *exec.Cmd) (*child, error) {
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	c, err := start(name, cmd)
	if err != nil {
		return nil, err
	}
	lines := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if rest, ok := strings.CutPrefix(sc.Text(), "ready "); ok {
				addr, _, _ := strings.Cut(rest, " ")
				lines <- addr
			}
		}
		close(lines)
	}()
	select {
	case addr, ok := <-lines:
		if ok {
			c.addr = addr
			return c, nil
		}
	case <-ctx.Done():
	case <-time.After(30 * time.Second):
	}
	c.stop(5 * time.Second)
	return nil, fmt.Errorf("start %s: not ready:\n%s", name, c.stderr)
}

// start starts cmd with its stderr kept for error reports.
func start(name string, cmd *exec.Cmd) (*child, error) {
	c := &child{name: name, cmd: cmd, stderr: &tailBuffer{max: 8 << 10}, exited: make(chan error, 1)}
	if cmd.Stderr == nil {
		cmd.Stderr = c.stderr
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	go func() { c.exited <- cmd.Wait() }()
	return c, nil
}

// stop asks the process to end (SIGTERM: kve drains and flushes) and kills
// it after grace.
func (c *child) stop(grace time.Duration) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.done {
		return nil
	}
	c.done = true
	c.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-c.exited:
		var exit *exec.ExitError
		if errors.As(err, &exit) && !exit.Exited() {
			return nil // ended by the signal
		}
		return err
	case <-time.After(grace):
		c.cmd.Process.Kill()
		<-c.exited
		return fmt.Errorf("stop %s: killed after %v", c.name, grace)
	}
}

// cpuTicks returns the CPU time (user + system) pid has used, in clock
// ticks, from /proc/<pid>/stat.
func cpuTicks(pid int) (int64, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, err
	}
	// The command name (field 2) may hold spaces; fields are counted after it.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, errors.New("cpu ticks: malformed stat")
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return 0, errors.New("cpu ticks: short stat")
	}
	utime, err1 := strconv.ParseInt(f[11], 10, 64)
	stime, err2 := strconv.ParseInt(f[12], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return 0, fmt.Errorf("cpu ticks: %w", err)
	}
	return utime + stime, nil
}

// syscalls returns how many read and write system calls pid has made,
// from /proc/<pid>/io.
func syscalls(pid int) (int64, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/io")
	if err != nil {
		return 0, err
	}
	var n int64
	for line := range strings.Lines(string(b)) {
		k, v, _ := strings.Cut(line, ":")
		if k == "syscr" || k == "syscw" {
			c, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
			if err != nil {
				return 0, fmt.Errorf("syscalls: %w", err)
			}
			n += c
		}
	}
	return n, nil
}

// ticksPerSecond is USER_HZ, 100 on every Linux architecture Go supports.
const ticksPerSecond = 100

// coreTimes returns busy and total ticks per CPU from /proc/stat.
func coreTimes() (map[string][2]int64, error) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return nil, err
	}
	out := map[string][2]int64{}
	for line := range strings.Lines(string(b)) {
		f := strings.Fields(line)
		if len(f) < 6 || !strings.HasPrefix(f[0], "cpu") || f[0] == "cpu" {
			continue
		}
		var total, idle int64
		// user nice system idle iowait irq softirq; steal is time the
		// hypervisor gave others, guest is already counted in user.
		for i, s := range f[1:min(len(f), 8)] {
			v, _ := strconv.ParseInt(s, 10, 64)
			total += v
			if i == 3 || i == 4 { // idle, iowait
				idle += v
			}
		}
		out[f[0]] = [2]int64{total - idle, total}
	}
	return out, nil
}

// busyPercent is how busy each CPU was between two coreTimes readings.
func busyPercent(before, after map[string][2]int64) map[string]float64 {
	out := map[string]float64{}
	for cpu, a := range after {
		b := before[cpu]
		if total := a[1] - b[1]; total > 0 {
			out[cpu] = 100 * float64(a[0]-b[0]) / float64(total)
		}
	}
	return out
}

// freeAddr returns a loopback address nothing listens on at the moment, for
// kve's --listen.
func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

// tailBuffer keeps the last max bytes written to it.
type tailBuffer struct {
	mu  sync.Mutex
	max int
	b   []byte
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.b = append(t.b, p...)
	if over := len(t.b) - t.max; over > 0 {
		t.b = append(t.b[:0], t.b[over:]...)
	}
	return len(p), nil
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(t.b)
}
