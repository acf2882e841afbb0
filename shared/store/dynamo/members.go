package dynamo

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/keyvault-edge/kve/shared/kve"
	"github.com/keyvault-edge/kve/shared/store"
)

// Membership changes. Each reads what it changes, then writes on condition
// that it is unchanged (a member's role and gen, the organization's owners
// and gen), and reads again when another writer got there first.
//
// Offboarding (RemoveMember) revokes the member's personal tokens and ends
// sessions in the same transaction as the membership removal when they fit
// in one (up to 100 items: about 45 tokens, or 30 sessions, with the rest).
// A member with more is offboarded in several transactions, and atomicity
// is kept by their order: the revocations and session deletions go first,
// the membership removal, owner check and audit event last. Every write of
// the earlier transactions only takes away what the removal takes away
// anyway, so if a later one fails the member is left with less access,
// never more, and repeating the removal finishes it (revoked tokens and
// ended sessions are not read again). No token can slip in between: a
// personal token's creation bumps the member's gen, on which the final
// transaction is conditioned.

var (
	errLastOwner  = kve.Errorf(kve.KindConflict, "last_owner", "an organization keeps at least one owner: make another member owner first")
	errNotMember  = kve.Errorf(kve.KindNotFound, "not_found", "member not found")
	errTokenOwner = kve.Errorf(kve.KindNotFound, "not_found", "the personal token's owner is not a member of the organization")
)

// member reads a member's item with its gen.
func (s *Store) member(ctx context.Context, orgID, userID string) (kve.Member, int64, error) {
	it, err := s.get(ctx, orgPK(orgID), prefixMember+userID)
	if errors.Is(err, kve.ErrNotFound) {
		return kve.Member{}, 0, errNotMember
	}
	if err != nil {
		return kve.Member{}, 0, err
	}
	m, err := decodeMember(it)
	if err != nil {
		return kve.Member{}, 0, err
	}
	f := fields{it: it}
	gen := f.num("gen")
	return m, gen, f.err
}

// bumpMember is the write that lets a personal token of userID be created:
// the member must exist, and their gen goes up.
func (s *Store) bumpMember(orgID, userID string) write {
	var e expr
	return s.update(primaryKey(orgPK(orgID), prefixMember+userID), &e,
		"ADD "+e.name("gen")+" "+e.value(num(1)), e.exists(), errTokenOwner)
}

// ownerDelta is how a role change moves the number of Owners.
func ownerDelta(from, to kve.Role) int64 {
	var d int64
	if from == kve.RoleOwner {
		d--
	}
	if to == kve.RoleOwner {
		d++
	}
	return d
}

// ChangeRole implements store.Orgs.
func (s *Store) ChangeRole(ctx context.Context, orgID, userID string, role kve.Role, ev kve.Event) (kve.Member, error) {
	audit, err := s.auditWrites(orgID, ev)
	if err != nil {
		return kve.Member{}, fmt.Errorf("change role: %w", err)
	}
	var m kve.Member
	err = s.retryStale(ctx, func() error {
		var err error
		if m, _, err = s.member(ctx, orgID, userID); err != nil {
			return err
		}
		var e, c expr
		ws := []write{
			s.update(primaryKey(orgPK(orgID), prefixMember+userID), &e,
				"SET "+e.name("role")+" = "+e.value(str(string(role))),
				e.name("role")+" = "+e.value(str(string(m.Role))), errStale),
			s.update(primaryKey(userPK(userID), prefixOrg+orgID), &c,
				"SET "+c.name("role")+" = "+c.value(str(string(role))), c.exists(), errStale),
			s.orgGuard(orgID, false, ownerDelta(m.Role, role)),
		}
		if err := s.transact(ctx, append(ws, audit...)...); err != nil {
			return err
		}
		m.Role = role
		return nil
	})
	if err != nil {
		return kve.Member{}, fmt.Errorf("change role: %w", err)
	}
	return m, nil
}

// revokeWrites revoke a live token: both of its items, at at. The version
// bump makes a concurrent UpdateToken read again and find it revoked.
func (s *Store) revokeWrites(orgID string, tok item, at time.Time) ([]write, string, error) {
	f := fields{it: tok}
	hash, id := f.bytes("hash"), f.str("id")
	if f.err != nil {
		return nil, "", fmt.Errorf("decode token: %w", f.err)
	}
	var ws []write
	for _, k := range []item{primaryKey(tokenHashPK(hash), skToken), primaryKey(orgPK(orgID), prefixToken+id)} {
		var e expr
		upd := "SET " + e.name("revoked_at") + " = " + e.value(stamp(at)) +
			", " + e.name("updated_at") + " = " + e.value(stamp(at)) +
			", " + e.name("version") + " = " + e.name("version") + " + " + e.value(num(1))
		ws = append(ws, s.update(k, &e, upd, e.exists(), errStale))
	}
	return ws, id, nil
}

// endSession is the three deletes that end a session (see users.go).
func (s *Store) endSession(userID string, sess item) ([]write, error) {
	f := fields{it: sess}
	id, hash := f.str("id"), f.bytes("hash")
	if f.err != nil {
		return nil, fmt.Errorf("decode session: %w", f.err)
	}
	return []write{
		s.remove(primaryKey(userPK(userID), prefixSession+id), &expr{}, "", nil),
		s.remove(primaryKey(sessionHashPK(hash), skSession), &expr{}, "", nil),
		s.remove(primaryKey(sessionIDPK(id), skSession), &expr{}, "", nil),
	}, nil
}

// RemoveMember implements store.Orgs; see the file comment for how a
// removal that needs several transactions stays safe.
func (s *Store) RemoveMember(ctx context.Context, orgID, userID string, ev kve.Event) (store.Removal, error) {
	audit, err := s.auditWrites(orgID, ev)
	if err != nil {
		return store.Removal{}, fmt.Errorf("remove member: %w", err)
	}
	// What every attempt set out to take away: an attempt that lost a race
	// may have committed its first transactions, and what they took is not
	// read again by the next one. Each of these ends up revoked or ended.
	acc := &taken{tokens: map[string]bool{}, sessions: map[string]bool{}}
	var m kve.Member
	err = s.retryStale(ctx, func() error {
		var err error
		m, err = s.removeMember(ctx, orgID, userID, ev.At, audit, acc)
		return err
	})
	if err != nil {
		return store.Removal{}, fmt.Errorf("remove member: %w", err)
	}
	return store.Removal{Member: m, Tokens: acc.tokenIDs(), Sessions: len(acc.sessions)}, nil
}

// taken collects the ids of the tokens and sessions a removal takes away.
type taken struct {
	tokens, sessions map[string]bool
	order            []string // token ids, as first seen
}

func (t *taken) token(id string) {
	if !t.tokens[id] {
		t.tokens[id] = true
		t.order = append(t.order, id)
	}
}

func (t *taken) tokenIDs() []string { return append([]string{}, t.order...) }

func (s *Store) removeMember(ctx context.Context, orgID, userID string, at time.Time, audit []write, acc *taken) (kve.Member, error) {
	m, gen, err := s.member(ctx, orgID, userID)
	if err != nil {
		return kve.Member{}, err
	}
	if m.Role == kve.RoleOwner {
		// Checked before anything is revoked; the final transaction checks
		// again, against concurrent changes.
		it, err := s.get(ctx, orgPK(orgID), skOrg)
		if err != nil {
			return kve.Member{}, err
		}
		f := fields{it: it}
		if f.num("owners") <= 1 {
			return kve.Member{}, errLastOwner
		}
	}
	q := newQuery(orgPK(orgID)).prefix(prefixToken)
	q.where(q.name("owner_id") + " = " + q.value(str(userID)))
	q.where(q.name("kind") + " = " + q.value(str(string(kve.TokenPersonal))))
	q.where(q.absent("revoked_at"))
	tokens, err := s.all(ctx, q)
	if err != nil {
		return kve.Member{}, err
	}
	sessions, err := s.all(ctx, newQuery(userPK(userID)).prefix(prefixSession))
	if err != nil {
		return kve.Member{}, err
	}
	orgs, err := s.all(ctx, newQuery(userPK(userID)).prefix(prefixOrg))
	if err != nil {
		return kve.Member{}, err
	}
	var elsewhere item // another membership of the user, if any
	for _, it := range orgs {
		if f := (fields{it: it}); f.str(AttrSK) != prefixOrg+orgID {
			elsewhere = it
			break
		}
	}

	var groups [][]write
	for _, tok := range tokens {
		ws, id, err := s.revokeWrites(orgID, tok, at)
		if err != nil {
			return kve.Member{}, err
		}
		groups = append(groups, ws)
		acc.token(id)
	}
	for _, sess := range sessions {
		// When this organization is the user's last, every session ends;
		// otherwise only the API tokens limited to it.
		f := fields{it: sess}
		if elsewhere != nil && f.str("org_id") != orgID {
			continue
		}
		ws, err := s.endSession(userID, sess)
		if err != nil {
			return kve.Member{}, err
		}
		groups = append(groups, ws)
		acc.sessions[f.str("id")] = true
	}

	var e expr
	cond := e.name("role") + " = " + e.value(str(string(m.Role))) + " AND " + genIs(&e, gen)
	last := []write{
		s.remove(primaryKey(orgPK(orgID), prefixMember+userID), &e, cond, errStale),
		s.remove(primaryKey(userPK(userID), prefixOrg+orgID), &expr{}, "", nil),
		s.orgGuard(orgID, false, ownerDelta(m.Role, "")),
	}
	if elsewhere != nil {
		// The decision to keep the user's other sessions holds only while
		// that other membership does.
		var c expr
		f := fields{it: elsewhere}
		last = append(last, s.check(primaryKey(userPK(userID), f.str(AttrSK)), &c, c.exists(), errStale))
	}
	if err := s.transactAll(ctx, batches(groups, append(last, audit...))); err != nil {
		return kve.Member{}, err
	}
	return m, nil
}
