package storetest

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"fmt"
	"testing"
	"time"

	"github.com/keyvault-edge/kve/shared/kve"
	"github.com/keyvault-edge/kve/shared/store"
)

// fixture builds the objects a subtest needs, on a fixed clock.
type fixture struct {
	t   *testing.T
	ctx context.Context
	s   store.Store
	now time.Time // every fixture time derives from it, at whole milliseconds
	seq int       // makes names and emails unique within a subtest
}

func newFixture(t *testing.T, s store.Store) *fixture {
	return &fixture{t: t, ctx: t.Context(), s: s, now: time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)}
}

// at is the fixed clock plus d.
func (f *fixture) at(d time.Duration) time.Time { return f.now.Add(d) }

func (f *fixture) next() int { f.seq++; return f.seq }

// actor is who performs the suite's management actions.
func (f *fixture) actor() kve.Actor {
	return kve.Actor{UserID: "usr_suiteactor00000000000000000", Email: "actor@example.test", IP: "192.0.2.10"}
}

// event is an audit entry for a mutation in org, with a fresh id.
func (f *fixture) event(orgID, action, target string) kve.Event {
	return f.actor().Event(orgID, action, target, f.now).With("source", "storetest")
}

// newUser returns a user that is not stored yet.
func (f *fixture) newUser(name string) kve.User {
	n := f.next()
	return kve.User{
		ID:        kve.NewID(kve.PrefixUser, f.now),
		Email:     fmt.Sprintf("%s-%d@example.test", name, n),
		Name:      name,
		Password:  []byte("$argon2id$v=19$m=65536,t=1,p=4$ZmFrZS1zYWx0$ZmFrZS1oYXNoLWZvci10ZXN0cw"),
		CreatedAt: f.now,
	}
}

// newSession returns a session of userID that is not stored yet.
func (f *fixture) newSession(userID string, kind kve.SessionKind, created time.Time) kve.Session {
	s := kve.Session{
		ID:        kve.NewID(kve.PrefixSession, created),
		UserID:    userID,
		Kind:      kind,
		Hash:      randomBytes(32),
		CreatedAt: created,
		ExpiresAt: created.Add(30 * 24 * time.Hour),
		LastSeen:  created,
	}
	if kind == kve.SessionAPI {
		s.Name = fmt.Sprintf("ci-%d", f.next())
	}
	return s
}

// setup completes setup and returns the first user and their session.
func (f *fixture) setup() (kve.User, kve.Session) {
	f.t.Helper()
	u := f.newUser("first")
	s := f.newSession(u.ID, kve.SessionBrowser, f.now)
	ok(f.t, f.s.CompleteSetup(f.ctx, u, s))
	return u, s
}

// newOrg returns an organization and its Owner, not stored yet.
func (f *fixture) newOrg(name string, ownerID string, joined time.Time) (kve.Org, kve.Member) {
	id := kve.NewID(kve.PrefixOrg, joined)
	random := id[len(id)-8:] // slugs stay unique across fixtures of one store
	o := kve.Org{
		ID:        id,
		Slug:      kve.Slugify(name) + "-" + random,
		Name:      name,
		CreatedAt: joined,
		CreatedBy: ownerID,
	}
	m := kve.Member{OrgID: o.ID, UserID: ownerID, Email: "owner-" + random + "@example.test",
		Name: "Owner " + name, Role: kve.RoleOwner, JoinedAt: joined}
	return o, m
}

// org stores a new organization owned by a new user id.
func (f *fixture) org(name string) (kve.Org, kve.Member) {
	f.t.Helper()
	o, m := f.newOrg(name, kve.NewID(kve.PrefixUser, f.now), f.now)
	ok(f.t, f.s.CreateOrg(f.ctx, o, m, f.event(o.ID, "org.create", o.ID)))
	return o, m
}

// newInvite returns an open invite into orgID for a new address, with its
// hash, not stored yet; it expires 72 hours after the fixed clock.
func (f *fixture) newInvite(orgID string, role kve.Role) store.Invite {
	id := kve.NewID(kve.PrefixInvite, f.now)
	return store.Invite{
		ID:        id,
		OrgID:     orgID,
		Email:     "invitee-" + id[len(id)-10:] + "@example.test", // unique across fixtures of one store
		Role:      role,
		Hash:      randomBytes(32),
		InvitedBy: f.actor().UserID,
		CreatedAt: f.now,
		ExpiresAt: f.at(72 * time.Hour),
	}
}

// invite stores a new invite.
func (f *fixture) invite(orgID string, role kve.Role) store.Invite {
	f.t.Helper()
	inv := f.newInvite(orgID, role)
	ok(f.t, f.s.CreateInvite(f.ctx, inv, f.event(orgID, "invite.create", inv.ID)))
	return inv
}

// acceptance is the accept of inv by a new account for its address.
func (f *fixture) acceptance(inv store.Invite, at time.Time) store.Acceptance {
	u := f.newUser("member")
	u.Email = inv.Email
	u.CreatedAt = at
	return store.Acceptance{Hash: inv.Hash, At: at, User: u, NewUser: true,
		Event: kve.Actor{UserID: u.ID, Email: u.Email}.Event(inv.OrgID, "member.join", u.ID, at)}
}

// member adds a new user to orgID with role, the way users join: through an
// invite they accept.
func (f *fixture) member(orgID string, role kve.Role) kve.Member {
	f.t.Helper()
	inv := f.invite(orgID, role)
	m, err := f.s.AcceptInvite(f.ctx, f.acceptance(inv, f.at(time.Minute)))
	ok(f.t, err)
	return m
}

// newKey returns a key reference that is not stored yet; its secret name
// and version are made up (the suite never touches a secret store).
func (f *fixture) newKey(orgID, name string) kve.Key {
	k := kve.Key{
		ID:        kve.NewID(kve.PrefixKey, f.now),
		OrgID:     orgID,
		Name:      name,
		Provider:  "example-api",
		Upstream:  "https://api.example.test/v2",
		Auth:      kve.Auth{Mode: kve.AuthHeader, Name: "X-Example-Key", Prefix: "Token "},
		Last4:     "FAKE",
		CreatedBy: "usr_suiteactor00000000000000000",
		CreatedAt: f.now,
	}
	k.Secret = kve.SecretName(orgID, k.ID)
	k.Version = "version-1-" + k.ID
	k.Fingerprint = fingerprint("sk-test-FAKE-" + k.ID)
	return k
}

// key stores a new key reference.
func (f *fixture) key(orgID, name string) kve.Key {
	f.t.Helper()
	k := f.newKey(orgID, name)
	ok(f.t, f.s.CreateKey(f.ctx, k, f.event(orgID, "key.create", k.ID)))
	return k
}

// newToken returns a shared dev token of k, created at the fixed clock, not
// stored yet; mods adjust it.
func (f *fixture) newToken(k kve.Key, mods ...func(*kve.Token)) kve.Token {
	n := f.next()
	t := kve.Token{
		ID:        kve.NewID(kve.PrefixToken, f.now),
		OrgID:     k.OrgID,
		Name:      fmt.Sprintf("token-%d", n),
		Kind:      kve.TokenShared,
		Env:       kve.EnvDev,
		Hash:      randomBytes(32),
		Sealed:    randomBytes(77),
		Key:       k.Ref(),
		Policy:    f.policy(),
		CreatedBy: "usr_suiteactor00000000000000000",
		CreatedAt: f.now,
		UpdatedAt: f.now,
		ExpiresAt: f.at(90 * 24 * time.Hour),
	}
	for _, m := range mods {
		m(&t)
	}
	t.Hint = kve.TokenHint(kve.NewTokenValue(t.Kind, t.Env))
	return t
}

// token stores a new token.
func (f *fixture) token(k kve.Key, mods ...func(*kve.Token)) kve.Token {
	f.t.Helper()
	t := f.newToken(k, mods...)
	ok(f.t, f.s.CreateToken(f.ctx, t, f.event(t.OrgID, "token.create", t.ID)))
	return t
}

// created makes a token created (and its id minted) at c.
func created(c time.Time) func(*kve.Token) {
	return func(t *kve.Token) {
		t.ID = kve.NewID(kve.PrefixToken, c)
		t.CreatedAt, t.UpdatedAt = c, c
	}
}

// personal makes a token the personal token of userID.
func personal(userID string) func(*kve.Token) {
	return func(t *kve.Token) { t.Kind, t.OwnerID = kve.TokenPersonal, userID }
}

// policy uses every field of kve.Policy, so that a store that drops one fails.
func (f *fixture) policy() kve.Policy {
	var origins []kve.Origin
	for _, s := range []string{"https://app.example.test", "https://*.example.test", "http://localhost:*"} {
		o, err := kve.ParseOriginPattern(s)
		if err != nil {
			f.t.Fatalf("parse origin %q: %v", s, err)
		}
		origins = append(origins, o)
	}
	ips, err := kve.ParsePrefixes([]string{"198.51.100.0/24", "2001:db8::/32"})
	if err != nil {
		f.t.Fatalf("parse prefixes: %v", err)
	}
	return kve.Policy{
		Origins:     origins,
		AllowServer: true,
		IPs:         ips,
		Paths:       []kve.PathRule{{Method: "POST", Path: "/v1/chat/completions"}, {Path: "/v1/models*"}},
		RPM:         60,
		BudgetMicro: 5_000_000,
	}
}

// usage returns a usage record of t at at, costing cost micro-USD.
func (f *fixture) usage(t kve.Token, at time.Time, cost int64) kve.Usage {
	return kve.Usage{
		RequestID:        kve.NewID(kve.PrefixRequest, at),
		At:               at,
		OrgID:            t.OrgID,
		TokenID:          t.ID,
		UserID:           t.OwnerID,
		Env:              t.Env,
		Provider:         t.Key.Provider,
		Method:           "POST",
		Path:             "/v1/chat/completions",
		Model:            "gpt-test",
		Status:           200,
		Duration:         1234567 * time.Nanosecond,
		Upstream:         987654 * time.Nanosecond,
		BytesIn:          321,
		BytesOut:         4567,
		PromptTokens:     11,
		CompletionTokens: 22,
		CachedTokens:     3,
		ReasoningTokens:  4,
		Estimated:        true,
		CostMicro:        cost,
		ClientIP:         "198.51.100.7",
		Origin:           "https://app.example.test",
		ClientAborted:    true,
		Reason:           "upstream_timeout",
	}
}

func randomBytes(n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	return b
}

func fingerprint(fake string) string {
	sum := sha256.Sum256([]byte(fake))
	return fmt.Sprintf("SHA256:%x", sum[:16])
}

// ids lists the ids of tokens, for comparing lists by what they hold.
func ids[T any](items []T, id func(T) string) []string {
	out := make([]string, len(items))
	for i, v := range items {
		out[i] = id(v)
	}
	return out
}
