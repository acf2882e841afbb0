package local_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"

	"github.com/keyvault-edge/kve/shared/kvetest"
)

// teamClient calls an instance's management API with any credential.
// Answers that are one-time reveals (an invite link, a new member's API
// token, a token value) go through reveals, a client of its own, so the
// instance's canary check skips them as it skips its own reveals; every
// other answer goes through the instance's client and is checked.
type teamClient struct {
	inst    *kvetest.Instance
	reveals *http.Client
}

func newTeamClient(inst *kvetest.Instance) *teamClient {
	return &teamClient{inst: inst, reveals: &http.Client{}}
}

// call sends a request with token (if any) as bearer, fails the test unless
// the status is want, and decodes the JSON answer into out (if not nil).
func (c *teamClient) call(t *testing.T, reveal bool, method, path, token string, body any, want int, out any) []byte {
	t.Helper()
	var r io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			t.Fatal(err)
		}
		r = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(t.Context(), method, c.inst.URL+path, r)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	client := c.inst.Client()
	if reveal {
		client = c.reveals
	}
	res, err := client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	if res.StatusCode != want {
		t.Fatalf("%s %s = %d, want %d", method, path, res.StatusCode, want) // the body may hold a reveal
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			t.Fatalf("%s %s: %v", method, path, err)
		}
	}
	return b
}

// join invites email into org as the instance's owner, without mail, and
// accepts as a new account; it returns the new member's kvm_ API token and
// user id. The invite code and the token join the canary check.
func (c *teamClient) join(t *testing.T, org, ownerToken, email, role string) (string, string) {
	t.Helper()
	var inv struct {
		AcceptURL string `json:"accept_url"`
	}
	c.call(t, true, "POST", "/api/v1/orgs/"+org+"/invites", ownerToken, map[string]string{"email": email, "role": role}, http.StatusCreated, &inv)
	code, ok := strings.CutPrefix(inv.AcceptURL, c.inst.URL+"/invite/")
	if !ok {
		t.Fatalf("accept_url is not under the public URL")
	}
	c.inst.Watch("an invite code", code)
	var joined struct {
		APIToken string `json:"api_token"`
		UserID   string `json:"user_id"`
	}
	password := kvetest.Canary("pw-")
	c.inst.Watch("a member's password", password)
	c.call(t, true, "POST", "/api/v1/invites/accept", "", map[string]string{"code": code, "name": "Dana Dev", "password": password},
		http.StatusCreated, &joined)
	c.inst.Watch("a member's API token", joined.APIToken)
	return joined.APIToken, joined.UserID
}

// TestOffboarding is the offboarding story in local mode, end to
// end (SECURITY T10, T33): a developer joins by invite, creates a personal
// token that works through the proxy and copies a shared one; the owner
// removes them; the very next proxied request with the personal token gets
// 401 and reaches no upstream, the shared token keeps working, the
// developer's API token is dead, and the removal's answer names the shared
// token for rotation.
func TestOffboarding(t *testing.T) {
	t.Parallel()
	up := kvetest.NewOpenAI(t)
	inst := kvetest.Start(t)
	owner := inst.Setup(t)
	org := inst.CreateOrg(t, "Acme").Slug
	inst.AddKey(t, org, "openai-main", up)
	shared := inst.CreateToken(t, org, map[string]any{"name": "team", "key": "openai-main", "env": "dev", "allow_server": true})
	c := newTeamClient(inst)
	devToken, devID := c.join(t, org, owner, "dana@example.com", "developer")

	var personal struct {
		ID    string `json:"id"`
		Token string `json:"token"`
	}
	c.call(t, true, "POST", "/api/v1/orgs/"+org+"/tokens", devToken,
		map[string]any{"name": "dana's laptop", "key": "openai-main", "env": "dev", "personal": true, "allow_server": true},
		http.StatusCreated, &personal)
	inst.Watch("the developer's personal token", personal.Token)
	c.call(t, true, "GET", "/api/v1/orgs/"+org+"/tokens/"+shared.ID, devToken, nil, http.StatusOK, nil) // a copy, audited

	chat := func(token string) error {
		client := inst.OpenAI(token, option.WithMaxRetries(0))
		_, err := client.Chat.Completions.New(t.Context(), openai.ChatCompletionNewParams{
			Model:    "gpt-4o-mini",
			Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("Say hello.")},
		})
		return err
	}
	if err := chat(personal.Token); err != nil {
		t.Fatalf("the personal token before removal: %v", err)
	}
	calls := up.Calls()

	var removal struct {
		RevokedTokens []string `json:"revoked_tokens"`
		EndedSessions int      `json:"ended_sessions"`
		Revealed      []struct {
			ID string `json:"id"`
		} `json:"revealed_shared_tokens"`
	}
	c.call(t, false, "DELETE", "/api/v1/orgs/"+org+"/members/"+devID, owner, nil, http.StatusOK, &removal)
	if !slices.Equal(removal.RevokedTokens, []string{personal.ID}) || removal.EndedSessions != 1 ||
		len(removal.Revealed) != 1 || removal.Revealed[0].ID != shared.ID {
		t.Errorf("removal answer = %+v; want the personal token revoked, one session ended, the shared token named", removal)
	}

	// The very next request: no wait, no retry.
	err := chat(personal.Token)
	var apiErr *openai.Error
	if !errors.As(err, &apiErr) || apiErr.StatusCode != http.StatusUnauthorized || apiErr.Code != "invalid_token" {
		t.Errorf("the personal token after removal: %v, want 401 invalid_token", err)
	}
	if up.Calls() != calls {
		t.Errorf("the refused request reached the upstream (%d calls, want %d)", up.Calls(), calls)
	}
	if err := chat(shared.Value); err != nil {
		t.Errorf("the shared token after removal: %v", err)
	}
	c.call(t, false, "GET", "/api/v1/orgs", devToken, nil, http.StatusUnauthorized, nil)

	var audit struct {
		Items []struct {
			Action string            `json:"action"`
			Target string            `json:"target"`
			Detail map[string]string `json:"detail"`
		} `json:"items"`
	}
	c.call(t, false, "GET", "/api/v1/orgs/"+org+"/audit?action=member.remove", owner, nil, http.StatusOK, &audit)
	if len(audit.Items) != 1 || audit.Items[0].Target != devID || audit.Items[0].Detail["revealed_shared_tokens"] != shared.ID {
		t.Errorf("member.remove in the audit log = %+v", audit.Items)
	}
}
