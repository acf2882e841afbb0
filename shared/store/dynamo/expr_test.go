package dynamo

import (
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/keyvault-edge/kve/shared/kve"
	"github.com/keyvault-edge/kve/shared/store"
)

func TestReplace(t *testing.T) {
	old := item{AttrPK: str("p"), AttrSK: str("s"), "name": str("a"), "expires_at": str("x"),
		"last_used": str("y"), "hash": bin([]byte{1}), "detail": &types.AttributeValueMemberM{}}
	next := item{AttrPK: str("p"), AttrSK: str("s"), "name": str("b"), "version": num(2)}
	var e expr
	got := replace(&e, old, next, "last_used")
	if want := "SET #name = :v0, #version = :v1, #detail = :v2, #expires_at = :v3, #hash = :v4"; got != want {
		t.Errorf("replace = %q, want %q", got, want)
	}
	wantValues := map[string]string{":v0": "b", ":v1": "2", ":v2": "*types.AttributeValueMemberM", ":v3": "", ":v4": ""}
	values := map[string]string{}
	for k, v := range e.Values() {
		values[k] = text(v)
	}
	if diff := cmp.Diff(wantValues, values); diff != "" {
		t.Errorf("values (-want +got):\n%s", diff)
	}
	f := fields{it: item{"expires_at": str(""), "hash": bin([]byte{})}}
	if at, hash := f.time("expires_at"), f.bytes("hash"); !at.IsZero() || hash != nil || f.err != nil {
		t.Errorf("emptied attributes read back as %v, %v (error %v); want zero values", at, hash, f.err)
	}
}

// TestUpdateTokenClearsFields sets and then clears a token's expiry and
// revocation: every read, and the filters on revocation, see them gone.
func TestUpdateTokenClearsFields(t *testing.T) {
	e := newEnv(t)
	s := e.seed()
	update := func(fn func(*kve.Token)) kve.Token {
		t.Helper()
		tok, err := e.store.UpdateToken(e.ctx, s.org.ID, s.token.ID, func(tk *kve.Token) error { fn(tk); return nil },
			e.event(s.org.ID, "token.update", s.token.ID))
		e.ok(err)
		return tok
	}
	update(func(tk *kve.Token) { tk.ExpiresAt, tk.RevokedAt, tk.OwnerID = testNow.Add(time.Hour), testNow, "usr_x" })
	want := update(func(tk *kve.Token) { tk.ExpiresAt, tk.RevokedAt, tk.OwnerID = time.Time{}, time.Time{}, "" })

	for _, read := range []struct {
		name string
		get  func() (kve.Token, error)
	}{
		{"Token", func() (kve.Token, error) { return e.store.Token(e.ctx, s.org.ID, s.token.ID) }},
		{"TokenByHash", func() (kve.Token, error) { return e.store.TokenByHash(e.ctx, s.token.Hash) }},
	} {
		got, err := read.get()
		e.ok(err)
		if diff := cmp.Diff(want, got, cmpopts.IgnoreFields(kve.Token{}, "Spend"), cmpopts.EquateComparable(kve.Origin{})); diff != "" {
			t.Errorf("%s after clearing (-want +got):\n%s", read.name, diff)
		}
	}
	page, err := e.store.Tokens(e.ctx, s.org.ID, store.TokenFilter{})
	if err != nil || len(page.Items) != 1 {
		t.Errorf("Tokens without revoked ones: %d items (error %v), want the restored token", len(page.Items), err)
	}
	err = e.store.DeleteKey(e.ctx, s.org.ID, s.key.Name, e.event(s.org.ID, "key.delete", s.key.ID))
	wantKind(t, "DeleteKey of the restored token's key", err, kve.KindConflict)
}
