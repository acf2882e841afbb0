package storetest

import (
	"testing"
	"time"

	"github.com/keyvault-edge/kve/shared/kve"
	"github.com/keyvault-edge/kve/shared/store"
)

func keyTests() []test {
	return []test{
		{"create and read", func(t *testing.T, f *fixture) {
			o, _ := f.org("Acme")
			k := f.newKey(o.ID, "openai-main")
			ev := f.event(o.ID, "key.create", k.ID).With("name", k.Name)
			ok(t, f.s.CreateKey(f.ctx, k, ev))
			same(t, "Key", must(f.s.Key(f.ctx, o.ID, k.Name))(t), k)
			same(t, "Keys", must(f.s.Keys(f.ctx, o.ID))(t), []kve.Key{k})
			same(t, "event", must(f.s.Events(f.ctx, o.ID, store.EventFilter{Target: k.ID}))(t).Items, []kve.Event{ev})
		}},
		{"duplicate name", func(t *testing.T, f *fixture) {
			a, _ := f.org("Acme")
			b, _ := f.org("Bolt")
			first := f.key(a.ID, "main")
			dup := f.newKey(a.ID, "main")
			wantKind(t, "CreateKey with a taken name", f.s.CreateKey(f.ctx, dup, f.event(a.ID, "key.create", dup.ID)), kve.KindConflict)
			same(t, "Key after a refused duplicate", must(f.s.Key(f.ctx, a.ID, "main"))(t), first)

			elsewhere := f.newKey(b.ID, "main")
			ok(t, f.s.CreateKey(f.ctx, elsewhere, f.event(b.ID, "key.create", elsewhere.ID)))
			same(t, "same name in another org", must(f.s.Key(f.ctx, b.ID, "main"))(t), elsewhere)
			same(t, "Keys of the first org", must(f.s.Keys(f.ctx, a.ID))(t), []kve.Key{first})
		}},
		{"list by name", func(t *testing.T, f *fixture) {
			o, _ := f.org("Acme")
			empty := must(f.s.Keys(f.ctx, o.ID))(t)
			notNil(t, "Keys of an org without keys", empty)
			same(t, "Keys of an org without keys", empty, []kve.Key{})
			zeta, alpha, mid := f.key(o.ID, "zeta"), f.key(o.ID, "alpha"), f.key(o.ID, "mid")
			same(t, "Keys", must(f.s.Keys(f.ctx, o.ID))(t), []kve.Key{alpha, mid, zeta})
		}},
		{"rotate moves the tokens of the key", func(t *testing.T, f *fixture) {
			a, _ := f.org("Acme")
			b, _ := f.org("Bolt")
			k1, k2 := f.key(a.ID, "main"), f.key(a.ID, "spare")
			bKey := f.key(b.ID, "main")
			t1 := f.token(k1)
			t2 := f.token(k1, personal(f.member(a.ID, kve.RoleDeveloper).UserID))
			t3 := f.token(k2)
			t4 := f.token(bKey)

			t1Before := must(f.s.Token(f.ctx, a.ID, t1.ID))(t)
			r := store.Rotation{Version: "version-2", Last4: "NEW4", Fingerprint: fingerprint("sk-test-FAKE-rotated"), At: f.at(time.Hour)}
			ev := f.event(a.ID, "key.rotate", k1.ID)
			got := must(f.s.RotateKey(f.ctx, a.ID, "main", r, ev))(t)
			want := k1
			want.Version, want.Last4, want.Fingerprint, want.RotatedAt = r.Version, r.Last4, r.Fingerprint, r.At
			same(t, "RotateKey result", got, want)
			same(t, "Key after rotation", must(f.s.Key(f.ctx, a.ID, "main"))(t), want)
			same(t, "rotation event", must(f.s.Events(f.ctx, a.ID, store.EventFilter{Action: "key.rotate"}))(t).Items, []kve.Event{ev})

			for _, tc := range []struct {
				name string
				tok  kve.Token
				want string
			}{
				{"shared token of the key", t1, r.Version},
				{"personal token of the key", t2, r.Version},
				{"token of another key", t3, k2.Version},
				{"token of another org's key of that name", t4, bKey.Version},
			} {
				wantTok := tc.tok
				wantTok.Key.Version = tc.want
				same(t, tc.name+": TokenByHash", must(f.s.TokenByHash(f.ctx, tc.tok.Hash))(t), wantTok, ignoreTokenState)
				same(t, tc.name+": Token", must(f.s.Token(f.ctx, tc.tok.OrgID, tc.tok.ID))(t), wantTok, ignoreTokenState)
			}
			// A concurrent UpdateToken that read the token before the
			// rotation must not write the old key version back.
			if got := must(f.s.Token(f.ctx, a.ID, t1.ID))(t); got.Version == t1Before.Version {
				t.Errorf("token Version = %d before and after the rotation, want it changed", got.Version)
			}
			_, err := f.s.RotateKey(f.ctx, a.ID, "no-such-key", r, f.event(a.ID, "key.rotate", "none"))
			wantKind(t, "RotateKey of an unknown key", err, kve.KindNotFound)
		}},
		{"delete waits for revocation", func(t *testing.T, f *fixture) {
			o, _ := f.org("Acme")
			k, other := f.key(o.ID, "main"), f.key(o.ID, "other")
			revoked := f.token(k, func(tk *kve.Token) { tk.RevokedAt = f.now })
			live := f.token(k)
			f.token(other)

			err := f.s.DeleteKey(f.ctx, o.ID, "main", f.event(o.ID, "key.delete", k.ID))
			wantKind(t, "DeleteKey while a token uses it", err, kve.KindConflict)
			same(t, "Key after a refused delete", must(f.s.Key(f.ctx, o.ID, "main"))(t), k)

			must(f.s.UpdateToken(f.ctx, o.ID, live.ID, func(tk *kve.Token) error {
				tk.RevokedAt = f.at(time.Minute)
				return nil
			}, f.event(o.ID, "token.revoke", live.ID)))(t)
			ev := f.event(o.ID, "key.delete", k.ID)
			ok(t, f.s.DeleteKey(f.ctx, o.ID, "main", ev))
			_, err = f.s.Key(f.ctx, o.ID, "main")
			wantKind(t, "Key after delete", err, kve.KindNotFound)
			same(t, "Keys after delete", must(f.s.Keys(f.ctx, o.ID))(t), []kve.Key{other})
			same(t, "delete event", must(f.s.Events(f.ctx, o.ID, store.EventFilter{Action: "key.delete"}))(t).Items, []kve.Event{ev})
			same(t, "revoked token keeps its key reference", must(f.s.Token(f.ctx, o.ID, revoked.ID))(t), revoked, ignoreTokenState)

			err = f.s.DeleteKey(f.ctx, o.ID, "main", f.event(o.ID, "key.delete", k.ID))
			wantKind(t, "second DeleteKey", err, kve.KindNotFound)
		}},
	}
}
