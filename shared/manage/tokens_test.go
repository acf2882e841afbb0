package manage_test

import (
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/keyvault-edge/kve/shared/kve"
	"github.com/keyvault-edge/kve/shared/manage"
	"github.com/keyvault-edge/kve/shared/manage/managetest"
	"github.com/keyvault-edge/kve/shared/store"
)

func ptr[T any](v T) *T { return &v }

// comparePrefixes lets cmp compare policies, whose IP ranges have unexported fields.
var comparePrefixes = cmpopts.EquateComparable(netip.Prefix{})

func TestCreateToken(t *testing.T) {
	tm := newTeam(t)
	ctx := t.Context()
	it, err := tm.Service.CreateToken(ctx, tm.Org.Slug, tm.pAdmin, manage.TokenInput{
		Name: "checkout web", Key: "main", Env: "prd",
		Origins: []string{"https://App.Example.com:443", "https://*.example.com", "https://app.example.com"},
		IPs:     []string{"10.1.0.0/16", "::ffff:192.0.2.7"}, Paths: []string{"post /v1/chat/completions", "/v1/models*"},
		RPM: ptr(600), BudgetUSD: ptr(25.5), ExpiresIn: "90d",
	})
	if err != nil {
		t.Fatalf("create token: %v", err)
	}
	kind, env, ok := kve.ParseTokenValue(it.Value.Reveal())
	if !ok || kind != kve.TokenShared || env != kve.EnvPrd {
		t.Fatalf("value %s does not parse as a shared prd token", kve.TokenHint(it.Value))
	}
	key, _ := tm.Store.Key(ctx, tm.Org.ID, "main")
	stored, err := tm.Store.TokenByHash(ctx, tm.Keyring.Hash(it.Value.Reveal()))
	if err != nil {
		t.Fatalf("the token is not found by the HMAC of its value: %v", err)
	}
	now := managetest.Start
	want := kve.Token{
		ID: it.Token.ID, OrgID: tm.Org.ID, Name: "checkout web", Kind: kve.TokenShared, Env: kve.EnvPrd,
		Hint: kve.TokenHint(it.Value), Hash: tm.Keyring.Hash(it.Value.Reveal()), Sealed: stored.Sealed,
		Key: key.Ref(),
		Policy: kve.Policy{
			Origins: []kve.Origin{{Scheme: "https", Host: "app.example.com"}, {Scheme: "https", Host: "example.com", Wildcard: true}},
			IPs:     []netip.Prefix{netip.MustParsePrefix("10.1.0.0/16"), netip.MustParsePrefix("192.0.2.7/32")},
			Paths:   []kve.PathRule{{Method: "POST", Path: "/v1/chat/completions"}, {Path: "/v1/models*"}},
			RPM:     600, BudgetMicro: 25_500_000,
		},
		CreatedBy: tm.Admin.ID, CreatedAt: now, UpdatedAt: now, ExpiresAt: now.Add(90 * 24 * time.Hour),
		Version: stored.Version, Spend: stored.Spend, // the store's own bookkeeping
		Alerts: true, AutoSuspend: true, // a prd token's breach alert defaults
	}
	if diff := cmp.Diff(want, stored, comparePrefixes); diff != "" {
		t.Errorf("stored token (-want +got):\n%s", diff)
	}
	plain, err := tm.Keyring.Open(stored.Sealed, stored.ID)
	if err != nil || string(plain) != it.Value.Reveal() {
		t.Errorf("the sealed value does not open to the token under its id: %v", err)
	}
	if _, err := tm.Keyring.Open(stored.Sealed, "tok_other"); err == nil {
		t.Error("the sealed value opens under another token's id")
	}
	ev := tm.event(t, "token.create", it.Token.ID)
	if diff := cmp.Diff(map[string]string{"name": "checkout web", "kind": "hb", "env": "prd", "key": "main"}, ev.Detail); diff != "" {
		t.Errorf("token.create detail (-want +got):\n%s", diff)
	}
}

func TestCreateTokenDevDefaults(t *testing.T) {
	tm := newTeam(t)
	ctx := t.Context()
	svc := tm.Service
	base := manage.TokenInput{Name: "local", Key: "main", Env: "dev", Origins: []string{"http://localhost:3000"}}

	tests := []struct {
		name      string
		in        func(manage.TokenInput) manage.TokenInput
		p         manage.Principal
		rpm       int
		budget    int64
		expiresIn time.Duration
	}{
		{"unset limits take the dev caps", func(in manage.TokenInput) manage.TokenInput { return in }, tm.pOwner,
			60, 2_000_000, 30 * 24 * time.Hour},
		{"an admin may set other limits", func(in manage.TokenInput) manage.TokenInput {
			in.RPM, in.BudgetUSD, in.ExpiresIn = ptr(0), ptr(10.0), "7d"
			return in
		}, tm.pAdmin, 0, 10_000_000, 7 * 24 * time.Hour},
		{"a developer may lower them", func(in manage.TokenInput) manage.TokenInput {
			in.Personal, in.RPM, in.BudgetUSD, in.ExpiresIn = true, ptr(10), ptr(0.5), "12h"
			return in
		}, tm.pDev, 10, 500_000, 12 * time.Hour},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			it, err := svc.CreateToken(ctx, tm.Org.ID, tt.p, tt.in(base))
			if err != nil {
				t.Fatal(err)
			}
			got := it.Token
			if got.Policy.RPM != tt.rpm || got.Policy.BudgetMicro != tt.budget || !got.ExpiresAt.Equal(managetest.Start.Add(tt.expiresIn)) {
				t.Errorf("rpm %d, budget %d, expires %v; want %d, %d, %v", got.Policy.RPM, got.Policy.BudgetMicro,
					got.ExpiresAt, tt.rpm, tt.budget, managetest.Start.Add(tt.expiresIn))
			}
		})
	}

	t.Run("a dev token lives at most 30 days", func(t *testing.T) {
		in := base
		in.ExpiresIn = "31d"
		_, err := svc.CreateToken(ctx, tm.Org.ID, tm.pOwner, in)
		wantKind(t, err, kve.KindInvalid)
	})
	t.Run("other envs have no default limits", func(t *testing.T) {
		in := base
		in.Env = "stg"
		it, err := svc.CreateToken(ctx, tm.Org.ID, tm.pOwner, in)
		if err != nil {
			t.Fatal(err)
		}
		if it.Token.Policy.RPM != 0 || it.Token.Policy.BudgetMicro != 0 || !it.Token.ExpiresAt.IsZero() {
			t.Errorf("stg token limits = %+v, expires %v", it.Token.Policy, it.Token.ExpiresAt)
		}
	})
}

func TestCreateTokenDeveloperRules(t *testing.T) {
	tm := newTeam(t)
	ctx := t.Context()
	personalDev := manage.TokenInput{Name: "mine", Key: "main", Env: "dev", Personal: true, Origins: []string{"http://localhost:*"}}
	tests := []struct {
		name string
		edit func(*manage.TokenInput)
		kind kve.Kind
	}{
		{"shared dev", func(in *manage.TokenInput) { in.Personal = false }, kve.KindForbidden},
		{"personal stg", func(in *manage.TokenInput) { in.Env = "stg" }, kve.KindForbidden},
		{"personal prd", func(in *manage.TokenInput) { in.Env = "prd" }, kve.KindForbidden},
		{"shared prd", func(in *manage.TokenInput) { in.Personal, in.Env = false, "prd" }, kve.KindForbidden},
		{"rpm over the cap", func(in *manage.TokenInput) { in.RPM = ptr(61) }, kve.KindForbidden},
		{"unlimited rpm", func(in *manage.TokenInput) { in.RPM = ptr(0) }, kve.KindForbidden},
		{"budget over the cap", func(in *manage.TokenInput) { in.BudgetUSD = ptr(2.01) }, kve.KindForbidden},
		{"unlimited budget", func(in *manage.TokenInput) { in.BudgetUSD = ptr(0.0) }, kve.KindForbidden},
		{"expiry over the cap", func(in *manage.TokenInput) { in.ExpiresIn = "720h1m" }, kve.KindInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := personalDev
			tt.edit(&in)
			_, err := tm.Service.CreateToken(ctx, tm.Org.ID, tm.pDev, in)
			wantKind(t, err, tt.kind)
		})
	}
	it, err := tm.Service.CreateToken(ctx, tm.Org.ID, tm.pDev, personalDev)
	if err != nil {
		t.Fatalf("personal dev token: %v", err)
	}
	if it.Token.Kind != kve.TokenPersonal || it.Token.OwnerID != tm.Dev.ID || it.Value.Reveal()[:11] != "kve_pt_dev_" {
		t.Errorf("developer's token: kind %s, owner %s, hint %s", it.Token.Kind, it.Token.OwnerID, it.Token.Hint)
	}
	_, err = tm.Service.CreateToken(ctx, tm.Org.ID, tm.pOutsider, personalDev)
	wantKind(t, err, kve.KindNotFound)
}

func TestCreateTokenRefusesBadInput(t *testing.T) {
	tm := newTeam(t)
	valid := manage.TokenInput{Name: "web", Key: "main", Env: "stg", Origins: []string{"https://app.example.com"}}
	tests := []struct {
		name string
		edit func(*manage.TokenInput)
	}{
		{"no name", func(in *manage.TokenInput) { in.Name = "" }},
		{"name with control character", func(in *manage.TokenInput) { in.Name = "a\nb" }},
		{"bad env", func(in *manage.TokenInput) { in.Env = "prod" }},
		{"unknown key", func(in *manage.TokenInput) { in.Key = "nope" }},
		{"origin with path", func(in *manage.TokenInput) { in.Origins = []string{"https://app.example.com/x"} }},
		{"origin null", func(in *manage.TokenInput) { in.Origins = []string{"null"} }},
		{"origin star", func(in *manage.TokenInput) { in.Origins = []string{"*"} }},
		{"bad ip", func(in *manage.TokenInput) { in.IPs = []string{"10.0.0.0/33"} }},
		{"bad path", func(in *manage.TokenInput) { in.Paths = []string{"v1/chat"} }},
		{"neither origins nor server", func(in *manage.TokenInput) { in.Origins = nil }},
		{"negative rpm", func(in *manage.TokenInput) { in.RPM = ptr(-1) }},
		{"negative budget", func(in *manage.TokenInput) { in.BudgetUSD = ptr(-1.0) }},
		{"bad expiry", func(in *manage.TokenInput) { in.ExpiresIn = "soon" }},
		{"zero days", func(in *manage.TokenInput) { in.ExpiresIn = "0d" }},
		{"too many origins", func(in *manage.TokenInput) {
			in.Origins = slices.Repeat([]string{"https://app.example.com"}, 101)
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := valid
			tt.edit(&in)
			_, err := tm.Service.CreateToken(t.Context(), tm.Org.ID, tm.pOwner, in)
			wantKind(t, err, kve.KindInvalid)
		})
	}
}

// tokens of a team: one shared, and a personal dev token of each developer
// and of the admin.
type tokens struct {
	shared, adminPersonal, devPersonal, dev2Personal manage.IssuedToken
}

func (tm *team) tokens(t *testing.T) tokens {
	t.Helper()
	create := func(p manage.Principal, name string, personal bool) manage.IssuedToken {
		t.Helper()
		it, err := tm.Service.CreateToken(t.Context(), tm.Org.ID, p, manage.TokenInput{
			Name: name, Key: "main", Env: "dev", Personal: personal, Origins: []string{"http://localhost:3000"},
		})
		if err != nil {
			t.Fatalf("create %s: %v", name, err)
		}
		return it
	}
	return tokens{
		shared:        create(tm.pOwner, "shared", false),
		adminPersonal: create(tm.pAdmin, "admin's", true),
		devPersonal:   create(tm.pDev, "dev's", true),
		dev2Personal:  create(tm.pDev2, "dev2's", true),
	}
}

func TestTokensVisibility(t *testing.T) {
	tm := newTeam(t)
	toks := tm.tokens(t)
	names := func(p manage.Principal) []string {
		t.Helper()
		page, err := tm.Service.Tokens(t.Context(), tm.Org.Slug, p, manage.TokenQuery{})
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, tok := range page.Items {
			out = append(out, tok.Name)
		}
		slices.Sort(out)
		return out
	}
	all := []string{"admin's", "dev's", "dev2's", "shared"}
	if diff := cmp.Diff(all, names(tm.pOwner)); diff != "" {
		t.Errorf("owner sees (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(all, names(tm.pAdmin)); diff != "" {
		t.Errorf("admin sees (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"dev's", "shared"}, names(tm.pDev)); diff != "" {
		t.Errorf("developer sees (-want +got):\n%s", diff)
	}
	_, err := tm.Service.Tokens(t.Context(), tm.Org.ID, tm.pOutsider, manage.TokenQuery{})
	wantKind(t, err, kve.KindNotFound)
	_, err = tm.Service.Tokens(t.Context(), tm.Org.ID, tm.pOwner, manage.TokenQuery{Env: "production"})
	wantKind(t, err, kve.KindInvalid)

	// Reveals follow the same visibility.
	tests := []struct {
		name string
		p    manage.Principal
		tok  manage.IssuedToken
		kind kve.Kind // KindInternal: success
	}{
		{"developer reveals shared", tm.pDev, toks.shared, kve.KindInternal},
		{"developer reveals own", tm.pDev, toks.devPersonal, kve.KindInternal},
		{"developer reveals another's", tm.pDev, toks.dev2Personal, kve.KindNotFound},
		{"developer reveals admin's", tm.pDev, toks.adminPersonal, kve.KindNotFound},
		{"admin reveals developer's", tm.pAdmin, toks.devPersonal, kve.KindInternal},
		{"outsider", tm.pOutsider, toks.shared, kve.KindNotFound},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			it, err := tm.Service.RevealToken(t.Context(), tm.Org.ID, tt.p, tt.tok.Token.ID)
			if tt.kind != kve.KindInternal {
				wantKind(t, err, tt.kind)
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if it.Value.Reveal() != tt.tok.Value.Reveal() {
				t.Error("revealed value differs from the issued one")
			}
		})
	}
}

func TestRevealTokenIsAudited(t *testing.T) {
	tm := newTeam(t)
	toks := tm.tokens(t)
	tm.Clock.Add(time.Hour)
	if _, err := tm.Service.RevealToken(t.Context(), tm.Org.ID, tm.pDev, toks.shared.Token.ID); err != nil {
		t.Fatal(err)
	}
	ev := tm.event(t, "token.reveal", toks.shared.Token.ID)
	want := kve.Event{ID: ev.ID, OrgID: tm.Org.ID, At: managetest.Start.Add(time.Hour), ActorID: tm.Dev.ID,
		Actor: "dev@example.com", Action: "token.reveal", Target: toks.shared.Token.ID, IP: "192.0.2.3",
		Detail: map[string]string{"name": "shared"}}
	if diff := cmp.Diff(want, ev); diff != "" {
		t.Errorf("reveal event (-want +got):\n%s", diff)
	}
	// A refused reveal records nothing.
	tm.Service.RevealToken(t.Context(), tm.Org.ID, tm.pDev, toks.dev2Personal.Token.ID)
	if n := len(tm.events(t, "token.reveal")); n != 1 {
		t.Errorf("%d reveal events, want 1", n)
	}
}

func TestTokenReadsWithoutRevealing(t *testing.T) {
	tm := newTeam(t)
	toks := tm.tokens(t)
	for _, tc := range []struct {
		name string
		p    manage.Principal
		tok  kve.Token
		want kve.Kind // 0: readable
	}{
		{"owner reads a developer's personal token", tm.pOwner, toks.devPersonal.Token, 0},
		{"developer reads a shared token", tm.pDev, toks.shared.Token, 0},
		{"developer reads their own", tm.pDev, toks.devPersonal.Token, 0},
		{"developer reads another's personal token", tm.pDev, toks.dev2Personal.Token, kve.KindNotFound},
		{"outsider", tm.pOutsider, toks.shared.Token, kve.KindNotFound},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := tm.Service.Token(t.Context(), tm.Org.Slug, tc.p, tc.tok.ID)
			if tc.want != 0 {
				wantKind(t, err, tc.want)
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got.ID != tc.tok.ID || got.Name != tc.tok.Name || got.Hint != tc.tok.Hint {
				t.Errorf("Token = %s %q, want %s %q", got.ID, got.Name, tc.tok.ID, tc.tok.Name)
			}
			if got.Sealed != nil {
				t.Error("Token answers the sealed value")
			}
		})
	}
	if n := len(tm.events(t, "token.reveal")); n != 0 {
		t.Errorf("%d reveal events after reads, want none", n)
	}
}

func TestUpdateToken(t *testing.T) {
	tm := newTeam(t)
	ctx := t.Context()
	svc := tm.Service
	toks := tm.tokens(t)
	id := toks.shared.Token.ID

	tm.Clock.Add(time.Minute)
	got, err := svc.UpdateToken(ctx, tm.Org.ID, tm.pAdmin, id, manage.TokenPatch{
		Origins: &[]string{"https://app.example.com"}, IPs: &[]string{"192.0.2.0/24"}, RPM: ptr(30),
		BudgetUSD: ptr(1.25), AllowServer: ptr(true), ExpiresIn: ptr("7d"),
	})
	if err != nil {
		t.Fatalf("update: %v", err)
	}
	now := managetest.Start.Add(time.Minute)
	wantPolicy := kve.Policy{
		Origins: []kve.Origin{{Scheme: "https", Host: "app.example.com"}}, AllowServer: true,
		IPs: []netip.Prefix{netip.MustParsePrefix("192.0.2.0/24")}, Paths: toks.shared.Token.Policy.Paths,
		RPM: 30, BudgetMicro: 1_250_000,
	}
	if diff := cmp.Diff(wantPolicy, got.Policy, comparePrefixes); diff != "" {
		t.Errorf("policy (-want +got):\n%s", diff)
	}
	if !got.ExpiresAt.Equal(now.Add(7*24*time.Hour)) || !got.UpdatedAt.Equal(now) {
		t.Errorf("expires %v, updated %v", got.ExpiresAt, got.UpdatedAt)
	}
	if got.Kind != kve.TokenShared || got.Env != kve.EnvDev || got.Name != "shared" {
		t.Errorf("update changed what it may not: %+v", got)
	}
	ev := tm.event(t, "token.update", id)
	if ev.Detail["fields"] != "origins,ips,allow_server,rpm,budget_usd,expires_in" {
		t.Errorf("update event fields = %q", ev.Detail["fields"])
	}

	bad := []struct {
		name  string
		p     manage.Principal
		id    string
		patch manage.TokenPatch
		kind  kve.Kind
	}{
		{"developer", tm.pDev, toks.devPersonal.Token.ID, manage.TokenPatch{RPM: ptr(1)}, kve.KindForbidden},
		{"outsider", tm.pOutsider, id, manage.TokenPatch{RPM: ptr(1)}, kve.KindNotFound},
		{"unknown token", tm.pOwner, "tok_missing", manage.TokenPatch{RPM: ptr(1)}, kve.KindNotFound},
		{"nothing to change", tm.pOwner, id, manage.TokenPatch{}, kve.KindInvalid},
		{"dev expiry over 30 days", tm.pOwner, id, manage.TokenPatch{ExpiresIn: ptr("31d")}, kve.KindInvalid},
		{"empty expiry", tm.pOwner, id, manage.TokenPatch{ExpiresIn: ptr("")}, kve.KindInvalid},
		{"unusable", tm.pOwner, id, manage.TokenPatch{Origins: &[]string{}, AllowServer: ptr(false)}, kve.KindInvalid},
		{"bad origin", tm.pOwner, id, manage.TokenPatch{Origins: &[]string{"app.example.com"}}, kve.KindInvalid},
		{"bad rpm", tm.pOwner, id, manage.TokenPatch{RPM: ptr(-5)}, kve.KindInvalid},
	}
	for _, tt := range bad {
		t.Run(tt.name, func(t *testing.T) {
			_, err := svc.UpdateToken(ctx, tm.Org.ID, tt.p, tt.id, tt.patch)
			wantKind(t, err, tt.kind)
		})
	}
	after, _ := tm.Store.Token(ctx, tm.Org.ID, id)
	if diff := cmp.Diff(got.Policy, after.Policy, comparePrefixes); diff != "" {
		t.Errorf("a refused update changed the token (-before +after):\n%s", diff)
	}
}

func TestRevokeToken(t *testing.T) {
	tm := newTeam(t)
	ctx := t.Context()
	svc := tm.Service
	toks := tm.tokens(t)

	tests := []struct {
		name string
		p    manage.Principal
		tok  manage.IssuedToken
		kind kve.Kind // KindInternal: success
	}{
		{"developer revokes shared", tm.pDev, toks.shared, kve.KindForbidden},
		{"developer revokes another's", tm.pDev, toks.dev2Personal, kve.KindNotFound},
		{"outsider", tm.pOutsider, toks.shared, kve.KindNotFound},
		{"developer revokes own", tm.pDev, toks.devPersonal, kve.KindInternal},
		{"admin revokes developer's", tm.pAdmin, toks.dev2Personal, kve.KindInternal},
		{"owner revokes shared", tm.pOwner, toks.shared, kve.KindInternal},
		{"again", tm.pOwner, toks.shared, kve.KindGone},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := svc.RevokeToken(ctx, tm.Org.ID, tt.p, tt.tok.Token.ID)
			if tt.kind != kve.KindInternal {
				wantKind(t, err, tt.kind)
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			stored, err := tm.Store.TokenByHash(ctx, tm.Keyring.Hash(tt.tok.Value.Reveal()))
			if err != nil || !stored.Revoked() || !got.Revoked() {
				t.Errorf("after revoke: stored revoked %v, returned revoked %v, %v", stored.Revoked(), got.Revoked(), err)
			}
			tm.event(t, "token.revoke", tt.tok.Token.ID)
		})
	}
	_, err := svc.RevealToken(ctx, tm.Org.ID, tm.pOwner, toks.shared.Token.ID)
	wantKind(t, err, kve.KindGone)
	_, err = svc.UpdateToken(ctx, tm.Org.ID, tm.pOwner, toks.shared.Token.ID, manage.TokenPatch{RPM: ptr(1)})
	wantKind(t, err, kve.KindGone)
	if still, _ := tm.Store.Token(ctx, tm.Org.ID, toks.adminPersonal.Token.ID); still.Revoked() {
		t.Error("a token nobody revoked is revoked")
	}
}

func TestEvents(t *testing.T) {
	tm := newTeam(t)
	tm.tokens(t)
	page, err := tm.Service.Events(t.Context(), tm.Org.ID, tm.pAdmin, store.EventFilter{Action: "token.create"})
	if err != nil {
		t.Fatal(err)
	}
	if len(page.Items) != 4 {
		t.Errorf("%d token.create events, want 4", len(page.Items))
	}
	_, err = tm.Service.Events(t.Context(), tm.Org.ID, tm.pDev, store.EventFilter{Action: ""})
	wantKind(t, err, kve.KindForbidden)
	_, err = tm.Service.Events(t.Context(), tm.Org.ID, tm.pOutsider, store.EventFilter{Action: ""})
	wantKind(t, err, kve.KindNotFound)
}
