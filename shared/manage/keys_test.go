package manage_test

import (
	"context"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/keyvault-edge/kve/shared/kve"
	"github.com/keyvault-edge/kve/shared/manage"
	"github.com/keyvault-edge/kve/shared/manage/managetest"
	"github.com/keyvault-edge/kve/shared/store"
)

func TestCreateKey(t *testing.T) {
	tm := newTeam(t)
	ctx := t.Context()
	svc := tm.Service

	k, err := svc.CreateKey(ctx, tm.Org.ID, tm.pOwner, manage.KeyInput{
		Name: "stripe-live", Provider: "stripe", Upstream: "https://api.stripe.com/",
		Secret: "  sk_live_FAKE_stripe_0123456789WXYZ\n",
	})
	if err != nil {
		t.Fatalf("create key: %v", err)
	}
	const value = "sk_live_FAKE_stripe_0123456789WXYZ" // trimmed
	want := kve.Key{
		ID: k.ID, OrgID: tm.Org.ID, Name: "stripe-live", Provider: "stripe", Upstream: "https://api.stripe.com",
		Auth:   kve.Auth{Mode: kve.AuthHeader, Name: "Authorization", Prefix: "Bearer "},
		Secret: kve.SecretName(tm.Org.ID, k.ID), Version: k.Version, Last4: "WXYZ", Fingerprint: kve.Fingerprint(value),
		CreatedBy: tm.Owner.ID, CreatedAt: k.CreatedAt,
	}
	if diff := cmp.Diff(want, k); diff != "" {
		t.Errorf("key (-want +got):\n%s", diff)
	}
	stored, err := tm.Store.Key(ctx, tm.Org.ID, "stripe-live")
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(k, stored); diff != "" {
		t.Errorf("stored key (-returned +stored):\n%s", diff)
	}
	v, err := tm.Secrets.Value(ctx, k.Secret, k.Version)
	if err != nil || v.Reveal() != value {
		t.Errorf("secret at %s: %v (match %v)", k.Secret, err, v.Reveal() == value)
	}
	ev := tm.event(t, "key.create", k.ID)
	if ev.ActorID != tm.Owner.ID || ev.Detail["name"] != "stripe-live" || ev.Detail["provider"] != "stripe" {
		t.Errorf("key.create event = %+v", ev)
	}

	t.Run("builtin default upstream", func(t *testing.T) {
		k, err := svc.Keys(ctx, tm.Org.Slug, tm.pOwner)
		if err != nil {
			t.Fatal(err)
		}
		if len(k) != 2 || k[0].Name != "main" || k[0].Upstream != "https://api.openai.com" || k[0].Auth != (kve.Auth{}) {
			t.Errorf("keys = %+v", k)
		}
	})

	t.Run("duplicate name", func(t *testing.T) {
		_, err := svc.CreateKey(ctx, tm.Org.ID, tm.pOwner, manage.KeyInput{Name: "main", Provider: "openai", Secret: managetest.OpenAIKey})
		wantKind(t, err, kve.KindConflict)
	})
}

func TestCreateKeyRefusesBadInput(t *testing.T) {
	tm := newTeam(t)
	valid := manage.KeyInput{Name: "k", Provider: "openai", Secret: managetest.OpenAIKey}
	tests := []struct {
		name string
		edit func(*manage.KeyInput)
	}{
		{"empty name", func(in *manage.KeyInput) { in.Name = "" }},
		{"upper-case name", func(in *manage.KeyInput) { in.Name = "Main" }},
		{"name with slash", func(in *manage.KeyInput) { in.Name = "a/b" }},
		{"name too long", func(in *manage.KeyInput) { in.Name = strings.Repeat("a", 64) }},
		{"reserved provider", func(in *manage.KeyInput) { in.Provider = "api" }},
		{"bad provider", func(in *manage.KeyInput) { in.Provider = "Open AI" }},
		{"azure without upstream", func(in *manage.KeyInput) { in.Provider = "azure-openai" }},
		{"generic without upstream", func(in *manage.KeyInput) { in.Provider = "stripe" }},
		{"http upstream", func(in *manage.KeyInput) { in.Upstream = "http://api.example.com" }},
		{"upstream with userinfo", func(in *manage.KeyInput) { in.Upstream = "https://u:p@api.example.com" }},
		{"upstream with query", func(in *manage.KeyInput) { in.Upstream = "https://api.example.com/?x=1" }},
		{"auth on a builtin", func(in *manage.KeyInput) { in.Auth = &kve.Auth{Mode: kve.AuthQuery, Name: "key"} }},
		{"generic auth on Host", func(in *manage.KeyInput) {
			in.Provider, in.Upstream, in.Auth = "stripe", "https://api.stripe.com", &kve.Auth{Name: "Host"}
		}},
		{"empty secret", func(in *manage.KeyInput) { in.Secret = "   " }},
		{"secret with a line break", func(in *manage.KeyInput) { in.Secret = "sk-test-FAKE\r\nX-Evil: 1" }},
		{"secret with a space", func(in *manage.KeyInput) { in.Secret = "sk-test FAKE" }},
		{"secret too long", func(in *manage.KeyInput) { in.Secret = kve.Secret(strings.Repeat("a", 4097)) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := valid
			tt.edit(&in)
			_, err := tm.Service.CreateKey(t.Context(), tm.Org.ID, tm.pOwner, in)
			wantKind(t, err, kve.KindInvalid)
		})
	}
	ks, _ := tm.Store.Keys(t.Context(), tm.Org.ID)
	if len(ks) != 1 {
		t.Errorf("%d keys after refused creations, want 1", len(ks))
	}
}

func TestCreateKeyAllowsHTTPUpstreamWhenConfigured(t *testing.T) {
	tm := newTeam(t, func(c *manage.Config) { c.AllowInsecureUpstreams = true })
	k, err := tm.Service.CreateKey(t.Context(), tm.Org.ID, tm.pOwner, manage.KeyInput{
		Name: "local", Provider: "openai", Upstream: "http://127.0.0.1:9999/", Secret: managetest.OpenAIKey,
	})
	if err != nil || k.Upstream != "http://127.0.0.1:9999" {
		t.Errorf("create key = %+v, %v", k, err)
	}
}

// failingKeys is the real store, except that CreateKey fails after the
// service has written the key's value: the fault whose clean-up is tested.
type failingKeys struct {
	store.Store
	attempted kve.Key
}

func (f *failingKeys) CreateKey(ctx context.Context, k kve.Key, ev kve.Event) error {
	f.attempted = k
	return kve.ErrUnavailable
}

func TestCreateKeyLeavesNoSecretWhenTheStoreFails(t *testing.T) {
	tm := newTeam(t)
	fs := &failingKeys{Store: tm.Store}
	svc := manage.New(tm.Config, manage.Deps{Store: fs, Secrets: tm.Secrets, Keyring: tm.Keyring})
	_, err := svc.CreateKey(t.Context(), tm.Org.ID, tm.pOwner, manage.KeyInput{Name: "second", Provider: "openai", Secret: managetest.OpenAIKey})
	wantKind(t, err, kve.KindUnavailable)
	if fs.attempted.Secret == "" {
		t.Fatal("the store was never asked to create the key")
	}
	_, err = tm.Secrets.Value(t.Context(), fs.attempted.Secret, "")
	wantKind(t, err, kve.KindNotFound)
}

func TestKeysAreOwnerOnly(t *testing.T) {
	tm := newTeam(t)
	ctx := t.Context()
	svc := tm.Service
	tests := []struct {
		name string
		p    manage.Principal
		kind kve.Kind
	}{
		{"admin", tm.pAdmin, kve.KindForbidden},
		{"developer", tm.pDev, kve.KindForbidden},
		{"outsider", tm.pOutsider, kve.KindNotFound},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := svc.CreateKey(ctx, tm.Org.ID, tt.p, manage.KeyInput{Name: "x", Provider: "openai", Secret: managetest.OpenAIKey})
			wantKind(t, err, tt.kind)
			_, err = svc.Keys(ctx, tm.Org.ID, tt.p)
			wantKind(t, err, tt.kind)
			_, err = svc.RotateKey(ctx, tm.Org.ID, tt.p, "main", manage.RotateInput{Secret: managetest.OpenAIKey})
			wantKind(t, err, tt.kind)
			wantKind(t, svc.DeleteKey(ctx, tm.Org.ID, tt.p, "main"), tt.kind)
		})
	}
}

func TestKeyNames(t *testing.T) {
	tm := newTeam(t)
	if _, err := tm.Service.CreateKey(t.Context(), tm.Org.ID, tm.pOwner, manage.KeyInput{Name: "backup", Provider: "openai", Secret: managetest.OpenAIKey}); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		p    manage.Principal
		want kve.Kind // 0: allowed
	}{
		{"owner", tm.pOwner, 0}, {"admin", tm.pAdmin, 0}, {"developer", tm.pDev, 0}, {"outsider", tm.pOutsider, kve.KindNotFound},
	} {
		t.Run(tc.name, func(t *testing.T) {
			names, err := tm.Service.KeyNames(t.Context(), tm.Org.Slug, tc.p)
			if tc.want != 0 {
				wantKind(t, err, tc.want)
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff([]string{"backup", "main"}, names); diff != "" {
				t.Errorf("key names (-want +got):\n%s", diff)
			}
		})
	}
}

func TestRotateKey(t *testing.T) {
	tm := newTeam(t)
	ctx := t.Context()
	svc := tm.Service
	it, err := svc.CreateToken(ctx, tm.Org.ID, tm.pOwner, manage.TokenInput{Name: "web", Key: "main", Env: "stg", AllowServer: true})
	if err != nil {
		t.Fatal(err)
	}
	before, _ := tm.Store.Key(ctx, tm.Org.ID, "main")

	const rotated = "sk-test-FAKE-openai-rotated-00009876"
	k, err := svc.RotateKey(ctx, tm.Org.Slug, tm.pOwner, "main", manage.RotateInput{Secret: rotated})
	if err != nil {
		t.Fatalf("rotate: %v", err)
	}
	if k.Version == before.Version || k.Last4 != "9876" || k.Fingerprint != kve.Fingerprint(rotated) || k.RotatedAt.IsZero() {
		t.Errorf("rotated key = %+v", k)
	}
	tok, err := tm.Store.TokenByHash(ctx, tm.Keyring.Hash(it.Value.Reveal()))
	if err != nil {
		t.Fatal(err)
	}
	if tok.Key.Version != k.Version {
		t.Errorf("token's key version = %q, want the new %q", tok.Key.Version, k.Version)
	}
	v, err := tm.Secrets.Value(ctx, k.Secret, tok.Key.Version)
	if err != nil || v.Reveal() != rotated {
		t.Errorf("the token's version does not hold the new value: %v", err)
	}
	tm.event(t, "key.rotate", k.ID)

	_, err = svc.RotateKey(ctx, tm.Org.ID, tm.pOwner, "missing", manage.RotateInput{Secret: rotated})
	wantKind(t, err, kve.KindNotFound)
	_, err = svc.RotateKey(ctx, tm.Org.ID, tm.pOwner, "main", manage.RotateInput{Secret: "bad value"})
	wantKind(t, err, kve.KindInvalid)
}

func TestDeleteKey(t *testing.T) {
	tm := newTeam(t)
	ctx := t.Context()
	svc := tm.Service
	it, err := svc.CreateToken(ctx, tm.Org.ID, tm.pOwner, manage.TokenInput{Name: "web", Key: "main", Env: "stg", AllowServer: true})
	if err != nil {
		t.Fatal(err)
	}
	k, _ := tm.Store.Key(ctx, tm.Org.ID, "main")

	wantKind(t, svc.DeleteKey(ctx, tm.Org.ID, tm.pOwner, "main"), kve.KindConflict)
	if _, err := svc.RevokeToken(ctx, tm.Org.ID, tm.pOwner, it.Token.ID); err != nil {
		t.Fatal(err)
	}
	if err := svc.DeleteKey(ctx, tm.Org.ID, tm.pOwner, "main"); err != nil {
		t.Fatalf("delete: %v", err)
	}
	_, err = tm.Store.Key(ctx, tm.Org.ID, "main")
	wantKind(t, err, kve.KindNotFound)
	_, err = tm.Secrets.Value(ctx, k.Secret, "")
	wantKind(t, err, kve.KindNotFound)
	tm.event(t, "key.delete", k.ID)
	wantKind(t, svc.DeleteKey(ctx, tm.Org.ID, tm.pOwner, "main"), kve.KindNotFound)
}
