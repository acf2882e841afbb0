package manage_test

import (
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/keyvault-edge/kve/shared/kve"
	"github.com/keyvault-edge/kve/shared/manage"
)

// envTeam is a team with keys of three providers and tokens of every kind
// that Env must pick from or leave out.
type envTeam struct {
	*team
	openaiNew, openaiOld, anthropic, stripe manage.IssuedToken
}

func newEnvTeam(t *testing.T, configure ...func(*manage.Config)) *envTeam {
	t.Helper()
	ctx := t.Context()
	tm := &envTeam{team: newTeam(t, configure...)}
	for _, k := range []manage.KeyInput{
		{Name: "claude", Provider: "anthropic", Secret: "sk-ant-test-FAKE-0123456789"},
		{Name: "payments", Provider: "stripe", Upstream: "https://api.stripe.com", Secret: "sk_test_FAKE_0123456789"},
	} {
		if _, err := tm.Service.CreateKey(ctx, tm.Org.ID, tm.pOwner, k); err != nil {
			t.Fatal(err)
		}
	}
	create := func(name, key, env string, personal bool) manage.IssuedToken {
		t.Helper()
		tm.Clock.Add(time.Second) // creation order is the order of this list
		it, err := tm.Service.CreateToken(ctx, tm.Org.ID, tm.pOwner,
			manage.TokenInput{Name: name, Key: key, Env: env, Personal: personal, AllowServer: true})
		if err != nil {
			t.Fatal(err)
		}
		return it
	}
	tm.openaiOld = create("old openai", "main", "dev", false)
	tm.anthropic = create("claude dev", "claude", "dev", false)
	tm.openaiNew = create("new openai", "main", "dev", false)
	tm.stripe = create("stripe dev", "payments", "dev", false)
	create("mine", "main", "dev", true)     // personal: never in the file
	create("staging", "main", "stg", false) // another environment
	revoked := create("newest but revoked", "main", "dev", false)
	if _, err := tm.Service.RevokeToken(ctx, tm.Org.ID, tm.pOwner, revoked.Token.ID); err != nil {
		t.Fatal(err)
	}
	return tm
}

func TestEnv(t *testing.T) {
	tm := newEnvTeam(t)
	got, err := tm.Service.Env(t.Context(), tm.Org.Slug, tm.pDev, "dev")
	if err != nil {
		t.Fatal(err)
	}
	want := "# KeyVault Edge: shared dev tokens of Acme Labs, one per provider.\n" +
		"# Safe to commit: each works only through kve, under its policy.\n" +
		"\nSTRIPE_API_KEY=" + tm.stripe.Value.Reveal() + "\nSTRIPE_BASE_URL=https://kve.example.com/stripe\n" +
		"\n# 1 more shared dev tokens serve openai; this is the newest, \"new openai\".\n" +
		"OPENAI_API_KEY=" + tm.openaiNew.Value.Reveal() + "\nOPENAI_BASE_URL=https://kve.example.com/openai/v1\n" +
		"\nANTHROPIC_API_KEY=" + tm.anthropic.Value.Reveal() + "\nANTHROPIC_BASE_URL=https://kve.example.com/anthropic\n"
	if diff := cmp.Diff(want, string(got)); diff != "" {
		t.Errorf(".env (-want +got):\n%s", diff)
	}
	// Every value in it is a reveal, by the developer.
	var revealed []string
	for _, ev := range tm.events(t, "token.reveal") {
		if ev.ActorID != tm.Dev.ID || ev.Detail["via"] != "env" {
			t.Errorf("reveal event %+v", ev)
		}
		revealed = append(revealed, ev.Target)
	}
	wantIDs := []string{tm.anthropic.Token.ID, tm.openaiNew.Token.ID, tm.stripe.Token.ID}
	if diff := cmp.Diff(wantIDs, revealed, cmpSorted()); diff != "" {
		t.Errorf("revealed tokens (-want +got):\n%s", diff)
	}
	if strings.Contains(tm.Logs.String(), tm.openaiNew.Value.Reveal()) {
		t.Error("the log holds a token value")
	}
}

func TestEnvWithDomain(t *testing.T) {
	tm := newEnvTeam(t, func(c *manage.Config) { c.Domain = "KVE.example.com" })
	got, err := tm.Service.Env(t.Context(), tm.Org.Slug, tm.pOwner, "dev")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range []string{"OPENAI_BASE_URL=https://openai.kve.example.com/v1\n", "ANTHROPIC_BASE_URL=https://anthropic.kve.example.com\n"} {
		if !strings.Contains(string(got), line) {
			t.Errorf(".env lacks %q:\n%s", line, got)
		}
	}
}

func TestEnvRefusals(t *testing.T) {
	tm := newTeam(t)
	_, err := tm.Service.Env(t.Context(), tm.Org.Slug, tm.pDev, "prod")
	wantKind(t, err, kve.KindInvalid)
	_, err = tm.Service.Env(t.Context(), tm.Org.Slug, tm.pOutsider, "dev")
	wantKind(t, err, kve.KindNotFound)
	empty, err := tm.Service.Env(t.Context(), tm.Org.Slug, tm.pDev, "prd")
	if err != nil || !strings.Contains(string(empty), "# No live shared prd token yet.") || strings.Contains(string(empty), "=") {
		t.Errorf("an environment without tokens: %q, %v", empty, err)
	}
}
