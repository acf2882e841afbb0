package api

import (
	"time"

	"github.com/keyvault-edge/kve/shared/kve"
	"github.com/keyvault-edge/kve/shared/manage"
	"github.com/keyvault-edge/kve/shared/store"
)

// The API's answers are views built field by field from kve's types, so that
// a field added to a stored type never reaches a response by accident.

type orgView struct {
	ID        string    `json:"id"`
	Slug      string    `json:"slug"`
	Name      string    `json:"name"`
	Role      kve.Role  `json:"role"`
	CreatedAt time.Time `json:"created_at"`
}

func viewOrg(m kve.Membership) orgView {
	return orgView{ID: m.Org.ID, Slug: m.Org.Slug, Name: m.Org.Name, Role: m.Role, CreatedAt: m.Org.CreatedAt}
}

// keyView is a key's reference: never its value.
type keyView struct {
	ID          string    `json:"id"`
	Name        string    `json:"name"`
	Provider    string    `json:"provider"`
	Upstream    string    `json:"upstream"`
	Auth        kve.Auth  `json:"auth,omitzero"`
	Last4       string    `json:"last4"`
	Fingerprint string    `json:"fingerprint"`
	CreatedBy   string    `json:"created_by"`
	CreatedAt   time.Time `json:"created_at"`
	RotatedAt   time.Time `json:"rotated_at,omitzero"`
}

func viewKey(k kve.Key) keyView {
	return keyView{ID: k.ID, Name: k.Name, Provider: k.Provider, Upstream: k.Upstream, Auth: k.Auth,
		Last4: k.Last4, Fingerprint: k.Fingerprint, CreatedBy: k.CreatedBy, CreatedAt: k.CreatedAt, RotatedAt: k.RotatedAt}
}

type tokenView struct {
	ID          string        `json:"id"`
	Name        string        `json:"name"`
	Token       string        `json:"token,omitempty"` // the value: on create and reveal only
	Kind        kve.TokenKind `json:"kind"`
	Env         kve.Env       `json:"env"`
	Hint        string        `json:"hint"`
	Key         string        `json:"key"`
	Provider    string        `json:"provider"`
	Origins     []string      `json:"origins"`
	AllowServer bool          `json:"allow_server"`
	IPs         []string      `json:"ips"`
	Paths       []string      `json:"paths"`
	RPM         int           `json:"rpm"`
	BudgetUSD   float64       `json:"budget_usd"`
	// Limits beyond the policy (withLimits): 0 is none.
	TPM            int       `json:"tpm"`
	BudgetMonthUSD float64   `json:"budget_month_usd"`
	OwnerID        string    `json:"owner_id,omitempty"`
	CreatedBy      string    `json:"created_by"`
	CreatedAt      time.Time `json:"created_at"`
	UpdatedAt      time.Time `json:"updated_at"`
	ExpiresAt      time.Time `json:"expires_at,omitzero"`
	RevokedAt      time.Time `json:"revoked_at,omitzero"`
	LastUsedAt     time.Time `json:"last_used_at,omitzero"`

	// Breach alerts: alerts published, automatic suspension, and a
	// suspension (by kve, for the breach type in suspension, or "manual").
	Alerts      bool      `json:"alerts"`
	AutoSuspend bool      `json:"auto_suspend"`
	SuspendedAt time.Time `json:"suspended_at,omitzero"`
	Suspension  string    `json:"suspension,omitempty"`
}

func viewToken(t kve.Token) tokenView {
	v := tokenView{
		ID: t.ID, Name: t.Name, Kind: t.Kind, Env: t.Env, Hint: t.Hint, Key: t.Key.Name, Provider: t.Key.Provider,
		Origins: make([]string, 0, len(t.Policy.Origins)), AllowServer: t.Policy.AllowServer,
		IPs: make([]string, 0, len(t.Policy.IPs)), Paths: make([]string, 0, len(t.Policy.Paths)),
		RPM: t.Policy.RPM, BudgetUSD: float64(t.Policy.BudgetMicro) / 1e6, OwnerID: t.OwnerID,
		CreatedBy: t.CreatedBy, CreatedAt: t.CreatedAt, UpdatedAt: t.UpdatedAt,
		ExpiresAt: t.ExpiresAt, RevokedAt: t.RevokedAt, LastUsedAt: t.LastUsed,
	}
	for _, o := range t.Policy.Origins {
		v.Origins = append(v.Origins, o.String())
	}
	for _, p := range t.Policy.IPs {
		v.IPs = append(v.IPs, p.String())
	}
	for _, p := range t.Policy.Paths {
		v.Paths = append(v.Paths, p.String())
	}
	v.Alerts, v.AutoSuspend, v.SuspendedAt, v.Suspension = t.Alerts, t.AutoSuspend, t.SuspendedAt, t.Suspension
	return v
}

// withLimits adds a token's limits beyond its policy to its view.
func withLimits(v tokenView, l store.Limits) tokenView {
	v.TPM, v.BudgetMonthUSD = l.TPM, usd(l.MonthBudgetMicro)
	return v
}

// viewIssued is a token with its value; Reveal is called here, on purpose,
// and nowhere else in the API.
func viewIssued(it manage.IssuedToken) tokenView {
	v := viewToken(it.Token)
	v.Token = it.Value.Reveal()
	return v
}

// credentialView answers setup and login.
type credentialView struct {
	APIToken  string    `json:"api_token"`
	ExpiresAt time.Time `json:"expires_at"`
	UserID    string    `json:"user_id"`
}

func viewCredential(c manage.Credential) credentialView {
	return credentialView{APIToken: c.Value.Reveal(), ExpiresAt: c.Session.ExpiresAt, UserID: c.Session.UserID}
}

// items converts a list with f, never returning nil.
func items[T, V any](in []T, f func(T) V) []V {
	out := make([]V, 0, len(in))
	for _, x := range in {
		out = append(out, f(x))
	}
	return out
}

type memberView struct {
	UserID   string    `json:"user_id"`
	Email    string    `json:"email"`
	Name     string    `json:"name"`
	Role     kve.Role  `json:"role"`
	JoinedAt time.Time `json:"joined_at"`
}

func viewMember(m kve.Member) memberView {
	return memberView{UserID: m.UserID, Email: m.Email, Name: m.Name, Role: m.Role, JoinedAt: m.JoinedAt}
}

// inviteView is an invite: never its code, which only the link carries.
type inviteView struct {
	ID        string    `json:"id"`
	Email     string    `json:"email"`
	Role      kve.Role  `json:"role"`
	InvitedBy string    `json:"invited_by"`
	CreatedAt time.Time `json:"created_at"`
	ExpiresAt time.Time `json:"expires_at"`
	Mailed    bool      `json:"mailed,omitempty"`
	// AcceptURL is the link with the code, answered only when kve sends no
	// mail, for the inviter to pass on.
	AcceptURL string `json:"accept_url,omitempty"`
}

func viewInvite(inv store.Invite) inviteView {
	return inviteView{ID: inv.ID, Email: inv.Email, Role: inv.Role, InvitedBy: inv.InvitedBy,
		CreatedAt: inv.CreatedAt, ExpiresAt: inv.ExpiresAt}
}

// viewIssuedInvite reveals the accept link on purpose: there is no mail to
// carry it.
func viewIssuedInvite(in manage.IssuedInvite) inviteView {
	v := viewInvite(in.Invite)
	v.Mailed, v.AcceptURL = in.Mailed, in.AcceptURL.Reveal()
	return v
}

// inviteInfoView is what an invite link is for.
type inviteInfoView struct {
	Org       inviteOrg `json:"org"`
	Role      kve.Role  `json:"role"`
	Email     string    `json:"email"`
	Inviter   string    `json:"inviter"`
	ExpiresAt time.Time `json:"expires_at"`
	Account   bool      `json:"account"`
}

type inviteOrg struct {
	Slug string `json:"slug"`
	Name string `json:"name"`
}

func viewInviteInfo(i manage.InviteInfo) inviteInfoView {
	return inviteInfoView{Org: inviteOrg{Slug: i.Org.Slug, Name: i.Org.Name}, Role: i.Role, Email: i.Email,
		Inviter: i.Inviter, ExpiresAt: i.ExpiresAt, Account: i.Account}
}

// acceptedView answers an accept: the organization joined, and for someone
// who was not signed in a kvm_ API token.
type acceptedView struct {
	Org       orgView   `json:"org"`
	APIToken  string    `json:"api_token,omitempty"`
	ExpiresAt time.Time `json:"expires_at,omitzero"`
	UserID    string    `json:"user_id,omitempty"`
}

func viewAccepted(a manage.Accepted) acceptedView {
	v := acceptedView{Org: viewOrg(a.Membership)}
	if c := a.Credential; c != nil {
		v.APIToken, v.ExpiresAt, v.UserID = c.Value.Reveal(), c.Session.ExpiresAt, c.Session.UserID
	}
	return v
}

// revealedView names a shared token a removed member saw: never its value.
type revealedView struct {
	ID       string  `json:"id"`
	Name     string  `json:"name"`
	Env      kve.Env `json:"env"`
	Hint     string  `json:"hint"`
	Provider string  `json:"provider"`
}

type offboardingView struct {
	Member        memberView     `json:"member"`
	RevokedTokens []string       `json:"revoked_tokens"`
	EndedSessions int            `json:"ended_sessions"`
	Revealed      []revealedView `json:"revealed_shared_tokens"`
}

func viewOffboarding(o manage.Offboarding) offboardingView {
	return offboardingView{
		Member: viewMember(o.Member), RevokedTokens: items(o.Revoked, func(id string) string { return id }),
		EndedSessions: o.Sessions,
		Revealed: items(o.Revealed, func(t kve.Token) revealedView {
			return revealedView{ID: t.ID, Name: t.Name, Env: t.Env, Hint: t.Hint, Provider: t.Key.Provider}
		}),
	}
}

type deletionView struct {
	RevokedTokens int      `json:"revoked_tokens"`
	DeletedKeys   []string `json:"deleted_keys"`
}

func viewDeletion(d store.Deletion) deletionView {
	return deletionView{RevokedTokens: len(d.Tokens), DeletedKeys: items(d.Keys, func(k kve.Key) string { return k.Name })}
}

// apiTokenView is one of the caller's kvm_ API tokens: never its value.
type apiTokenView struct {
	ID         string    `json:"id"`
	Name       string    `json:"name"`
	OrgID      string    `json:"org_id,omitempty"`
	CreatedAt  time.Time `json:"created_at"`
	ExpiresAt  time.Time `json:"expires_at,omitzero"`
	LastSeenAt time.Time `json:"last_seen_at,omitzero"`
	Current    bool      `json:"current"`
}
