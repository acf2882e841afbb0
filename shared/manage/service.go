// Package manage holds the management operations of kve: setup, sign-in,
// accounts, organizations, members and invites, keys, tokens, .env files
// and the audit log. The JSON API (shared/api) and
// the dashboard both call it, so validation, authorization by role (DESIGN §8)
// and the audit event of every change live here, once. It knows nothing of
// HTTP.
package manage

import (
	"context"
	"log/slog"
	"strings"
	"time"

	"github.com/keyvault-edge/kve/shared/alerts"
	"github.com/keyvault-edge/kve/shared/kve"
	"github.com/keyvault-edge/kve/shared/mail"
	"github.com/keyvault-edge/kve/shared/secrets"
	"github.com/keyvault-edge/kve/shared/store"
)

// Config tunes a Service. Zero values take the defaults noted on each field.
type Config struct {
	Now    func() time.Time // default time.Now
	Logger *slog.Logger     // default slog.Default()

	// SetupCode returns the one-time setup code (printed by local mode, kept
	// in Secrets Manager on AWS). Nil means setup is not possible.
	SetupCode func(ctx context.Context) (kve.Secret, error)

	// AllowInsecureUpstreams lets a key name an http:// upstream (local mode
	// against a local server). Whether a host may be private is decided when
	// the proxy dials, not here.
	AllowInsecureUpstreams bool

	// PublicURL (the dashboard's and API's base URL) and Domain (of host-form
	// routing) are for the links kve hands out: invite links, and the base
	// URLs of .env files. A request's Host never is.
	PublicURL string
	Domain    string

	// InviteTTL is how long an invite link works: default 72 hours, at most
	// 7 days.
	InviteTTL time.Duration

	Passwords PasswordConfig // argon2id cost; tests lower it

	APITokenTTL time.Duration // absolute lifetime of a kvm_ token, default 90 days
	SessionIdle time.Duration // browser session idle limit, default 30 minutes
	SessionMax  time.Duration // browser session absolute limit, default 12 hours

	// Breach alerts (alerts.go): ScanningKeys verify secret-scanning
	// reports (nil: the endpoint refuses them); LeakSuspendEnvs are the
	// environments whose tokens a reported leak suspends (nil: stg, prd).
	ScanningKeys    *alerts.ScanningKeys
	LeakSuspendEnvs []kve.Env
}

// Deps are the backends a Service works on.
type Deps struct {
	Store   store.Store
	Secrets secrets.Store
	Keyring *kve.Keyring
	// Mail sends invites; nil means no mail is configured, and the inviter
	// gets the invite link in the answer to pass on.
	Mail mail.Sender
	// Alerts is the breach alert channel (SNS, or local mode's delivery);
	// nil: no subscriptions or test alerts, incidents are still recorded.
	Alerts alerts.Channel
}

// Service performs management operations. It is safe for concurrent use.
type Service struct {
	now       func() time.Time
	log       *slog.Logger
	setupCode func(ctx context.Context) (kve.Secret, error)
	insecure  bool
	publicURL string
	domain    string
	inviteTTL time.Duration

	apiTTL, idle, maxAge time.Duration

	store   store.Store
	secrets secrets.Store
	keyring *kve.Keyring
	mail    mail.Sender

	hasher   *hasher
	accounts *throttle // failed sign-ins per account
	clients  *throttle // failed sign-ins and setup codes per client IP
	probes   *throttle // cross-tenant audit events per (user, org)

	alerts      alerts.Channel
	responder   *alerts.Responder
	scanning    *alerts.ScanningKeys
	leakSuspend map[kve.Env]bool
}

// Invite lifetimes (SECURITY G19).
const (
	defaultInviteTTL = 72 * time.Hour
	maxInviteTTL     = 7 * 24 * time.Hour
)

// Throttling of failed sign-ins (SECURITY G17).
const (
	accountFailures = 10
	clientFailures  = 100
	failureWindow   = 15 * time.Minute
)

// New returns a Service over deps.
func New(cfg Config, deps Deps) *Service {
	s := &Service{
		now:       cfg.Now,
		log:       cfg.Logger,
		setupCode: cfg.SetupCode,
		insecure:  cfg.AllowInsecureUpstreams,
		publicURL: strings.TrimRight(cfg.PublicURL, "/"),
		domain:    strings.ToLower(cfg.Domain),
		inviteTTL: min(orDefault(cfg.InviteTTL, defaultInviteTTL), maxInviteTTL),
		apiTTL:    orDefault(cfg.APITokenTTL, 90*24*time.Hour),
		idle:      orDefault(cfg.SessionIdle, 30*time.Minute),
		maxAge:    orDefault(cfg.SessionMax, 12*time.Hour),
		store:     deps.Store,
		secrets:   deps.Secrets,
		keyring:   deps.Keyring,
		mail:      deps.Mail,
		hasher:    newHasher(cfg.Passwords),
		accounts:  newThrottle(accountFailures, failureWindow),
		clients:   newThrottle(clientFailures, failureWindow),
		probes:    newThrottle(1, time.Minute),
	}
	if s.now == nil {
		s.now = time.Now
	}
	if s.log == nil {
		s.log = slog.Default()
	}
	s.initAlerts(cfg, deps)
	return s
}

func orDefault(d, def time.Duration) time.Duration {
	if d <= 0 {
		return def
	}
	return d
}
