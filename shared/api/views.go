package api

import (
	"time"

	"github.com/keyvault-edge/kve/shared/kve"
	"github.com/keyvault-edge/kve/shared/manage"
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
	OwnerID     string        `json:"owner_id,omitempty"`
	CreatedBy   string        `json:"created_by"`
	CreatedAt   time.Time     `json:"created_at"`
	UpdatedAt   time.Time     `json:"updated_at"`
	ExpiresAt   time.Time     `json:"expires_at,omitzero"`
	RevokedAt   time.Time     `json:"revoked_at,omitzero"`
	LastUsedAt  time.Time     `json:"last_used_at,omitzero"`
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
