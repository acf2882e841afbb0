package secrets

import (
	"context"
	"crypto/sha256"
	"fmt"

	"github.com/keyvault-edge/kve/shared/kve"
)

// minServerSecretLen is the shortest stored pepper or sealing secret Keyring
// accepts. CDK's generated secrets are 32 characters by default and
// EnsureSystem's are 44; anything shorter was set by hand and may be guessable.
const minServerSecretLen = 32

// Keyring reads kve's two server secrets from s (pepperName and sealName are
// names or, on AWS, the ARNs the stack passes) and builds the keyring from
// them. The stored values are strings (the CDK stack has Secrets Manager
// generate them as random passwords; EnsureSystem writes base64), so each key
// is the SHA-256 of its stored string: exactly 32 bytes whatever the
// alphabet or length.
func Keyring(ctx context.Context, s Store, pepperName, sealName string) (*kve.Keyring, error) {
	if pepperName == sealName {
		return nil, fmt.Errorf("build keyring: pepper and sealing key must be different secrets, both are %s", pepperName)
	}
	pepper, err := serverKey(ctx, s, pepperName)
	if err != nil {
		return nil, fmt.Errorf("read pepper: %w", err)
	}
	seal, err := serverKey(ctx, s, sealName)
	if err != nil {
		return nil, fmt.Errorf("read sealing key: %w", err)
	}
	k, err := kve.NewKeyring(pepper[:], seal[:])
	clear(pepper[:])
	clear(seal[:])
	if err != nil {
		return nil, fmt.Errorf("build keyring: %w", err)
	}
	return k, nil
}

// Hasher reads only the pepper: what the proxy needs to look tokens up,
// without the sealing key it has no use for (least privilege).
func Hasher(ctx context.Context, s Store, pepperName string) (*kve.Hasher, error) {
	pepper, err := serverKey(ctx, s, pepperName)
	if err != nil {
		return nil, fmt.Errorf("read pepper: %w", err)
	}
	h, err := kve.NewHasher(pepper[:])
	clear(pepper[:])
	return h, err
}

func serverKey(ctx context.Context, s Store, name string) ([sha256.Size]byte, error) {
	v, err := s.Value(ctx, name, "")
	if err != nil {
		return [sha256.Size]byte{}, err
	}
	if len(v.Reveal()) < minServerSecretLen {
		return [sha256.Size]byte{}, fmt.Errorf("secret %s is shorter than %d characters", name, minServerSecretLen)
	}
	return sha256.Sum256([]byte(v.Reveal())), nil
}
