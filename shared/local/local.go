// Package local runs kve's local mode: the proxy, the management API and the
// dashboard in one net/http server, on embedded backends kept in a data
// directory (a SQLite store, a sealed secrets file under a master key). It is
// how a newcomer tries kve, how the dashboard is browser-tested, and how a
// small team runs kve on one machine. No AWS account, no other service.
package local

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"time"

	"github.com/keyvault-edge/kve/shared/alerts"
	"github.com/keyvault-edge/kve/shared/api"
	"github.com/keyvault-edge/kve/shared/console"
	"github.com/keyvault-edge/kve/shared/kve"
	"github.com/keyvault-edge/kve/shared/limits"
	"github.com/keyvault-edge/kve/shared/mail"
	"github.com/keyvault-edge/kve/shared/manage"
	"github.com/keyvault-edge/kve/shared/proxy"
	"github.com/keyvault-edge/kve/shared/secrets"
	"github.com/keyvault-edge/kve/shared/store/sqlite"
	"github.com/keyvault-edge/kve/shared/usage"
)

// Main is a local-mode process: tests run it whole, functions/local runs it
// until a signal.
type Main struct {
	Config Config
	Stdout io.Writer // where the setup code is printed
	Logger *slog.Logger

	// Passwords overrides the argon2id cost (tests lower it).
	Passwords manage.PasswordConfig

	store    *sqlite.Store
	secrets  *secrets.Local
	meter    *usage.Local
	alerts   *alerts.Local        // breach alert channel (alerts.go)
	detector *alerts.Recorder     // breach detection in front of the meter
	scanning *alerts.ScanningKeys // nil: no secret-scanning endpoint
	handler  http.Handler
	server   *http.Server
	ready    atomic.Bool
	addr     net.Addr
}

// Open prepares the data directory and the backends and builds the handler.
func (m *Main) Open(ctx context.Context) error {
	c := m.Config
	if m.Logger == nil {
		m.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: c.LogLevel}))
	}
	if m.Stdout == nil {
		m.Stdout = os.Stdout
	}
	if err := prepareDataDir(c.Data); err != nil {
		return err
	}
	var err error
	if m.secrets, err = secrets.OpenLocal(c.Data); err != nil {
		return fmt.Errorf("open secrets: %w", err)
	}
	if err := m.secrets.EnsureSystem(ctx); err != nil {
		return fmt.Errorf("create server secrets: %w", err)
	}
	keyring, err := secrets.Keyring(ctx, m.secrets, secrets.PepperName, secrets.SealName)
	if err != nil {
		return fmt.Errorf("load keyring: %w", err)
	}
	if m.store, err = sqlite.Open(ctx, filepath.Join(c.Data, "kve.db")); err != nil {
		return fmt.Errorf("open store: %w", err)
	}
	code, err := m.setupCode(ctx)
	if err != nil {
		return err
	}

	// Usage: budgets and tokens per minute in memory (one process), every
	// hold and record spooled (a memory-mapped file the kernel keeps)
	// before the store has it, so a killed process loses none (package
	// usage).
	if m.meter, err = usage.OpenLocal(ctx, m.store, usage.LocalConfig{
		Spool: filepath.Join(c.Data, "usage-spool"), Logger: m.Logger,
	}); err != nil {
		return fmt.Errorf("open usage meter: %w", err)
	}
	deps := proxy.Deps{
		Tokens:   m.store,
		Keys:     secrets.NewCache(m.secrets, 5*time.Minute, time.Now),
		Hash:     keyring.Hash,
		Limiter:  limits.NewMemory(),
		Recorder: m.meter,
		Meter:    m.meter,
	}
	if c.NoMetering {
		deps.Limiter, deps.Recorder, deps.Meter = nil, unmetered{}, nil
	}
	if err := m.openAlerts(c, &deps); err != nil {
		return err
	}
	px := proxy.New(proxy.Config{
		Domain:       c.Domain,
		MaxBodyBytes: c.MaxBodyBytes,
		AllowPrivate: c.AllowPrivate,
		Timeouts:     c.Timeouts,
		Logger:       m.Logger,
	}, deps)
	var mailer mail.Sender // nil: no mail, invite links go to the inviter
	if c.SMTP != "" {
		if mailer, err = mail.NewSMTP(c.SMTP.Reveal(), c.MailFrom); err != nil {
			return err
		}
	}
	svc := manage.New(manage.Config{
		Logger:                 m.Logger,
		SetupCode:              code.read,
		AllowInsecureUpstreams: len(c.AllowPrivate) > 0,
		PublicURL:              c.PublicURL,
		Domain:                 c.Domain,
		Passwords:              m.Passwords,
		ScanningKeys:           m.scanning,
		LeakSuspendEnvs:        c.LeakSuspendEnvs,
	}, manage.Deps{Store: m.store, Secrets: m.secrets, Keyring: keyring, Mail: mailer, Alerts: m.alerts})
	// Local mode serves plain HTTP, where a __Host- cookie cannot be set:
	// the API accepts the dashboard's plain-HTTP cookie name.
	apiHandler := api.New(svc, api.Config{Logger: m.Logger, SessionCookie: console.PlainCookie})
	consoleHandler := console.New(svc, console.Config{Logger: m.Logger, PublicURL: c.PublicURL})
	m.handler = code.removeOnSetup(m.routes(px, apiHandler, consoleHandler))
	m.server = &http.Server{
		Handler: m.handler,
		// Slow clients cannot hold connections open before sending a
		// request (SECURITY T54); there is no WriteTimeout, which would cut
		// long generations — the proxy's stream idle deadline bounds those.
		ReadHeaderTimeout: c.ReadHeaderTimeout,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(m.Logger.Handler(), slog.LevelDebug),
	}
	return nil
}

// routes splits requests between kve's own routes (the API, the dashboard's
// pages) and the proxy, which has every other path. Host-form requests
// (<provider>.<domain>) always go to the proxy.
func (m *Main) routes(px, apiHandler, consoleHandler http.Handler) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/api/", apiHandler)
	mux.Handle(alerts.LocalPath, m.alerts.Handler()) // local mode's stand-in for SNS's URLs
	for _, p := range console.Paths() {
		mux.Handle(p, consoleHandler)
	}
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		if !m.ready.Load() {
			http.Error(w, "starting", http.StatusServiceUnavailable)
			return
		}
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		io.WriteString(w, "ok\n")
	})
	mux.Handle("/", px)
	domain := "." + m.Config.Domain
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if m.Config.Domain != "" && strings.HasSuffix(hostOnly(r.Host), domain) {
			px.ServeHTTP(w, r)
			return
		}
		mux.ServeHTTP(w, r)
	})
}

func hostOnly(hostport string) string {
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		hostport = h
	}
	return strings.TrimSuffix(strings.ToLower(hostport), ".")
}

// Handler returns the combined handler (after Open).
func (m *Main) Handler() http.Handler { return m.handler }

// Serve serves on l until Close. It returns http.ErrServerClosed after Close.
func (m *Main) Serve(l net.Listener) error {
	m.addr = l.Addr()
	m.ready.Store(true)
	return m.server.Serve(l)
}

// Addr returns the address Serve listens on.
func (m *Main) Addr() net.Addr { return m.addr }

// Close drains open requests (streams included) up to ctx's deadline, then
// flushes usage records and closes the backends.
func (m *Main) Close(ctx context.Context) error {
	m.ready.Store(false)
	var errs []error
	if m.server != nil {
		if err := m.server.Shutdown(ctx); err != nil {
			errs = append(errs, fmt.Errorf("drain: %w", err))
			m.server.Close()
		}
	}
	m.closeAlerts() // what is queued is examined; pending deliveries wait in the outbox
	if m.meter != nil {
		errs = append(errs, m.meter.Close())
	}
	if m.store != nil {
		errs = append(errs, m.store.Close())
	}
	return errors.Join(errs...)
}

// Run opens, listens on Config.Listen and serves until ctx is done, then
// shuts down gracefully.
func (m *Main) Run(ctx context.Context) error {
	if err := m.Open(ctx); err != nil {
		return err
	}
	l, err := net.Listen("tcp", m.Config.Listen)
	if err != nil {
		m.Close(context.Background())
		return err
	}
	m.Logger.Info("kve local mode", "listen", l.Addr().String(), "data", m.Config.Data,
		"public_url", m.Config.PublicURL)
	errc := make(chan error, 1)
	go func() { errc <- m.Serve(l) }()
	select {
	case err := <-errc:
		m.Close(context.Background())
		return err
	case <-ctx.Done():
	}
	drain, err := time.ParseDuration(m.Config.DrainTimeout)
	if err != nil {
		drain = 60 * time.Second
	}
	sctx, cancel := context.WithTimeout(context.Background(), drain)
	defer cancel()
	return m.Close(sctx)
}

// prepareDataDir creates the data directory (0700) with a .gitignore that
// keeps it out of any repository it sits in.
func prepareDataDir(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("create data directory: %w", err)
	}
	ignore := filepath.Join(dir, ".gitignore")
	if _, err := os.Stat(ignore); errors.Is(err, os.ErrNotExist) {
		if err := os.WriteFile(ignore, []byte("# kve local data: never commit\n*\n"), 0o600); err != nil {
			return fmt.Errorf("write %s: %w", ignore, err)
		}
	}
	return nil
}

// unmetered is the recorder under breach detection when metering is off
// (Config.NoMetering): records are examined, not kept.
type unmetered struct{}

func (unmetered) Record(context.Context, *kve.Usage) {}
