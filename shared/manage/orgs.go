package manage

import (
	"context"
	"fmt"
	"slices"

	"github.com/keyvault-edge/kve/shared/kve"
	"github.com/keyvault-edge/kve/shared/store"
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
		s.crossTenant(ctx, o, p)
		return kve.Membership{}, errNoOrg
	}
	mem, err := s.store.Member(ctx, o.ID, p.UserID)
	if err != nil {
		if kve.KindOf(err) == kve.KindNotFound {
			s.crossTenant(ctx, o, p)
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

// crossTenant records, in the audit log of the organization a non-member
// reached for, that it was refused (SECURITY T19): the caller still gets
// 404, and the organization learns who probed it. At most one event per
// (user, organization) a minute, so probing cannot flood the log.
func (s *Service) crossTenant(ctx context.Context, o kve.Org, p Principal) {
	now := s.now()
	if _, wait := s.probes.take(p.UserID+"|"+o.ID, now); wait > 0 {
		return
	}
	if err := s.store.AddEvent(ctx, p.Event(o.ID, "cross_tenant_denied", o.ID, now)); err != nil {
		s.log.WarnContext(ctx, "audit_cross_tenant", "org_id", o.ID, "user_id", p.UserID, "err", err)
	}
}

// Role sets of DESIGN §8, named by who may act.
var (
	ownerOnly  = []kve.Role{kve.RoleOwner}
	managers   = []kve.Role{kve.RoleOwner, kve.RoleAdmin}
	allMembers = []kve.Role{kve.RoleOwner, kve.RoleAdmin, kve.RoleDeveloper}
)

// RenameOrg changes an organization's name (Owner). Its slug, and so every
// link to it, stays.
func (s *Service) RenameOrg(ctx context.Context, orgRef string, p Principal, in OrgInput) (kve.Org, error) {
	m, err := s.Authorize(ctx, orgRef, p, ownerOnly...)
	if err != nil {
		return kve.Org{}, err
	}
	name, err := checkLabel("name", in.Name, 100)
	if err != nil {
		return kve.Org{}, err
	}
	ev := p.Event(m.Org.ID, "org.rename", m.Org.ID, s.now()).With("from", m.Org.Name).With("to", name)
	o, err := s.store.RenameOrg(ctx, m.Org.ID, name, ev)
	if err != nil {
		if kve.KindOf(err) == kve.KindNotFound {
			return kve.Org{}, errNoOrg
		}
		return kve.Org{}, fmt.Errorf("rename org: %w", err)
	}
	return o, nil
}

// DeleteOrg deletes an organization (Owner): its tokens stop working at once
// (they are revoked with the deletion), its members, invites and key
// references go, and then its keys' values are deleted from the secret
// store. The audit log stays.
func (s *Service) DeleteOrg(ctx context.Context, orgRef string, p Principal) (store.Deletion, error) {
	m, err := s.Authorize(ctx, orgRef, p, ownerOnly...)
	if err != nil {
		return store.Deletion{}, err
	}
	ev := p.Event(m.Org.ID, "org.delete", m.Org.ID, s.now()).With("slug", m.Org.Slug).With("name", m.Org.Name)
	d, err := s.store.DeleteOrg(ctx, m.Org.ID, ev)
	// A deletion whose clean-up failed still names the keys it deleted.
	for _, k := range d.Keys {
		if derr := s.secrets.Delete(context.WithoutCancel(ctx), k.Secret); derr != nil && kve.KindOf(derr) != kve.KindNotFound {
			s.log.ErrorContext(ctx, "delete_key_value_failed", "org_id", m.Org.ID, "key_id", k.ID, "err", derr)
		}
	}
	if err != nil {
		if kve.KindOf(err) == kve.KindNotFound {
			return store.Deletion{}, errNoOrg
		}
		return store.Deletion{}, fmt.Errorf("delete org: %w", err)
	}
	s.unsubscribeAll(context.WithoutCancel(ctx), m.Org.ID) // its alert endpoints hear nothing more
	s.log.InfoContext(ctx, "org_deleted", "org_id", m.Org.ID, "revoked_tokens", len(d.Tokens), "keys", len(d.Keys))
	return d, nil
}
