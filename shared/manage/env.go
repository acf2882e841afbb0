package manage

import (
	"context"
	"fmt"
	"strings"

	"github.com/keyvault-edge/kve/shared/kve"
	"github.com/keyvault-edge/kve/shared/store"
)

// Env returns the .env lines of an organization's shared tokens of one
// environment (every member): for each provider PREFIX_API_KEY with the
// token and PREFIX_BASE_URL with kve's URL for it, which is what the
// official SDKs read (OPENAI_API_KEY, OPENAI_BASE_URL, …). When several
// live shared tokens serve one provider, the newest is used and a comment
// says so. Every value in it is a reveal, recorded in the audit log before
// the file is answered.
func (s *Service) Env(ctx context.Context, orgRef string, p Principal, envName string) ([]byte, error) {
	m, err := s.Authorize(ctx, orgRef, p, allMembers...)
	if err != nil {
		return nil, err
	}
	env, ok := kve.ParseEnv(envName)
	if !ok {
		return nil, kve.Errorf(kve.KindInvalid, "invalid_env", "env must be dev, stg or prd")
	}
	now := s.now()
	type entry struct {
		provider kve.Provider
		token    kve.Token
		others   int
	}
	var entries []*entry
	byPrefix := map[string]*entry{}
	f := store.TokenFilter{Env: env, Limit: store.MaxLimit}
	for {
		page, err := s.store.Tokens(ctx, m.Org.ID, f) // newest first
		if err != nil {
			return nil, fmt.Errorf("list tokens: %w", err)
		}
		for _, t := range page.Items {
			prov, ok := kve.LookupProvider(t.Key.Provider)
			if t.Kind != kve.TokenShared || t.Expired(now) || !ok {
				continue
			}
			if e := byPrefix[prov.EnvVar]; e != nil {
				e.others++
				continue
			}
			e := &entry{provider: prov, token: t}
			byPrefix[prov.EnvVar] = e
			entries = append(entries, e)
		}
		if page.Next == "" {
			break
		}
		f.Cursor = page.Next
	}

	values := make([]string, len(entries))
	for i, e := range entries {
		plain, err := s.keyring.Open(e.token.Sealed, e.token.ID)
		if err != nil {
			return nil, fmt.Errorf("open sealed token %s: %w", e.token.ID, err)
		}
		values[i] = string(plain)
	}
	// On record before any value leaves: no event, no file.
	for _, e := range entries {
		ev := p.Event(m.Org.ID, "token.reveal", e.token.ID, now).With("name", e.token.Name).With("via", "env")
		if err := s.store.AddEvent(ctx, ev); err != nil {
			return nil, fmt.Errorf("record reveal: %w", err)
		}
	}

	var b strings.Builder
	fmt.Fprintf(&b, "# KeyVault Edge: shared %s tokens of %s, one per provider.\n", env, oneLine(m.Org.Name))
	b.WriteString("# Safe to commit: each works only through kve, under its policy.\n")
	if len(entries) == 0 {
		fmt.Fprintf(&b, "# No live shared %s token yet.\n", env)
	}
	for i, e := range entries {
		b.WriteString("\n")
		if e.others > 0 {
			fmt.Fprintf(&b, "# %d more shared %s tokens serve %s; this is the newest, %q.\n",
				e.others, env, e.provider.Name, oneLine(e.token.Name))
		}
		fmt.Fprintf(&b, "%s_API_KEY=%s\n", e.provider.EnvVar, values[i])
		fmt.Fprintf(&b, "%s_BASE_URL=%s\n", e.provider.EnvVar, s.baseURL(e.provider))
	}
	s.log.InfoContext(ctx, "env_revealed", "org_id", m.Org.ID, "env", string(env), "tokens", len(entries))
	return []byte(b.String()), nil
}

// baseURL is where clients reach a provider through kve: its own host when
// host-form routing is configured, else a path under the public URL.
func (s *Service) baseURL(p kve.Provider) string {
	if s.domain != "" {
		return "https://" + p.Name + "." + s.domain + p.BasePath
	}
	return s.publicURL + "/" + p.Name + p.BasePath
}

// oneLine keeps a label on one line of a .env comment.
func oneLine(s string) string {
	return strings.Map(func(r rune) rune {
		if r == '\n' || r == '\r' {
			return ' '
		}
		return r
	}, s)
}
