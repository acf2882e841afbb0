package dynamo

import (
	"context"
	"encoding/base64"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/keyvault-edge/kve/shared/kve"
	"github.com/keyvault-edge/kve/shared/store"
)

func TestTokenByHashIsOneQuery(t *testing.T) {
	e := newEnv(t, WithClock(func() time.Time { return testNow }))
	s := e.seed()
	yesterday := testNow.Add(-24 * time.Hour)
	e.ok(e.store.RecordUsage(e.ctx, []kve.Usage{
		{RequestID: "req_a", At: testNow.Add(-time.Hour), OrgID: s.org.ID, TokenID: s.token.ID, CostMicro: 100},
		{RequestID: "req_b", At: testNow, OrgID: s.org.ID, TokenID: s.token.ID, CostMicro: 250},
		{RequestID: "req_c", At: yesterday, OrgID: s.org.ID, TokenID: s.token.ID, CostMicro: 9000},
	}))
	e.calls.take()

	got, err := e.store.TokenByHash(e.ctx, s.token.Hash)
	if err != nil {
		t.Fatalf("TokenByHash: %v", err)
	}
	if diff := cmp.Diff(map[string]int{"Query": 1}, e.calls.take()); diff != "" {
		t.Errorf("calls (-want +got):\n%s", diff)
	}
	if want := (kve.Spend{Day: "2026-03-14", Micro: 350}); got.Spend != want {
		t.Errorf("Spend = %+v, want %+v", got.Spend, want)
	}
	if got.ID != s.token.ID || !got.LastUsed.Equal(testNow) {
		t.Errorf("TokenByHash = %s last used %v, want %s last used %v", got.ID, got.LastUsed, s.token.ID, testNow)
	}

	tomorrow := Open(e.calls, e.table, WithClock(func() time.Time { return testNow.Add(24 * time.Hour) }))
	got, err = tomorrow.TokenByHash(e.ctx, s.token.Hash)
	if err != nil {
		t.Fatalf("TokenByHash the next day: %v", err)
	}
	if want := (kve.Spend{Day: "2026-03-15"}); got.Spend != want {
		t.Errorf("Spend the next day = %+v, want %+v", got.Spend, want)
	}

	_, err = e.store.TokenByHash(e.ctx, []byte("no-such-hash"))
	wantKind(t, "TokenByHash of an unknown hash", err, kve.KindNotFound)
}

// TestUpdateTokenRace lets another writer change the token between
// UpdateToken's read and write: the first write fails on the version, fn
// runs again on fresh data, and a last use recorded meanwhile stays.
func TestUpdateTokenRace(t *testing.T) {
	e := newEnv(t)
	s := e.seed()
	other := Open(e.client, e.table)
	e.ok(e.store.RecordUsage(e.ctx, []kve.Usage{{RequestID: "req_w", At: testNow.Add(time.Minute), OrgID: s.org.ID, TokenID: s.token.ID}}))
	later := testNow.Add(time.Hour)
	n := 0
	e.calls.before = func(op string) {
		if op != "TransactWriteItems" {
			return
		}
		switch n++; n {
		case 1: // another update wins the race
			_, err := other.UpdateToken(e.ctx, s.org.ID, s.token.ID, func(tk *kve.Token) error {
				tk.Name = "renamed elsewhere"
				return nil
			}, e.event(s.org.ID, "token.update", s.token.ID))
			e.ok(err)
		case 2: // a request is recorded; it does not change the version
			e.ok(other.RecordUsage(e.ctx, []kve.Usage{{RequestID: "req_x", At: later, OrgID: s.org.ID, TokenID: s.token.ID}}))
		}
	}
	runs := 0
	got, err := e.store.UpdateToken(e.ctx, s.org.ID, s.token.ID, func(tk *kve.Token) error {
		runs++
		tk.Policy.RPM = 600
		return nil
	}, e.event(s.org.ID, "token.update", s.token.ID))
	e.calls.before = nil
	if err != nil {
		t.Fatalf("UpdateToken: %v", err)
	}
	if runs != 2 {
		t.Errorf("fn ran %d times, want 2 (once more after losing the race)", runs)
	}
	if got.Name != "renamed elsewhere" || got.Policy.RPM != 600 || got.Version != 2 {
		t.Errorf("UpdateToken = name %q, rpm %d, version %d; want both changes at version 2", got.Name, got.Policy.RPM, got.Version)
	}
	for _, read := range []struct {
		name string
		get  func() (kve.Token, error)
	}{
		{"Token", func() (kve.Token, error) { return e.store.Token(e.ctx, s.org.ID, s.token.ID) }},
		{"TokenByHash", func() (kve.Token, error) { return e.store.TokenByHash(e.ctx, s.token.Hash) }},
	} {
		tok, err := read.get()
		if err != nil {
			t.Fatalf("%s: %v", read.name, err)
		}
		if tok.Name != "renamed elsewhere" || tok.Policy.RPM != 600 || !tok.LastUsed.Equal(later) {
			t.Errorf("%s = name %q, rpm %d, last used %v; want both changes and last use %v",
				read.name, tok.Name, tok.Policy.RPM, tok.LastUsed, later)
		}
	}
}

func TestUpdateTokenGivesUp(t *testing.T) {
	e := newEnv(t)
	e.store.pause = func(context.Context, int) error { return nil }
	s := e.seed()
	other := Open(e.client, e.table)
	e.calls.before = func(op string) {
		if op == "TransactWriteItems" { // someone else always wins
			_, err := other.UpdateToken(e.ctx, s.org.ID, s.token.ID, func(*kve.Token) error { return nil },
				e.event(s.org.ID, "token.update", s.token.ID))
			e.ok(err)
		}
	}
	runs := 0
	_, err := e.store.UpdateToken(e.ctx, s.org.ID, s.token.ID, func(*kve.Token) error { runs++; return nil },
		e.event(s.org.ID, "token.update", s.token.ID))
	e.calls.before = nil
	wantKind(t, "UpdateToken that always loses", err, kve.KindConflict)
	if runs != staleAttempts {
		t.Errorf("fn ran %d times, want %d", runs, staleAttempts)
	}
}

func TestUpdateTokenRefusesIdentityChanges(t *testing.T) {
	e := newEnv(t)
	s := e.seed()
	for _, tc := range []struct {
		name string
		fn   func(*kve.Token)
	}{
		{"id", func(tk *kve.Token) { tk.ID = "tok_other" }},
		{"org", func(tk *kve.Token) { tk.OrgID = "org_other" }},
		{"hash", func(tk *kve.Token) { tk.Hash = []byte("other") }},
		{"sealed", func(tk *kve.Token) { tk.Sealed = nil }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := e.store.UpdateToken(e.ctx, s.org.ID, s.token.ID, func(tk *kve.Token) error { tc.fn(tk); return nil },
				e.event(s.org.ID, "token.update", s.token.ID))
			if err == nil {
				t.Fatal("UpdateToken accepted the change")
			}
			got, err := e.store.Token(e.ctx, s.org.ID, s.token.ID)
			if err != nil || got.Version != 0 {
				t.Errorf("Token after a refused update: version %d, error %v; want version 0", got.Version, err)
			}
		})
	}
}

func TestCreateTokenChecksTheKey(t *testing.T) {
	e := newEnv(t)
	s := e.seed()

	missing := e.newToken(e.newKey(s.org.ID, "never-created"))
	err := e.store.CreateToken(e.ctx, missing, e.event(s.org.ID, "token.create", missing.ID))
	wantKind(t, "CreateToken with a missing key", err, kve.KindNotFound)

	stale := e.newToken(s.key) // carries version-1
	_, err = e.store.RotateKey(e.ctx, s.org.ID, s.key.Name, store.Rotation{Version: "version-2", At: testNow},
		e.event(s.org.ID, "key.rotate", s.key.ID))
	e.ok(err)
	err = e.store.CreateToken(e.ctx, stale, e.event(s.org.ID, "token.create", stale.ID))
	wantKind(t, "CreateToken on a version rotated away", err, kve.KindConflict)
	if code := kve.CodeOf(err); code != "key_changed" {
		t.Errorf("code = %q, want key_changed", code)
	}

	for _, tok := range []kve.Token{missing, stale} {
		_, err := e.store.TokenByHash(e.ctx, tok.Hash)
		wantKind(t, "TokenByHash of a refused token", err, kve.KindNotFound)
	}
}

func TestCursors(t *testing.T) {
	e := newEnv(t)
	s := e.seed()
	for range 3 {
		tok := e.newToken(s.key)
		e.ok(e.store.CreateToken(e.ctx, tok, e.event(s.org.ID, "token.create", tok.ID)))
	}
	first, err := e.store.Tokens(e.ctx, s.org.ID, store.TokenFilter{Limit: 2})
	if err != nil || first.Next == "" {
		t.Fatalf("first page: next %q, error %v; want a cursor", first.Next, err)
	}
	second, err := e.store.Tokens(e.ctx, s.org.ID, store.TokenFilter{Limit: 2, Cursor: first.Next})
	if err != nil || len(second.Items) != 2 || second.Next != "" {
		t.Fatalf("second page: %d items, next %q, error %v; want 2 and the end", len(second.Items), second.Next, err)
	}

	otherOrg := base64.RawURLEncoding.EncodeToString([]byte(`{"pk":"org#org_someone_else","sk":"token#tok_1"}`))
	for _, tc := range []struct{ name, cursor string }{
		{"not base64", "%%%"},
		{"not json", base64.RawURLEncoding.EncodeToString([]byte("pk=org"))},
		{"no sort key", base64.RawURLEncoding.EncodeToString([]byte(`{"pk":"org#` + s.org.ID + `"}`))},
		{"another organization's", otherOrg},
		{"another list's", encodeCursor(str(usagePK(s.org.ID)), str("x"))},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := e.store.Tokens(e.ctx, s.org.ID, store.TokenFilter{Cursor: tc.cursor})
			wantKind(t, "Tokens with a bad cursor", err, kve.KindInvalid)
		})
	}
}
