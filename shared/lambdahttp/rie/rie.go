// Package rie runs a Lambda bootstrap under the AWS Lambda Runtime Interface
// Emulator (aws-lambda-rie) for tests, so that a function is exercised
// through the same Runtime API protocol as on AWS. The emulator runs on the
// host, without Docker.
//
// The emulator does not stream: a streaming function's whole response
// (JSON head, eight NUL bytes, body) comes back at once when it ends.
package rie

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// Install is how to get the emulator, at the version kve is tested with.
const Install = "go install github.com/aws/aws-lambda-runtime-interface-emulator/cmd/aws-lambda-rie@v0.0.0-20261030222936-bef5c4ba774d"

// Emulator is a running aws-lambda-rie serving one bootstrap.
type Emulator struct {
	url string
	out *syncBuffer
}

// Start runs bootstrap under the emulator until the test ends, on free
// local ports, and waits until it accepts invocations. Without the emulator
// binary the test is skipped, or fails when KVE_REQUIRE_SERVICES=1 (CI).
//
// The emulator gets no environment but what it needs plus env ("NAME=value"):
// it hands its own to the function, and the test's may hold credentials.
func Start(t testing.TB, bootstrap string, env ...string) *Emulator {
	t.Helper()
	bin, err := Binary()
	if err != nil {
		msg := "aws-lambda-rie not found: " + Install
		if os.Getenv("KVE_REQUIRE_SERVICES") == "1" {
			t.Fatalf("%s (%v)", msg, err)
		}
		t.Skip(msg)
	}
	addr, runtimeAddr := freeAddr(t), freeAddr(t)
	cmd := exec.Command(bin,
		"--runtime-interface-emulator-address", addr,
		"--runtime-api-address", runtimeAddr,
		"--log-level", "warn",
		bootstrap)
	cmd.Dir = filepath.Dir(bootstrap)
	cmd.Env = append([]string{"AWS_LAMBDA_FUNCTION_TIMEOUT=60", "AWS_LAMBDA_FUNCTION_NAME=kve-test"}, env...)
	out := &syncBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatalf("start aws-lambda-rie: %v", err)
	}
	exited := make(chan struct{})
	go func() {
		cmd.Wait()
		close(exited)
	}()
	// The emulator exits on SIGTERM; the bootstrap it started then loses its
	// Runtime API and exits too (aws-lambda-go stops when /next fails).
	t.Cleanup(func() {
		cmd.Process.Signal(os.Interrupt)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-exited
		}
		if t.Failed() {
			t.Logf("aws-lambda-rie output:\n%s", out)
		}
	})
	if err := waitReady(t.Context(), addr, exited); err != nil {
		t.Fatalf("aws-lambda-rie: %v\n%s", err, out)
	}
	return &Emulator{url: "http://" + addr + "/2015-03-31/functions/function/invocations", out: out}
}

// Output returns what the emulator and the function printed so far
// (the function's logs, the emulator's INIT and REPORT lines).
func (e *Emulator) Output() string { return e.out.String() }

// Invoke invokes the function with payload, as `aws lambda invoke` would,
// and returns the raw result.
func (e *Emulator) Invoke(ctx context.Context, payload []byte) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, e.url, bytes.NewReader(payload))
	if err != nil {
		return nil, fmt.Errorf("invoke: %w", err)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("invoke: %w", err)
	}
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	if err != nil {
		return nil, fmt.Errorf("read invocation result: %w", err)
	}
	if res.StatusCode != http.StatusOK {
		return body, fmt.Errorf("invoke: %s", res.Status)
	}
	return body, nil
}

// Binary finds aws-lambda-rie: $KVE_RIE if set, else on $PATH, else in
// $(go env GOPATH)/bin, where `go install` puts it.
func Binary() (string, error) {
	if p := os.Getenv("KVE_RIE"); p != "" {
		if _, err := os.Stat(p); err != nil {
			return "", fmt.Errorf("KVE_RIE: %w", err)
		}
		return p, nil
	}
	if p, err := exec.LookPath("aws-lambda-rie"); err == nil {
		return p, nil
	}
	gopath, err := exec.Command("go", "env", "GOPATH").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOPATH: %w", err)
	}
	dir, _, _ := strings.Cut(strings.TrimSpace(string(gopath)), string(os.PathListSeparator))
	return exec.LookPath(filepath.Join(dir, "bin", "aws-lambda-rie"))
}

// freeAddr returns a local address nothing listens on at the moment.
func freeAddr(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// waitReady polls until the emulator accepts connections, it exits, or ctx
// ends.
func waitReady(ctx context.Context, addr string, exited <-chan struct{}) error {
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		conn, err := (&net.Dialer{}).DialContext(ctx, "tcp", addr)
		if err == nil {
			return conn.Close()
		}
		select {
		case <-exited:
			return errors.New("exited before it was ready")
		case <-ctx.Done():
			return fmt.Errorf("not ready: %w", err)
		case <-tick.C:
		}
	}
}

// syncBuffer collects the emulator's output, written by exec's copying
// goroutines and read by the test.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
