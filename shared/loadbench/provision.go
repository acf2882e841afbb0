package loadbench

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
)

// Tokens are the two tokens the benchmark sends through kve, both on one
// key that points at the benchmark's upstream, both allowed from servers.
type Tokens struct {
	// Off has no rate limit and no budget: the proxy skips the limiter and
	// the budget check (usage is still metered and recorded: local mode
	// has no switch for that).
	Off string
	// On has a rate limit and a daily budget far above what the run
	// reaches, so every request goes through the limiter and the budget
	// check and none is refused.
	On string
}

// Provision sets up a fresh local mode at base through its management API
// (DESIGN §9), as the README's curl lines do: the first owner with the
// one-time setup code, an organization, a key holding the upstream's key,
// and the two tokens.
func Provision(ctx context.Context, client *http.Client, base, setupCode, upstream, key string) (Tokens, error) {
	api := &apiClient{ctx: ctx, client: client, base: strings.TrimRight(base, "/")}
	var cred struct {
		APIToken string `json:"api_token"`
	}
	if err := api.call("POST", "/api/v1/setup", map[string]any{
		"code": setupCode, "email": "bench@example.com", "name": "Load Bench", "password": rand.Text(),
	}, &cred); err != nil {
		return Tokens{}, err
	}
	api.token = cred.APIToken
	var org struct {
		Slug string `json:"slug"`
	}
	if err := api.call("POST", "/api/v1/orgs", map[string]any{"name": "Load Bench"}, &org); err != nil {
		return Tokens{}, err
	}
	if err := api.call("POST", "/api/v1/orgs/"+org.Slug+"/keys", map[string]any{
		"name": "bench", "provider": "openai", "upstream": upstream, "secret": key,
	}, nil); err != nil {
		return Tokens{}, err
	}
	issue := func(name string, rpm int, budgetUSD float64) (string, error) {
		var tok struct {
			Token string `json:"token"`
		}
		err := api.call("POST", "/api/v1/orgs/"+org.Slug+"/tokens", map[string]any{
			"name": name, "key": "bench", "env": "prd", "allow_server": true,
			"rpm": rpm, "budget_usd": budgetUSD,
		}, &tok)
		return tok.Token, err
	}
	var t Tokens
	var err error
	if t.Off, err = issue("bench-limits-off", 0, 0); err != nil {
		return Tokens{}, err
	}
	if t.On, err = issue("bench-limits-on", 1_000_000, 1_000_000); err != nil {
		return Tokens{}, err
	}
	return t, nil
}

// apiClient calls the management API as one user.
type apiClient struct {
	ctx    context.Context
	client *http.Client
	base   string
	token  string
}

// call sends body as JSON and decodes a 2xx answer into out. An error
// carries the API's error body, which never holds a secret.
func (c *apiClient) call(method, path string, body, out any) error {
	b, err := json.Marshal(body)
	if err != nil {
		return fmt.Errorf("encode %s %s: %w", method, path, err)
	}
	req, err := http.NewRequestWithContext(c.ctx, method, c.base+path, bytes.NewReader(b))
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	req.Header.Set("Content-Type", "application/json")
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	res, err := c.client.Do(req)
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	defer res.Body.Close()
	answer, err := io.ReadAll(io.LimitReader(res.Body, 1<<20))
	if err != nil {
		return fmt.Errorf("%s %s: read answer: %w", method, path, err)
	}
	if res.StatusCode/100 != 2 {
		return fmt.Errorf("%s %s: %s: %s", method, path, res.Status, bytes.TrimSpace(answer))
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(answer, out); err != nil {
		return fmt.Errorf("%s %s: decode answer: %w", method, path, err)
	}
	return nil
}
