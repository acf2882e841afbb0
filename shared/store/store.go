// Package store declares where kve keeps its state: one interface, two
// implementations (dynamo for AWS, sqlite for local mode) and one conformance
// suite (storetest) that both pass.
//
// Rules every implementation keeps:
//   - Every read and write of an organization's objects is scoped by orgID in
//     the query itself; an object of another organization is ErrNotFound.
//   - Every mutation that takes a kve.Event writes it in the same transaction;
//     if the event cannot be written, nothing is.
//   - Errors cross the boundary as kve kinds: not found → KindNotFound, a failed
//     condition or duplicate → KindConflict, throttling or an unreachable
//     backend → KindUnavailable.
//   - Lists are never nil.
//   - An organization always keeps one Owner: a role change or removal that
//     would leave it without one is KindConflict, even when two such changes
//     race.
//   - A deleted organization is KindNotFound everywhere; its tokens are
//     revoked by the deletion.
package store

import (
	"context"
	"time"

	"github.com/keyvault-edge/kve/shared/kve"
)

// Store is all of kve's state.
type Store interface {
	Setup
	Users
	Orgs
	Invites
	Keys
	Tokens
	Audit
	Usage
	Alerts
	Metering
	Budgets
	// Close releases the store's resources.
	Close() error
}

// Setup guards the one-time creation of the first user.
type Setup interface {
	// CompleteSetup creates the first user and their first session, once: a
	// second call is KindConflict.
	CompleteSetup(ctx context.Context, u kve.User, s kve.Session) error
	// SetupDone reports whether CompleteSetup has succeeded.
	SetupDone(ctx context.Context) (bool, error)
}

// Users holds users and their sessions (browser logins and kvm_ API tokens).
type Users interface {
	User(ctx context.Context, id string) (kve.User, error)
	// UserByEmail looks up a canonical email.
	UserByEmail(ctx context.Context, email string) (kve.User, error)
	// CreateSession stores a session; only its hash identifies it.
	CreateSession(ctx context.Context, s kve.Session) error
	// SessionByHash finds a live or expired session; callers check expiry.
	SessionByHash(ctx context.Context, hash []byte) (kve.Session, error)
	// TouchSession records activity, for idle timeouts.
	TouchSession(ctx context.Context, id string, at time.Time) error
	// Sessions lists a user's sessions, newest first.
	Sessions(ctx context.Context, userID string) ([]kve.Session, error)
	// DeleteSession ends one of a user's sessions.
	DeleteSession(ctx context.Context, userID, id string) error
	// CreateUser stores a user who joins no organization yet (operator
	// tooling, test fixtures). Accounts normally come from CompleteSetup and
	// AcceptInvite. A taken id or email is KindConflict.
	CreateUser(ctx context.Context, u kve.User) error
	// ChangePassword sets a user's password hash and, in the same
	// transaction, ends every session of theirs except keep (which may be
	// ""). It returns how many sessions it ended.
	ChangePassword(ctx context.Context, userID string, hash []byte, keep string) (int, error)
}

// Orgs holds organizations and their members.
type Orgs interface {
	// CreateOrg creates an organization with its first member (the Owner).
	// A taken slug is KindConflict.
	CreateOrg(ctx context.Context, o kve.Org, owner kve.Member, ev kve.Event) error
	Org(ctx context.Context, orgID string) (kve.Org, error)
	OrgBySlug(ctx context.Context, slug string) (kve.Org, error)
	// Memberships lists the organizations a user belongs to, oldest first.
	Memberships(ctx context.Context, userID string) ([]kve.Membership, error)
	Member(ctx context.Context, orgID, userID string) (kve.Member, error)
	// Members lists an organization's members, oldest first.
	Members(ctx context.Context, orgID string) ([]kve.Member, error)
	// RenameOrg changes an organization's name (its slug stays, so links
	// keep working).
	RenameOrg(ctx context.Context, orgID, name string, ev kve.Event) (kve.Org, error)
	// DeleteOrg deletes an organization: every token of it is revoked, its
	// members, invites, key references and the sessions limited to it go;
	// its audit log stays. The answer names what went, so that the caller
	// can delete the keys' values from the secret store; it does so even
	// with an error, when the organization was deleted and only a clean-up
	// after that failed.
	DeleteOrg(ctx context.Context, orgID string, ev kve.Event) (Deletion, error)
	// ChangeRole sets a member's role. Demoting the last Owner is
	// KindConflict.
	ChangeRole(ctx context.Context, orgID, userID string, role kve.Role, ev kve.Event) (kve.Member, error)
	// RemoveMember offboards a member, with the membership removal in one
	// transaction: their personal tokens of the organization are revoked and
	// their API tokens limited to it end; when the organization was the
	// last one they belonged to, every session of theirs ends too.
	// Removing the last Owner is KindConflict.
	RemoveMember(ctx context.Context, orgID, userID string, ev kve.Event) (Removal, error)
}

// Deletion is what DeleteOrg removed.
type Deletion struct {
	Tokens []string  // ids of the tokens it revoked (those that were live)
	Keys   []kve.Key // the key references it removed; their values are the caller's to delete
}

// Removal is what RemoveMember took away.
type Removal struct {
	Member   kve.Member // the membership as it was
	Tokens   []string   // ids of the personal tokens it revoked
	Sessions int        // how many sessions it ended
}

// Invite invites an email address into an organization with a role. Only
// the HMAC of its code is stored; the code itself travels in the invite
// link. An invite is open until accepted, revoked or expired, and can be
// accepted once.
type Invite struct {
	ID         string
	OrgID      string
	Email      string // canonical
	Role       kve.Role
	Hash       []byte // HMAC of the code: the lookup key
	InvitedBy  string // user id
	CreatedAt  time.Time
	ExpiresAt  time.Time
	AcceptedAt time.Time
	AcceptedBy string // the user who joined
	RevokedAt  time.Time
}

// Open reports whether the invite can still be accepted at now.
func (i *Invite) Open(now time.Time) bool {
	return i.AcceptedAt.IsZero() && i.RevokedAt.IsZero() && now.Before(i.ExpiresAt)
}

// Invites holds invitations into organizations.
type Invites interface {
	// CreateInvite stores an invite; its hash must be unique.
	CreateInvite(ctx context.Context, inv Invite, ev kve.Event) error
	Invite(ctx context.Context, orgID, id string) (Invite, error)
	// InviteByHash finds an invite by the HMAC of its code, whatever its
	// state; callers check Open.
	InviteByHash(ctx context.Context, hash []byte) (Invite, error)
	// Invites lists an organization's invites that are neither accepted nor
	// revoked (expired ones included: callers compare ExpiresAt), newest
	// first.
	Invites(ctx context.Context, orgID string) ([]Invite, error)
	// RenewInvite gives an open invite a new code (hash) and expiry, for a
	// resend: the old link stops working. An accepted or revoked invite is
	// KindGone.
	RenewInvite(ctx context.Context, orgID, id string, hash []byte, expires time.Time, ev kve.Event) (Invite, error)
	// RevokeInvite closes an open invite; an accepted or revoked one is
	// KindGone.
	RevokeInvite(ctx context.Context, orgID, id string, at time.Time, ev kve.Event) error
	// AcceptInvite joins a user to the invite's organization with its role,
	// once: the invite is marked accepted, the membership (and, for a new
	// account, the user) and the optional session are written in one
	// transaction. An invite that is accepted, revoked or expired at a.At is
	// KindGone (so of 20 concurrent accepts exactly one succeeds), an unknown
	// hash KindNotFound, a user who is a member already KindConflict.
	AcceptInvite(ctx context.Context, a Acceptance) (kve.Member, error)
}

// Acceptance is one accept of an invite.
type Acceptance struct {
	Hash    []byte       // HMAC of the presented code
	At      time.Time    // now; the invite must not have expired
	User    kve.User     // who joins; Email must be the invite's
	NewUser bool         // create User in the same transaction
	Session *kve.Session // a credential for the new member, stored with the membership; optional
	Event   kve.Event    // member.join, in the invite's organization
}

// Keys holds references to real upstream keys (their values live in the
// secret store).
type Keys interface {
	// CreateKey stores a key reference; a taken name is KindConflict.
	CreateKey(ctx context.Context, k kve.Key, ev kve.Event) error
	Key(ctx context.Context, orgID, name string) (kve.Key, error)
	// Keys lists an organization's keys by name.
	Keys(ctx context.Context, orgID string) ([]kve.Key, error)
	// RotateKey records a new secret version and moves every token that uses
	// the key to it, so the next request uses the new value.
	RotateKey(ctx context.Context, orgID, name string, r Rotation, ev kve.Event) (kve.Key, error)
	// DeleteKey removes a key reference. While a token that is not revoked
	// uses it, the answer is KindConflict and nothing changes.
	DeleteKey(ctx context.Context, orgID, name string, ev kve.Event) error
}

// Rotation is a key's new secret version.
type Rotation struct {
	Version     string
	Last4       string
	Fingerprint string
	At          time.Time
}

// Tokens holds sanitized tokens.
type Tokens interface {
	// CreateToken stores a token; its Hash must be unique. A personal
	// token's owner must be a member of the organization (KindNotFound
	// otherwise), so that a token created while its owner is removed cannot
	// outlive the removal.
	CreateToken(ctx context.Context, t kve.Token, ev kve.Event) error
	Token(ctx context.Context, orgID, id string) (kve.Token, error)
	// TokenByHash is the proxy's lookup: one strongly consistent read, so a
	// revocation holds on the very next request. It fills t.Spend.
	TokenByHash(ctx context.Context, hash []byte) (kve.Token, error)
	// Tokens lists an organization's tokens, newest first, a page at a time.
	Tokens(ctx context.Context, orgID string, f TokenFilter) (Page[kve.Token], error)
	// UpdateToken applies fn to the current token and writes the result if
	// nobody changed it meanwhile (retrying a few times otherwise). fn must not
	// change ID, OrgID, Hash or Sealed. Revocation is an update that sets
	// RevokedAt.
	UpdateToken(ctx context.Context, orgID, id string, fn func(*kve.Token) error, ev kve.Event) (kve.Token, error)
}

// UnusedLister is implemented by a store that can find an organization's
// unused tokens without reading every token into memory (SQLite). Without
// it, manage lists them all and filters.
type UnusedLister interface {
	// UnusedTokens returns the first limit (all for limit ≤ 0) live tokens
	// of the organization (not revoked, not expired at now) last used
	// before before, or never, oldest use first then by id, without their
	// sealed values; and how many there are in all.
	UnusedTokens(ctx context.Context, orgID string, before, now time.Time, limit int) ([]kve.Token, int, error)
}

// TokenFilter narrows a token list.
type TokenFilter struct {
	VisibleTo      string // when set: shared tokens plus this user's personal ones
	KeyID          string
	Env            kve.Env
	IncludeRevoked bool
	Cursor         string // from a previous Page.Next
	Limit          int    // 0 = a default of 100; at most 1000
}

// Page is one page of a list and the cursor of the next ("" at the end).
type Page[T any] struct {
	Items []T
	Next  string
}

// Audit holds the audit log. There is no update or delete.
type Audit interface {
	// AddEvent records an event that comes with no other change (a token reveal).
	AddEvent(ctx context.Context, ev kve.Event) error
	// Events lists an organization's events, newest first.
	Events(ctx context.Context, orgID string, f EventFilter) (Page[kve.Event], error)
}

// EventFilter narrows the audit log.
type EventFilter struct {
	Action  string // exact action, e.g. token.reveal
	ActorID string
	Target  string
	Since   time.Time
	Cursor  string
	Limit   int
}

// Usage holds per-request records and the counters budgets read.
type Usage interface {
	// RecordUsage stores records idempotently by request id and adds their
	// cost to each token's spend for the record's UTC day, and bumps the
	// token's last-used time.
	RecordUsage(ctx context.Context, records []kve.Usage) error
	// UsageRecords lists an organization's records, newest first.
	UsageRecords(ctx context.Context, orgID string, f UsageFilter) (Page[kve.Usage], error)
}

// Metering is the proxy's side of usage on every store: the records that
// settle requests, with the counters budgets read and the daily rollups
// usage reports read (so that a 30-day report never scans records).
type Metering interface {
	// Settle stores final usage records idempotently by request id. A
	// record new to the store adds its cost to its token's spend (day and
	// month) and to its organization's month spend, adds to the rollup of
	// its (UTC day, token, model), moves its token's last use forward, and
	// ends the hold the settlement names, whose reservation the record's
	// cost replaces. A record stored already changes nothing, so a retried
	// batch counts once. Records that fail do not stop the others.
	Settle(ctx context.Context, s []Settlement) error
	// Spend returns what a token and its organization have spent in the
	// UTC day and month of at (open holds included, on stores that hold).
	Spend(ctx context.Context, orgID, tokenID string, at time.Time) (Spend, error)
	// Rollups sums an organization's daily rollups over the days of f,
	// grouped by f.By; rows come ordered by their keys (day, token, model,
	// user). Lists are never nil.
	Rollups(ctx context.Context, orgID string, f RollupFilter) ([]Rollup, error)
}

// Holds is what a store shared by several processes (DynamoDB, behind
// concurrent Lambda execution environments) offers so that rate limits and
// budgets hold across all of them: one conditional write per request, taken
// before it is forwarded. A single process (local mode) holds in memory.
type Holds interface {
	// Hold writes the request's pending record and raises its counters,
	// all or nothing: the token's requests in the current minute's window
	// (against h.Limits.RPM, and TPM against the tokens that requests
	// settled in it used), and, by h.Micro, its
	// day and month spend and its organization's month spend, each only
	// while it stays within its limit before the hold (so concurrent holds
	// overshoot a budget by at most one reservation). Over a limit, the
	// error is KindRateLimited with the limit's code (LimitRPM, …) and
	// nothing is written. It returns the spend after the hold.
	Hold(ctx context.Context, h Hold) (Spend, error)
	// StaleHolds lists an organization's holds taken before before and not
	// settled: requests whose process died, oldest first, at most limit.
	StaleHolds(ctx context.Context, orgID string, before time.Time, limit int) ([]Hold, error)
}

// Limit codes of a refused Hold (the kve.Error's Code).
const (
	LimitRPM         = "rpm"
	LimitTPM         = "tpm"
	LimitDay         = "budget_day"
	LimitMonth       = "budget_month"
	LimitOrgMonth    = "budget_org_month"
	LimitUnavailable = "unavailable"
)

// Hold is the reservation of one request before it is forwarded: its
// pending record, the worst-case cost held against its budgets, and the
// limits in force. A process that dies mid-request leaves it behind, to be
// settled by whoever finds it stale (StaleHolds), at the reserved cost.
type Hold struct {
	Usage     kve.Usage // the pending record: what is known before the call
	TokenHash []byte    // keys the token's counters on stores that need it
	Micro     int64     // the reservation, micro-USD
	Tokens    int64     // estimated tokens, kept with it (TPM counts what requests used, as they settle)
	Limits    HoldLimits
	// LastUsed is the token's last use as the request found it: a store
	// that writes last use per request may skip moving it by under a
	// minute, and so keep settling to one write.
	LastUsed time.Time
}

// HoldLimits are the limits a hold is taken against; 0 means none.
type HoldLimits struct {
	RPM           int   // requests per minute of the token
	TPM           int   // tokens per minute of the token
	DayMicro      int64 // the token's spend per UTC day
	MonthMicro    int64 // the token's spend per UTC month
	OrgMonthMicro int64 // the organization's spend per UTC month
}

// Settlement is one final record and the hold it ends (nil when the request
// took none: refused before it was forwarded, or metered without holds).
type Settlement struct {
	Usage kve.Usage
	Hold  *Hold
}

// Spend is what budgets read, in micro-USD.
type Spend struct {
	Day      int64 // the token's spend in the UTC day
	Month    int64 // the token's spend in the UTC month
	OrgMonth int64 // the organization's spend in the UTC month
}

// RollupFilter selects daily rollups.
type RollupFilter struct {
	From, To string // UTC days, 2006-01-02, both included
	TokenID  string
	UserID   string // the member whose personal tokens count
	By       Group  // the keys rows are grouped by; 0 sums everything into one row
}

// Group is a set of rollup keys.
type Group uint8

// Rollup keys.
const (
	ByDay Group = 1 << iota
	ByToken
	ByModel
	ByUser
)

// Rollup is a sum of usage records. Keys not grouped by are empty; Env and
// Provider are filled when grouping by token (a token has one of each).
type Rollup struct {
	Day      string
	TokenID  string
	Model    string
	UserID   string
	Env      kve.Env
	Provider string

	Requests         int64
	Errors           int64 // status 400 and above, refusals included
	Estimated        int64 // records whose token counts were estimated
	PromptTokens     int64
	CompletionTokens int64
	CachedTokens     int64
	ReasoningTokens  int64
	BytesIn          int64
	BytesOut         int64
	CostMicro        int64
	LastAt           time.Time // the latest record's arrival
}

// Budgets holds an organization's billing settings and the limits of
// tokens beyond their policy (tokens per minute, a monthly budget).
type Budgets interface {
	// Billing returns an organization's billing settings; an organization
	// that never set any has the zero Billing (with its OrgID).
	Billing(ctx context.Context, orgID string) (Billing, error)
	// SetBilling replaces an organization's billing settings, with its
	// audit event.
	SetBilling(ctx context.Context, b Billing, ev kve.Event) error
	// Limits returns a token's limits beyond its policy; zero when none.
	Limits(ctx context.Context, orgID, tokenID string) (Limits, error)
	// AllLimits returns the limits of every token of an organization that
	// has any, by token id.
	AllLimits(ctx context.Context, orgID string) (map[string]Limits, error)
	// SetLimits replaces a token's limits, with its audit event. The token
	// need not exist yet: limits are written before a token is created, so
	// that no request can use it without them.
	SetLimits(ctx context.Context, orgID, tokenID string, l Limits, ev kve.Event) error
}

// Billing is an organization's billing settings.
type Billing struct {
	OrgID            string
	MonthBudgetMicro int64   // spend per UTC month; 0 = unlimited
	Contact          string  // billing contact email
	Prices           []Price // overrides of the embedded price list
	UpdatedAt        time.Time
}

// Price is what a model costs, in USD per million tokens.
type Price struct {
	Provider string
	Model    string // matched by longest prefix
	Input    float64
	Cached   float64
	Output   float64
}

// Limits are a token's limits beyond kve.Policy (which has RPM and the
// daily budget).
type Limits struct {
	TPM              int   // tokens per minute; 0 = unlimited
	MonthBudgetMicro int64 // spend per UTC month; 0 = unlimited
}

// UsageFilter narrows usage records.
type UsageFilter struct {
	TokenID string
	UserID  string
	Since   time.Time
	Cursor  string
	Limit   int
}

// DefaultLimit and MaxLimit bound list pages.
const (
	DefaultLimit = 100
	MaxLimit     = 1000
)

// Limit returns n clamped to (0, MaxLimit], DefaultLimit for 0.
func Limit(n int) int {
	switch {
	case n <= 0:
		return DefaultLimit
	case n > MaxLimit:
		return MaxLimit
	}
	return n
}
