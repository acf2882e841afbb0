package sqlite

import (
	"context"
	"database/sql"
	"strconv"
	"strings"
	"time"

	"github.com/keyvault-edge/kve/shared/kve"
	"github.com/keyvault-edge/kve/shared/store"
)

// Local mode is one process: it holds budgets in memory (package usage)
// and settles through this store, which keeps the counters and rollups in
// the transaction that stores the records.

// Settle implements store.Metering. Holds are the memory of the process
// that took them; settling stores the records (RecordUsage), whose cost
// counts in full.
func (s *Store) Settle(ctx context.Context, batch []store.Settlement) error {
	records := make([]*kve.Usage, len(batch))
	for i := range batch {
		records[i] = &batch[i].Usage
	}
	return s.recordUsage(ctx, records)
}

// rollupKey is one row of usage_daily.
type rollupKey struct{ org, day, token, model string }

// rollups sums a batch's new records per row of usage_daily, to be written
// once each (see RecordUsage).
type rollups struct {
	rows map[rollupKey]*store.Rollup
}

// add adds u, of UTC day day, to its row.
func (r *rollups) add(u *kve.Usage, day string) {
	if r.rows == nil {
		r.rows = map[rollupKey]*store.Rollup{}
	}
	k := rollupKey{u.OrgID, day, u.TokenID, u.Model}
	row := r.rows[k]
	if row == nil {
		row = &store.Rollup{}
		r.rows[k] = row
	}
	row.UserID, row.Env, row.Provider = u.UserID, u.Env, u.Provider
	row.Requests++
	if u.Status >= 400 {
		row.Errors++
	}
	if u.Estimated {
		row.Estimated++
	}
	row.PromptTokens += u.PromptTokens
	row.CompletionTokens += u.CompletionTokens
	row.CachedTokens += u.CachedTokens
	row.ReasoningTokens += u.ReasoningTokens
	row.BytesIn += u.BytesIn
	row.BytesOut += u.BytesOut
	row.CostMicro += u.CostMicro
	if u.At.After(row.LastAt) {
		row.LastAt = u.At
	}
}

// dayCache formats UTC days (2006-01-02), keeping the last: the records of
// a batch are mostly of one day.
type dayCache struct {
	unix int64 // days since 1970-01-01
	day  string
}

func (c *dayCache) of(t time.Time) string {
	const secondsPerDay = 24 * 60 * 60
	d := t.Unix() / secondsPerDay
	if t.Unix()%secondsPerDay < 0 {
		d-- // before 1970: round down
	}
	if c.day == "" || d != c.unix {
		c.unix, c.day = d, t.UTC().Format(time.DateOnly)
	}
	return c.day
}

// sumColumns are the sums every rollup table has, in the order sums
// lists their values.
const sumColumns = `requests, errors, estimated, prompt_tokens, completion_tokens, cached_tokens,
	reasoning_tokens, bytes_in, bytes_out, cost_micro, last_at`

// addSums is the ON CONFLICT clause that adds a row's sums to a stored one.
const addSums = `requests = requests + excluded.requests, errors = errors + excluded.errors,
	estimated = estimated + excluded.estimated,
	prompt_tokens = prompt_tokens + excluded.prompt_tokens,
	completion_tokens = completion_tokens + excluded.completion_tokens,
	cached_tokens = cached_tokens + excluded.cached_tokens,
	reasoning_tokens = reasoning_tokens + excluded.reasoning_tokens,
	bytes_in = bytes_in + excluded.bytes_in, bytes_out = bytes_out + excluded.bytes_out,
	cost_micro = cost_micro + excluded.cost_micro, last_at = max(last_at, excluded.last_at)`

// The statements that add sums to each rollup table (usageStatements).
const (
	addDaily = `INSERT INTO usage_daily (org_id, day, token_id, model, user_id, env, provider,
			` + sumColumns + `) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (org_id, day, token_id, model) DO UPDATE SET
			user_id = excluded.user_id, env = excluded.env, provider = excluded.provider, ` + addSums
	addDailyToken = `INSERT INTO usage_daily_token (org_id, day, token_id, user_id, env, provider,
			` + sumColumns + `) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (org_id, day, token_id) DO UPDATE SET
			user_id = excluded.user_id, env = excluded.env, provider = excluded.provider, ` + addSums
	addMonthlyToken = `INSERT INTO usage_monthly_token (org_id, month, token_id, user_id, env, provider,
			` + sumColumns + `) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (org_id, month, token_id) DO UPDATE SET
			user_id = excluded.user_id, env = excluded.env, provider = excluded.provider, ` + addSums
	addDailyModel = `INSERT INTO usage_daily_model (org_id, day, model, ` + sumColumns + `)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (org_id, day, model) DO UPDATE SET ` + addSums
)

func sums(r *store.Rollup) []any {
	return []any{r.Requests, r.Errors, r.Estimated, r.PromptTokens, r.CompletionTokens, r.CachedTokens,
		r.ReasoningTokens, r.BytesIn, r.BytesOut, r.CostMicro, millis(r.LastAt)}
}

// write adds the sums to the rollup tables (per day and token and model,
// per day and token, per month and token, per day and model), to the tokens' spend per day and
// to org_spend, for the records whose token known says belongs to the
// record's organization.
func (r *rollups) write(ctx context.Context, tx *sql.Tx, st *usageStatements, known func(orgID, tokenID string) bool) error {
	if len(r.rows) == 0 {
		return nil
	}
	byToken := map[[3]string]*store.Rollup{} // org, day, token
	byMonth := map[[3]string]*store.Rollup{} // org, month, token
	byModel := map[[3]string]*store.Rollup{} // org, day, model
	months := map[[2]string]int64{}
	add := tx.StmtContext(ctx, st.daily)
	for k, row := range r.rows {
		if !known(k.org, k.token) {
			continue
		}
		months[[2]string{k.org, k.day[:7]}] += row.CostMicro
		merge(byToken, [3]string{k.org, k.day, k.token}, row)
		merge(byMonth, [3]string{k.org, k.day[:7], k.token}, row)
		merge(byModel, [3]string{k.org, k.day, k.model}, row)
		if _, err := add.ExecContext(ctx, append([]any{k.org, k.day, k.token, k.model, row.UserID, row.Env, row.Provider},
			sums(row)...)...); err != nil {
			return classify("add rollups", "", err)
		}
	}
	add, spend := tx.StmtContext(ctx, st.dailyToken), tx.StmtContext(ctx, st.spend)
	for k, row := range byToken {
		if _, err := add.ExecContext(ctx, append([]any{k[0], k[1], k[2], row.UserID, row.Env, row.Provider},
			sums(row)...)...); err != nil {
			return classify("add rollups", "", err)
		}
		if _, err := spend.ExecContext(ctx, k[2], k[1], row.CostMicro); err != nil {
			return classify("add spend", "", err)
		}
	}
	add = tx.StmtContext(ctx, st.monthlyToken)
	for k, row := range byMonth {
		if _, err := add.ExecContext(ctx, append([]any{k[0], k[1], k[2], row.UserID, row.Env, row.Provider},
			sums(row)...)...); err != nil {
			return classify("add rollups", "", err)
		}
	}
	add = tx.StmtContext(ctx, st.dailyModel)
	for k, row := range byModel {
		if _, err := add.ExecContext(ctx, append([]any{k[0], k[1], k[2]}, sums(row)...)...); err != nil {
			return classify("add rollups", "", err)
		}
	}
	add = tx.StmtContext(ctx, st.orgSpend)
	for k, micro := range months {
		if _, err := add.ExecContext(ctx, k[0], k[1], micro); err != nil {
			return classify("add month spend", "", err)
		}
	}
	return nil
}

// merge adds row into the sum of key in m.
func merge(m map[[3]string]*store.Rollup, key [3]string, row *store.Rollup) {
	sum := m[key]
	if sum == nil {
		sum = &store.Rollup{}
		m[key] = sum
	}
	sum.UserID, sum.Env, sum.Provider = row.UserID, row.Env, row.Provider
	sum.Requests += row.Requests
	sum.Errors += row.Errors
	sum.Estimated += row.Estimated
	sum.PromptTokens += row.PromptTokens
	sum.CompletionTokens += row.CompletionTokens
	sum.CachedTokens += row.CachedTokens
	sum.ReasoningTokens += row.ReasoningTokens
	sum.BytesIn += row.BytesIn
	sum.BytesOut += row.BytesOut
	sum.CostMicro += row.CostMicro
	if row.LastAt.After(sum.LastAt) {
		sum.LastAt = row.LastAt
	}
}

// Spend implements store.Metering from the day counters of the token (its
// month is the sum of its days) and the organization's month counter.
func (s *Store) Spend(ctx context.Context, orgID, tokenID string, at time.Time) (store.Spend, error) {
	day := at.UTC().Format(time.DateOnly)
	month := day[:7]
	var sp store.Spend
	err := s.read.QueryRowContext(ctx, `SELECT
		coalesce((SELECT s.micro FROM spend s JOIN tokens t ON t.id = s.token_id
			WHERE t.org_id = ?1 AND s.token_id = ?2 AND s.day = ?3), 0),
		coalesce((SELECT sum(s.micro) FROM spend s JOIN tokens t ON t.id = s.token_id
			WHERE t.org_id = ?1 AND s.token_id = ?2 AND s.day BETWEEN ?4 || '-01' AND ?4 || '-31'), 0),
		coalesce((SELECT micro FROM org_spend WHERE org_id = ?1 AND month = ?4), 0)`,
		orgID, tokenID, day, month).Scan(&sp.Day, &sp.Month, &sp.OrgMonth)
	if err != nil {
		return store.Spend{}, classify("read spend", "", err)
	}
	return sp, nil
}

// rollupTable is a table of daily sums and the keys it has.
type rollupTable struct {
	name string
	keys store.Group // besides the day
	user bool        // has user_id
}

// The rollup tables, finest last; Rollups reads the coarsest that has the
// keys a query groups or filters by.
var rollupTables = []rollupTable{
	{"usage_daily_model", store.ByModel, false},
	{"usage_daily_token", store.ByToken, true},
	{"usage_daily", store.ByToken | store.ByModel, true},
}

// groupColumns are the rollup columns of each key, in the order rows are
// sorted.
var groupColumns = []struct {
	by  store.Group
	col string
}{{store.ByDay, "day"}, {store.ByToken, "token_id"}, {store.ByModel, "model"}, {store.ByUser, "user_id"}}

// Rollups implements store.Metering with one grouped query over the
// organization's rows of the coarsest rollup table that serves it.
func (s *Store) Rollups(ctx context.Context, orgID string, f store.RollupFilter) ([]store.Rollup, error) {
	if _, err := time.Parse(time.DateOnly, f.From); err != nil {
		return nil, kve.Errorf(kve.KindInvalid, "invalid_range", "from must be a day like 2026-11-01")
	}
	if _, err := time.Parse(time.DateOnly, f.To); err != nil {
		return nil, kve.Errorf(kve.KindInvalid, "invalid_range", "to must be a day like 2026-11-30")
	}
	need := f.By &^ (store.ByDay | store.ByUser)
	if f.TokenID != "" {
		need |= store.ByToken
	}
	needUser := f.UserID != "" || f.By&store.ByUser != 0
	var table rollupTable
	for _, t := range rollupTables {
		if t.keys&need == need && (t.user || !needUser) {
			table = t
			break
		}
	}
	// Table and column names come from the lists above; values are parameters.
	var keys, group []string
	for _, g := range groupColumns {
		if f.By&g.by != 0 {
			keys = append(keys, g.col)
			group = append(group, g.col)
		} else {
			keys = append(keys, "''")
		}
	}
	envs := "'', ''"
	if f.By&store.ByToken != 0 {
		envs = "max(env), max(provider)"
	}
	filter := `org_id = ?1`
	if f.TokenID != "" {
		filter += ` AND token_id = ?4`
	}
	if f.UserID != "" {
		filter += ` AND user_id = ?5`
	}
	source, where := table.name, filter+` AND day BETWEEN ?2 AND ?3`
	args := []any{orgID, f.From, f.To, f.TokenID, f.UserID}
	if table.name == "usage_daily_token" && f.By&store.ByDay == 0 && monthsBetween(f.From, f.To) <= maxMonthTerms {
		source, args = byMonths(f.From, f.To, filter, args)
		where = "1"
	}
	q := `SELECT ` + strings.Join(keys, ", ") + `, ` + envs + `,
			coalesce(sum(requests), 0), coalesce(sum(errors), 0), coalesce(sum(estimated), 0),
			coalesce(sum(prompt_tokens), 0), coalesce(sum(completion_tokens), 0),
			coalesce(sum(cached_tokens), 0), coalesce(sum(reasoning_tokens), 0),
			coalesce(sum(bytes_in), 0), coalesce(sum(bytes_out), 0), coalesce(sum(cost_micro), 0),
			coalesce(max(last_at), 0)
		FROM ` + source + ` WHERE ` + where
	if len(group) > 0 {
		q += ` GROUP BY ` + strings.Join(group, ", ") + ` ORDER BY ` + strings.Join(group, ", ")
	}
	rows, err := s.read.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, classify("read rollups", "", err)
	}
	out, err := collect(rows, func(row scanner) (store.Rollup, error) {
		var r store.Rollup
		var last int64
		err := row.Scan(&r.Day, &r.TokenID, &r.Model, &r.UserID, &r.Env, &r.Provider, &r.Requests, &r.Errors,
			&r.Estimated, &r.PromptTokens, &r.CompletionTokens, &r.CachedTokens, &r.ReasoningTokens,
			&r.BytesIn, &r.BytesOut, &r.CostMicro, &last)
		r.LastAt = fromMillis(last)
		return r, err
	})
	if err != nil {
		return nil, classify("read rollups", "", err)
	}
	if len(group) == 0 && len(out) == 1 && out[0].Requests == 0 {
		return []store.Rollup{}, nil // the sum of no rows
	}
	return out, nil
}

// byMonths is the rows of usage_daily_token from day from to day to, both
// valid, as a subquery that reads a month's row of usage_monthly_token
// instead of its days wherever the period covers the month: from its first
// day to its last, or to a day after which nothing of the month was used
// (a period that ends today). filter is the organization's, token's and
// member's condition on ?1, ?4 and ?5; the days and months are added to
// args as parameters.
func byMonths(from, to, filter string, args []any) (string, []any) {
	const columns = `org_id, token_id, user_id, env, provider, ` + sumColumns
	first, _ := time.Parse(time.DateOnly, from)
	last, _ := time.Parse(time.DateOnly, to)
	param := func(v string) string {
		args = append(args, v)
		return "?" + strconv.Itoa(len(args))
	}
	var parts []string
	for m := time.Date(first.Year(), first.Month(), 1, 0, 0, 0, 0, time.UTC); !m.After(last); m = m.AddDate(0, 1, 0) {
		monthEnd := m.AddDate(0, 1, -1)
		start, end := maxTime(m, first), minTime(monthEnd, last)
		days := `SELECT ` + columns + ` FROM usage_daily_token WHERE ` + filter +
			` AND day BETWEEN ` + param(start.Format(time.DateOnly)) + ` AND ` + param(end.Format(time.DateOnly))
		if !start.Equal(m) {
			parts = append(parts, days)
			continue
		}
		usedAfter := `EXISTS (SELECT 1 FROM usage_daily_token WHERE org_id = ?1 AND day > ` +
			param(end.Format(time.DateOnly)) + ` AND day <= ` + param(monthEnd.Format(time.DateOnly)) + `)`
		parts = append(parts,
			`SELECT `+columns+` FROM usage_monthly_token WHERE `+filter+` AND month = `+param(m.Format("2006-01"))+` AND NOT `+usedAfter,
			days+` AND `+usedAfter)
	}
	if len(parts) == 0 { // from after to
		return `(SELECT ` + columns + ` FROM usage_daily_token WHERE 0)`, args
	}
	return `(` + strings.Join(parts, "\n\t\tUNION ALL ") + `)`, args
}

// maxMonthTerms bounds the months byMonths joins, two SELECTs each, well
// under SQLite's 500 terms of a compound SELECT; manage asks for at most
// 400 days. A longer period reads the days.
const maxMonthTerms = 120

// monthsBetween counts the calendar months from day from to day to, both
// valid.
func monthsBetween(from, to string) int {
	f, _ := time.Parse(time.DateOnly, from)
	t, _ := time.Parse(time.DateOnly, to)
	return (t.Year()-f.Year())*12 + int(t.Month()) - int(f.Month()) + 1
}

func maxTime(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}
