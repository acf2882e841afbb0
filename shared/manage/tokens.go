package manage

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/keyvault-edge/kve/shared/kve"
	"github.com/keyvault-edge/kve/shared/store"
)

// TokenInput issues a token. Unset limits of a dev token take the dev caps
// (SECURITY G10).
type TokenInput struct {
	Name        string   `json:"name"`
	Key         string   `json:"key"` // the key's name
	Env         string   `json:"env"`
	Origins     []string `json:"origins"`
	AllowServer bool     `json:"allow_server"`
	IPs         []string `json:"ips"`
	Paths       []string `json:"paths"`
	Personal    bool     `json:"personal"`
	RPM         *int     `json:"rpm"`
	BudgetUSD   *float64 `json:"budget_usd"` // per UTC day
	ExpiresIn   string   `json:"expires_in"` // "30d", "12h"; empty: the dev cap, or never
	// Limits beyond the policy (see TokenLimits): model tokens per minute
	// and a budget per UTC month; nil or 0 is none.
	TPM            *int     `json:"tpm"`
	BudgetMonthUSD *float64 `json:"budget_month_usd"`

	// Breach alerts (nil: the default): Alerts publishes the token's
	// incidents, on by default for prd; AutoSuspend lets kve suspend it on
	// a breach, on by default and never off for a Developer's token.
	Alerts      *bool `json:"alerts"`
	AutoSuspend *bool `json:"auto_suspend"`
}

// TokenPatch changes a token's policy; nil fields stay as they are. It has no
// field for anything that would raise a token's privileges or move it (org,
// kind, env, owner, key).
type TokenPatch struct {
	Origins     *[]string `json:"origins"`
	AllowServer *bool     `json:"allow_server"`
	IPs         *[]string `json:"ips"`
	Paths       *[]string `json:"paths"`
	RPM         *int      `json:"rpm"`
	BudgetUSD   *float64  `json:"budget_usd"`
	ExpiresIn   *string   `json:"expires_in"` // from now
	// Limits beyond the policy, as in TokenInput.
	TPM            *int     `json:"tpm"`
	BudgetMonthUSD *float64 `json:"budget_month_usd"`

	// Breach alerts, as in TokenInput; Suspended true suspends the token
	// now, false resumes one kve (or a manager) suspended.
	Alerts      *bool `json:"alerts"`
	AutoSuspend *bool `json:"auto_suspend"`
	Suspended   *bool `json:"suspended"`
}

// TokenQuery narrows a token list.
type TokenQuery struct {
	Env            string
	IncludeRevoked bool
	Cursor         string
	Limit          int
}

// IssuedToken is a token with its value: the answer of CreateToken and of a
// reveal, and nothing else.
type IssuedToken struct {
	Token kve.Token
	Value kve.Secret
}

// Dev-token caps (SECURITY G10): what a leaked dev token can cost at most.
const (
	devRPM         = 60
	devBudgetMicro = 2_000_000 // $2 per day
	devMaxTTL      = 30 * 24 * time.Hour
	maxTTL         = 10 * 366 * 24 * time.Hour
	maxRPM         = 1_000_000
	maxBudgetUSD   = 1_000_000
	maxListItems   = 100 // origins, IP ranges or path rules on one token
)

// CreateToken issues a token for a key. Owners and Admins issue any token;
// Developers only personal dev tokens for themselves, within the dev caps.
func (s *Service) CreateToken(ctx context.Context, orgRef string, p Principal, in TokenInput) (IssuedToken, error) {
	m, err := s.Authorize(ctx, orgRef, p, allMembers...)
	if err != nil {
		return IssuedToken{}, err
	}
	orgID := m.Org.ID
	name, err := checkLabel("name", in.Name, 64)
	if err != nil {
		return IssuedToken{}, err
	}
	env, ok := kve.ParseEnv(in.Env)
	if !ok {
		return IssuedToken{}, kve.Errorf(kve.KindInvalid, "invalid_env", "env must be dev, stg or prd")
	}
	developer := m.Role == kve.RoleDeveloper
	if developer && (!in.Personal || env != kve.EnvDev) {
		return IssuedToken{}, kve.Errorf(kve.KindForbidden, "forbidden", "developers may create only personal dev tokens")
	}
	now := s.now()
	pol, err := checkPolicy(in.Origins, in.IPs, in.Paths)
	if err != nil {
		return IssuedToken{}, err
	}
	pol.AllowServer = in.AllowServer
	if err := setLimits(&pol, in.RPM, in.BudgetUSD); err != nil {
		return IssuedToken{}, err
	}
	extra, err := extraLimits(store.Limits{}, in.TPM, in.BudgetMonthUSD)
	if err != nil {
		return IssuedToken{}, err
	}
	ttl, err := parseTTL(in.ExpiresIn)
	if err != nil {
		return IssuedToken{}, err
	}
	if env == kve.EnvDev {
		if in.RPM == nil {
			pol.RPM = devRPM
		}
		if in.BudgetUSD == nil {
			pol.BudgetMicro = devBudgetMicro
		}
		if ttl == 0 {
			ttl = devMaxTTL
		}
		if ttl > devMaxTTL {
			return IssuedToken{}, kve.Errorf(kve.KindInvalid, "invalid_expires_in", "a dev token expires within 30 days")
		}
	}
	if developer && (pol.RPM == 0 || pol.RPM > devRPM || pol.BudgetMicro == 0 || pol.BudgetMicro > devBudgetMicro) {
		return IssuedToken{}, kve.Errorf(kve.KindForbidden, "forbidden", "developer tokens are capped at %d requests per minute and $2 per day", devRPM)
	}
	if len(pol.Origins) == 0 && !pol.AllowServer {
		return IssuedToken{}, errUnusable
	}
	key, err := s.store.Key(ctx, orgID, in.Key)
	if err != nil {
		if kve.KindOf(err) == kve.KindNotFound {
			return IssuedToken{}, kve.Errorf(kve.KindInvalid, "invalid_key", "no key named %q in this organization", kve.Truncate(in.Key, 64))
		}
		return IssuedToken{}, fmt.Errorf("look up key: %w", err)
	}

	kind, owner := kve.TokenShared, ""
	if in.Personal {
		kind, owner = kve.TokenPersonal, p.UserID
	}
	value := kve.NewTokenValue(kind, env)
	t := kve.Token{
		ID: kve.NewID(kve.PrefixToken, now), OrgID: orgID, Name: name, Kind: kind, Env: env,
		OwnerID: owner, Hint: kve.TokenHint(value), Hash: s.keyring.Hash(value.Reveal()),
		Key: key.Ref(), Policy: pol, CreatedBy: p.UserID, CreatedAt: now.UTC(), UpdatedAt: now.UTC(),
	}
	t.Sealed = s.keyring.Seal([]byte(value.Reveal()), t.ID)
	if t.Alerts, t.AutoSuspend, err = tokenAlerting(env, developer, in.Alerts, in.AutoSuspend); err != nil {
		return IssuedToken{}, err
	}
	if ttl > 0 {
		t.ExpiresAt = now.UTC().Add(ttl)
	}
	ev := p.Event(orgID, "token.create", t.ID, now).
		With("name", t.Name).With("kind", string(kind)).With("env", string(env)).With("key", key.Name)
	// Limits beyond the policy are written first, so that no request can
	// use the token without them.
	if extra != (store.Limits{}) {
		if err := s.setExtraLimits(ctx, orgID, t.ID, p, extra); err != nil {
			return IssuedToken{}, err
		}
	}
	if err := s.store.CreateToken(ctx, t, ev); err != nil {
		return IssuedToken{}, fmt.Errorf("create token: %w", err)
	}
	s.log.InfoContext(ctx, "token_created", "org_id", orgID, "token_id", t.ID, "env", string(env))
	return IssuedToken{Token: t, Value: value}, nil
}

// Tokens lists an organization's tokens, newest first. Developers see shared
// tokens and their own personal ones.
func (s *Service) Tokens(ctx context.Context, orgRef string, p Principal, q TokenQuery) (store.Page[kve.Token], error) {
	m, err := s.Authorize(ctx, orgRef, p, allMembers...)
	if err != nil {
		return store.Page[kve.Token]{}, err
	}
	f := store.TokenFilter{IncludeRevoked: q.IncludeRevoked, Cursor: q.Cursor, Limit: q.Limit}
	if q.Env != "" {
		env, ok := kve.ParseEnv(q.Env)
		if !ok {
			return store.Page[kve.Token]{}, kve.Errorf(kve.KindInvalid, "invalid_env", "env must be dev, stg or prd")
		}
		f.Env = env
	}
	if m.Role == kve.RoleDeveloper {
		f.VisibleTo = p.UserID
	}
	page, err := s.store.Tokens(ctx, m.Org.ID, f)
	if err != nil {
		return store.Page[kve.Token]{}, fmt.Errorf("list tokens: %w", err)
	}
	return page, nil
}

// RevealToken returns a token with its value, for copying it again, and
// records who did so (token.reveal). Developers reveal shared tokens and their
// own personal ones.
func (s *Service) RevealToken(ctx context.Context, orgRef string, p Principal, id string) (IssuedToken, error) {
	m, t, err := s.visibleToken(ctx, orgRef, p, id)
	if err != nil {
		return IssuedToken{}, err
	}
	if t.Revoked() {
		return IssuedToken{}, errRevoked
	}
	plain, err := s.keyring.Open(t.Sealed, t.ID)
	if err != nil {
		return IssuedToken{}, fmt.Errorf("open sealed token %s: %w", t.ID, err)
	}
	// The reveal is on record before the value leaves: no event, no value.
	ev := p.Event(m.Org.ID, "token.reveal", t.ID, s.now()).With("name", t.Name)
	if err := s.store.AddEvent(ctx, ev); err != nil {
		return IssuedToken{}, fmt.Errorf("record reveal: %w", err)
	}
	return IssuedToken{Token: t, Value: kve.Secret(plain)}, nil
}

var errRevoked = kve.Errorf(kve.KindGone, "token_revoked", "the token is revoked")

// Token reads one token the caller may see (the visibility of Tokens),
// without its value and without an audit event: for pages that name a
// token, such as a revoke confirmation. Its sealed value is dropped, so
// only RevealToken ever opens one.
func (s *Service) Token(ctx context.Context, orgRef string, p Principal, id string) (kve.Token, error) {
	_, t, err := s.visibleToken(ctx, orgRef, p, id)
	if err != nil {
		return kve.Token{}, err
	}
	t.Sealed = nil
	return t, nil
}

// visibleToken reads a token the caller may see; others are KindNotFound.
func (s *Service) visibleToken(ctx context.Context, orgRef string, p Principal, id string) (kve.Membership, kve.Token, error) {
	m, err := s.Authorize(ctx, orgRef, p, allMembers...)
	if err != nil {
		return m, kve.Token{}, err
	}
	t, err := s.store.Token(ctx, m.Org.ID, id)
	if err != nil {
		return m, kve.Token{}, tokenErr(err)
	}
	if m.Role == kve.RoleDeveloper && t.Kind != kve.TokenShared && t.OwnerID != p.UserID {
		return m, kve.Token{}, errNoToken
	}
	return m, t, nil
}

var errNoToken = kve.Errorf(kve.KindNotFound, "not_found", "token not found")

func tokenErr(err error) error {
	if kve.KindOf(err) == kve.KindNotFound {
		return errNoToken
	}
	return fmt.Errorf("token: %w", err)
}

// UpdateToken changes a token's origins, networks, paths, limits or expiry
// (Owner, Admin).
func (s *Service) UpdateToken(ctx context.Context, orgRef string, p Principal, id string, in TokenPatch) (kve.Token, error) {
	m, err := s.Authorize(ctx, orgRef, p, managers...)
	if err != nil {
		return kve.Token{}, err
	}
	var changed []string
	var next kve.Policy
	if in.Origins != nil || in.IPs != nil || in.Paths != nil {
		if next, err = checkPolicy(deref(in.Origins), deref(in.IPs), deref(in.Paths)); err != nil {
			return kve.Token{}, err
		}
	}
	for _, f := range []struct {
		name string
		set  bool
	}{
		{"origins", in.Origins != nil}, {"ips", in.IPs != nil}, {"paths", in.Paths != nil},
		{"allow_server", in.AllowServer != nil}, {"rpm", in.RPM != nil},
		{"budget_usd", in.BudgetUSD != nil}, {"expires_in", in.ExpiresIn != nil},
		{"tpm", in.TPM != nil}, {"budget_month_usd", in.BudgetMonthUSD != nil},
		{"alerts", in.Alerts != nil}, {"auto_suspend", in.AutoSuspend != nil}, {"suspended", in.Suspended != nil},
	} {
		if f.set {
			changed = append(changed, f.name)
		}
	}
	if len(changed) == 0 {
		return kve.Token{}, kve.Errorf(kve.KindInvalid, "empty_patch", "nothing to change")
	}
	var limits kve.Policy
	if err := setLimits(&limits, in.RPM, in.BudgetUSD); err != nil {
		return kve.Token{}, err
	}
	if in.TPM != nil || in.BudgetMonthUSD != nil {
		return s.updateExtraLimits(ctx, m.Org.ID, p, id, in)
	}
	var ttl time.Duration
	if in.ExpiresIn != nil {
		if ttl, err = parseTTL(*in.ExpiresIn); err != nil {
			return kve.Token{}, err
		}
		if ttl == 0 {
			return kve.Token{}, kve.Errorf(kve.KindInvalid, "invalid_expires_in", "expires_in must be a lifetime like 30d or 12h")
		}
	}
	now := s.now()
	ev := p.Event(m.Org.ID, "token.update", id, now).With("fields", strings.Join(changed, ","))
	t, err := s.store.UpdateToken(ctx, m.Org.ID, id, func(t *kve.Token) error {
		if t.Revoked() {
			return errRevoked
		}
		if in.Origins != nil {
			t.Policy.Origins = next.Origins
		}
		if in.IPs != nil {
			t.Policy.IPs = next.IPs
		}
		if in.Paths != nil {
			t.Policy.Paths = next.Paths
		}
		if in.AllowServer != nil {
			t.Policy.AllowServer = *in.AllowServer
		}
		if in.RPM != nil {
			t.Policy.RPM = limits.RPM
		}
		if in.BudgetUSD != nil {
			t.Policy.BudgetMicro = limits.BudgetMicro
		}
		if ttl > 0 {
			if t.Env == kve.EnvDev && ttl > devMaxTTL {
				return kve.Errorf(kve.KindInvalid, "invalid_expires_in", "a dev token expires within 30 days")
			}
			t.ExpiresAt = now.UTC().Add(ttl)
		}
		applyAlerting(t, in, now)
		if len(t.Policy.Origins) == 0 && !t.Policy.AllowServer {
			return errUnusable
		}
		t.UpdatedAt = now.UTC()
		return nil
	}, ev)
	if err != nil {
		return kve.Token{}, tokenErr(err)
	}
	return t, nil
}

// RevokeToken revokes a token; the proxy refuses it on the next request.
// Owners and Admins revoke any token, Developers their own personal dev tokens.
func (s *Service) RevokeToken(ctx context.Context, orgRef string, p Principal, id string) (kve.Token, error) {
	m, t, err := s.visibleToken(ctx, orgRef, p, id)
	if err != nil {
		return kve.Token{}, err
	}
	if m.Role == kve.RoleDeveloper && (t.OwnerID != p.UserID || t.Env != kve.EnvDev) {
		return kve.Token{}, errForbidden
	}
	now := s.now()
	ev := p.Event(m.Org.ID, "token.revoke", id, now).With("name", t.Name)
	t, err = s.store.UpdateToken(ctx, m.Org.ID, id, func(t *kve.Token) error {
		if t.Revoked() {
			return errRevoked
		}
		t.RevokedAt, t.UpdatedAt = now.UTC(), now.UTC()
		return nil
	}, ev)
	if err != nil {
		return kve.Token{}, tokenErr(err)
	}
	s.log.InfoContext(ctx, "token_revoked", "org_id", m.Org.ID, "token_id", id)
	return t, nil
}

func deref(p *[]string) []string {
	if p == nil {
		return nil
	}
	return *p
}
