package manage

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/keyvault-edge/kve/shared/kve"
	"github.com/keyvault-edge/kve/shared/store"
	"github.com/keyvault-edge/kve/shared/usage"
)

// UsageQuery selects usage: records (By empty) or sums of the daily
// rollups (By day, token or model). Developers see only their own personal
// tokens' usage: Member is theirs whatever they ask (DESIGN §8).
type UsageQuery struct {
	TokenID string
	Member  string // a user id: the usage of their personal tokens
	Since   string // "30d" (the default), a day 2026-11-01, or an RFC 3339 time
	By      string // "", "day", "token" or "model"
	Cursor  string // records only
	Limit   int    // records only
	Top     int    // by token: only the Top most expensive tokens (0: all); the report counts the rest
}

// UsageReport is usage summed from the daily rollups over whole UTC days,
// From to To.
type UsageReport struct {
	From, To string
	By       string
	Rows     []UsageRow
	Total    UsageRow // of every row, those Top left out included
	Omitted  int      // rows Top left out
}

// UsageRow is one row of a report: its key (Day, Token or Model, per By)
// and its sums.
type UsageRow struct {
	store.Rollup
	TokenName string // by token
}

// Usage groupings.
const (
	ByDay   = "day"
	ByToken = "token"
	ByModel = "model"
)

// maxUsageDays bounds how far back usage goes: records and rollups live
// 400 days.
const maxUsageDays = 400

// UsageRecords lists an organization's usage records, newest first.
func (s *Service) UsageRecords(ctx context.Context, orgRef string, p Principal, q UsageQuery) (store.Page[kve.Usage], error) {
	m, q, err := s.usageScope(ctx, orgRef, p, q)
	if err != nil {
		return store.Page[kve.Usage]{}, err
	}
	since, _, err := parseSince(q.Since, s.now())
	if err != nil {
		return store.Page[kve.Usage]{}, err
	}
	s.reconcile(ctx, m.Org.ID)
	page, err := s.store.UsageRecords(ctx, m.Org.ID, store.UsageFilter{TokenID: q.TokenID, UserID: q.Member,
		Since: since, Cursor: q.Cursor, Limit: q.Limit})
	if err != nil {
		return store.Page[kve.Usage]{}, fmt.Errorf("list usage: %w", err)
	}
	return page, nil
}

// Usage sums an organization's usage per day, token or model from the
// daily rollups: a report over 30 days never reads a record.
func (s *Service) Usage(ctx context.Context, orgRef string, p Principal, q UsageQuery) (UsageReport, error) {
	m, q, err := s.usageScope(ctx, orgRef, p, q)
	if err != nil {
		return UsageReport{}, err
	}
	_, from, err := parseSince(q.Since, s.now())
	if err != nil {
		return UsageReport{}, err
	}
	var by store.Group
	switch q.By {
	case ByDay:
		by = store.ByDay
	case ByToken:
		by = store.ByToken
	case ByModel:
		by = store.ByModel
	default:
		return UsageReport{}, kve.Errorf(kve.KindInvalid, "invalid_by", "by must be day, token or model")
	}
	s.reconcile(ctx, m.Org.ID)
	rep := UsageReport{From: from, To: s.now().UTC().Format(time.DateOnly), By: q.By}
	rows, err := s.store.Rollups(ctx, m.Org.ID, store.RollupFilter{From: rep.From, To: rep.To,
		TokenID: q.TokenID, UserID: q.Member, By: by})
	if err != nil {
		return UsageReport{}, fmt.Errorf("read usage: %w", err)
	}
	for i := range rows {
		addRow(&rep.Total.Rollup, &rows[i])
	}
	if by == store.ByToken { // the most expensive first
		slices.SortStableFunc(rows, func(a, b store.Rollup) int { return cmp.Compare(b.CostMicro, a.CostMicro) })
		if q.Top > 0 && len(rows) > q.Top {
			rep.Omitted, rows = len(rows)-q.Top, rows[:q.Top]
		}
	}
	names, err := s.tokenNames(ctx, m.Org.ID, rows, q.Top > 0)
	if err != nil {
		return UsageReport{}, err
	}
	rep.Rows = make([]UsageRow, 0, len(rows))
	for _, r := range rows {
		rep.Rows = append(rep.Rows, UsageRow{Rollup: r, TokenName: names[r.TokenID]})
	}
	return rep, nil
}

// tokenNames names the tokens of a report's rows: from the organization's
// whole token list, or, for a top few (few), a read of each.
func (s *Service) tokenNames(ctx context.Context, orgID string, rows []store.Rollup, few bool) (map[string]string, error) {
	names := map[string]string{}
	if len(rows) == 0 || rows[0].TokenID == "" {
		return names, nil
	}
	if !few {
		all, err := s.tokensByID(ctx, orgID)
		if err != nil {
			return nil, err
		}
		for _, r := range rows {
			names[r.TokenID] = all[r.TokenID].Name
		}
		return names, nil
	}
	var (
		mu sync.Mutex
		g  errgroup.Group
	)
	g.SetLimit(8) // point reads: a DynamoDB GetItem each
	for _, r := range rows {
		g.Go(func() error {
			t, err := s.store.Token(ctx, orgID, r.TokenID)
			if err != nil && kve.KindOf(err) != kve.KindNotFound {
				return fmt.Errorf("name token: %w", err)
			}
			mu.Lock()
			names[r.TokenID] = t.Name // "" for one that is gone
			mu.Unlock()
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	return names, nil
}

// usageScope authorizes a usage query and narrows a Developer's to their
// own personal tokens.
func (s *Service) usageScope(ctx context.Context, orgRef string, p Principal, q UsageQuery) (kve.Membership, UsageQuery, error) {
	m, err := s.Authorize(ctx, orgRef, p, allMembers...)
	if err != nil {
		return m, q, err
	}
	if m.Role != kve.RoleDeveloper {
		return m, q, nil
	}
	if q.Member != "" && q.Member != p.UserID {
		return m, q, kve.Errorf(kve.KindForbidden, "forbidden", "developers see the usage of their own personal tokens only")
	}
	q.Member = p.UserID
	if q.TokenID != "" {
		t, err := s.store.Token(ctx, m.Org.ID, q.TokenID)
		switch {
		case kve.KindOf(err) == kve.KindNotFound:
			return m, q, errNoToken
		case err != nil:
			return m, q, fmt.Errorf("token: %w", err)
		case t.Kind != kve.TokenPersonal || t.OwnerID != p.UserID:
			return m, q, kve.Errorf(kve.KindForbidden, "forbidden", "developers see the usage of their own personal tokens only")
		}
	}
	return m, q, nil
}

// parseSince reads "30d", a day or an RFC 3339 time (empty: 30d) and
// returns the instant and its UTC day. N days back from now covers today
// and the N-1 days before it.
func parseSince(s string, now time.Time) (time.Time, string, error) {
	if s == "" {
		s = "30d"
	}
	now = now.UTC()
	errSince := kve.Errorf(kve.KindInvalid, "invalid_since",
		"since must be a number of days like 30d (at most %d), a day like 2026-11-01, or an RFC 3339 time", maxUsageDays)
	var t time.Time
	if n, ok := strings.CutSuffix(s, "d"); ok {
		days, err := strconv.Atoi(n)
		if err != nil || days < 1 || days > maxUsageDays {
			return time.Time{}, "", errSince
		}
		today := time.Date(now.Year(), now.Month(), now.Day(), 0, 0, 0, 0, time.UTC)
		t = today.AddDate(0, 0, 1-days)
	} else if d, err := time.Parse(time.DateOnly, s); err == nil {
		t = d
	} else if ts, err := time.Parse(time.RFC3339, s); err == nil {
		t = ts.UTC()
	} else {
		return time.Time{}, "", errSince
	}
	if now.Sub(t) > maxUsageDays*24*time.Hour {
		return time.Time{}, "", errSince
	}
	return t, t.Format(time.DateOnly), nil
}

func addRow(sum, r *store.Rollup) {
	sum.Requests += r.Requests
	sum.Errors += r.Errors
	sum.Estimated += r.Estimated
	sum.PromptTokens += r.PromptTokens
	sum.CompletionTokens += r.CompletionTokens
	sum.CachedTokens += r.CachedTokens
	sum.ReasoningTokens += r.ReasoningTokens
	sum.BytesIn += r.BytesIn
	sum.BytesOut += r.BytesOut
	sum.CostMicro += r.CostMicro
	if r.LastAt.After(sum.LastAt) {
		sum.LastAt = r.LastAt
	}
}

// tokensByID returns every token of an organization, revoked ones too.
func (s *Service) tokensByID(ctx context.Context, orgID string) (map[string]kve.Token, error) {
	out := map[string]kve.Token{}
	f := store.TokenFilter{IncludeRevoked: true, Limit: store.MaxLimit}
	for {
		page, err := s.store.Tokens(ctx, orgID, f)
		if err != nil {
			return nil, fmt.Errorf("list tokens: %w", err)
		}
		for _, t := range page.Items {
			t.Sealed = nil
			out[t.ID] = t
		}
		if page.Next == "" {
			return out, nil
		}
		f.Cursor = page.Next
	}
}

// reconcile settles the requests a dead execution environment left held
// (Lambda; see usage.Reconcile), so that what a report shows includes
// them. A failure only leaves them for the next look.
func (s *Service) reconcile(ctx context.Context, orgID string) {
	hs, ok := s.store.(store.Holds)
	if !ok {
		return
	}
	if _, err := usage.Reconcile(ctx, struct {
		store.Holds
		store.Metering
	}{hs, s.store}, orgID, s.now().Add(-usage.StaleAfter)); err != nil {
		s.log.WarnContext(ctx, "usage_reconcile_failed", "org_id", orgID, "err", err)
	}
}

// Unused is the monthly audit: tokens not used since a time.
type Unused struct {
	Since  time.Time
	Tokens []kve.Token // live tokens last used before Since, or never; LastUsed says when
	Total  int         // how many there are; more than len(Tokens) when a limit cut the list
}

// UnusedTokens lists the live tokens of an organization that nobody used
// since (default 30d), never-used ones included, oldest use first (Owner,
// Admin). RevokeTokens revokes them in one call.
func (s *Service) UnusedTokens(ctx context.Context, orgRef string, p Principal, since string) (Unused, error) {
	return s.FirstUnusedTokens(ctx, orgRef, p, since, 0)
}

// FirstUnusedTokens is UnusedTokens cut to its first limit tokens (all for
// limit ≤ 0), with Total counting them all: a page of the audit.
func (s *Service) FirstUnusedTokens(ctx context.Context, orgRef string, p Principal, since string, limit int) (Unused, error) {
	m, err := s.Authorize(ctx, orgRef, p, managers...)
	if err != nil {
		return Unused{}, err
	}
	t, _, err := parseSince(since, s.now())
	if err != nil {
		return Unused{}, err
	}
	now := s.now()
	if ul, ok := s.store.(store.UnusedLister); ok {
		toks, total, err := ul.UnusedTokens(ctx, m.Org.ID, t, now, limit)
		if err != nil {
			return Unused{}, fmt.Errorf("list unused tokens: %w", err)
		}
		return Unused{Since: t, Tokens: toks, Total: total}, nil
	}
	all, err := s.tokensByID(ctx, m.Org.ID)
	if err != nil {
		return Unused{}, err
	}
	out := Unused{Since: t, Tokens: []kve.Token{}}
	for _, tok := range all {
		if tok.Revoked() || tok.Expired(now) || !tok.LastUsed.Before(t) {
			continue
		}
		out.Tokens = append(out.Tokens, tok)
	}
	slices.SortFunc(out.Tokens, func(a, b kve.Token) int {
		if c := a.LastUsed.Compare(b.LastUsed); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
	out.Total = len(out.Tokens)
	if limit > 0 && len(out.Tokens) > limit {
		out.Tokens = out.Tokens[:limit]
	}
	return out, nil
}

// Revocation is what RevokeTokens did: the tokens it revoked, and why each
// of the others was not.
type Revocation struct {
	Revoked []kve.Token
	Failed  map[string]error // by token id
}

// maxRevokeIDs bounds one bulk revocation.
const maxRevokeIDs = 1000

// RevokeTokens revokes several tokens in one call, each as RevokeToken does
// (with its own audit event): the monthly audit's "revoke all unused"
// (Owner, Admin). Unknown, foreign or already revoked ids are reported in
// Failed; the others are revoked regardless.
func (s *Service) RevokeTokens(ctx context.Context, orgRef string, p Principal, ids []string) (Revocation, error) {
	if _, err := s.Authorize(ctx, orgRef, p, managers...); err != nil {
		return Revocation{}, err
	}
	if len(ids) == 0 || len(ids) > maxRevokeIDs {
		return Revocation{}, kve.Errorf(kve.KindInvalid, "invalid_ids", "ids must list 1 to %d tokens", maxRevokeIDs)
	}
	r := Revocation{Revoked: []kve.Token{}, Failed: map[string]error{}}
	seen := map[string]bool{}
	for _, id := range ids {
		if seen[id] {
			continue
		}
		seen[id] = true
		t, err := s.RevokeToken(ctx, orgRef, p, id)
		if err != nil {
			if k := kve.KindOf(err); k == kve.KindInternal || k == kve.KindUnavailable {
				return r, err
			}
			r.Failed[id] = err
			continue
		}
		t.Sealed = nil
		r.Revoked = append(r.Revoked, t)
	}
	return r, nil
}
