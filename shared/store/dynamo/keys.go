package dynamo

import (
	"context"
	"fmt"

	"github.com/keyvault-edge/kve/shared/kve"
	"github.com/keyvault-edge/kve/shared/store"
)

// A key reference is one item, org#<org>/key#<name>. Besides the reference
// it carries gen, a counter bumped by every change that gives the key a new
// live token (CreateToken, an UpdateToken that moves a token onto it) and
// by RotateKey. DeleteKey and RotateKey read the tokens that use a key and
// then write on condition that gen is unchanged, so a token created in
// between cannot be left on a deleted key or an old secret version.

func keyItem(k *kve.Key) item {
	it := item{}
	it.setStr("id", k.ID)
	it.setStr("org_id", k.OrgID)
	it.setStr("name", k.Name)
	it.setStr("provider", k.Provider)
	it.setStr("upstream", k.Upstream)
	it.setStr("auth_mode", string(k.Auth.Mode))
	it.setStr("auth_name", k.Auth.Name)
	it.setStr("auth_prefix", k.Auth.Prefix)
	it.setStr("secret", k.Secret)
	it.setStr("secret_version", k.Version)
	it.setStr("last4", k.Last4)
	it.setStr("fingerprint", k.Fingerprint)
	it.setStr("created_by", k.CreatedBy)
	it.setTime("created_at", k.CreatedAt)
	it.setTime("rotated_at", k.RotatedAt)
	return it.with(orgPK(k.OrgID), prefixKey+k.Name)
}

func decodeKey(it item) (kve.Key, int64, error) {
	f := fields{it: it}
	k := kve.Key{
		ID:       f.str("id"),
		OrgID:    f.str("org_id"),
		Name:     f.str("name"),
		Provider: f.str("provider"),
		Upstream: f.str("upstream"),
		Auth: kve.Auth{
			Mode:   kve.AuthMode(f.str("auth_mode")),
			Name:   f.str("auth_name"),
			Prefix: f.str("auth_prefix"),
		},
		Secret:      f.str("secret"),
		Version:     f.str("secret_version"),
		Last4:       f.str("last4"),
		Fingerprint: f.str("fingerprint"),
		CreatedBy:   f.str("created_by"),
		CreatedAt:   f.time("created_at"),
		RotatedAt:   f.time("rotated_at"),
	}
	gen := f.num("gen")
	if f.err != nil {
		return kve.Key{}, 0, fmt.Errorf("decode key: %w", f.err)
	}
	return k, gen, nil
}

var (
	errKeyExists  = kve.Errorf(kve.KindConflict, "key_exists", "a key with this name exists")
	errKeyInUse   = kve.Errorf(kve.KindConflict, "key_in_use", "tokens that are not revoked use this key; revoke them first")
	errKeyChanged = kve.Errorf(kve.KindConflict, "key_changed", "the key was rotated or replaced meanwhile; read it again")
	errNoKey      = fmt.Errorf("the token's key: %w", kve.ErrNotFound)
)

// useKey is the write that lets a live token use ref: the key must exist
// with ref's id and secret version, and its gen goes up.
func (s *Store) useKey(orgID string, ref kve.KeyRef) write {
	var e expr
	cond := e.name("id") + " = " + e.value(str(ref.ID))
	if ref.Version == "" {
		cond += " AND attribute_not_exists(" + e.name("secret_version") + ")"
	} else {
		cond += " AND " + e.name("secret_version") + " = " + e.value(str(ref.Version))
	}
	w := s.update(primaryKey(orgPK(orgID), prefixKey+ref.Name), &e, "ADD "+e.name("gen")+" "+e.value(num(1)), cond, nil)
	w.op.Update.ReturnValuesOnConditionCheckFailure = "ALL_OLD"
	w.failWith = func(old item) error {
		if len(old) == 0 {
			return errNoKey
		}
		return errKeyChanged
	}
	return w
}

// CreateKey implements store.Keys.
func (s *Store) CreateKey(ctx context.Context, k kve.Key, ev kve.Event) error {
	if k.OrgID == "" || k.Name == "" {
		return kve.Errorf(kve.KindInvalid, "invalid_key", "a key needs an organization and a name")
	}
	audit, err := s.auditWrites(k.OrgID, ev)
	if err != nil {
		return fmt.Errorf("create key: %w", err)
	}
	it := keyItem(&k)
	it.setNum("gen", 0)
	ws := []write{s.create(it, errKeyExists), s.orgGuard(k.OrgID, true, 0)}
	if err := s.transact(ctx, append(ws, audit...)...); err != nil {
		return fmt.Errorf("create key: %w", err)
	}
	return nil
}

// Key implements store.Keys.
func (s *Store) Key(ctx context.Context, orgID, name string) (kve.Key, error) {
	it, err := s.get(ctx, orgPK(orgID), prefixKey+name)
	if err != nil {
		return kve.Key{}, fmt.Errorf("read key: %w", err)
	}
	k, _, err := decodeKey(it)
	return k, err
}

// Keys implements store.Keys; sort keys order them by name.
func (s *Store) Keys(ctx context.Context, orgID string) ([]kve.Key, error) {
	items, err := s.all(ctx, newQuery(orgPK(orgID)).prefix(prefixKey))
	if err != nil {
		return nil, fmt.Errorf("list keys: %w", err)
	}
	keys := make([]kve.Key, 0, len(items))
	for _, it := range items {
		k, _, err := decodeKey(it)
		if err != nil {
			return nil, fmt.Errorf("list keys: %w", err)
		}
		keys = append(keys, k)
	}
	return keys, nil
}

// tokensOf is the query of an organization's tokens that use key id;
// live limits it to tokens that are not revoked.
func tokensOf(orgID, keyID string, live bool) *query {
	q := newQuery(orgPK(orgID)).prefix(prefixToken)
	q.where(q.name("key_id") + " = " + q.value(str(keyID)))
	if live {
		q.where(q.absent("revoked_at"))
	}
	return q
}

// RotateKey implements store.Keys. Every token of the key moves to the new
// version, revoked ones too (so that none is left on an old version should
// it be restored). Tokens go first, in transactions of up to 100 items; the
// last one also updates the key and writes the event, on condition that
// the key's gen is still the one read. If it fails because a token was
// added meanwhile, the whole rotation runs again; moving a token twice to
// the same version is harmless. A key with more than 48 tokens
// therefore moves in several transactions: should the last one fail, some
// tokens already use the new version, which is valid, while the key still
// shows the old one until the rotation is repeated.
func (s *Store) RotateKey(ctx context.Context, orgID, name string, r store.Rotation, ev kve.Event) (kve.Key, error) {
	audit, err := s.auditWrites(orgID, ev)
	if err != nil {
		return kve.Key{}, fmt.Errorf("rotate key: %w", err)
	}
	var k kve.Key
	err = s.retryStale(ctx, func() error {
		k, err = s.rotateKey(ctx, orgID, name, r, audit)
		return err
	})
	if err != nil {
		return kve.Key{}, fmt.Errorf("rotate key: %w", err)
	}
	return k, nil
}

func (s *Store) rotateKey(ctx context.Context, orgID, name string, r store.Rotation, audit []write) (kve.Key, error) {
	it, err := s.get(ctx, orgPK(orgID), prefixKey+name)
	if err != nil {
		return kve.Key{}, err
	}
	k, gen, err := decodeKey(it)
	if err != nil {
		return kve.Key{}, err
	}
	tokens, err := s.all(ctx, tokensOf(orgID, k.ID, false))
	if err != nil {
		return kve.Key{}, err
	}
	var moves [][]write // one pair of writes per token
	for _, t := range tokens {
		f := fields{it: t}
		hash, id := f.bytes("hash"), f.str("id")
		if f.err != nil {
			return kve.Key{}, fmt.Errorf("decode token: %w", f.err)
		}
		// A version bump makes a concurrent UpdateToken, which read the
		// token before this, fail and read it again with the new version.
		var pair []write
		for _, pk := range []item{primaryKey(tokenHashPK(hash), skToken), primaryKey(orgPK(orgID), prefixToken+id)} {
			var e expr
			upd := "SET " + e.name("key_version") + " = " + e.value(str(r.Version)) +
				", " + e.name("version") + " = " + e.name("version") + " + " + e.value(num(1))
			pair = append(pair, s.update(pk, &e, upd, e.name("key_id")+" = "+e.value(str(k.ID)), errStale))
		}
		moves = append(moves, pair)
	}

	k.Version, k.Last4, k.Fingerprint, k.RotatedAt = r.Version, r.Last4, r.Fingerprint, r.At
	var e expr
	upd := replace(&e, it, keyItem(&k), "gen") + " ADD " + e.name("gen") + " " + e.value(num(1))
	last := append([]write{s.update(primaryKey(orgPK(orgID), prefixKey+name), &e, upd,
		e.name("gen")+" = "+e.value(num(gen)), errStale)}, audit...)

	for _, ws := range batches(moves, last) {
		if err := s.transact(ctx, ws...); err != nil {
			return kve.Key{}, err
		}
	}
	return k, nil
}

// batches packs groups of writes that must stay together into transactions
// of at most maxTransaction items, with last (never split) in the final one.
func batches(groups [][]write, last []write) [][]write {
	var out [][]write
	var cur []write
	for _, g := range append(groups, last) {
		if len(cur)+len(g) > maxTransaction {
			out, cur = append(out, cur), nil
		}
		cur = append(cur, g...)
	}
	return append(out, cur)
}

// DeleteKey implements store.Keys.
func (s *Store) DeleteKey(ctx context.Context, orgID, name string, ev kve.Event) error {
	audit, err := s.auditWrites(orgID, ev)
	if err != nil {
		return fmt.Errorf("delete key: %w", err)
	}
	err = s.retryStale(ctx, func() error { return s.deleteKey(ctx, orgID, name, audit) })
	if err != nil {
		return fmt.Errorf("delete key: %w", err)
	}
	return nil
}

func (s *Store) deleteKey(ctx context.Context, orgID, name string, audit []write) error {
	it, err := s.get(ctx, orgPK(orgID), prefixKey+name)
	if err != nil {
		return err
	}
	k, gen, err := decodeKey(it)
	if err != nil {
		return err
	}
	live, _, err := s.page(ctx, tokensOf(orgID, k.ID, true), "", 1)
	if err != nil {
		return err
	}
	if len(live) > 0 {
		return errKeyInUse
	}
	var e expr
	del := s.remove(primaryKey(orgPK(orgID), prefixKey+name), &e, e.name("gen")+" = "+e.value(num(gen)), errStale)
	return s.transact(ctx, append([]write{del}, audit...)...)
}
