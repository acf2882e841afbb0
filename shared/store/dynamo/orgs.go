package dynamo

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/keyvault-edge/kve/shared/kve"
)

// An organization is org#<org>/org, its slug a pointer item slug#<slug>/slug
// that makes the slug unique. A membership is two items written together:
// org#<org>/member#<user> for the organization's member list and
// user#<user>/org#<org> for the user's list of organizations. The user's
// item carries a copy of the organization, so that list is one Query.

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
	ws := []write{
		s.create(orgItem(&o).with(orgPK(o.ID), skOrg), errOrgExists),
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
	it, err := s.get(ctx, orgPK(orgID), skOrg)
	if err != nil {
		return kve.Org{}, fmt.Errorf("read org: %w", err)
	}
	f := fields{it: it}
	o := decodeOrg(&f)
	if f.err != nil {
		return kve.Org{}, fmt.Errorf("read org: %w", f.err)
	}
	return o, nil
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
