package manage

import (
	"context"
	"fmt"
	"slices"

	"github.com/keyvault-edge/kve/shared/kve"
)

// OrgInput creates an organization.
type OrgInput struct {
	Name string `json:"name"`
}

// CreateOrg creates an organization whose Owner is the caller. A slug that is
// taken gets a random suffix rather than an error, so names of other
// organizations cannot be probed.
func (s *Service) CreateOrg(ctx context.Context, p Principal, in OrgInput) (kve.Org, error) {
	name, err := checkLabel("name", in.Name, 100)
	if err != nil {
		return kve.Org{}, err
	}
	now := s.now()
	base := kve.Slugify(name)
	for attempt := 0; ; attempt++ {
		o := kve.Org{ID: kve.NewID(kve.PrefixOrg, now), Slug: base, Name: name, CreatedAt: now.UTC(), CreatedBy: p.UserID}
		if attempt > 0 {
			o.Slug = base + "-" + kve.NewID("", now)[20:] // the id's last 6 characters are random
		}
		owner := kve.Member{OrgID: o.ID, UserID: p.UserID, Email: p.Email, Name: p.Name, Role: kve.RoleOwner, JoinedAt: now.UTC()}
		ev := p.Event(o.ID, "org.create", o.ID, now).With("slug", o.Slug)
		err := s.store.CreateOrg(ctx, o, owner, ev)
		if err == nil {
			return o, nil
		}
		if kve.KindOf(err) != kve.KindConflict || attempt == 3 {
			return kve.Org{}, fmt.Errorf("create org: %w", err)
		}
	}
}

// Orgs lists the organizations the caller belongs to, with their role in each.
func (s *Service) Orgs(ctx context.Context, p Principal) ([]kve.Membership, error) {
	ms, err := s.store.Memberships(ctx, p.UserID)
	if err != nil {
		return nil, fmt.Errorf("list memberships: %w", err)
	}
	if p.OrgID != "" {
		ms = slices.DeleteFunc(ms, func(m kve.Membership) bool { return m.Org.ID != p.OrgID })
	}
	return ms, nil
}

var (
	errNoOrg     = kve.Errorf(kve.KindNotFound, "not_found", "organization not found")
	errForbidden = kve.Errorf(kve.KindForbidden, "forbidden", "your role in this organization does not allow this")
)

// Member resolves an organization reference (its id or its slug) for the
// caller and returns the caller's membership. Outside an organization
// everything in it is KindNotFound (DESIGN §8), whether it exists or not.
func (s *Service) Member(ctx context.Context, orgRef string, p Principal) (kve.Membership, error) {
	if p.seen != nil {
		p.seen.mu.Lock()
		m, ok := p.seen.m[orgRef]
		p.seen.mu.Unlock()
		if ok {
			return m, nil
		}
	}
	var o kve.Org
	var err error
	if kve.ValidID(kve.PrefixOrg, orgRef) {
		o, err = s.store.Org(ctx, orgRef)
	} else {
		o, err = s.store.OrgBySlug(ctx, orgRef)
	}
	if err != nil {
		if kve.KindOf(err) == kve.KindNotFound {
			return kve.Membership{}, errNoOrg
		}
		return kve.Membership{}, fmt.Errorf("look up org: %w", err)
	}
	if p.OrgID != "" && p.OrgID != o.ID {
		return kve.Membership{}, errNoOrg
	}
	mem, err := s.store.Member(ctx, o.ID, p.UserID)
	if err != nil {
		if kve.KindOf(err) == kve.KindNotFound {
			return kve.Membership{}, errNoOrg
		}
		return kve.Membership{}, fmt.Errorf("look up member: %w", err)
	}
	m := kve.Membership{Org: o, Role: mem.Role}
	if p.seen != nil {
		p.seen.mu.Lock()
		p.seen.m[orgRef] = m
		p.seen.mu.Unlock()
	}
	return m, nil
}

// Authorize resolves orgRef for p and checks that p's role is one of roles:
// a non-member gets KindNotFound, a member without the right KindForbidden.
// Every operation in an organization starts with it.
func (s *Service) Authorize(ctx context.Context, orgRef string, p Principal, roles ...kve.Role) (kve.Membership, error) {
	m, err := s.Member(ctx, orgRef, p)
	if err != nil {
		return kve.Membership{}, err
	}
	if !slices.Contains(roles, m.Role) {
		return kve.Membership{}, errForbidden
	}
	return m, nil
}

// Role sets of DESIGN §8, named by who may act.
var (
	ownerOnly  = []kve.Role{kve.RoleOwner}
	managers   = []kve.Role{kve.RoleOwner, kve.RoleAdmin}
	allMembers = []kve.Role{kve.RoleOwner, kve.RoleAdmin, kve.RoleDeveloper}
)
