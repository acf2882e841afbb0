// Package secrets keeps real upstream keys and kve's own server secrets:
// Manager on AWS (Secrets Manager), Local in local mode (a file sealed with
// AES-256-GCM), and Cache, the proxy's per-execution-environment cache in
// front of either. One conformance suite (secretstest) runs on both stores.
package secrets

import (
	"context"

	"github.com/keyvault-edge/kve/shared/kve"
)

// Store keeps named secrets with versions. Implementations translate their
// errors into kve kinds: a missing secret or version is KindNotFound, an
// unreachable backend KindUnavailable. Values never appear in their errors.
type Store interface {
	// Put creates the secret, or adds a new current version to an existing
	// one, and returns the version id.
	Put(ctx context.Context, name string, value kve.Secret, tags map[string]string) (version string, err error)
	// Value returns the given version, or the current one when version is "".
	Value(ctx context.Context, name, version string) (kve.Secret, error)
	// Delete removes the secret and all its versions.
	Delete(ctx context.Context, name string) error
}

// Names of kve's own server secrets in the store. On AWS the stack creates
// them and passes their ARNs instead.
const (
	PepperName = "kve/system/pepper" // keys the token and session HMACs
	SealName   = "kve/system/seal"   // seals token values for reveal
)
