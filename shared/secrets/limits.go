package secrets

import (
	"fmt"

	"github.com/keyvault-edge/kve/shared/kve"
)

// MaxValueSize is the largest value a Store accepts, in bytes: Secrets
// Manager's limit for a secret string. Local enforces it too, so that a key
// that works in local mode also works on AWS.
const MaxValueSize = 65536

// maxNameLen is Secrets Manager's limit for a secret name.
const maxNameLen = 512

// checkName applies Secrets Manager's naming rule (1 to 512 characters from
// letters, digits and /_+=.@-) in both stores, for the same reason as
// MaxValueSize.
func checkName(name string) error {
	if name == "" || len(name) > maxNameLen {
		return kve.Errorf(kve.KindInvalid, "invalid_secret_name", "secret name must be 1 to %d characters", maxNameLen)
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		ok := 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' ||
			c == '/' || c == '_' || c == '+' || c == '=' || c == '.' || c == '@' || c == '-'
		if !ok {
			return kve.Errorf(kve.KindInvalid, "invalid_secret_name", "secret name may hold only letters, digits and /_+=.@-")
		}
	}
	return nil
}

// checkValue rejects an empty value (a key with no value cannot authenticate
// anything) and one over MaxValueSize. The message never quotes the value.
func checkValue(value kve.Secret) error {
	switch n := len(value.Reveal()); {
	case n == 0:
		return kve.Errorf(kve.KindInvalid, "invalid_secret_value", "secret value is empty")
	case n > MaxValueSize:
		return kve.Errorf(kve.KindInvalid, "invalid_secret_value", "secret value is over %d bytes", MaxValueSize)
	}
	return nil
}

// notFound is the error both stores return for a missing secret or version.
// The name and version go into the internal cause only.
func notFound(name, version string) error {
	cause := fmt.Errorf("no secret %s", name)
	if version != "" {
		cause = fmt.Errorf("no version %s of secret %s", version, name)
	}
	return kve.Wrap(kve.KindNotFound, "secret_not_found", "secret not found", cause)
}
