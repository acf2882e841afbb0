package sqlite

import (
	"context"
	"database/sql"
	"embed"
	"fmt"
	"io/fs"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/keyvault-edge/kve/shared/kve"
)

// migrationFiles are the schema changes, applied in the order of their
// number prefix (0001_init.sql, 0002_…). A released file is never edited:
// its name is recorded in the database and checked at every Open.
//
//go:embed migrations/*.sql
var migrationFiles embed.FS

type migration struct {
	version int
	name    string
	sql     string
}

// migrations reads the embedded files, numbered 1, 2, 3, … without gaps.
func migrations() ([]migration, error) {
	names, err := fs.Glob(migrationFiles, "migrations/*.sql")
	if err != nil {
		return nil, err
	}
	sort.Strings(names)
	out := make([]migration, 0, len(names))
	for i, path := range names {
		name := strings.TrimPrefix(path, "migrations/")
		prefix, _, _ := strings.Cut(name, "_")
		v, err := strconv.Atoi(prefix)
		if err != nil || v != i+1 {
			return nil, fmt.Errorf("migration %s: want number %04d", name, i+1)
		}
		body, err := migrationFiles.ReadFile(path)
		if err != nil {
			return nil, err
		}
		out = append(out, migration{version: v, name: name, sql: string(body)})
	}
	return out, nil
}

// migrate brings the schema up to date in one transaction, so a failed
// migration leaves the file as it was. It refuses a file with a schema newer
// than this build knows, and one whose recorded history does not match the
// embedded migrations (edited, skipped or applied by hand).
func migrate(ctx context.Context, db *sql.DB, now time.Time) error {
	known, err := migrations()
	if err != nil {
		return fmt.Errorf("read migrations: %w", err)
	}
	tx, err := db.BeginTx(ctx, nil) // BEGIN IMMEDIATE: one process migrates at a time
	if err != nil {
		return fmt.Errorf("migrate schema: %w", err)
	}
	defer tx.Rollback()

	applied, err := appliedMigrations(ctx, tx)
	if err != nil {
		return err
	}
	if n := len(applied); n > 0 && applied[n-1].version > len(known) {
		return fmt.Errorf("schema version %d is newer than this kve build knows (%d): upgrade kve, or point it at another data directory",
			applied[n-1].version, len(known))
	}
	for i, a := range applied {
		if a.version != i+1 || a.name != known[i].name {
			return fmt.Errorf("schema history is inconsistent at version %d (%q, want %q): the file was migrated by hand or by another build",
				a.version, a.name, known[i].name)
		}
	}
	for _, m := range known[len(applied):] {
		if _, err := tx.ExecContext(ctx, m.sql); err != nil {
			return fmt.Errorf("apply migration %s: %w", m.name, err)
		}
		if step := migrationStep(m.name); step != nil {
			if err := step(ctx, tx); err != nil {
				return fmt.Errorf("apply migration %s: %w", m.name, err)
			}
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO schema_version (version, name, applied_at) VALUES (?, ?, ?)`,
			m.version, m.name, millis(now)); err != nil {
			return fmt.Errorf("record migration %s: %w", m.name, err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("migrate schema: %w", err)
	}
	return nil
}

// appliedMigrations reads the schema_version table, creating it in a new,
// empty file. A file that has tables but no schema_version was not created
// by kve, or was left half-migrated by hand: it is refused, not adopted.
func appliedMigrations(ctx context.Context, tx *sql.Tx) ([]migration, error) {
	var hasVersions bool
	var others int
	err := tx.QueryRowContext(ctx, `SELECT
		EXISTS (SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_version'),
		(SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite\_%' ESCAPE '\' AND name != 'schema_version')`).
		Scan(&hasVersions, &others)
	if err != nil {
		return nil, fmt.Errorf("read schema: %w", err)
	}
	if !hasVersions {
		if others > 0 {
			return nil, fmt.Errorf("file has %d tables but no schema version: not a kve store, or half-migrated", others)
		}
		if _, err := tx.ExecContext(ctx, `CREATE TABLE schema_version (
			version    INTEGER PRIMARY KEY,
			name       TEXT    NOT NULL,
			applied_at INTEGER NOT NULL
		)`); err != nil {
			return nil, fmt.Errorf("create schema_version: %w", err)
		}
		return nil, nil
	}
	rows, err := tx.QueryContext(ctx, `SELECT version, name FROM schema_version ORDER BY version`)
	if err != nil {
		return nil, fmt.Errorf("read schema version: %w", err)
	}
	defer rows.Close()
	var out []migration
	for rows.Next() {
		var m migration
		if err := rows.Scan(&m.version, &m.name); err != nil {
			return nil, fmt.Errorf("read schema version: %w", err)
		}
		out = append(out, m)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read schema version: %w", err)
	}
	if len(out) == 0 && others > 0 {
		return nil, fmt.Errorf("file has %d tables but an empty schema version: half-migrated", others)
	}
	return out, nil
}

// migrationStep returns the Go part of a migration, if it has one: what
// SQL cannot do, run right after the file's SQL in the same transaction.
func migrationStep(name string) func(context.Context, *sql.Tx) error {
	switch name {
	case "0006_usage_chunks.sql":
		return chunkUsageRows
	}
	return nil
}

// chunkUsageRows is the Go part of 0006_usage_chunks.sql: it stores the
// records of the usage table in chunks, as RecordUsage stores new ones,
// and drops the table. Rows are read in the order of an index of the
// table, one token's records at a time.
func chunkUsageRows(ctx context.Context, tx *sql.Tx) error {
	insert, err := tx.PrepareContext(ctx, insertChunk)
	if err != nil {
		return fmt.Errorf("chunk usage records: %w", err)
	}
	defer insert.Close()
	rows, err := tx.QueryContext(ctx, `SELECT request_id, org_id, token_id, user_id, at, env, provider, method,
			path, model, status, duration_ns, upstream_ns, bytes_in, bytes_out, prompt_tokens, completion_tokens,
			cached_tokens, reasoning_tokens, estimated, cost_micro, client_ip, origin, client_aborted, reason
		FROM usage ORDER BY org_id, token_id, at, request_id`)
	if err != nil {
		return fmt.Errorf("chunk usage records: %w", err)
	}
	defer rows.Close()
	var batch []kve.Usage // records of one token, a few chunks' worth at a time
	flush := func() error {
		ptrs := make([]*kve.Usage, len(batch))
		for i := range batch {
			ptrs[i] = &batch[i]
		}
		err := insertChunks(ctx, insert, groupByKey(ptrs))
		batch = batch[:0]
		return err
	}
	for rows.Next() {
		var u kve.Usage
		var at, duration, upstream int64
		if err := rows.Scan(&u.RequestID, &u.OrgID, &u.TokenID, &u.UserID, &at, &u.Env, &u.Provider, &u.Method,
			&u.Path, &u.Model, &u.Status, &duration, &upstream, &u.BytesIn, &u.BytesOut,
			&u.PromptTokens, &u.CompletionTokens, &u.CachedTokens, &u.ReasoningTokens, &u.Estimated, &u.CostMicro,
			&u.ClientIP, &u.Origin, &u.ClientAborted, &u.Reason); err != nil {
			return fmt.Errorf("chunk usage records: %w", err)
		}
		u.At, u.Duration, u.Upstream = fromMillis(at), time.Duration(duration), time.Duration(upstream)
		if len(batch) > 0 && (len(batch) == 16*chunkRecords || batch[0].OrgID != u.OrgID || batch[0].TokenID != u.TokenID) {
			if err := flush(); err != nil {
				return fmt.Errorf("chunk usage records: %w", err)
			}
		}
		batch = append(batch, u)
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("chunk usage records: %w", err)
	}
	if err := flush(); err != nil {
		return fmt.Errorf("chunk usage records: %w", err)
	}
	if _, err := tx.ExecContext(ctx, `DROP TABLE usage`); err != nil {
		return fmt.Errorf("drop usage table: %w", err)
	}
	return nil
}
