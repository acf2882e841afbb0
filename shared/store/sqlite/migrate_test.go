package sqlite

import (
	"database/sql"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/keyvault-edge/kve/shared/store"
)

// rawExec runs statements on the file at path outside the store.
func rawExec(t *testing.T, path string, stmts ...string) {
	t.Helper()
	db, err := sql.Open("sqlite", dsn(path, time.Second, false))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for _, q := range stmts {
		if _, err := db.ExecContext(t.Context(), q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
}

func TestOpenRefusesSchema(t *testing.T) {
	known := len(mustMigrations(t))
	for _, tc := range []struct {
		name    string
		prepare func(t *testing.T, path string)
		want    string
	}{
		{"newer version", func(t *testing.T, path string) {
			openClosed(t, path)
			rawExec(t, path, fmt.Sprintf(`INSERT INTO schema_version (version, name, applied_at) VALUES (%d, 'future.sql', 0)`, known+1))
		}, fmt.Sprintf("schema version %d is newer than this kve build knows (%d)", known+1, known)},
		{"tables without a schema version", func(t *testing.T, path string) {
			rawExec(t, path, `CREATE TABLE tokens (id TEXT PRIMARY KEY)`)
		}, "no schema version"},
		{"empty schema version", func(t *testing.T, path string) {
			openClosed(t, path)
			rawExec(t, path, `DELETE FROM schema_version`)
		}, "half-migrated"},
		{"edited migration", func(t *testing.T, path string) {
			openClosed(t, path)
			rawExec(t, path, `UPDATE schema_version SET name = '0001_other.sql'`)
		}, "schema history is inconsistent at version 1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "kve.db")
			tc.prepare(t, path)
			s, err := Open(t.Context(), path)
			if err == nil {
				s.Close()
				t.Fatal("Open succeeded, want a schema error")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Open error = %q, want it to say %q", err, tc.want)
			}
		})
	}
}

func TestOpenIsIdempotent(t *testing.T) {
	path := filepath.Join(t.TempDir(), "kve.db")
	openClosed(t, path)
	openClosed(t, path)
	db, err := sql.Open("sqlite", dsn(path, time.Second, true))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var n, version int
	var mode string
	if err := db.QueryRowContext(t.Context(), `SELECT count(*), max(version) FROM schema_version`).Scan(&n, &version); err != nil {
		t.Fatal(err)
	}
	if err := db.QueryRowContext(t.Context(), `PRAGMA journal_mode`).Scan(&mode); err != nil {
		t.Fatal(err)
	}
	known := len(mustMigrations(t))
	if n != known || version != known || mode != "wal" {
		t.Errorf("after two opens: %d schema rows, version %d, journal mode %q; want %d, %d, wal", n, version, mode, known, known)
	}
}

func mustMigrations(t *testing.T) []migration {
	t.Helper()
	ms, err := migrations()
	if err != nil {
		t.Fatal(err)
	}
	return ms
}

// TestUpgradeFromFirstSchema opens a file written by a build that knew only
// 0001_init.sql: the later migrations apply on open and its data stays
// readable through the new code (orgs gained deleted_at, for one).
func TestUpgradeFromFirstSchema(t *testing.T) {
	path := filepath.Join(t.TempDir(), "kve.db")
	first := mustMigrations(t)[0]
	rawExec(t, path,
		`CREATE TABLE schema_version (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at INTEGER NOT NULL)`,
		first.sql,
		`INSERT INTO schema_version (version, name, applied_at) VALUES (1, '`+first.name+`', 0)`,
		`INSERT INTO orgs (id, slug, name, created_at, created_by) VALUES ('org_01', 'acme', 'Acme', 1, 'usr_01')`,
		`INSERT INTO members (org_id, user_id, email, name, role, joined_at) VALUES ('org_01', 'usr_01', 'a@example.test', 'A', 'owner', 1)`,
	)
	s := openTest(t, path)
	o, err := s.OrgBySlug(t.Context(), "acme")
	if err != nil || o.ID != "org_01" || o.Name != "Acme" {
		t.Fatalf("OrgBySlug after upgrade = %+v, %v", o, err)
	}
	list, err := s.Invites(t.Context(), "org_01")
	if err != nil || len(list) != 0 {
		t.Errorf("Invites after upgrade = %v, %v; want an empty list", list, err)
	}
}

// openClosed creates or migrates the store at path and closes it.
func openClosed(t *testing.T, path string) {
	t.Helper()
	s, err := Open(t.Context(), path)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
}

// TestUpgradeFillsMonthlyRollups: 0007 sums the days an older build stored
// into usage_monthly_token, so a report of a whole month counts them.
func TestUpgradeFillsMonthlyRollups(t *testing.T) {
	path := filepath.Join(t.TempDir(), "kve.db")
	stmts := []string{`CREATE TABLE schema_version (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at INTEGER NOT NULL)`}
	for i, m := range mustMigrations(t)[:6] {
		stmts = append(stmts, m.sql, fmt.Sprintf(`INSERT INTO schema_version (version, name, applied_at) VALUES (%d, '%s', 0)`, i+1, m.name))
	}
	for _, day := range []string{"2026-09-30", "2026-10-01", "2026-10-17", "2026-10-31", "2026-11-01"} {
		stmts = append(stmts, `INSERT INTO usage_daily_token VALUES ('org_01', '`+day+`', 'tok_01', '', 'prd', 'openai',
			2, 1, 0, 100, 10, 0, 0, 1000, 2000, 7, 1)`)
	}
	rawExec(t, path, stmts...)
	s := openTest(t, path)
	rows, err := s.Rollups(t.Context(), "org_01", store.RollupFilter{From: "2026-10-01", To: "2026-10-31", By: store.ByToken})
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 1 || rows[0].Requests != 6 || rows[0].Errors != 3 || rows[0].PromptTokens != 300 || rows[0].CostMicro != 21 {
		t.Errorf("October by token after the upgrade = %+v, want 6 requests costing 21", rows)
	}
}
