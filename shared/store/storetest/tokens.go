package storetest

import (
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/keyvault-edge/kve/shared/kve"
	"github.com/keyvault-edge/kve/shared/store"
)

func tokenTests() []test {
	return []test{
		{"create and read", func(t *testing.T, f *fixture) {
			o, _ := f.org("Acme")
			k := f.key(o.ID, "main")
			tok := f.newToken(k, personal(f.member(o.ID, kve.RoleDeveloper).UserID), func(tk *kve.Token) { tk.Env = kve.EnvPrd })
			ev := f.event(o.ID, "token.create", tok.ID)
			ok(t, f.s.CreateToken(f.ctx, tok, ev))

			got := must(f.s.TokenByHash(f.ctx, tok.Hash))(t)
			// Spelled out because they are json:"-" and a store that
			// serializes tokens as JSON would drop them.
			if got.Key.Secret != k.Secret || got.Key.Version != k.Version || len(got.Hash) == 0 || len(got.Sealed) == 0 {
				t.Errorf("TokenByHash lost key secret name, key version, hash or sealed value: %+v", got.Key)
			}
			same(t, "TokenByHash", got, tok, ignoreTokenState)
			if spent := got.Spend.Today(time.Now()); spent != 0 {
				t.Errorf("Spend.Today of a new token = %d, want 0", spent)
			}
			same(t, "Token", must(f.s.Token(f.ctx, o.ID, tok.ID))(t), tok, ignoreTokenState)
			same(t, "event", must(f.s.Events(f.ctx, o.ID, store.EventFilter{Target: tok.ID}))(t).Items, []kve.Event{ev})
		}},
		{"duplicate hash", func(t *testing.T, f *fixture) {
			a, _ := f.org("Acme")
			b, _ := f.org("Bolt")
			first := f.token(f.key(a.ID, "main"))
			for _, k := range []kve.Key{f.key(a.ID, "other"), f.key(b.ID, "main")} {
				dup := f.newToken(k, func(tk *kve.Token) { tk.Hash = first.Hash })
				err := f.s.CreateToken(f.ctx, dup, f.event(k.OrgID, "token.create", dup.ID))
				wantKind(t, "CreateToken with a taken hash", err, kve.KindConflict)
				_, err = f.s.Token(f.ctx, dup.OrgID, dup.ID)
				wantKind(t, "Token of the refused duplicate", err, kve.KindNotFound)
			}
			same(t, "TokenByHash", must(f.s.TokenByHash(f.ctx, first.Hash))(t), first, ignoreTokenState)
		}},
		{"unknown", func(t *testing.T, f *fixture) {
			o, _ := f.org("Acme")
			f.token(f.key(o.ID, "main"))
			_, err := f.s.TokenByHash(f.ctx, randomBytes(32))
			wantKind(t, "TokenByHash of an unknown hash", err, kve.KindNotFound)
			_, err = f.s.Token(f.ctx, o.ID, kve.NewID(kve.PrefixToken, f.now))
			wantKind(t, "Token of an unknown id", err, kve.KindNotFound)
			_, err = f.s.UpdateToken(f.ctx, o.ID, kve.NewID(kve.PrefixToken, f.now),
				func(*kve.Token) error { return nil }, f.event(o.ID, "token.update", "none"))
			wantKind(t, "UpdateToken of an unknown id", err, kve.KindNotFound)
		}},
		{"update", func(t *testing.T, f *fixture) {
			o, _ := f.org("Acme")
			tok := f.token(f.key(o.ID, "main"))
			before := must(f.s.Token(f.ctx, o.ID, tok.ID))(t)
			origin, err := kve.ParseOriginPattern("https://new.example.test")
			ok(t, err)
			ev := f.event(o.ID, "token.update", tok.ID).With("field", "policy")
			got := must(f.s.UpdateToken(f.ctx, o.ID, tok.ID, func(tk *kve.Token) error {
				tk.Name = "renamed"
				tk.Policy.Origins = []kve.Origin{origin}
				tk.Policy.IPs = nil
				tk.Policy.RPM = 600
				tk.Policy.BudgetMicro = 0
				tk.UpdatedAt = f.at(time.Minute)
				return nil
			}, ev))(t)
			want := tok
			want.Name = "renamed"
			want.Policy.Origins, want.Policy.IPs, want.Policy.RPM, want.Policy.BudgetMicro = []kve.Origin{origin}, nil, 600, 0
			want.UpdatedAt = f.at(time.Minute)
			same(t, "UpdateToken result", got, want, ignoreTokenState)
			if got.Version == before.Version {
				t.Errorf("Version = %d after an update, want it changed", got.Version)
			}
			same(t, "Token after update", must(f.s.Token(f.ctx, o.ID, tok.ID))(t), got)
			same(t, "TokenByHash after update", must(f.s.TokenByHash(f.ctx, tok.Hash))(t), got, ignoreTokenState)
			same(t, "update event", must(f.s.Events(f.ctx, o.ID, store.EventFilter{Action: "token.update"}))(t).Items, []kve.Event{ev})
		}},
		{"update aborted by fn", func(t *testing.T, f *fixture) {
			o, _ := f.org("Acme")
			tok := f.token(f.key(o.ID, "main"))
			before := must(f.s.Token(f.ctx, o.ID, tok.ID))(t)
			errStop := errors.New("stop")
			_, err := f.s.UpdateToken(f.ctx, o.ID, tok.ID, func(tk *kve.Token) error {
				tk.Name = "half-done"
				return errStop
			}, f.event(o.ID, "token.update", tok.ID))
			if !errors.Is(err, errStop) {
				t.Errorf("UpdateToken error = %v, want fn's error", err)
			}
			same(t, "Token after an aborted update", must(f.s.Token(f.ctx, o.ID, tok.ID))(t), before)
			same(t, "events of an aborted update", must(f.s.Events(f.ctx, o.ID, store.EventFilter{Action: "token.update"}))(t).Items, []kve.Event{})
		}},
		{"20 concurrent updates all land", func(t *testing.T, f *fixture) {
			o, _ := f.org("Acme")
			tok := f.token(f.key(o.ID, "main"))
			const n = 20
			var wg sync.WaitGroup
			for range n {
				wg.Go(func() {
					_, err := f.s.UpdateToken(f.ctx, o.ID, tok.ID, func(tk *kve.Token) error {
						tk.Policy.RPM++
						return nil
					}, f.event(o.ID, "token.update", tok.ID))
					if err != nil {
						t.Errorf("UpdateToken: %v", err)
					}
				})
			}
			wg.Wait()
			got := must(f.s.Token(f.ctx, o.ID, tok.ID))(t)
			if want := tok.Policy.RPM + n; got.Policy.RPM != want {
				t.Errorf("RPM = %d after %d concurrent increments of %d, want %d", got.Policy.RPM, n, tok.Policy.RPM, want)
			}
			events := must(f.s.Events(f.ctx, o.ID, store.EventFilter{Action: "token.update"}))(t)
			if len(events.Items) != n {
				t.Errorf("%d update events, want %d", len(events.Items), n)
			}
		}},
		{"revocation is visible to the lookup at once", func(t *testing.T, f *fixture) {
			o, _ := f.org("Acme")
			tok := f.token(f.key(o.ID, "main"))
			if got := must(f.s.TokenByHash(f.ctx, tok.Hash))(t); got.Revoked() {
				t.Fatal("new token is revoked")
			}
			must(f.s.UpdateToken(f.ctx, o.ID, tok.ID, func(tk *kve.Token) error {
				tk.RevokedAt = f.at(time.Minute)
				return nil
			}, f.event(o.ID, "token.revoke", tok.ID)))(t)
			got := must(f.s.TokenByHash(f.ctx, tok.Hash))(t)
			if !got.RevokedAt.Equal(f.at(time.Minute)) {
				t.Errorf("TokenByHash right after revocation: RevokedAt = %v, want %v", got.RevokedAt, f.at(time.Minute))
			}
		}},
		{"list filters", listFilters},
		{"list pages", listPages},
	}
}

// listFilters checks each TokenFilter field on one organization's tokens.
func listFilters(t *testing.T, f *fixture) {
	o, _ := f.org("Acme")
	other, _ := f.org("Bolt")
	kA, kB := f.key(o.ID, "a"), f.key(o.ID, "b")
	x, y := f.member(o.ID, kve.RoleDeveloper).UserID, f.member(o.ID, kve.RoleDeveloper).UserID
	byName := map[string]kve.Token{}
	for i, spec := range []struct {
		name string
		key  kve.Key
		mods []func(*kve.Token)
	}{
		{"shared-dev-a", kA, nil},
		{"shared-prd-b", kB, []func(*kve.Token){func(tk *kve.Token) { tk.Env = kve.EnvPrd }}},
		{"x-dev-a", kA, []func(*kve.Token){personal(x)}},
		{"y-dev-a", kA, []func(*kve.Token){personal(y)}},
		{"shared-stg-a-revoked", kA, []func(*kve.Token){func(tk *kve.Token) { tk.Env, tk.RevokedAt = kve.EnvStg, f.now }}},
		{"x-dev-b-revoked", kB, []func(*kve.Token){personal(x), func(tk *kve.Token) { tk.RevokedAt = f.now }}},
	} {
		mods := append([]func(*kve.Token){created(f.at(time.Duration(i) * time.Second)),
			func(tk *kve.Token) { tk.Name = spec.name }}, spec.mods...)
		byName[spec.name] = f.token(spec.key, mods...)
	}
	f.token(f.key(other.ID, "a")) // never listed: another organization

	for _, tc := range []struct {
		name   string
		filter store.TokenFilter
		want   []string
	}{
		{"no filter", store.TokenFilter{}, []string{"y-dev-a", "x-dev-a", "shared-prd-b", "shared-dev-a"}},
		{"include revoked", store.TokenFilter{IncludeRevoked: true},
			[]string{"x-dev-b-revoked", "shared-stg-a-revoked", "y-dev-a", "x-dev-a", "shared-prd-b", "shared-dev-a"}},
		{"visible to x", store.TokenFilter{VisibleTo: x}, []string{"x-dev-a", "shared-prd-b", "shared-dev-a"}},
		{"visible to x with revoked", store.TokenFilter{VisibleTo: x, IncludeRevoked: true},
			[]string{"x-dev-b-revoked", "shared-stg-a-revoked", "x-dev-a", "shared-prd-b", "shared-dev-a"}},
		{"visible to a member without personal tokens", store.TokenFilter{VisibleTo: kve.NewID(kve.PrefixUser, f.now)},
			[]string{"shared-prd-b", "shared-dev-a"}},
		{"key a", store.TokenFilter{KeyID: kA.ID}, []string{"y-dev-a", "x-dev-a", "shared-dev-a"}},
		{"key b with revoked", store.TokenFilter{KeyID: kB.ID, IncludeRevoked: true}, []string{"x-dev-b-revoked", "shared-prd-b"}},
		{"env dev", store.TokenFilter{Env: kve.EnvDev}, []string{"y-dev-a", "x-dev-a", "shared-dev-a"}},
		{"env prd", store.TokenFilter{Env: kve.EnvPrd}, []string{"shared-prd-b"}},
		{"env stg", store.TokenFilter{Env: kve.EnvStg}, []string{}},
		{"all filters", store.TokenFilter{VisibleTo: y, KeyID: kA.ID, Env: kve.EnvDev}, []string{"y-dev-a", "shared-dev-a"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := must(f.s.Tokens(f.ctx, o.ID, tc.filter))(t)
			notNil(t, "Items", p.Items)
			same(t, "names", ids(p.Items, func(tk kve.Token) string { return tk.Name }), tc.want)
			if p.Next != "" {
				t.Errorf("Next = %q on a short list, want \"\"", p.Next)
			}
			for _, got := range p.Items {
				same(t, "listed token "+got.Name, got, byName[got.Name], ignoreTokenState)
			}
		})
	}
}

// listPages walks 250 tokens, ten to each creation millisecond, a page at a
// time.
func listPages(t *testing.T, f *fixture) {
	o, _ := f.org("Acme")
	empty := must(f.s.Tokens(f.ctx, o.ID, store.TokenFilter{}))(t)
	notNil(t, "Items of an org without tokens", empty.Items)
	if len(empty.Items) != 0 || empty.Next != "" {
		t.Errorf("Tokens of an org without tokens = %d items, Next %q; want none and \"\"", len(empty.Items), empty.Next)
	}

	k := f.key(o.ID, "main")
	var want []kve.Token
	for i := range 250 {
		want = append(want, f.token(k, created(f.at(time.Duration(i/10)*time.Millisecond))))
	}
	slices.SortFunc(want, func(a, b kve.Token) int {
		if c := b.CreatedAt.Compare(a.CreatedAt); c != 0 {
			return c
		}
		return strings.Compare(b.ID, a.ID)
	})
	wantIDs := ids(want, func(tk kve.Token) string { return tk.ID })

	var got []string
	var sizes []int
	filter := store.TokenFilter{Limit: 100}
	for range 10 {
		p := must(f.s.Tokens(f.ctx, o.ID, filter))(t)
		got = append(got, ids(p.Items, func(tk kve.Token) string { return tk.ID })...)
		sizes = append(sizes, len(p.Items))
		if p.Next == "" {
			break
		}
		filter.Cursor = p.Next
	}
	same(t, "page sizes", sizes, []int{100, 100, 50})
	same(t, "ids over all pages", got, wantIDs)

	first := must(f.s.Tokens(f.ctx, o.ID, store.TokenFilter{}))(t)
	if len(first.Items) != store.DefaultLimit || first.Next == "" {
		t.Errorf("default page: %d items, Next %q; want %d and a cursor", len(first.Items), first.Next, store.DefaultLimit)
	}
}
