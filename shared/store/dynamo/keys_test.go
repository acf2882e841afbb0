package dynamo

import (
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/keyvault-edge/kve/shared/kve"
	"github.com/keyvault-edge/kve/shared/store"
)

// TestRotateKeyInBatches rotates a key with 60 tokens: 120 token writes and
// the key and its event (3 writes) take two transactions.
func TestRotateKeyInBatches(t *testing.T) {
	e := newEnv(t)
	s := e.seed()
	tokens := []kve.Token{s.token}
	for i := range 59 {
		tok := e.newToken(s.key)
		if i%10 == 0 {
			tok.RevokedAt = testNow
		}
		e.ok(e.store.CreateToken(e.ctx, tok, e.event(s.org.ID, "token.create", tok.ID)))
		tokens = append(tokens, tok)
	}
	e.calls.take()
	r := store.Rotation{Version: "version-2", Last4: "NEW4", Fingerprint: "SHA256:new", At: testNow}
	k, err := e.store.RotateKey(e.ctx, s.org.ID, s.key.Name, r, e.event(s.org.ID, "key.rotate", s.key.ID))
	if err != nil {
		t.Fatalf("RotateKey: %v", err)
	}
	if diff := cmp.Diff(map[string]int{"GetItem": 1, "Query": 1, "TransactWriteItems": 2}, e.calls.take()); diff != "" {
		t.Errorf("calls (-want +got):\n%s", diff)
	}
	if k.Version != "version-2" || k.Last4 != "NEW4" {
		t.Errorf("RotateKey = version %q, last4 %q", k.Version, k.Last4)
	}
	for _, tok := range tokens {
		got, err := e.store.TokenByHash(e.ctx, tok.Hash)
		if err != nil {
			t.Fatal(err)
		}
		if got.Key.Version != "version-2" || got.Version != 1 {
			t.Errorf("token %s (revoked %v): key version %q, version %d; want version-2 and 1",
				tok.ID, tok.Revoked(), got.Key.Version, got.Version)
		}
	}
}

func TestBatches(t *testing.T) {
	pair := []write{{}, {}}
	sizes := func(groups int, last int) []int {
		var gs [][]write
		for range groups {
			gs = append(gs, pair)
		}
		var out []int
		for _, b := range batches(gs, make([]write, last)) {
			out = append(out, len(b))
		}
		return out
	}
	for _, tc := range []struct {
		name        string
		pairs, last int
		want        []int
	}{
		{"no tokens", 0, 3, []int{3}},
		{"fits in one", 48, 3, []int{99}},
		{"last does not fit", 49, 3, []int{98, 3}},
		{"exactly full", 50, 0, []int{100}},
		{"three", 120, 3, []int{100, 100, 43}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if diff := cmp.Diff(tc.want, sizes(tc.pairs, tc.last)); diff != "" {
				t.Errorf("batch sizes (-want +got):\n%s", diff)
			}
		})
	}
}

// TestRotateKeyTokenCreatedMeanwhile creates a token, with the key's old
// version, between RotateKey's read of the tokens and its write: the
// rotation runs again and moves that token too.
func TestRotateKeyTokenCreatedMeanwhile(t *testing.T) {
	e := newEnv(t)
	s := e.seed()
	other := Open(e.client, e.table)
	late := e.newToken(s.key)
	fired := false
	e.calls.before = func(op string) {
		if op == "TransactWriteItems" && !fired {
			fired = true
			e.ok(other.CreateToken(e.ctx, late, e.event(s.org.ID, "token.create", late.ID)))
		}
	}
	_, err := e.store.RotateKey(e.ctx, s.org.ID, s.key.Name, store.Rotation{Version: "version-2", At: testNow},
		e.event(s.org.ID, "key.rotate", s.key.ID))
	e.calls.before = nil
	if err != nil {
		t.Fatalf("RotateKey: %v", err)
	}
	for _, tok := range []kve.Token{s.token, late} {
		got, err := e.store.TokenByHash(e.ctx, tok.Hash)
		if err != nil || got.Key.Version != "version-2" {
			t.Errorf("token %s: key version %q (error %v), want version-2", tok.ID, got.Key.Version, err)
		}
	}
}

// TestDeleteKeyTokenCreatedMeanwhile creates a token of the key between
// DeleteKey's check for live tokens and its delete: the delete is refused.
func TestDeleteKeyTokenCreatedMeanwhile(t *testing.T) {
	e := newEnv(t)
	s := e.seed()
	other := Open(e.client, e.table)
	_, err := e.store.UpdateToken(e.ctx, s.org.ID, s.token.ID, func(tk *kve.Token) error {
		tk.RevokedAt = testNow
		return nil
	}, e.event(s.org.ID, "token.revoke", s.token.ID))
	e.ok(err)

	late := e.newToken(s.key)
	fired := false
	e.calls.before = func(op string) {
		if op == "TransactWriteItems" && !fired {
			fired = true
			e.ok(other.CreateToken(e.ctx, late, e.event(s.org.ID, "token.create", late.ID)))
		}
	}
	err = e.store.DeleteKey(e.ctx, s.org.ID, s.key.Name, e.event(s.org.ID, "key.delete", s.key.ID))
	e.calls.before = nil
	wantKind(t, "DeleteKey while a token was being created", err, kve.KindConflict)
	if code := kve.CodeOf(err); code != "key_in_use" {
		t.Errorf("code = %q, want key_in_use", code)
	}
	if _, err := e.store.Key(e.ctx, s.org.ID, s.key.Name); err != nil {
		t.Errorf("Key after the refused delete: %v", err)
	}
}
