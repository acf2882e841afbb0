package sqlite

import (
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/keyvault-edge/kve/shared/kve"
	"github.com/keyvault-edge/kve/shared/store"
	"github.com/keyvault-edge/kve/shared/store/storetest"
)

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store {
		return openTest(t, filepath.Join(t.TempDir(), "kve.db"))
	})
}

// openTest opens the store at path and closes it when the test ends.
func openTest(t testing.TB, path string) *Store {
	t.Helper()
	s, err := Open(t.Context(), path)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return s
}

// seed stores an organization with a key and n tokens and returns the tokens.
func seed(t testing.TB, s *Store, n int) (kve.Org, []kve.Token) {
	t.Helper()
	ctx := t.Context()
	now := time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)
	actor := kve.Actor{UserID: kve.NewID(kve.PrefixUser, now), Email: "owner@example.test"}
	org := kve.Org{ID: kve.NewID(kve.PrefixOrg, now), Slug: "acme-" + kve.NewID("", now), Name: "Acme", CreatedAt: now, CreatedBy: actor.UserID}
	owner := kve.Member{OrgID: org.ID, UserID: actor.UserID, Email: actor.Email, Role: kve.RoleOwner, JoinedAt: now}
	if err := s.CreateOrg(ctx, org, owner, actor.Event(org.ID, "org.create", org.ID, now)); err != nil {
		t.Fatalf("CreateOrg: %v", err)
	}
	key := kve.Key{ID: kve.NewID(kve.PrefixKey, now), OrgID: org.ID, Name: "main", Provider: "openai",
		Upstream: "https://api.openai.com", Version: "version-1", Last4: "FAKE", CreatedAt: now}
	key.Secret = kve.SecretName(org.ID, key.ID)
	if err := s.CreateKey(ctx, key, actor.Event(org.ID, "key.create", key.ID, now)); err != nil {
		t.Fatalf("CreateKey: %v", err)
	}
	tokens := make([]kve.Token, n)
	for i := range tokens {
		tok := kve.Token{ID: kve.NewID(kve.PrefixToken, now), OrgID: org.ID, Name: fmt.Sprintf("token-%d", i),
			Kind: kve.TokenShared, Env: kve.EnvDev, Hash: []byte(kve.NewID("hash_", now)), Sealed: []byte("sealed"),
			Key: key.Ref(), Policy: kve.Policy{AllowServer: true, RPM: 60}, CreatedAt: now, UpdatedAt: now}
		if err := s.CreateToken(ctx, tok, actor.Event(org.ID, "token.create", tok.ID, now)); err != nil {
			t.Fatalf("CreateToken: %v", err)
		}
		tokens[i] = tok
	}
	return org, tokens
}

func TestReopenKeepsData(t *testing.T) {
	path := filepath.Join(t.TempDir(), "kve.db")
	s, err := Open(t.Context(), path)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	org, tokens := seed(t, s, 3)
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}

	s = openTest(t, path)
	if _, err := s.Org(t.Context(), org.ID); err != nil {
		t.Errorf("Org after reopening: %v", err)
	}
	for _, want := range tokens {
		got, err := s.TokenByHash(t.Context(), want.Hash)
		if err != nil {
			t.Fatalf("TokenByHash after reopening: %v", err)
		}
		if got.ID != want.ID || got.Key.Secret != want.Key.Secret {
			t.Errorf("TokenByHash after reopening = %s (%s), want %s (%s)", got.ID, got.Key.Secret, want.ID, want.Key.Secret)
		}
	}
}

// TestConcurrentWriters runs writers on two stores over one file, as two
// processes would, and checks that every write landed and the file is sound.
func TestConcurrentWriters(t *testing.T) {
	path := filepath.Join(t.TempDir(), "kve.db")
	stores := []*Store{openTest(t, path), openTest(t, path)}
	org, tokens := seed(t, stores[0], 4)

	const perWriter = 15
	var wg sync.WaitGroup
	for w := range 8 {
		s, tok := stores[w%2], tokens[w%len(tokens)]
		wg.Go(func() {
			for i := range perWriter {
				now := time.Now().UTC()
				_, err := s.UpdateToken(t.Context(), org.ID, tok.ID, func(tk *kve.Token) error {
					tk.Policy.RPM++
					return nil
				}, kve.Actor{UserID: "system"}.Event(org.ID, "token.update", tok.ID, now))
				if err != nil {
					t.Errorf("writer %d, update %d: %v", w, i, err)
					return
				}
				u := kve.Usage{RequestID: kve.NewID(kve.PrefixRequest, now), At: now, OrgID: org.ID, TokenID: tok.ID, CostMicro: 1}
				if err := s.RecordUsage(t.Context(), []kve.Usage{u}); err != nil {
					t.Errorf("writer %d, usage %d: %v", w, i, err)
					return
				}
			}
		})
	}
	wg.Wait()

	var check string
	if err := stores[1].read.QueryRowContext(t.Context(), `PRAGMA integrity_check`).Scan(&check); err != nil {
		t.Fatalf("integrity_check: %v", err)
	}
	if check != "ok" {
		t.Errorf("integrity_check = %q, want ok", check)
	}
	writersPerToken := 8 / len(tokens)
	for _, tok := range tokens {
		got, err := stores[1].Token(t.Context(), org.ID, tok.ID)
		if err != nil {
			t.Fatalf("Token: %v", err)
		}
		if want := tok.Policy.RPM + writersPerToken*perWriter; got.Policy.RPM != want {
			t.Errorf("token %s: RPM = %d, want %d", tok.Name, got.Policy.RPM, want)
		}
	}
	p, err := stores[0].UsageRecords(t.Context(), org.ID, store.UsageFilter{Limit: store.MaxLimit})
	if err != nil {
		t.Fatalf("UsageRecords: %v", err)
	}
	if want := 8 * perWriter; len(p.Items) != want {
		t.Errorf("%d usage records, want %d", len(p.Items), want)
	}
}

// TestLockedIsUnavailable holds the write lock from another connection and
// checks that a write that cannot get it is KindUnavailable, not a hang or
// an internal error.
func TestLockedIsUnavailable(t *testing.T) {
	path := filepath.Join(t.TempDir(), "kve.db")
	s, err := open(t.Context(), path, 50*time.Millisecond)
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	t.Cleanup(func() { s.Close() })

	other, err := sql.Open("sqlite", dsn(path, time.Second, false))
	if err != nil {
		t.Fatalf("open second connection: %v", err)
	}
	defer other.Close()
	tx, err := other.BeginTx(t.Context(), nil) // BEGIN IMMEDIATE: holds the write lock
	if err != nil {
		t.Fatalf("begin: %v", err)
	}
	defer tx.Rollback()

	err = s.AddEvent(t.Context(), kve.Actor{UserID: "system"}.Event(kve.NewID(kve.PrefixOrg, time.Now()), "token.reveal", "tok_x", time.Now()))
	if got := kve.KindOf(err); got != kve.KindUnavailable {
		t.Errorf("AddEvent while another process writes: error = %v (kind %v), want kind unavailable", err, got)
	}
	if done, err := s.SetupDone(t.Context()); err != nil || done {
		t.Errorf("SetupDone while another process writes = %v, %v; want false, nil (readers never wait)", done, err)
	}
}

// TestTodaySpend pins the store's clock to check the day TokenByHash reads.
func TestTodaySpend(t *testing.T) {
	s := openTest(t, filepath.Join(t.TempDir(), "kve.db"))
	org, tokens := seed(t, s, 1)
	tok := tokens[0]
	day1 := time.Date(2025, 6, 1, 23, 59, 59, 999_000_000, time.UTC)
	day2 := day1.Add(time.Millisecond)
	var records []kve.Usage
	for i, at := range []time.Time{day1, day1, day2} {
		records = append(records, kve.Usage{RequestID: kve.NewID(kve.PrefixRequest, at), At: at, OrgID: org.ID,
			TokenID: tok.ID, CostMicro: int64(100 * (i + 1))})
	}
	if err := s.RecordUsage(t.Context(), records); err != nil {
		t.Fatalf("RecordUsage: %v", err)
	}
	for _, tc := range []struct {
		name string
		now  time.Time
		want kve.Spend
	}{
		{"first day", day1, kve.Spend{Day: "2025-06-01", Micro: 300}},
		{"second day", day2, kve.Spend{Day: "2025-06-02", Micro: 300}},
		{"a day without requests", day2.Add(24 * time.Hour), kve.Spend{Day: "2025-06-03", Micro: 0}},
		{"local time of the first day", day1.In(time.FixedZone("UTC+2", 2*3600)), kve.Spend{Day: "2025-06-01", Micro: 300}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s.now = func() time.Time { return tc.now }
			got, err := s.TokenByHash(t.Context(), tok.Hash)
			if err != nil {
				t.Fatalf("TokenByHash: %v", err)
			}
			if diff := cmp.Diff(tc.want, got.Spend); diff != "" {
				t.Errorf("Spend mismatch (-want +got):\n%s", diff)
			}
			if !got.LastUsed.Equal(day2) {
				t.Errorf("LastUsed = %v, want %v", got.LastUsed, day2)
			}
		})
	}
}

func TestInvalidCursor(t *testing.T) {
	s := openTest(t, filepath.Join(t.TempDir(), "kve.db"))
	org, _ := seed(t, s, 1)
	for _, c := range []string{"%%%", "bm8tc2VwYXJhdG9y", "YWJjfA"} { // not base64; "no-separator"; "abc|"
		_, err := s.Tokens(t.Context(), org.ID, store.TokenFilter{Cursor: c})
		if got := kve.KindOf(err); got != kve.KindInvalid {
			t.Errorf("Tokens with cursor %q: error = %v (kind %v), want kind invalid", c, err, got)
		}
	}
}

func TestPathWithURICharacters(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "a?b#c%20d")
	path := filepath.Join(dir, "kve.db")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	seed(t, openTest(t, path), 1)
	if _, err := os.Stat(path); err != nil {
		t.Errorf("store file not at its path: %v", err)
	}
}

// TestTokenCacheBound: a revocation made through this Store is seen by the
// very next lookup; one made by another process on the same file within the
// cache's one-second bound.
func TestTokenCacheBound(t *testing.T) {
	path := filepath.Join(t.TempDir(), "kve.db")
	a, b := openTest(t, path), openTest(t, path)
	org, tokens := seed(t, a, 2)
	ctx := t.Context()
	revoke := func(s *Store, tok kve.Token) {
		t.Helper()
		now := time.Now()
		if _, err := s.UpdateToken(ctx, org.ID, tok.ID, func(t *kve.Token) error { t.RevokedAt = now; return nil },
			kve.Actor{UserID: "usr_test"}.Event(org.ID, "token.revoke", tok.ID, now)); err != nil {
			t.Fatalf("revoke: %v", err)
		}
	}
	for _, tok := range tokens {
		if got, err := a.TokenByHash(ctx, tok.Hash); err != nil || got.Revoked() {
			t.Fatalf("warm lookup: %v %v", got.Revoked(), err)
		}
	}
	revoke(a, tokens[0])
	if got, _ := a.TokenByHash(ctx, tokens[0].Hash); !got.Revoked() {
		t.Fatal("a revocation through this store was not seen by the next lookup")
	}
	if got, err := a.TokenByHash(ctx, tokens[1].Hash); err != nil || got.Revoked() { // cached at the current generation
		t.Fatalf("warm lookup: %v %v", got.Revoked(), err)
	}
	revoke(b, tokens[1])
	start := time.Now()
	for {
		got, err := a.TokenByHash(ctx, tokens[1].Hash)
		if err != nil {
			t.Fatal(err)
		}
		if got.Revoked() {
			if time.Since(start) < tokenCacheTTL/2 {
				t.Logf("seen after %v: the cached entry was dropped early", time.Since(start))
			}
			break
		}
		if time.Since(start) > tokenCacheTTL+500*time.Millisecond {
			t.Fatalf("another process's revocation unseen after %v", time.Since(start))
		}
		time.Sleep(10 * time.Millisecond) // polling for the bound, not waiting to pass
	}
}
