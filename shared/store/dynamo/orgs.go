package dynamo

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/keyvault-edge/kve/shared/kve"
	"github.com/keyvault-edge/kve/shared/store"
)

// An organization is org#<org>/org, its slug a pointer item slug#<slug>/slug
// that makes the slug unique. A membership is two items written together:
// org#<org>/member#<user> for the organization's member list and
// user#<user>/org#<org> for the user's list of organizations. The user's
// item carries a copy of the organization, so that list is one Query.
//
// The organization's item also keeps the invariants of its members and
// children, as counters that transactions change and condition on:
//   - owners, the number of Owners: a change that lowers it must find it
//     above 1, so two concurrent demotions cannot leave none;
//   - gen, bumped by every write that adds something the organization's
//     deletion must reach (a token, a key, an invite, a member): deletion
//     and renaming read the organization, then commit only if gen is
//     unchanged, and otherwise read again;
//   - deleted_at, set by DeleteOrg: from then on the organization is not
//     found, and no write that adds to it succeeds.
// A member's item has a gen of its own, bumped by each personal token
// created for them, so that a removal cannot miss a token created while it
// read.

func orgItem(o *kve.Org) item {
	it := item{}
	it.setStr("id", o.ID)
	it.setStr("slug", o.Slug)
	it.setStr("name", o.Name)
	it.setTime("created_at", o.CreatedAt)
	it.setStr("created_by", o.CreatedBy)
	return it
}

func decodeOrg(f *fields) kve.Org {
	return kve.Org{
		ID:        f.str("id"),
		Slug:      f.str("slug"),
		Name:      f.str("name"),
		CreatedAt: f.time("created_at"),
		CreatedBy: f.str("created_by"),
	}
}

func memberItem(m *kve.Member) item {
	it := item{}
	it.setStr("org_id", m.OrgID)
	it.setStr("user_id", m.UserID)
	it.setStr("email", m.Email)
	it.setStr("name", m.Name)
	it.setStr("role", string(m.Role))
	it.setTime("joined_at", m.JoinedAt)
	it.setNum("gen", 0)
	return it.with(orgPK(m.OrgID), prefixMember+m.UserID)
}

func decodeMember(it item) (kve.Member, error) {
	f := fields{it: it}
	m := kve.Member{
		OrgID:    f.str("org_id"),
		UserID:   f.str("user_id"),
		Email:    f.str("email"),
		Name:     f.str("name"),
		Role:     kve.Role(f.str("role")),
		JoinedAt: f.time("joined_at"),
	}
	if f.err != nil {
		return kve.Member{}, fmt.Errorf("decode member: %w", f.err)
	}
	return m, nil
}

// membershipItem is the user's side of a membership: the organization, the
// role and when the user joined (for ordering).
func membershipItem(o *kve.Org, m *kve.Member) item {
	it := orgItem(o)
	it.setStr("role", string(m.Role))
	it.setTime("joined_at", m.JoinedAt)
	return it.with(userPK(m.UserID), prefixOrg+o.ID)
}

var (
	errOrgExists = kve.Errorf(kve.KindConflict, "org_exists", "an organization with this id exists")
	errSlugTaken = kve.Errorf(kve.KindConflict, "slug_taken", "an organization with this slug exists")
)

// CreateOrg implements store.Orgs.
func (s *Store) CreateOrg(ctx context.Context, o kve.Org, owner kve.Member, ev kve.Event) error {
	if o.ID == "" || o.Slug == "" || owner.UserID == "" {
		return kve.Errorf(kve.KindInvalid, "invalid_org", "an organization needs an id, a slug and an owner")
	}
	owner.OrgID = o.ID
	audit, err := s.auditWrites(o.ID, ev)
	if err != nil {
		return fmt.Errorf("create org: %w", err)
	}
	slug := item{}
	slug.setStr("org_id", o.ID)
	it := orgItem(&o)
	it.setNum("owners", 1)
	it.setNum("gen", 0)
	ws := []write{
		s.create(it.with(orgPK(o.ID), skOrg), errOrgExists),
		s.create(slug.with(slugPK(o.Slug), skSlug), errSlugTaken),
		s.create(memberItem(&owner), errOrgExists),
		s.create(membershipItem(&o, &owner), errOrgExists),
	}
	if err := s.transact(ctx, append(ws, audit...)...); err != nil {
		return fmt.Errorf("create org: %w", err)
	}
	return nil
}

// Org implements store.Orgs.
func (s *Store) Org(ctx context.Context, orgID string) (kve.Org, error) {
	o, _, err := s.liveOrg(ctx, orgID)
	if err != nil {
		return kve.Org{}, fmt.Errorf("read org: %w", err)
	}
	return o, nil
}

var errNoOrg = kve.Errorf(kve.KindNotFound, "not_found", "organization not found")

// liveOrg reads an organization that is not deleted, with its gen.
func (s *Store) liveOrg(ctx context.Context, orgID string) (kve.Org, int64, error) {
	it, err := s.get(ctx, orgPK(orgID), skOrg)
	if errors.Is(err, kve.ErrNotFound) {
		return kve.Org{}, 0, errNoOrg
	}
	if err != nil {
		return kve.Org{}, 0, err
	}
	f := fields{it: it}
	o := decodeOrg(&f)
	gen, deleted := f.num("gen"), f.time("deleted_at")
	if f.err != nil {
		return kve.Org{}, 0, fmt.Errorf("decode org: %w", f.err)
	}
	if !deleted.IsZero() {
		return kve.Org{}, 0, errNoOrg
	}
	return o, gen, nil
}

// orgGuard is the write on an organization's item that goes with a change
// to it: the organization must exist and not be deleted; bump adds to gen
// (see the file comment); owners changes the number of Owners, which must
// stay at least 1.
func (s *Store) orgGuard(orgID string, bump bool, owners int64) write {
	var e expr
	k := primaryKey(orgPK(orgID), skOrg)
	cond := e.exists() + " AND attribute_not_exists(" + e.name("deleted_at") + ")"
	var add string
	if bump {
		add += sep(add) + e.name("gen") + " " + e.value(num(1))
	}
	if owners != 0 {
		add += sep(add) + e.name("owners") + " " + e.value(num(owners))
		if owners < 0 {
			cond += " AND " + e.name("owners") + " >= " + e.value(num(1-owners))
		}
	}
	var w write
	if add == "" {
		w = s.check(k, &e, cond, nil)
		w.op.ConditionCheck.ReturnValuesOnConditionCheckFailure = "ALL_OLD"
	} else {
		w = s.update(k, &e, "ADD "+add, cond, nil)
		w.op.Update.ReturnValuesOnConditionCheckFailure = "ALL_OLD"
	}
	w.failWith = func(old item) error {
		if _, deleted := old["deleted_at"]; len(old) == 0 || deleted {
			return errNoOrg
		}
		return errLastOwner
	}
	return w
}

// genIs is the condition that an item's gen is still the one read (an item
// written before gen existed reads as 0).
func genIs(e *expr, gen int64) string {
	g := e.name("gen")
	if gen == 0 {
		return "(attribute_not_exists(" + g + ") OR " + g + " = " + e.value(num(0)) + ")"
	}
	return g + " = " + e.value(num(gen))
}

// OrgBySlug implements store.Orgs.
func (s *Store) OrgBySlug(ctx context.Context, slug string) (kve.Org, error) {
	it, err := s.get(ctx, slugPK(slug), skSlug)
	if err != nil {
		return kve.Org{}, fmt.Errorf("read org by slug: %w", err)
	}
	f := fields{it: it}
	return s.Org(ctx, f.str("org_id"))
}

// Memberships implements store.Orgs, ordered by when the user joined.
func (s *Store) Memberships(ctx context.Context, userID string) ([]kve.Membership, error) {
	items, err := s.all(ctx, newQuery(userPK(userID)).prefix(prefixOrg))
	if err != nil {
		return nil, fmt.Errorf("list memberships: %w", err)
	}
	type joined struct {
		m  kve.Membership
		at time.Time
	}
	list := make([]joined, 0, len(items))
	for _, it := range items {
		f := fields{it: it}
		j := joined{m: kve.Membership{Org: decodeOrg(&f), Role: kve.Role(f.str("role"))}, at: f.time("joined_at")}
		if f.err != nil {
			return nil, fmt.Errorf("list memberships: %w", f.err)
		}
		list = append(list, j)
	}
	slices.SortStableFunc(list, func(a, b joined) int {
		return cmp.Or(a.at.Compare(b.at), cmp.Compare(a.m.Org.ID, b.m.Org.ID))
	})
	out := make([]kve.Membership, len(list))
	for i, j := range list {
		out[i] = j.m
	}
	return out, nil
}

// Member implements store.Orgs.
func (s *Store) Member(ctx context.Context, orgID, userID string) (kve.Member, error) {
	it, err := s.get(ctx, orgPK(orgID), prefixMember+userID)
	if err != nil {
		return kve.Member{}, fmt.Errorf("read member: %w", err)
	}
	return decodeMember(it)
}

// Members implements store.Orgs. Sort keys order members by user id, so
// the list is sorted by join time here; an organization's members fit in
// memory.
func (s *Store) Members(ctx context.Context, orgID string) ([]kve.Member, error) {
	items, err := s.all(ctx, newQuery(orgPK(orgID)).prefix(prefixMember))
	if err != nil {
		return nil, fmt.Errorf("list members: %w", err)
	}
	members := make([]kve.Member, 0, len(items))
	for _, it := range items {
		m, err := decodeMember(it)
		if err != nil {
			return nil, fmt.Errorf("list members: %w", err)
		}
		members = append(members, m)
	}
	slices.SortStableFunc(members, func(a, b kve.Member) int {
		return cmp.Or(a.JoinedAt.Compare(b.JoinedAt), cmp.Compare(a.UserID, b.UserID))
	})
	return members, nil
}

// RenameOrg implements store.Orgs. The copies of the organization on its
// members' items are renamed with it, first when they do not fit in one
// transaction: a member may then see the new name a moment early.
func (s *Store) RenameOrg(ctx context.Context, orgID, name string, ev kve.Event) (kve.Org, error) {
	audit, err := s.auditWrites(orgID, ev)
	if err != nil {
		return kve.Org{}, fmt.Errorf("rename org: %w", err)
	}
	var o kve.Org
	err = s.retryStale(ctx, func() error {
		var gen int64
		var err error
		if o, gen, err = s.liveOrg(ctx, orgID); err != nil {
			return err
		}
		members, err := s.all(ctx, newQuery(orgPK(orgID)).prefix(prefixMember))
		if err != nil {
			return err
		}
		var groups [][]write
		for _, it := range members {
			f := fields{it: it}
			var e expr
			groups = append(groups, []write{s.update(primaryKey(userPK(f.str("user_id")), prefixOrg+orgID), &e,
				"SET "+e.name("name")+" = "+e.value(str(name)), e.exists(), nil)})
		}
		var e expr
		last := s.update(primaryKey(orgPK(orgID), skOrg), &e, "SET "+e.name("name")+" = "+e.value(str(name)),
			e.exists()+" AND attribute_not_exists("+e.name("deleted_at")+") AND "+genIs(&e, gen), errStale)
		if err := s.transactAll(ctx, batches(groups, append([]write{last}, audit...))); err != nil {
			return err
		}
		o.Name = name
		return nil
	})
	if err != nil {
		return kve.Org{}, fmt.Errorf("rename org: %w", err)
	}
	return o, nil
}

// DeleteOrg implements store.Orgs in three steps:
//
//  1. revoke every live token, and remove the invites, the copies of the
//     organization on its members' items and the sessions limited to it;
//  2. mark the organization deleted, with the audit event, on condition
//     that its gen is unchanged since step 1 read (so no token, key, invite
//     or member was added meanwhile; otherwise everything is read again);
//  3. remove the member and key items.
//
// Steps 1 and 2 share transactions while they fit, so an organization of up
// to about 45 tokens stops working in one. A failure in step 1 leaves the
// organization in place, with some of its tokens revoked, and the Owner can
// delete it again; once step 2 has committed the organization is not found
// anywhere and no write can add to it, and what step 3 may leave behind
// after a failure is unreachable (every read of the organization checks
// its item first). The answer names the keys even then, so that their
// values are deleted.
func (s *Store) DeleteOrg(ctx context.Context, orgID string, ev kve.Event) (store.Deletion, error) {
	audit, err := s.auditWrites(orgID, ev)
	if err != nil {
		return store.Deletion{}, fmt.Errorf("delete org: %w", err)
	}
	acc := &taken{tokens: map[string]bool{}} // as in RemoveMember
	var keys []kve.Key
	var after []write
	err = s.retryStale(ctx, func() error {
		var err error
		keys, after, err = s.deleteOrg(ctx, orgID, ev.At, audit, acc)
		return err
	})
	if err != nil {
		return store.Deletion{}, fmt.Errorf("delete org: %w", err)
	}
	d := store.Deletion{Tokens: acc.tokenIDs(), Keys: keys}
	var groups [][]write
	for _, w := range after {
		groups = append(groups, []write{w})
	}
	if err := s.transactAll(ctx, batches(groups, nil)); err != nil {
		return d, fmt.Errorf("delete org: clean up after deletion: %w", err)
	}
	return d, nil
}

// deleteOrg runs steps 1 and 2 of DeleteOrg and returns the organization's
// keys and the writes of step 3.
func (s *Store) deleteOrg(ctx context.Context, orgID string, at time.Time, audit []write, acc *taken) ([]kve.Key, []write, error) {
	_, gen, err := s.liveOrg(ctx, orgID)
	if err != nil {
		return nil, nil, err
	}
	items, err := s.all(ctx, newQuery(orgPK(orgID)))
	if err != nil {
		return nil, nil, err
	}
	keys := []kve.Key{}
	var groups [][]write
	var after []write
	for _, it := range items {
		f := fields{it: it}
		sk := f.str(AttrSK)
		switch {
		case strings.HasPrefix(sk, prefixToken):
			if !f.time("revoked_at").IsZero() {
				continue
			}
			ws, id, err := s.revokeWrites(orgID, it, at)
			if err != nil {
				return nil, nil, err
			}
			groups = append(groups, ws)
			acc.token(id)
		case strings.HasPrefix(sk, prefixInvite):
			groups = append(groups, []write{
				s.remove(primaryKey(orgPK(orgID), sk), &expr{}, "", nil),
				s.remove(primaryKey(inviteHashPK(f.bytes("hash")), skInvite), &expr{}, "", nil),
			})
		case strings.HasPrefix(sk, prefixKey):
			k, _, err := decodeKey(it)
			if err != nil {
				return nil, nil, err
			}
			keys = append(keys, k)
			after = append(after, s.remove(primaryKey(orgPK(orgID), sk), &expr{}, "", nil))
		case strings.HasPrefix(sk, prefixMember):
			userID := f.str("user_id")
			groups = append(groups, []write{s.remove(primaryKey(userPK(userID), prefixOrg+orgID), &expr{}, "", nil)})
			q := newQuery(userPK(userID)).prefix(prefixSession)
			q.where(q.name("org_id") + " = " + q.value(str(orgID)))
			sessions, err := s.all(ctx, q)
			if err != nil {
				return nil, nil, err
			}
			for _, sess := range sessions {
				ws, err := s.endSession(userID, sess)
				if err != nil {
					return nil, nil, err
				}
				groups = append(groups, ws)
			}
			after = append(after, s.remove(primaryKey(orgPK(orgID), sk), &expr{}, "", nil))
		}
	}
	var e expr
	mark := s.update(primaryKey(orgPK(orgID), skOrg), &e, "SET "+e.name("deleted_at")+" = "+e.value(stamp(at)),
		e.exists()+" AND attribute_not_exists("+e.name("deleted_at")+") AND "+genIs(&e, gen), errStale)
	if err := s.transactAll(ctx, batches(groups, append([]write{mark}, audit...))); err != nil {
		return nil, nil, err
	}
	return keys, after, nil
}
