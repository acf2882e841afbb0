package local_test

import (
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/anthropics/anthropic-sdk-go"
	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"

	"github.com/keyvault-edge/kve/shared/kvetest"
)

// TestCanary (SECURITY T27, class c5). Every instance of this suite runs
// with canary upstream keys (sk-test-CANARY-…) and greps, when its test
// ends, its log, what it printed, every response its clients received but
// the one-time reveals, and every file of its data directory for each key,
// token value, API token and password it saw (kvetest.Instance.Leaks). This
// test runs the flows that handle secrets most — reveals, refusals of
// tokens, an upstream that echoes the key (T26), streams of both providers
// — checks for leaks before close as well, and proves with positive
// controls that the check reads what it claims to.
func TestCanary(t *testing.T) {
	t.Parallel()
	oa, an := kvetest.NewOpenAI(t), kvetest.NewAnthropic(t)
	inst := kvetest.Start(t)
	inst.Setup(t)
	inst.Login(t, kvetest.Owner, inst.OwnerPassword())
	org := inst.CreateOrg(t, "Acme Canary")
	inst.AddKey(t, org.Slug, "openai-main", oa)
	inst.AddKey(t, org.Slug, "claude", an)
	server := inst.CreateToken(t, org.Slug, map[string]any{"name": "server", "key": "openai-main", "env": "prd", "allow_server": true})
	browser := inst.CreateToken(t, org.Slug, map[string]any{"name": "browser", "key": "openai-main", "env": "dev", "origins": []string{"http://localhost:3000"}})
	claude := inst.CreateToken(t, org.Slug, map[string]any{"name": "claude", "key": "claude", "env": "stg", "allow_server": true})
	revoked := inst.CreateToken(t, org.Slug, map[string]any{"name": "revoked", "key": "openai-main", "env": "dev", "allow_server": true})
	if again := inst.RevealToken(t, org.Slug, server.ID); again.Value != server.Value {
		t.Fatal("the reveal answered another value")
	}
	inst.RevokeToken(t, org.Slug, revoked.ID)
	inst.Call(t, http.MethodGet, "/api/v1/orgs/"+org.Slug+"/tokens?include_revoked=true", nil, http.StatusOK, nil)
	inst.Call(t, http.MethodGet, "/api/v1/orgs/"+org.Slug+"/keys", nil, http.StatusOK, nil)
	inst.Call(t, http.MethodGet, "/api/v1/orgs/"+org.Slug+"/audit", nil, http.StatusOK, nil)
	ctx := t.Context()

	oc := inst.OpenAI(server.Value, option.WithMaxRetries(0))
	if err := chat(t, oc); err != nil {
		t.Fatal(err)
	}
	stream := oc.Chat.Completions.NewStreaming(ctx, streamParams)
	for stream.Next() {
	}
	if err := stream.Err(); err != nil {
		t.Fatal(err)
	}
	ac := inst.Anthropic(claude.Value, anthropicNoRetry)
	if _, err := ac.Messages.New(ctx, anthropicParams); err != nil {
		t.Fatal(err)
	}
	as := ac.Messages.NewStreaming(ctx, anthropicParams)
	for as.Next() {
	}
	if err := as.Err(); err != nil {
		t.Fatal(err)
	}

	// Refusals of a token never quote it.
	for _, c := range []openai.Client{
		inst.OpenAI(revoked.Value, option.WithMaxRetries(0)),
		inst.OpenAI(browser.Value, option.WithMaxRetries(0), option.WithHeader("Origin", "https://evil.example")),
		inst.OpenAI(server.Value, option.WithMaxRetries(0), option.WithHeader("X-Api-Key", browser.Value)),
		inst.OpenAI(strings.Replace(server.Value, "_prd_", "_dev_", 1), option.WithMaxRetries(0)),
	} {
		if chat(t, c) == nil {
			t.Error("a refused token was accepted")
		}
	}

	// An upstream that quotes the key it received in full (SECURITY T26):
	// the client gets the provider's error with the key redacted.
	oa.EchoKey()
	an.EchoKey()
	var oerr *openai.Error
	if err := chat(t, oc); !errors.As(err, &oerr) || oerr.StatusCode != 401 || oerr.Code != "invalid_api_key" ||
		!strings.Contains(oerr.Message, "[redacted by kve]") {
		t.Errorf("echoing upstream: got %T %v, want OpenAI's 401 with the key redacted", err, err)
	}
	var aerr *anthropic.Error
	if _, err := ac.Messages.New(ctx, anthropicParams); !errors.As(err, &aerr) || aerr.StatusCode != 401 ||
		!strings.Contains(aerr.RawJSON(), "[redacted by kve]") {
		t.Errorf("echoing upstream: got %T %v, want Anthropic's 401 with the key redacted", err, err)
	}
	oa.Heal()
	an.Heal()

	for _, leak := range inst.Leaks(t) {
		t.Errorf("before close: %s", leak)
	}

	t.Run("positive controls", func(t *testing.T) {
		// The token values are in the exempt reveals, and only there.
		for _, tok := range []kvetest.Token{server, browser, claude, revoked} {
			where := inst.Find(t, tok.Value)
			if len(where) == 0 {
				t.Errorf("token %s: the check does not see its creation answer", tok.ID)
			}
			for _, w := range where {
				if !strings.HasPrefix(w, "exempt response") {
					t.Errorf("token %s found in %s", tok.ID, w)
				}
			}
		}
		// The upstream keys went through kve to the upstreams.
		if got := oa.Requests()[0].Header.Get("Authorization"); got != "Bearer "+oa.Key {
			t.Error("the OpenAI upstream did not receive its key")
		}
		if got := an.Requests()[0].Header.Get("X-Api-Key"); got != an.Key {
			t.Error("the Anthropic upstream did not receive its key")
		}
		// The check reads the log, the responses and the database files.
		sources := strings.Join(inst.Find(t, server.ID), "\n")
		for _, want := range []string{"the log", "response", "file kve.db"} {
			if !strings.Contains(sources, want) {
				t.Errorf("token id %s not found in %s; found in:\n%s", server.ID, want, sources)
			}
		}
		if sealed := inst.Find(t, "kve-local-secrets"); len(sealed) != 0 {
			t.Errorf("the sealed secrets file holds clear text: %v", sealed)
		}
	})
}
