package manage

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"fmt"
	"net/mail"
	"strings"
	"sync"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/keyvault-edge/kve/shared/kve"
)

// Principal is who performs a management operation: the signed-in user (the
// embedded Actor is copied into audit events) and the credential they used.
// Authenticate makes one per request; it remembers the memberships it has
// looked up, so the API's route check and the operation share one read.
type Principal struct {
	kve.Actor
	Name      string // the user's display name
	SessionID string
	Kind      kve.SessionKind
	OrgID     string // set when the credential is limited to one organization

	seen *memberships
}

// memberships caches, for one request, what Member found per org reference.
type memberships struct {
	mu sync.Mutex
	m  map[string]kve.Membership
}

// Credential is a freshly issued management credential. Value is shown to its
// owner once; only Session (which holds the value's hash) is stored.
type Credential struct {
	Value   kve.Secret
	Session kve.Session
}

// SetupInput creates the first user with the one-time setup code.
type SetupInput struct {
	Code     kve.Secret `json:"code"`
	Email    string     `json:"email"`
	Name     string     `json:"name"`
	Password kve.Secret `json:"password"`
}

// LoginInput signs a user in.
type LoginInput struct {
	Email    string     `json:"email"`
	Password kve.Secret `json:"password"`
}

var (
	errSignIn     = kve.Errorf(kve.KindUnauthenticated, "invalid_credentials", "email or password is wrong")
	errCredential = kve.Errorf(kve.KindUnauthenticated, "unauthenticated", "sign in first: the credential is missing, not valid or expired")
)

// Setup creates the first user and answers with an API token for them. It
// works once: the code is useless afterwards (KindConflict).
func (s *Service) Setup(ctx context.Context, in SetupInput, ip string) (kve.User, Credential, error) {
	now := s.now()
	tries, d := attempt(now, s.clients.of(ip))
	if d > 0 {
		return kve.User{}, Credential{}, rateLimited(d)
	}
	done, err := s.store.SetupDone(ctx)
	if err != nil {
		return kve.User{}, Credential{}, fmt.Errorf("check setup: %w", err)
	}
	if done {
		return kve.User{}, Credential{}, errSetupDone
	}
	if s.setupCode == nil {
		return kve.User{}, Credential{}, kve.Errorf(kve.KindUnavailable, "setup_unavailable", "setup is not configured on this server")
	}
	code, err := s.setupCode(ctx)
	if err != nil {
		return kve.User{}, Credential{}, fmt.Errorf("read setup code: %w", err)
	}
	// Digests first, so that the comparison takes the same time whatever the
	// lengths.
	want, got := sha256.Sum256([]byte(code.Reveal())), sha256.Sum256([]byte(in.Code.Reveal()))
	if code == "" || subtle.ConstantTimeCompare(want[:], got[:]) != 1 {
		return kve.User{}, Credential{}, kve.Errorf(kve.KindUnauthenticated, "invalid_setup_code", "the setup code is wrong")
	}
	tries.forgive(now)
	u, err := s.newUser(ctx, in.Email, in.Name, in.Password, now)
	if err != nil {
		return kve.User{}, Credential{}, err
	}
	c := s.newCredential(u.ID, kve.SessionAPI, "setup", now)
	if err := s.store.CompleteSetup(ctx, u, c.Session); err != nil {
		if kve.KindOf(err) == kve.KindConflict {
			return kve.User{}, Credential{}, errSetupDone
		}
		return kve.User{}, Credential{}, fmt.Errorf("complete setup: %w", err)
	}
	s.log.InfoContext(ctx, "setup_complete", "user_id", u.ID)
	return u, c, nil
}

var errSetupDone = kve.Errorf(kve.KindConflict, "setup_done", "setup is already done")

// SetupDone reports whether the first user exists: before, the dashboard
// sends visitors to its setup page rather than to a login nobody can pass.
func (s *Service) SetupDone(ctx context.Context) (bool, error) {
	done, err := s.store.SetupDone(ctx)
	if err != nil {
		return false, fmt.Errorf("check setup: %w", err)
	}
	return done, nil
}

// newUser validates and builds a user with a hashed password.
func (s *Service) newUser(ctx context.Context, email, name string, password kve.Secret, now time.Time) (kve.User, error) {
	email, err := checkEmail(email)
	if err != nil {
		return kve.User{}, err
	}
	name, err = checkLabel("name", name, 100)
	if err != nil {
		return kve.User{}, err
	}
	if err := checkNewPassword(password); err != nil {
		return kve.User{}, err
	}
	hash, err := s.hasher.hash(ctx, password)
	if err != nil {
		return kve.User{}, err
	}
	return kve.User{ID: kve.NewID(kve.PrefixUser, now), Email: email, Name: name, Password: hash, CreatedAt: now.UTC()}, nil
}

// Login checks an email and password and issues a credential of the given
// kind: a kvm_ API token, or a browser session for the dashboard. Unknown
// emails and wrong passwords get the same answer after the same work; failures
// are throttled per account and per client IP.
func (s *Service) Login(ctx context.Context, in LoginInput, ip string, kind kve.SessionKind) (Credential, error) {
	now := s.now()
	email := kve.CanonicalEmail(in.Email)
	tries, d := attempt(now, s.clients.of(ip), s.accounts.of(email))
	if d > 0 {
		return Credential{}, rateLimited(d)
	}
	fail := func() (Credential, error) { return Credential{}, errSignIn } // the attempts stand
	if email == "" || len(in.Password) > maxPasswordBytes {
		return fail()
	}
	u, err := s.store.UserByEmail(ctx, email)
	known := err == nil
	if err != nil && kve.KindOf(err) != kve.KindNotFound {
		return Credential{}, fmt.Errorf("look up user: %w", err)
	}
	hash := s.hasher.dummy
	if known {
		hash = u.Password
	}
	ok, err := s.hasher.verify(ctx, hash, in.Password)
	if err != nil {
		return Credential{}, err
	}
	if !ok || !known {
		return fail()
	}
	tries.forgive(now)
	c := s.newCredential(u.ID, kind, "login", now)
	if err := s.store.CreateSession(ctx, c.Session); err != nil {
		return Credential{}, fmt.Errorf("create session: %w", err)
	}
	return c, nil
}

func (s *Service) newCredential(userID string, kind kve.SessionKind, name string, now time.Time) Credential {
	value, ttl := kve.NewSessionID(), s.maxAge
	if kind == kve.SessionAPI {
		value, ttl = kve.NewAPIToken(), s.apiTTL
	}
	now = now.UTC()
	return Credential{Value: value, Session: kve.Session{
		ID: kve.NewID(kve.PrefixSession, now), UserID: userID, Kind: kind, Name: name,
		Hash: s.keyring.Hash(value.Reveal()), CreatedAt: now, ExpiresAt: now.Add(ttl), LastSeen: now,
	}}
}

// touchEvery limits how often a session's last-seen time is written: often
// enough for the idle limit, rarely enough that most requests write nothing.
const touchEvery = time.Minute

// Authenticate turns a presented credential (a bearer kvm_ token, or a
// dashboard session cookie value) into a Principal. Unknown, expired and idle
// credentials, and credentials of the other kind, are all KindUnauthenticated.
func (s *Service) Authenticate(ctx context.Context, kind kve.SessionKind, value kve.Secret, ip string) (Principal, error) {
	v := value.Reveal()
	switch {
	case kind == kve.SessionAPI && !kve.LooksLikeAPIToken(v),
		kind == kve.SessionBrowser && (len(v) < 32 || len(v) > 64):
		return Principal{}, errCredential // malformed: no lookup
	}
	sess, err := s.store.SessionByHash(ctx, s.keyring.Hash(v))
	if err != nil {
		if kve.KindOf(err) == kve.KindNotFound {
			return Principal{}, errCredential
		}
		return Principal{}, fmt.Errorf("look up session: %w", err)
	}
	now := s.now()
	last := sess.LastSeen
	if last.IsZero() {
		last = sess.CreatedAt
	}
	if sess.Kind != kind ||
		!sess.ExpiresAt.IsZero() && !now.Before(sess.ExpiresAt) ||
		kind == kve.SessionBrowser && !now.Before(last.Add(s.idle)) {
		return Principal{}, errCredential
	}
	if now.Sub(last) >= touchEvery {
		if err := s.store.TouchSession(ctx, sess.ID, now.UTC()); err != nil {
			s.log.WarnContext(ctx, "touch_session_failed", "session_id", sess.ID, "err", err)
		}
	}
	u, err := s.store.User(ctx, sess.UserID)
	if err != nil {
		if kve.KindOf(err) == kve.KindNotFound {
			return Principal{}, errCredential
		}
		return Principal{}, fmt.Errorf("look up user: %w", err)
	}
	return Principal{
		Actor:     kve.Actor{UserID: u.ID, Email: u.Email, IP: ip},
		Name:      u.Name,
		SessionID: sess.ID, Kind: sess.Kind, OrgID: sess.OrgID,
		seen: &memberships{m: map[string]kve.Membership{}},
	}, nil
}

// checkEmail canonicalizes and validates a bare address (no display name).
func checkEmail(s string) (string, error) {
	email := kve.CanonicalEmail(s)
	a, err := mail.ParseAddress(email)
	if err != nil || a.Address != email || len(email) > 254 || a.Name != "" {
		return "", kve.Errorf(kve.KindInvalid, "invalid_email", "email must be a plain address like ada@example.com")
	}
	return email, nil
}

// checkLabel trims a human-readable name and checks it: present, at most
// limit bytes, valid UTF-8 without control characters (it ends up in HTML,
// mail and logs).
func checkLabel(field, s string, limit int) (string, error) {
	s = strings.TrimSpace(s)
	if s == "" || len(s) > limit || !utf8.ValidString(s) || strings.ContainsFunc(s, unicode.IsControl) {
		return "", kve.Errorf(kve.KindInvalid, "invalid_"+field, "%s must be 1 to %d characters of text", field, limit)
	}
	return s, nil
}
