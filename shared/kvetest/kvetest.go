// Package kvetest holds the helpers of kve's end-to-end tests: a running
// local-mode instance (Start), a small client of its management API, fake
// upstream provider APIs that speak the providers' wire formats and check
// every request they receive (NewOpenAI, NewAnthropic), and the canary check
// of SECURITY T27, which every instance runs when its test ends.
//
// Everything here goes through the network the way a user's curl, SDK or
// browser would: the instance is local.Main serving on a loopback port.
package kvetest

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/keyvault-edge/kve/shared/kve"
	"github.com/keyvault-edge/kve/shared/local"
	"github.com/keyvault-edge/kve/shared/manage"
	"github.com/keyvault-edge/kve/shared/store/sqlite"
)

// Instance is a local-mode kve serving on a loopback port for one test.
type Instance struct {
	URL       string      // base URL, http://127.0.0.1:port (or http://[::1]:port)
	Addr      string      // the listener's address
	Data      string      // the data directory
	SetupCode string      // read from <data>/setup-code at start
	Main      *local.Main // the process under test

	logs   *Buffer // everything kve logged, at debug level
	stdout *Buffer // what kve printed (the setup code)
	seen   *recorder
	client *http.Client
	served chan error

	mu        sync.Mutex
	canaries  []canary
	apiToken  string
	ownerPass string
	store     *sqlite.Store
}

type options struct {
	listen string
	config []func(*local.Config)
}

// Option changes how Start runs an instance.
type Option func(*options)

// WithConfig changes the configuration after the flags are parsed, before
// the instance opens: a small MaxBodyBytes, short upstream timeouts.
func WithConfig(f func(*local.Config)) Option {
	return func(o *options) { o.config = append(o.config, f) }
}

// WithListen makes the instance listen on addr instead of 127.0.0.1:0, for
// example "[::]:0" for an IPv6 listener that also accepts IPv4 clients.
func WithListen(addr string) Option {
	return func(o *options) { o.listen = addr }
}

// PrivateUpstreams is what every instance passes as --allow-private-upstreams:
// the fake upstreams listen on loopback.
const PrivateUpstreams = "127.0.0.0/8,::1/128"

// Start runs local.Main whole — Open, Serve on a listener, Close — with its
// data in t.TempDir(), a cheap argon2 cost and a debug-level log the test can
// read (Logs), shown only if the test fails. When the test ends the instance
// drains and closes, and then the canary check runs: no upstream key, token
// value, password or API token it handed out may appear in what it logged,
// answered or wrote to disk (SECURITY T27).
func Start(t testing.TB, opts ...Option) *Instance {
	t.Helper()
	o := options{listen: "127.0.0.1:0"}
	for _, f := range opts {
		f(&o)
	}
	l, err := net.Listen("tcp", o.listen)
	if err != nil {
		t.Fatalf("listen on %s: %v", o.listen, err)
	}
	in := &Instance{
		Addr:   l.Addr().String(),
		Data:   t.TempDir(),
		logs:   &Buffer{},
		stdout: &Buffer{},
		seen:   &recorder{next: &http.Transport{Proxy: nil, DisableCompression: true}},
		served: make(chan error, 1),
	}
	in.URL = "http://" + loopback(l.Addr().(*net.TCPAddr))
	in.client = &http.Client{Transport: in.seen}
	args := []string{
		"--listen", in.Addr,
		"--data", in.Data,
		"--allow-private-upstreams", PrivateUpstreams,
		"--public-url", in.URL,
		"--log-level", "debug",
	}
	cfg, err := local.ParseConfig(args, func(string) string { return "" }, io.Discard)
	if err != nil {
		l.Close()
		t.Fatalf("parse local config: %v", err)
	}
	for _, f := range o.config {
		f(&cfg)
	}
	in.Main = &local.Main{
		Config:    cfg,
		Stdout:    in.stdout,
		Logger:    slog.New(slog.NewTextHandler(in.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Passwords: manage.PasswordConfig{Memory: 64, Time: 1, Threads: 1},
	}
	if err := in.Main.Open(t.Context()); err != nil {
		l.Close()
		in.Main.Close(context.Background())
		t.Fatalf("open local mode: %v", err)
	}
	go func() { in.served <- in.Main.Serve(l) }()
	t.Cleanup(func() { in.close(t) })

	code, err := os.ReadFile(filepath.Join(in.Data, "setup-code"))
	if err != nil {
		t.Fatalf("read setup code: %v", err)
	}
	in.SetupCode = strings.TrimSpace(string(code))
	Eventually(t, 10*time.Second, "GET /healthz answers 200", func() bool {
		res, err := in.client.Get(in.URL + "/healthz")
		if err != nil {
			return false
		}
		res.Body.Close()
		return res.StatusCode == http.StatusOK
	})
	return in
}

// loopback returns the host:port to reach a listener at: the loopback
// address of its family when it listens on all addresses.
func loopback(a *net.TCPAddr) string {
	ip := a.IP
	switch {
	case ip.Equal(net.IPv6unspecified):
		ip = net.IPv6loopback
	case ip.IsUnspecified():
		ip = net.IPv4(127, 0, 0, 1)
	}
	return net.JoinHostPort(ip.String(), strconv.Itoa(a.Port))
}

// close drains and closes the instance, then runs the canary check, then
// shows the log if the test failed.
func (in *Instance) close(t testing.TB) {
	in.mu.Lock()
	st := in.store
	in.store = nil
	in.mu.Unlock()
	if st != nil {
		st.Close()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	if err := in.Main.Close(ctx); err != nil {
		t.Errorf("close local mode: %v", err)
	}
	select {
	case err := <-in.served:
		if !errors.Is(err, http.ErrServerClosed) {
			t.Errorf("serve: %v", err)
		}
	case <-ctx.Done():
		t.Errorf("serve did not return after close")
	}
	in.client.CloseIdleConnections()
	for _, leak := range in.Leaks(t) {
		t.Errorf("canary (SECURITY T27): %s", leak)
	}
	if t.Failed() {
		t.Logf("kve log:\n%s", in.redact(in.logs.String()))
	}
}

// Logs returns everything the instance has logged so far.
func (in *Instance) Logs() string { return in.logs.String() }

// Client returns the HTTP client every helper uses: each response it
// receives is kept for the canary check.
func (in *Instance) Client() *http.Client { return in.client }

// Store opens a second handle on the instance's SQLite file, as an operator's
// tool would, for what the management API does not offer: reading usage
// records, or moving a token's expiry into the past. It closes before the
// instance does.
func (in *Instance) Store(t testing.TB) *sqlite.Store {
	t.Helper()
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.store == nil {
		st, err := sqlite.Open(context.Background(), filepath.Join(in.Data, "kve.db"))
		if err != nil {
			t.Fatalf("open store: %v", err)
		}
		in.store = st
	}
	return in.store
}

// ExpireToken moves a token's expiry a minute into the past, through the
// store as the passage of time would (local mode has no clock a test can
// move, and a token lives at least a minute).
func (in *Instance) ExpireToken(t testing.TB, orgID, tokenID string) {
	t.Helper()
	now := time.Now()
	ev := kve.Actor{UserID: "system", Email: "kvetest"}.Event(orgID, "token.update", tokenID, now).With("fields", "expires_at")
	_, err := in.Store(t).UpdateToken(t.Context(), orgID, tokenID, func(tok *kve.Token) error {
		tok.ExpiresAt = now.Add(-time.Minute).UTC()
		return nil
	}, ev)
	if err != nil {
		t.Fatalf("expire token: %v", err)
	}
}

// Eventually polls cond until it holds, failing the test when deadline
// passes first. Asynchronous effects (a usage batch written, an upstream
// seeing a cancellation) are waited for this way, never with a fixed sleep.
func Eventually(t testing.TB, deadline time.Duration, what string, cond func() bool) {
	t.Helper()
	end := time.Now().Add(deadline)
	for wait := time.Millisecond; ; wait = min(2*wait, 50*time.Millisecond) {
		if cond() {
			return
		}
		if time.Now().After(end) {
			t.Fatalf("after %v: still not %s", deadline, what)
		}
		time.Sleep(wait)
	}
}

// Buffer collects output from concurrent writers.
type Buffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

// Write implements io.Writer.
func (b *Buffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// String returns everything written so far.
func (b *Buffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
