// Package kve is the vocabulary of KeyVault Edge: the nouns every other
// package speaks in, with no I/O and no dependency beyond the standard library.
//
// Glossary (one word per concept, in Go, URLs, SQL and UI text alike):
//
//   - Organization (Org): a team. Everything else belongs to exactly one.
//   - Member: a user's place in an organization, with a Role
//     (Owner, Admin or Developer).
//   - Key: a real upstream secret (an OpenAI or Stripe key, say). Its value
//     lives only in the secret store; kve shows its reference (name, provider,
//     upstream, last four characters, fingerprint), never the value.
//   - Token: what kve issues, kve_<kind>_<env>_<body>. Safe to commit because it
//     only works under its policy and is swapped for the key at the proxy.
//     Shared tokens (kind hb) serve the whole team; personal tokens (kind pt)
//     belong to one member and die when that member leaves.
//   - Provider: how to talk to an upstream: where the client puts the token,
//     how the key is injected, the default upstream URL, how usage is read.
//   - Policy: the rules a token carries (environment, origins, server use, IP
//     ranges, paths, rate limit, budget, expiry).
//   - Session: a management credential: a dashboard login or a kvm_ API token.
//   - Event: an audit entry, written in the same transaction as the change.
//   - Secret: a value that must never be printed (see Secret).
package kve
