package console

import (
	"cmp"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/keyvault-edge/kve/shared/kve"
	"github.com/keyvault-edge/kve/shared/manage"
)

type usageView struct {
	Slug    string
	Manager bool // sees the whole organization, filters by member, runs the audit
	Filter  usageFilter
	Sinces  []option
	Tokens  []option // the tokens the per-token table lists
	Members []option // Owners and Admins only

	From, To   string
	Charts     []chart
	Days       []usageRow // the charts' figures, oldest first
	ByToken    []usageRow // the most expensive tokens
	MoreTokens int        // tokens used beyond those
	ByModel    []usageRow
	Total      usageRow
	CSV        []link

	Unused *unusedView // the monthly audit (Owner, Admin)
}

// usageFilter is the usage page's query, as its form shows it again.
type usageFilter struct {
	Token, Member, Since string
}

type option struct {
	Value, Label string
	Selected     bool
}

type link struct{ Label, Href string }

// usageRow is a row of a usage table, a day's, a token's or a model's
// sums, formatted here: a template that only prints strings renders a
// table of many rows in a fraction of the time that calling formatting
// functions on nested fields takes.
type usageRow struct {
	Day, TokenID, TokenName, Model string
	Env                            kve.Env
	Requests, Errors, Tokens       string
	Prompt, Completion, Cost       string
	Estimated                      bool // some token counts are estimates
	LastAt                         time.Time
}

func usageRowOf(r manage.UsageRow) usageRow {
	return usageRow{
		Day: r.Day, TokenID: r.TokenID, TokenName: cmp.Or(r.TokenName, r.TokenID), // a deleted token has no name left
		Model: r.Model, Env: r.Env, Requests: count(r.Requests), Errors: count(r.Errors),
		Tokens: count(r.PromptTokens + r.CompletionTokens), Prompt: count(r.PromptTokens),
		Completion: count(r.CompletionTokens), Cost: usd(r.CostMicro), Estimated: r.Estimated > 0, LastAt: r.LastAt,
	}
}

// sinces are the periods the filter offers; the URL may name any period
// manage accepts (a day, 45d).
var sinces = []option{{Value: "7d", Label: "Last 7 days"}, {Value: "30d", Label: "Last 30 days"}, {Value: "90d", Label: "Last 90 days"}}

// maxUnusedRows bounds the audit's list on one page: an organization with
// thousands of forgotten tokens revokes them a page at a time.
const maxUnusedRows = 200

// maxTokenRows bounds the per-token table (and the token filter's
// choices): the most expensive tokens; the CSV has them all, and every
// token's page links its own usage.
const maxTokenRows = 100

// usage shows requests, tokens and cost per day as charts, and per token
// and per model as tables, for the whole organization (Owner, Admin) or
// the caller's personal tokens (Developer: manage narrows the query), with
// the monthly audit of unused tokens for Owners and Admins.
func (s *server) usage(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	p, m := principal(r), membership(r)
	v := usageView{Slug: m.Org.Slug, Manager: managerRole(m.Role), Filter: usageFilter{
		Token: strings.TrimSpace(q.Get("token")), Member: strings.TrimSpace(q.Get("member")),
		Since: cmp.Or(strings.TrimSpace(q.Get("since")), "30d"),
	}}
	// The reports and the audit read different rollups and lists: they are
	// read at once, so that the page takes as long as the slowest.
	var (
		reads                      sync.WaitGroup
		perDay, perModel, perToken manage.UsageReport
		unused                     manage.Unused
		errs                       [4]error
	)
	uq := manage.UsageQuery{TokenID: v.Filter.Token, Member: v.Filter.Member, Since: v.Filter.Since}
	report := func(out *manage.UsageReport, err *error, by string, q manage.UsageQuery) {
		reads.Go(func() {
			q.By = by
			*out, *err = s.svc.Usage(r.Context(), orgRef(r), p, q)
		})
	}
	report(&perDay, &errs[0], manage.ByDay, uq)
	report(&perModel, &errs[1], manage.ByModel, uq)
	top := uq
	top.Top = maxTokenRows
	report(&perToken, &errs[2], manage.ByToken, top)
	if v.Manager {
		reads.Go(func() {
			unused, errs[3] = s.svc.FirstUnusedTokens(r.Context(), orgRef(r), p, v.Filter.Since, maxUnusedRows)
		})
	}
	reads.Wait()
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	v.From, v.To, v.Total = perDay.From, perDay.To, usageRowOf(perDay.Total)
	v.Days, v.Charts = dailyCharts(perDay)
	for _, row := range perModel.Rows {
		v.ByModel = append(v.ByModel, usageRowOf(row))
	}
	v.MoreTokens = perToken.Omitted
	for _, row := range perToken.Rows { // the most expensive first
		u := usageRowOf(row)
		v.ByToken = append(v.ByToken, u)
		v.Tokens = append(v.Tokens, option{Value: u.TokenID, Label: u.TokenName, Selected: u.TokenID == v.Filter.Token})
	}
	if v.Filter.Token != "" && len(v.Tokens) == 0 {
		// A token without use in the period: named all the same.
		t, err := s.svc.Token(r.Context(), orgRef(r), p, v.Filter.Token)
		if err != nil {
			return err
		}
		v.Tokens = append(v.Tokens, option{Value: t.ID, Label: t.Name, Selected: true})
	}
	slices.SortStableFunc(v.Tokens, func(a, b option) int { return strings.Compare(a.Label, b.Label) })
	v.Sinces = periodOptions(v.Filter.Since)
	v.CSV = s.usageCSV(m.Org.Slug, v.Filter)
	if v.Manager {
		team, err := s.team(r)
		if err != nil {
			return err
		}
		for _, t := range team {
			v.Members = append(v.Members, option{Value: t.UserID, Label: t.Name, Selected: t.UserID == v.Filter.Member})
		}
		v.Unused = s.unused(r, v.Filter.Since, unused, peopleOf(team))
	}
	return s.render(w, r, http.StatusOK, "usage", "Usage", "Usage", v)
}

// dailyCharts lays a per-day report out over every day of its period,
// days without use included, and draws requests, tokens and cost.
func dailyCharts(rep manage.UsageReport) ([]usageRow, []chart) {
	byDay := make(map[string]manage.UsageRow, len(rep.Rows))
	for _, row := range rep.Rows {
		byDay[row.Day] = row
	}
	all := dayRange(rep.From, rep.To)
	rows := make([]usageRow, 0, len(all))
	requests, tokens, cost := make([]int64, len(all)), make([]int64, len(all)), make([]int64, len(all))
	for i, d := range all {
		day := byDay[d]
		day.Day = d
		rows = append(rows, usageRowOf(day))
		requests[i], tokens[i], cost[i] = day.Requests, day.PromptTokens+day.CompletionTokens, day.CostMicro
	}
	return rows, []chart{
		newChart(series{id: "requests", title: "Requests", unit: "requests", format: count}, all, requests),
		newChart(series{id: "tokens", title: "Tokens", unit: "tokens", format: count}, all, tokens),
		newChart(series{id: "cost", title: "Cost", format: usd}, all, cost),
	}
}

// periodOptions are the period choices, with since among them.
func periodOptions(since string) []option {
	out := slices.Clone(sinces)
	found := false
	for i := range out {
		out[i].Selected = out[i].Value == since
		found = found || out[i].Selected
	}
	if !found {
		out = append(out, option{Value: since, Label: "Since " + since, Selected: true})
	}
	return out
}

// usageCSV links the management API's CSV of the page's query, per day,
// token and model: the API accepts the dashboard's session for a GET, and
// is the one place the CSV format is defined.
func (s *server) usageCSV(slug string, f usageFilter) []link {
	var out []link
	for _, by := range []string{manage.ByDay, manage.ByToken, manage.ByModel} {
		q := url.Values{"by": {by}, "since": {f.Since}, "format": {"csv"}}
		if f.Token != "" {
			q.Set("token", f.Token)
		}
		if f.Member != "" {
			q.Set("member", f.Member)
		}
		out = append(out, link{Label: "by " + by, Href: s.base + "/api/v1/orgs/" + url.PathEscape(slug) + "/usage?" + q.Encode()})
	}
	return out
}

// unusedView is the monthly audit: live tokens nobody used in the period.
type unusedView struct {
	Since string // the period, as the filter names it
	From  string // its first day
	Rows  []tokenRow
	More  int // beyond the rows shown
}

func (s *server) unused(r *http.Request, since string, u manage.Unused, names people) *unusedView {
	p, m := principal(r), membership(r)
	v := &unusedView{Since: since, From: u.Since.UTC().Format("2006-01-02"), Rows: make([]tokenRow, 0, min(len(u.Tokens), maxUnusedRows))}
	for i, t := range u.Tokens {
		if i == maxUnusedRows {
			break
		}
		v.Rows = append(v.Rows, s.tokenRow(t, p, m.Role, names))
	}
	v.More = u.Total - len(v.Rows)
	return v
}

type unusedRevokeView struct {
	Slug, Since, From string
	Rows              []tokenRow // to revoke (confirmation) or revoked (result)
	Kept              []tokenRow // chosen, but used since, or revoked already
	Failed            []string   // why others were not revoked
	Done              bool
}

// revokeUnused revokes tokens the audit listed (Owner, Admin). The form
// names the tokens the caller saw and chose; only those still unused are
// revoked, so that a token used since the page was made is left alone.
// Without confirm=yes it only shows what it would revoke and asks: the
// confirmation when the page's script is not running.
func (s *server) revokeUnused(w http.ResponseWriter, r *http.Request) error {
	f, err := s.parseForm(w, r)
	if err != nil {
		return err
	}
	p, m := principal(r), membership(r)
	since := cmp.Or(f.Get("since"), "30d")
	u, err := s.svc.UnusedTokens(r.Context(), orgRef(r), p, since)
	if err != nil {
		return err
	}
	team, err := s.team(r)
	if err != nil {
		return err
	}
	names := peopleOf(team)
	unused := make(map[string]kve.Token, len(u.Tokens))
	for _, t := range u.Tokens {
		unused[t.ID] = t
	}
	ids := slices.Compact(slices.Sorted(slices.Values(f.Values["id"])))
	if len(ids) > maxUnusedRows {
		return kve.Errorf(kve.KindInvalid, "invalid_ids", "Choose at most %d tokens at once.", maxUnusedRows)
	}
	v := unusedRevokeView{Slug: m.Org.Slug, Since: since, From: u.Since.UTC().Format("2006-01-02")}
	var chosen []string
	for _, id := range ids {
		if t, ok := unused[id]; ok {
			chosen = append(chosen, id)
			v.Rows = append(v.Rows, s.tokenRow(t, p, m.Role, names))
			continue
		}
		// Used since, revoked already, or not a token of this
		// organization (which stays unnamed).
		if t, err := s.svc.Token(r.Context(), orgRef(r), p, id); err == nil {
			v.Kept = append(v.Kept, s.tokenRow(t, p, m.Role, names))
		} else if k := kve.KindOf(err); k != kve.KindNotFound {
			return err
		}
	}
	if f.Get("confirm") != "yes" {
		return s.render(w, r, http.StatusOK, "unused_revoke", "Revoke unused tokens", "Usage", v)
	}
	v.Done, v.Rows = true, v.Rows[:0]
	if len(chosen) > 0 {
		rev, err := s.svc.RevokeTokens(r.Context(), orgRef(r), p, chosen)
		if err != nil {
			return err
		}
		for _, t := range rev.Revoked {
			v.Rows = append(v.Rows, s.tokenRow(t, p, m.Role, names))
		}
		for _, id := range chosen {
			if err, ok := rev.Failed[id]; ok {
				v.Failed = append(v.Failed, unused[id].Name+": "+kve.MessageOf(err))
			}
		}
	}
	return s.render(w, r, http.StatusOK, "unused_revoke", "Unused tokens revoked", "Usage", v)
}
