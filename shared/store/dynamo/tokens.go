package dynamo

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/keyvault-edge/kve/shared/kve"
	"github.com/keyvault-edge/kve/shared/store"
)

// A token is two items with the same attributes, always written together:
// the proxy's item under its HMAC (tokenhash#<hex>/token) and the management
// copy under its organization (org#<org>/token#<id>). Both carry version,
// the optimistic lock of UpdateToken and RotateKey, and last_used, which
// only RecordUsage writes, and only forward.

// tokenItem returns a token's attributes, without its key.
func tokenItem(t *kve.Token) (item, error) {
	it := item{}
	it.setStr("id", t.ID)
	it.setStr("org_id", t.OrgID)
	it.setStr("name", t.Name)
	it.setStr("kind", string(t.Kind))
	it.setStr("env", string(t.Env))
	it.setStr("owner_id", t.OwnerID)
	it.setStr("hint", t.Hint)
	it.setBytes("hash", t.Hash)
	it.setBytes("sealed", t.Sealed)
	it.setStr("key_id", t.Key.ID)
	it.setStr("key_name", t.Key.Name)
	it.setStr("key_provider", t.Key.Provider)
	it.setStr("key_upstream", t.Key.Upstream)
	it.setStr("key_secret", t.Key.Secret)
	it.setStr("key_version", t.Key.Version)
	it.setStr("auth_mode", string(t.Key.Auth.Mode))
	it.setStr("auth_name", t.Key.Auth.Name)
	it.setStr("auth_prefix", t.Key.Auth.Prefix)
	if err := it.setJSON("policy", t.Policy); err != nil {
		return nil, err
	}
	it.setStr("created_by", t.CreatedBy)
	it.setTime("created_at", t.CreatedAt)
	it.setTime("updated_at", t.UpdatedAt)
	it.setTime("expires_at", t.ExpiresAt)
	it.setTime("revoked_at", t.RevokedAt)
	it.setTime("last_used", t.LastUsed)
	it.setNum("version", t.Version)
	it.setFlag("alerts", t.Alerts)
	it.setFlag("auto_suspend", t.AutoSuspend)
	it.setTime("suspended_at", t.SuspendedAt)
	it.setStr("suspension", t.Suspension)
	return it, nil
}

func decodeToken(it item) (kve.Token, error) {
	f := fields{it: it}
	t := kve.Token{
		ID:      f.str("id"),
		OrgID:   f.str("org_id"),
		Name:    f.str("name"),
		Kind:    kve.TokenKind(f.str("kind")),
		Env:     kve.Env(f.str("env")),
		OwnerID: f.str("owner_id"),
		Hint:    f.str("hint"),
		Hash:    f.bytes("hash"),
		Sealed:  f.bytes("sealed"),
		Key: kve.KeyRef{
			ID:       f.str("key_id"),
			Name:     f.str("key_name"),
			Provider: f.str("key_provider"),
			Upstream: f.str("key_upstream"),
			Secret:   f.str("key_secret"),
			Version:  f.str("key_version"),
			Auth: kve.Auth{
				Mode:   kve.AuthMode(f.str("auth_mode")),
				Name:   f.str("auth_name"),
				Prefix: f.str("auth_prefix"),
			},
		},
		CreatedBy: f.str("created_by"),
		CreatedAt: f.time("created_at"),
		UpdatedAt: f.time("updated_at"),
		ExpiresAt: f.time("expires_at"),
		RevokedAt: f.time("revoked_at"),
		LastUsed:  f.time("last_used"),
		Version:   f.num("version"),

		Alerts:      f.flag("alerts"),
		AutoSuspend: f.flag("auto_suspend"),
		SuspendedAt: f.time("suspended_at"),
		Suspension:  f.str("suspension"),
	}
	f.json("policy", &t.Policy)
	if f.err != nil {
		return kve.Token{}, fmt.Errorf("decode token: %w", f.err)
	}
	return t, nil
}

// tokenItems returns the proxy's item and the management copy of t.
func tokenItems(t *kve.Token) (proxy, org item, err error) {
	it, err := tokenItem(t)
	if err != nil {
		return nil, nil, err
	}
	return it.with(tokenHashPK(t.Hash), skToken), it.with(orgPK(t.OrgID), prefixToken+t.ID), nil
}

var errTokenExists = kve.Errorf(kve.KindConflict, "token_exists", "a token with this id or value exists")

// CreateToken implements store.Tokens. The token's key must exist in its
// organization, at the version the token carries: this also bumps the key's
// generation, so a DeleteKey or RotateKey that read the key before this
// token existed fails and looks again. In the same way it bumps the gen of
// the organization (which must not be deleted) and, for a personal token,
// of its owner's membership (which must exist), so that a deletion or an
// offboarding that read before this token existed reads again.
func (s *Store) CreateToken(ctx context.Context, t kve.Token, ev kve.Event) error {
	if t.ID == "" || t.OrgID == "" || len(t.Hash) == 0 {
		return kve.Errorf(kve.KindInvalid, "invalid_token", "a token needs an id, an organization and a hash")
	}
	proxy, org, err := tokenItems(&t)
	if err != nil {
		return fmt.Errorf("create token: %w", err)
	}
	audit, err := s.auditWrites(t.OrgID, ev)
	if err != nil {
		return fmt.Errorf("create token: %w", err)
	}
	ws := append([]write{s.create(org, errTokenExists), s.create(proxy, errTokenExists), s.orgGuard(t.OrgID, true, 0)}, audit...)
	if !t.Revoked() && t.Key.Name != "" {
		ws = append(ws, s.useKey(t.OrgID, t.Key))
	}
	if t.Kind == kve.TokenPersonal {
		ws = append(ws, s.bumpMember(t.OrgID, t.OwnerID))
	}
	if err := s.transact(ctx, ws...); err != nil {
		return fmt.Errorf("create token: %w", err)
	}
	return nil
}

// Token implements store.Tokens.
func (s *Store) Token(ctx context.Context, orgID, id string) (kve.Token, error) {
	it, err := s.get(ctx, orgPK(orgID), prefixToken+id)
	if err != nil {
		return kve.Token{}, fmt.Errorf("read token: %w", err)
	}
	return decodeToken(it)
}

// TokenByHash implements store.Tokens with one strongly consistent Query
// that returns today's spend counter and the token together: their sort
// keys, spend#<today> and token, are the two ends of one range.
func (s *Store) TokenByHash(ctx context.Context, hash []byte) (kve.Token, error) {
	if len(hash) == 0 {
		return kve.Token{}, fmt.Errorf("read token by hash: %w", kve.ErrNotFound)
	}
	today := s.now().UTC().Format(time.DateOnly)
	items, err := s.all(ctx, newQuery(tokenHashPK(hash)).between(spendSK(today), skToken))
	if err != nil {
		return kve.Token{}, fmt.Errorf("read token by hash: %w", err)
	}
	var t kve.Token
	found := false
	spend := kve.Spend{Day: today}
	for _, it := range items {
		f := fields{it: it}
		switch f.str(AttrSK) {
		case skToken:
			if t, err = decodeToken(it); err != nil {
				return kve.Token{}, fmt.Errorf("read token by hash: %w", err)
			}
			found = true
		case spendSK(today):
			spend.Micro = f.num("micro")
			if f.err != nil {
				return kve.Token{}, fmt.Errorf("read token by hash: decode spend: %w", f.err)
			}
		}
	}
	if !found {
		return kve.Token{}, fmt.Errorf("read token by hash: %w", kve.ErrNotFound)
	}
	t.Spend = spend
	return t, nil
}

// Tokens implements store.Tokens. Ids sort by creation time, so the
// organization's token items read backwards are newest first.
func (s *Store) Tokens(ctx context.Context, orgID string, f store.TokenFilter) (store.Page[kve.Token], error) {
	q := newQuery(orgPK(orgID)).prefix(prefixToken)
	q.backward = true
	if f.VisibleTo != "" {
		q.where("(" + q.name("kind") + " = " + q.value(str(string(kve.TokenShared))) +
			" OR " + q.name("owner_id") + " = " + q.value(str(f.VisibleTo)) + ")")
	}
	if f.KeyID != "" {
		q.where(q.name("key_id") + " = " + q.value(str(f.KeyID)))
	}
	if f.Env != "" {
		q.where(q.name("env") + " = " + q.value(str(string(f.Env))))
	}
	if !f.IncludeRevoked {
		q.where(q.absent("revoked_at"))
	}
	items, next, err := s.page(ctx, q, f.Cursor, store.Limit(f.Limit))
	if err != nil {
		return store.Page[kve.Token]{}, fmt.Errorf("list tokens: %w", err)
	}
	page := store.Page[kve.Token]{Items: make([]kve.Token, 0, len(items)), Next: next}
	for _, it := range items {
		t, err := decodeToken(it)
		if err != nil {
			return store.Page[kve.Token]{}, fmt.Errorf("list tokens: %w", err)
		}
		page.Items = append(page.Items, t)
	}
	return page, nil
}

// UpdateToken implements store.Tokens: read the management copy, apply fn,
// write both items on condition that their version is still the one read;
// on a lost race, read again and call fn again.
func (s *Store) UpdateToken(ctx context.Context, orgID, id string, fn func(*kve.Token) error, ev kve.Event) (kve.Token, error) {
	audit, err := s.auditWrites(orgID, ev)
	if err != nil {
		return kve.Token{}, fmt.Errorf("update token: %w", err)
	}
	var t kve.Token
	err = s.retryStale(ctx, func() error {
		t, err = s.updateToken(ctx, orgID, id, fn, audit)
		return err
	})
	if err != nil {
		return kve.Token{}, fmt.Errorf("update token: %w", err)
	}
	return t, nil
}

func (s *Store) updateToken(ctx context.Context, orgID, id string, fn func(*kve.Token) error, audit []write) (kve.Token, error) {
	stored, err := s.get(ctx, orgPK(orgID), prefixToken+id)
	if err != nil {
		return kve.Token{}, err
	}
	old, err := decodeToken(stored)
	if err != nil {
		return kve.Token{}, err
	}
	t := old
	if err := fn(&t); err != nil {
		return kve.Token{}, err
	}
	if t.ID != old.ID || t.OrgID != old.OrgID || !bytes.Equal(t.Hash, old.Hash) || !bytes.Equal(t.Sealed, old.Sealed) {
		return kve.Token{}, errors.New("fn changed the token's id, organization, hash or sealed value")
	}
	t.Version = old.Version + 1
	t.LastUsed = old.LastUsed
	it, err := tokenItem(&t)
	if err != nil {
		return kve.Token{}, err
	}
	// Both items are updated attribute by attribute rather than replaced,
	// so that a last_used that RecordUsage moved meanwhile stays.
	ws := make([]write, 0, 5)
	for _, k := range []item{primaryKey(tokenHashPK(t.Hash), skToken), primaryKey(orgPK(orgID), prefixToken+id)} {
		var e expr
		ws = append(ws, s.update(k, &e, replace(&e, stored, it, "last_used"),
			e.name("version")+" = "+e.value(num(old.Version)), errStale))
	}
	ws = append(ws, audit...)
	wasLive := !old.Revoked() && old.Key.ID == t.Key.ID && old.Key.Name == t.Key.Name
	if !t.Revoked() && !wasLive && t.Key.Name != "" {
		ws = append(ws, s.useKey(orgID, t.Key))
	}
	if err := s.transact(ctx, ws...); err != nil {
		return kve.Token{}, err
	}
	return t, nil
}
