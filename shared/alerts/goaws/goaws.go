// Package goaws runs the goaws SNS emulator (github.com/Admiral-Piett/goaws
// v0.4.5) for tests, as a process on a free port, so that kve's SNS channel
// is exercised through the SNS query protocol by the real SDK client. The
// emulator is a tool, not a dependency: `make tools` installs it.
//
// What goaws does and does not do (read in its source, app/gosns): it
// sends http(s) subscriptions a SubscriptionConfirmation and honours
// ConfirmSubscription; it signs with SignatureVersion 1 (SHA1) under a
// certificate it serves; it applies filter policies (exact strings) to
// sqs subscriptions only, never to http(s) ones; it always answers
// PendingConfirmation "false".
package goaws

import (
	"context"
	"encoding/xml"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/sns"
)

// Install is how to get the emulator (`make tools` runs it). Its main
// package is app/cmd, so `go install` names the binary cmd; it is moved
// to its own name.
const Install = "GOBIN=$(mktemp -d) go install github.com/Admiral-Piett/goaws/app/cmd@v0.4.5 && mv $GOBIN/cmd $(go env GOPATH)/bin/goaws (or: make tools)"

// Account and Region are the emulator's, as its topic ARN names them.
const (
	Account = "100010001000"
	Region  = "us-east-1"
)

// Emulator is goaws running for one test.
type Emulator struct {
	URL   string // http://127.0.0.1:port
	Topic string // the ARN of its topic kve-alerts
	out   *buffer
}

// Binary finds goaws: $KVE_GOAWS, else on $PATH, else in
// $(go env GOPATH)/bin.
func Binary() (string, error) {
	if p := os.Getenv("KVE_GOAWS"); p != "" {
		_, err := os.Stat(p)
		return p, err
	}
	if p, err := exec.LookPath("goaws"); err == nil {
		return p, nil
	}
	gopath, err := exec.Command("go", "env", "GOPATH").Output()
	if err != nil {
		return "", err
	}
	dir, _, _ := strings.Cut(strings.TrimSpace(string(gopath)), string(os.PathListSeparator))
	return exec.LookPath(filepath.Join(dir, "bin", "goaws"))
}

// Start runs goaws on a free port with the topic kve-alerts and the given
// SQS queues until the test ends. It listens on every interface (it cannot
// be told otherwise); its configuration lives in t.TempDir(). Without the
// binary the test is skipped, or fails when KVE_REQUIRE_SERVICES=1 (CI).
func Start(t testing.TB, queues ...string) *Emulator {
	t.Helper()
	bin, err := Binary()
	if err != nil {
		msg := "goaws not found: " + Install
		if os.Getenv("KVE_REQUIRE_SERVICES") == "1" {
			t.Fatalf("%s (%v)", msg, err)
		}
		t.Skip(msg)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := fmt.Sprint(l.Addr().(*net.TCPAddr).Port)
	l.Close()
	var cfg strings.Builder
	fmt.Fprintf(&cfg, "Local:\n  Host: 127.0.0.1\n  Port: %q\n  Region: %s\n  AccountId: %q\n  LogToFile: false\n", port, Region, Account)
	cfg.WriteString("  Topics:\n    - Name: kve-alerts\n")
	if len(queues) > 0 {
		cfg.WriteString("  Queues:\n")
		for _, q := range queues {
			fmt.Fprintf(&cfg, "    - Name: %s\n", q)
		}
	}
	path := filepath.Join(t.TempDir(), "goaws.yaml")
	if err := os.WriteFile(path, []byte(cfg.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	e := &Emulator{URL: "http://127.0.0.1:" + port, Topic: "arn:aws:sns:" + Region + ":" + Account + ":kve-alerts", out: &buffer{}}
	cmd := exec.Command(bin, "-config", path, "Local")
	cmd.Dir = t.TempDir()
	cmd.Stdout, cmd.Stderr = e.out, e.out
	if err := cmd.Start(); err != nil {
		t.Fatalf("start goaws: %v", err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-exited
		if t.Failed() {
			t.Logf("goaws output:\n%s", e.out)
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		res, err := http.Get(e.URL + "/health")
		if err == nil {
			res.Body.Close()
			if res.StatusCode == http.StatusOK {
				return e
			}
		}
		select {
		case <-exited:
			t.Fatalf("goaws exited before it was ready:\n%s", e.out)
		case <-ctx.Done():
			t.Fatalf("goaws not ready: %v\n%s", err, e.out)
		case <-tick.C:
		}
	}
}

// Client returns an SNS client of the emulator.
func (e *Emulator) Client() *sns.Client {
	return sns.New(sns.Options{
		Region:       Region,
		BaseEndpoint: aws.String(e.URL),
		Credentials:  credentials.NewStaticCredentialsProvider("AKIDFAKE0000000000", "secret-FAKE-0000000000", ""),
	})
}

// QueueARN is the ARN of one of the emulator's queues.
func (e *Emulator) QueueARN(queue string) string {
	return "arn:aws:sqs:" + Region + ":" + Account + ":" + queue
}

// Receive returns the bodies of the messages a queue holds (read through
// the SQS query API, with no SDK).
func (e *Emulator) Receive(t testing.TB, queue string) []string {
	t.Helper()
	form := url.Values{"Action": {"ReceiveMessage"}, "QueueUrl": {e.URL + "/" + Account + "/" + queue},
		"MaxNumberOfMessages": {"10"}, "WaitTimeSeconds": {"0"}}
	res, err := http.PostForm(e.URL+"/", form)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var out struct {
		Messages []struct {
			Body string `xml:"Body"`
		} `xml:"ReceiveMessageResult>Message"`
	}
	if err := xml.NewDecoder(res.Body).Decode(&out); err != nil {
		t.Fatalf("ReceiveMessage %s: %v", queue, err)
	}
	bodies := []string{}
	for _, m := range out.Messages {
		bodies = append(bodies, m.Body)
	}
	return bodies
}

// buffer collects the emulator's output from its copying goroutines.
type buffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (b *buffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *buffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}
