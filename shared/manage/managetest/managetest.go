// Package managetest runs a manage.Service on the embedded backends (the
// SQLite store and the local sealed secret file) in a test's temporary
// directory, with a clock the test moves and a log it can read, for the tests
// of manage, api and the dashboard.
package managetest

import (
	"bytes"
	"context"
	"log/slog"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/keyvault-edge/kve/shared/alerts"
	"github.com/keyvault-edge/kve/shared/kve"
	"github.com/keyvault-edge/kve/shared/manage"
	"github.com/keyvault-edge/kve/shared/proxy"
	"github.com/keyvault-edge/kve/shared/secrets"
	"github.com/keyvault-edge/kve/shared/store"
	"github.com/keyvault-edge/kve/shared/store/sqlite"
)

// SetupCode is the one-time setup code of every Env.
const SetupCode kve.Secret = "kve-setup-FAKE-0123456789"

// Start is where every Env's clock starts: whole milliseconds, because the
// SQLite store keeps no finer time.
var Start = time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)

// Env is a Service on real embedded backends.
type Env struct {
	Service *manage.Service
	Config  manage.Config
	Store   *sqlite.Store
	Secrets *secrets.Local
	Keyring *kve.Keyring
	Clock   *Clock
	Logs    *Logs  // everything the Service logged, as JSON lines
	Dir     string // where the backends keep their files (kve.db, secrets)
	// Alerts is local mode's alert channel on the store. Its webhooks
	// reach public addresses only: a test that delivers builds its own.
	Alerts *alerts.Local
}

// New opens the backends in t.TempDir() and builds a Service on them, with a
// cheap argon2 cost (the production cost is slow under -race). configure may
// change the configuration before the Service is built.
func New(t testing.TB, configure ...func(*manage.Config)) *Env {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	e := &Env{Clock: &Clock{t: Start}, Logs: &Logs{}, Dir: dir}
	st, err := sqlite.Open(ctx, filepath.Join(dir, "kve.db"))
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	t.Cleanup(func() { st.Close() })
	sec, err := secrets.OpenLocal(filepath.Join(dir, "secrets"))
	if err != nil {
		t.Fatalf("open secrets: %v", err)
	}
	if err := sec.EnsureSystem(ctx); err != nil {
		t.Fatalf("create server secrets: %v", err)
	}
	kr, err := secrets.Keyring(ctx, sec, secrets.PepperName, secrets.SealName)
	if err != nil {
		t.Fatalf("build keyring: %v", err)
	}
	e.Store, e.Secrets, e.Keyring = st, sec, kr
	e.Config = manage.Config{
		Now:       e.Clock.Now,
		Logger:    e.Logs.Logger(),
		SetupCode: func(context.Context) (kve.Secret, error) { return SetupCode, nil },
		PublicURL: "https://kve.example.com",
		Passwords: manage.PasswordConfig{Memory: 256, Time: 1, Threads: 1},
	}
	for _, f := range configure {
		f(&e.Config)
	}
	e.Alerts, err = alerts.NewLocal(st, alerts.LocalConfig{BaseURL: e.Config.PublicURL,
		Transport: proxy.NewTransport(proxy.Timeouts{}, nil), Now: e.Clock.Now, Logger: e.Config.Logger})
	if err != nil {
		t.Fatalf("open alerts: %v", err)
	}
	t.Cleanup(e.Alerts.Close)
	e.Service = manage.New(e.Config, manage.Deps{Store: st, Secrets: sec, Keyring: kr, Alerts: e.Alerts})
	return e
}

// User is a user with a working kvm_ API token.
type User struct {
	kve.User
	Token kve.Secret
}

// AddUser creates a user without a password (so nobody can sign in as them
// but through the API token), and an API token for them. The user belongs
// to no organization yet.
func (e *Env) AddUser(t testing.TB, email, name string) User {
	t.Helper()
	now := e.Clock.Now()
	u := kve.User{ID: kve.NewID(kve.PrefixUser, now), Email: email, Name: name, CreatedAt: now}
	if err := e.Store.CreateUser(context.Background(), u); err != nil {
		t.Fatalf("create user %s: %v", email, err)
	}
	return User{User: u, Token: e.AddToken(t, u.ID)}
}

// AddToken issues another kvm_ API token for a user, valid for 90 days.
func (e *Env) AddToken(t testing.TB, userID string) kve.Secret {
	t.Helper()
	now := e.Clock.Now()
	v := kve.NewAPIToken()
	s := kve.Session{ID: kve.NewID(kve.PrefixSession, now), UserID: userID, Kind: kve.SessionAPI, Name: "test",
		Hash: e.Keyring.Hash(v.Reveal()), CreatedAt: now, ExpiresAt: now.Add(90 * 24 * time.Hour), LastSeen: now}
	if err := e.Store.CreateSession(context.Background(), s); err != nil {
		t.Fatalf("create session: %v", err)
	}
	return v
}

// AddMember makes u a member of orgID with role the way people join: an
// invite for u's address, which u accepts. Both go straight to the store,
// so the organization's audit log gets invite.create (by "managetest") and
// member.join (by u).
func (e *Env) AddMember(t testing.TB, orgID string, u User, role kve.Role) {
	t.Helper()
	ctx := context.Background()
	now := e.Clock.Now()
	code := kve.NewAPIToken() // any unguessable value does for a code
	inv := store.Invite{ID: kve.NewID(kve.PrefixInvite, now), OrgID: orgID, Email: u.Email, Role: role,
		Hash: e.Keyring.Hash(code.Reveal()), InvitedBy: "managetest", CreatedAt: now, ExpiresAt: now.Add(time.Hour)}
	system := kve.Actor{UserID: "managetest", Email: "managetest"}
	if err := e.Store.CreateInvite(ctx, inv, system.Event(orgID, "invite.create", inv.ID, now)); err != nil {
		t.Fatalf("invite %s: %v", u.Email, err)
	}
	_, err := e.Store.AcceptInvite(ctx, store.Acceptance{Hash: inv.Hash, At: now, User: u.User,
		Event: kve.Actor{UserID: u.ID, Email: u.Email}.Event(orgID, "member.join", u.ID, now)})
	if err != nil {
		t.Fatalf("add %s to %s: %v", u.Email, orgID, err)
	}
}

// Principal authenticates u's API token from ip, as the API would.
func (e *Env) Principal(t testing.TB, u User, ip string) manage.Principal {
	t.Helper()
	p, err := e.Service.Authenticate(context.Background(), kve.SessionAPI, u.Token, ip)
	if err != nil {
		t.Fatalf("authenticate %s: %v", u.Email, err)
	}
	return p
}

// Clock is a clock that moves only when told.
type Clock struct {
	mu sync.Mutex
	t  time.Time
}

// Now returns the clock's time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

// Add moves the clock forward by d.
func (c *Clock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// Logs collects log output from concurrent writers.
type Logs struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

// Logger returns a debug-level JSON logger writing to l.
func (l *Logs) Logger() *slog.Logger {
	return slog.New(slog.NewJSONHandler(l, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// Write implements io.Writer.
func (l *Logs) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

// String returns everything logged so far.
func (l *Logs) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// Fixture values: obviously fake, so that a test can grep every output for
// them.
const (
	OwnerEmail               = "owner@example.com"
	OwnerPassword kve.Secret = "owner-password-FAKE-1"
	OpenAIKey     kve.Secret = "sk-test-FAKE-openai-0123456789abcdef"
)

// Setup runs the one-time setup as the API would and returns the first user
// (OwnerEmail, OwnerPassword) with the API token setup gave them.
func (e *Env) Setup(t testing.TB) User {
	t.Helper()
	u, c, err := e.Service.Setup(context.Background(), manage.SetupInput{
		Code: SetupCode, Email: OwnerEmail, Name: "Olga Owner", Password: OwnerPassword,
	}, "192.0.2.1")
	if err != nil {
		t.Fatalf("setup: %v", err)
	}
	return User{User: u, Token: c.Value}
}

// Team is an organization, "Acme Labs", with its Owner (the setup user), an
// Admin, two Developers, and an openai key named "main"; plus an Outsider who
// owns another organization and is no member of this one.
type Team struct {
	*Env
	Org                               kve.Org
	Owner, Admin, Dev, Dev2, Outsider User
}

// NewTeam builds a Team on a new Env.
func NewTeam(t testing.TB, configure ...func(*manage.Config)) *Team {
	t.Helper()
	ctx := context.Background()
	e := New(t, configure...)
	tm := &Team{Env: e, Owner: e.Setup(t)}
	owner := e.Principal(t, tm.Owner, "192.0.2.1")
	org, err := e.Service.CreateOrg(ctx, owner, manage.OrgInput{Name: "Acme Labs"})
	if err != nil {
		t.Fatalf("create org: %v", err)
	}
	tm.Org = org
	tm.Admin = e.AddUser(t, "admin@example.com", "Ada Admin")
	tm.Dev = e.AddUser(t, "dev@example.com", "Dev One")
	tm.Dev2 = e.AddUser(t, "dev2@example.com", "Dev Two")
	tm.Outsider = e.AddUser(t, "outsider@example.com", "Otto Outsider")
	e.AddMember(t, org.ID, tm.Admin, kve.RoleAdmin)
	e.AddMember(t, org.ID, tm.Dev, kve.RoleDeveloper)
	e.AddMember(t, org.ID, tm.Dev2, kve.RoleDeveloper)
	if _, err := e.Service.CreateOrg(ctx, e.Principal(t, tm.Outsider, "192.0.2.5"), manage.OrgInput{Name: "Other Corp"}); err != nil {
		t.Fatalf("create other org: %v", err)
	}
	if _, err := e.Service.CreateKey(ctx, org.Slug, owner, manage.KeyInput{Name: "main", Provider: "openai", Secret: OpenAIKey}); err != nil {
		t.Fatalf("create key: %v", err)
	}
	return tm
}
