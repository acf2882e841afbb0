package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math"
	"slices"
	"sort"
	"strings"

	"github.com/keyvault-edge/kve/shared/kve"
	"github.com/keyvault-edge/kve/shared/store"
)

// RecordUsage implements store.Usage in one transaction per batch. A record
// whose request id is already stored is skipped whole: only records new to
// usage_ids are stored (in chunks, chunks.go) and add to spend, last-used,
// the daily rollups and the month spend of their organization, so a
// retried batch counts once.
func (s *Store) RecordUsage(ctx context.Context, records []kve.Usage) error {
	ptrs := make([]*kve.Usage, len(records))
	for i := range records {
		ptrs[i] = &records[i]
	}
	return s.recordUsage(ctx, ptrs)
}

// recordUsage is RecordUsage on pointers, so that Settle need not copy
// its records.
func (s *Store) recordUsage(ctx context.Context, records []*kve.Usage) error {
	if len(records) == 0 {
		return nil
	}
	return s.inTx(ctx, "record usage", func(tx *sql.Tx) error {
		fresh, err := s.usage.claim(ctx, tx, records)
		if err != nil {
			return classify("record usage", "", err)
		}
		groups := groupByKey(fresh)
		if err := insertChunks(ctx, tx.StmtContext(ctx, s.usage.chunk), groups); err != nil {
			return classify("record usage", "", err)
		}
		return s.usage.addCounters(ctx, tx, groups)
	})
}

// usageStatements are RecordUsage's statements, prepared once on the write
// connection when the store opens and used in each batch's transaction
// through tx.StmtContext: modernc compiles a statement whenever one is
// prepared, which cost more per batch than running them.
type usageStatements struct {
	claims       []claimStatement // largest first
	chunk        *sql.Stmt
	bump         *sql.Stmt
	spend        *sql.Stmt
	daily        *sql.Stmt
	dailyToken   *sql.Stmt
	monthlyToken *sql.Stmt
	dailyModel   *sql.Stmt
	orgSpend     *sql.Stmt
}

// claimStatement inserts size request ids into usage_ids at once
// (claimQuery).
type claimStatement struct {
	size int
	stmt *sql.Stmt
}

// claimSizes are the sizes of the claim statements: a batch of n ids runs
// n/512 of the largest and at most 7 of each smaller one. SQLite binds at
// most 32,766 parameters per statement.
var claimSizes = [...]int{512, 64, 8, 1}

// prepareUsage prepares RecordUsage's statements on db, the write pool of
// one connection.
func prepareUsage(ctx context.Context, db *sql.DB) (*usageStatements, error) {
	st := &usageStatements{}
	var errs []error
	prepare := func(q string) *sql.Stmt {
		stmt, err := db.PrepareContext(ctx, q)
		errs = append(errs, err)
		return stmt
	}
	for _, n := range claimSizes {
		st.claims = append(st.claims, claimStatement{n, prepare(claimQuery(n))})
	}
	st.chunk = prepare(insertChunk)
	st.bump = prepare(`UPDATE tokens SET last_used = max(last_used, ?) WHERE org_id = ? AND id = ?`)
	st.spend = prepare(`INSERT INTO spend (token_id, day, micro) VALUES (?, ?, ?)
		ON CONFLICT (token_id, day) DO UPDATE SET micro = micro + excluded.micro`)
	st.daily = prepare(addDaily)
	st.dailyToken = prepare(addDailyToken)
	st.monthlyToken = prepare(addMonthlyToken)
	st.dailyModel = prepare(addDailyModel)
	st.orgSpend = prepare(`INSERT INTO org_spend (org_id, month, micro) VALUES (?, ?, ?)
		ON CONFLICT (org_id, month) DO UPDATE SET micro = micro + excluded.micro`)
	if err := errors.Join(errs...); err != nil {
		st.close()
		return nil, fmt.Errorf("prepare usage statements: %w", err)
	}
	return st, nil
}

// close releases the statements; Store.Close calls it.
func (st *usageStatements) close() error {
	var errs []error
	for _, c := range st.claims {
		if c.stmt != nil {
			errs = append(errs, c.stmt.Close())
		}
	}
	for _, stmt := range []*sql.Stmt{st.chunk, st.bump, st.spend, st.daily, st.dailyToken, st.monthlyToken, st.dailyModel, st.orgSpend} {
		if stmt != nil {
			errs = append(errs, stmt.Close())
		}
	}
	return errors.Join(errs...)
}

// claim adds the records' request ids to usage_ids and returns the records
// whose id was not there, each once, in the order of records. It inserts
// the ids at most 512 to a statement, within a savepoint: when fewer were
// inserted than given, some were stored already (a retried batch), and it
// rolls back and inserts them again with RETURNING, which says which were
// new. RETURNING costs as much as the insert, and is seldom needed.
func (st *usageStatements) claim(ctx context.Context, tx *sql.Tx, records []*kve.Usage) ([]*kve.Usage, error) {
	first := make(map[string]int, len(records)) // request id → its first record
	ids := make([]any, 0, len(records))
	for i, u := range records {
		if _, ok := first[u.RequestID]; !ok {
			first[u.RequestID] = i
			ids = append(ids, u.RequestID)
		}
	}
	if _, err := tx.ExecContext(ctx, `SAVEPOINT claim`); err != nil {
		return nil, err
	}
	inserted := 0
	err := eachSize(ids, func(i, n int) error {
		res, err := tx.StmtContext(ctx, st.claims[i].stmt).ExecContext(ctx, ids[:n]...)
		if err != nil {
			return err
		}
		changed, err := res.RowsAffected()
		inserted += int(changed)
		ids = ids[n:]
		return err
	})
	if err != nil {
		return nil, err
	}
	if inserted == len(first) {
		if _, err := tx.ExecContext(ctx, `RELEASE claim`); err != nil {
			return nil, err
		}
		fresh := make([]*kve.Usage, 0, len(first))
		for i, u := range records {
			if first[u.RequestID] == i {
				fresh = append(fresh, u)
			}
		}
		return fresh, nil
	}
	if _, err := tx.ExecContext(ctx, `ROLLBACK TO claim; RELEASE claim`); err != nil {
		return nil, err
	}
	return claimReturning(ctx, tx, records, first)
}

// claimReturning is claim for a batch whose ids may be stored already.
func claimReturning(ctx context.Context, tx *sql.Tx, records []*kve.Usage, first map[string]int) ([]*kve.Usage, error) {
	ids := make([]any, 0, len(first))
	for i, u := range records {
		if first[u.RequestID] == i {
			ids = append(ids, u.RequestID)
		}
	}
	isNew := make([]bool, len(records))
	var id sql.RawBytes
	err := eachSize(ids, func(i, n int) error {
		rows, err := tx.QueryContext(ctx, claimQuery(n)+` RETURNING request_id`, ids[:n]...)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			if err := rows.Scan(&id); err != nil {
				return err
			}
			if i, ok := first[string(id)]; ok {
				isNew[i] = true
			}
		}
		ids = ids[n:]
		return rows.Err()
	})
	if err != nil {
		return nil, err
	}
	fresh := make([]*kve.Usage, 0, len(first))
	for i, u := range records {
		if isNew[i] {
			fresh = append(fresh, u)
		}
	}
	return fresh, nil
}

// eachSize cuts n ids into statements of claimSizes, largest first, and
// calls fn with each: the index of its size, and the size.
func eachSize(ids []any, fn func(i, n int) error) error {
	left := len(ids)
	for i, n := range claimSizes {
		for ; left >= n; left -= n {
			if err := fn(i, n); err != nil {
				return err
			}
		}
	}
	return nil
}

// claimQuery inserts n request ids into usage_ids, leaving those stored
// already.
func claimQuery(n int) string {
	return `INSERT INTO usage_ids (request_id) VALUES (?)` + strings.Repeat(", (?)", n-1) +
		` ON CONFLICT (request_id) DO NOTHING`
}

// group is the records of a batch that share a chunk key, sorted
// byArrival.
type group struct {
	key     chunkKey
	records []*kve.Usage
}

// groupByKey groups records by chunk key, in the order keys first appear.
func groupByKey(records []*kve.Usage) []group {
	index := map[chunkKey]int{}
	var groups []group
	for _, u := range records {
		k := keyOf(u)
		i, ok := index[k]
		if !ok {
			i = len(groups)
			index[k] = i
			groups = append(groups, group{key: k})
		}
		groups[i].records = append(groups[i].records, u)
	}
	for _, g := range groups {
		slices.SortFunc(g.records, byArrival) // records come about in order: cheap
	}
	return groups
}

// insertChunk stores a chunk.
const insertChunk = `INSERT INTO usage_chunks (org_id, token_id, user_id, first_at, last_at, records, data)
	VALUES (?, ?, ?, ?, ?, ?, ?)`

// insertChunks stores the groups' records in chunks with insert, a
// prepared insertChunk.
func insertChunks(ctx context.Context, insert *sql.Stmt, groups []group) error {
	var data []byte
	for _, g := range groups {
		err := chunked(g.records, func(records []*kve.Usage) error {
			data = appendChunk(data[:0], records)
			_, err := insert.ExecContext(ctx, g.key.org, g.key.token, g.key.user,
				millis(records[0].At), millis(records[len(records)-1].At), len(records), data)
			return err
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// addCounters adds new records to their tokens' last use and spend, the
// daily rollups and the month spend of their organization. Each is summed
// over the batch and written once per row: a batch of one token's requests
// costs a few statements, not a few per record.
func (st *usageStatements) addCounters(ctx context.Context, tx *sql.Tx, groups []group) error {
	type tokenKey struct{ org, id string }
	lastUsed := map[tokenKey]int64{}
	var roll rollups
	var days dayCache
	for _, g := range groups {
		if g.key.token == "" {
			continue // a request no token was matched to
		}
		k := tokenKey{g.key.org, g.key.token}
		at := lastUsed[k] // 0 still bumps: spend and rollups need the token's row
		for _, u := range g.records {
			if u.Forwarded() {
				at = max(at, millis(u.At))
			}
			roll.add(u, days.of(u.At))
		}
		lastUsed[k] = at
	}
	if len(lastUsed) == 0 {
		return nil
	}
	bump := tx.StmtContext(ctx, st.bump)
	known := make(map[tokenKey]bool, len(lastUsed))
	for k, at := range lastUsed {
		res, err := bump.ExecContext(ctx, at, k.org, k.id)
		if err != nil {
			return classify("bump token last used", "", err)
		}
		// Spend is only counted for a token of the record's organization.
		n, err := res.RowsAffected()
		if err != nil {
			return classify("bump token last used", "", err)
		}
		known[k] = n > 0
	}
	return roll.write(ctx, tx, st, func(orgID, tokenID string) bool { return known[tokenKey{orgID, tokenID}] })
}

// UsageRecords implements store.Usage: newest first by (at, request id);
// Since is inclusive. It reads the organization's chunks newest last_at
// first and stops once the page is complete: every record of a chunk not
// read yet arrived at or before that chunk's last_at.
func (s *Store) UsageRecords(ctx context.Context, orgID string, f store.UsageFilter) (store.Page[kve.Usage], error) {
	after, err := parseCursor(f.Cursor)
	if err != nil {
		return store.Page[kve.Usage]{}, err
	}
	limit := store.Limit(f.Limit)
	q, args := chunksQuery(orgID, f, after)
	rows, err := s.read.QueryContext(ctx, q, args...)
	if err != nil {
		return store.Page[kve.Usage]{}, classify("list usage", "", err)
	}
	defer rows.Close()
	// items is the page so far, newest first, with one record more than the
	// page when there is a next one.
	since, want := millis(f.Since), limit+1
	items, spare := make([]kve.Usage, 0, want), make([]kve.Usage, 0, want)
	var chunk []kve.Usage
	for rows.Next() {
		key := chunkKey{org: orgID}
		var first, last int64
		var n int
		var data sql.RawBytes
		if err := rows.Scan(&key.token, &key.user, &first, &last, &n, &data); err != nil {
			return store.Page[kve.Usage]{}, classify("list usage", "", err)
		}
		if len(items) == want && millis(items[limit].At) > last {
			break // the page is complete: no chunk left has a record this new
		}
		if chunk, err = decodeChunk(slices.Grow(chunk[:0], min(max(n, 0), chunkRecords)), key, first, string(data)); err != nil {
			return store.Page[kve.Usage]{}, classify("list usage", "", err)
		}
		for i := 1; i < len(chunk); i++ {
			if byArrival(&chunk[i-1], &chunk[i]) > 0 { // chunks are written sorted: a guard
				slices.SortFunc(chunk, func(a, b kve.Usage) int { return byArrival(&a, &b) })
				break
			}
		}
		// The chunk's records at or after since and before the cursor, of
		// which the newest want at most can be on the page.
		lo := sort.Search(len(chunk), func(i int) bool { return millis(chunk[i].At) >= since })
		hi := sort.Search(len(chunk), func(i int) bool {
			at := millis(chunk[i].At)
			return at > after.at || at == after.at && chunk[i].RequestID >= after.id
		})
		items, spare = mergeNewest(spare[:0], items, chunk[lo:max(lo, hi)], want), items
	}
	if err := rows.Err(); err != nil {
		return store.Page[kve.Usage]{}, classify("list usage", "", err)
	}
	return page(items, limit, func(u *kve.Usage) cursor { return cursor{millis(u.At), u.RequestID} }), nil
}

// mergeNewest appends to out the newest n records of newest (newest first)
// and oldest (oldest first), newest first.
func mergeNewest(out, newest, oldest []kve.Usage, n int) []kve.Usage {
	i, j := 0, len(oldest)-1
	for len(out) < n && (i < len(newest) || j >= 0) {
		if j < 0 || i < len(newest) && byArrival(&newest[i], &oldest[j]) > 0 {
			out = append(out, newest[i])
			i++
		} else {
			out = append(out, oldest[j])
			j--
		}
	}
	return out
}

// chunksQuery selects the chunks that may hold records of a page: the
// organization's, of the filter's token and member, holding a record at or
// after Since and one before the cursor, newest last_at first. A chunk
// holds records of at most chunkSpan, so a chunk whose last_at is more than
// that after the cursor holds none before it: the scan of the index starts
// there. Each filter has an index in that order (usage_chunks_by_…).
func chunksQuery(orgID string, f store.UsageFilter, after cursor) (string, []any) {
	q := `SELECT token_id, user_id, first_at, last_at, records, data FROM usage_chunks WHERE org_id = ?`
	args := []any{orgID}
	if f.TokenID != "" {
		q += ` AND token_id = ?`
		args = append(args, f.TokenID)
	}
	if f.UserID != "" {
		q += ` AND user_id = ?`
		args = append(args, f.UserID)
	}
	upTo := after.at
	if upTo <= math.MaxInt64-chunkSpan.Milliseconds() {
		upTo += chunkSpan.Milliseconds()
	}
	q += ` AND last_at BETWEEN ? AND ? AND first_at <= ? ORDER BY last_at DESC`
	args = append(args, millis(f.Since), upTo, after.at)
	return q, args
}
