package manage

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"

	"golang.org/x/crypto/argon2"

	"github.com/keyvault-edge/kve/shared/kve"
)

// PasswordConfig is the argon2id cost of password hashes and how many may run
// at once. Each hash holds Memory KiB for its duration, so the concurrency cap
// is what keeps a burst of sign-ins from exhausting a function's memory.
type PasswordConfig struct {
	Memory      uint32 // KiB, default 19456 (19 MiB, the OWASP minimum)
	Time        uint32 // passes, default 2
	Threads     uint8  // default 1
	Concurrency int    // hashes at once, default 4
}

// Password limits: long enough to resist guessing, short enough that hashing
// one is bounded work.
const (
	minPasswordRunes = 12
	maxPasswordBytes = 256
)

const (
	saltLen = 16
	hashLen = 32
	// maxHashMemory bounds what a stored hash may ask for (1 GiB), so a
	// corrupted record cannot make a sign-in allocate without limit.
	maxHashMemory = 1 << 20
)

// hasher hashes and verifies passwords under a concurrency cap.
type hasher struct {
	cfg   PasswordConfig
	slots chan struct{}
	// dummy is a well-formed hash of nothing anyone knows, verified when an
	// email is unknown so that the answer and its timing match a wrong password.
	dummy []byte
}

func newHasher(cfg PasswordConfig) *hasher {
	if cfg.Memory == 0 {
		cfg.Memory = 19 * 1024
	}
	if cfg.Time == 0 {
		cfg.Time = 2
	}
	if cfg.Threads == 0 {
		cfg.Threads = 1
	}
	if cfg.Concurrency <= 0 {
		cfg.Concurrency = 4
	}
	h := &hasher{cfg: cfg, slots: make(chan struct{}, cfg.Concurrency)}
	// Random bytes in place of a computed hash cost nothing at start and
	// verify exactly as slowly as a real one.
	h.dummy = phc(cfg, randomBytes(saltLen), randomBytes(hashLen))
	return h
}

// hash returns the PHC string of password with a fresh salt.
func (h *hasher) hash(ctx context.Context, password kve.Secret) ([]byte, error) {
	if err := h.acquire(ctx); err != nil {
		return nil, err
	}
	defer h.release()
	salt := randomBytes(saltLen)
	key := argon2.IDKey([]byte(password.Reveal()), salt, h.cfg.Time, h.cfg.Memory, h.cfg.Threads, hashLen)
	return phc(h.cfg, salt, key), nil
}

// verify reports whether password matches the PHC string encoded, using the
// cost recorded in it.
func (h *hasher) verify(ctx context.Context, encoded []byte, password kve.Secret) (bool, error) {
	p, salt, want, err := parsePHC(string(encoded))
	if err != nil {
		return false, fmt.Errorf("verify password: %w", err)
	}
	if err := h.acquire(ctx); err != nil {
		return false, err
	}
	defer h.release()
	got := argon2.IDKey([]byte(password.Reveal()), salt, p.Time, p.Memory, p.Threads, uint32(len(want)))
	return subtle.ConstantTimeCompare(got, want) == 1, nil
}

func (h *hasher) acquire(ctx context.Context) error {
	select {
	case h.slots <- struct{}{}:
		return nil
	case <-ctx.Done():
		return kve.Wrap(kve.KindUnavailable, "unavailable", "the server is busy, try again", ctx.Err())
	}
}

func (h *hasher) release() { <-h.slots }

// phc encodes an argon2id hash in the PHC string format:
// $argon2id$v=19$m=19456,t=2,p=1$<salt>$<hash>, base64 without padding.
func phc(cfg PasswordConfig, salt, key []byte) []byte {
	b64 := base64.RawStdEncoding
	return fmt.Appendf(nil, "$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s", argon2.Version,
		cfg.Memory, cfg.Time, cfg.Threads, b64.EncodeToString(salt), b64.EncodeToString(key))
}

func parsePHC(s string) (PasswordConfig, []byte, []byte, error) {
	var p PasswordConfig
	parts := strings.Split(s, "$")
	if len(parts) != 6 || parts[0] != "" || parts[1] != "argon2id" {
		return p, nil, nil, errors.New("not an argon2id PHC string")
	}
	var version int
	if _, err := fmt.Sscanf(parts[2], "v=%d", &version); err != nil || version != argon2.Version {
		return p, nil, nil, errors.New("unsupported argon2 version")
	}
	if _, err := fmt.Sscanf(parts[3], "m=%d,t=%d,p=%d", &p.Memory, &p.Time, &p.Threads); err != nil {
		return p, nil, nil, errors.New("malformed argon2 parameters")
	}
	if p.Memory == 0 || p.Memory > maxHashMemory || p.Time == 0 || p.Time > 16 || p.Threads == 0 {
		return p, nil, nil, errors.New("argon2 parameters out of range")
	}
	salt, err1 := base64.RawStdEncoding.DecodeString(parts[4])
	key, err2 := base64.RawStdEncoding.DecodeString(parts[5])
	if err1 != nil || err2 != nil || len(salt) < 8 || len(key) < 16 {
		return p, nil, nil, errors.New("malformed argon2 salt or hash")
	}
	return p, salt, key, nil
}

// checkNewPassword enforces the password rules for a password being set.
func checkNewPassword(p kve.Secret) error {
	v := p.Reveal()
	if len(v) > maxPasswordBytes {
		return kve.Errorf(kve.KindInvalid, "invalid_password", "password must be at most %d bytes", maxPasswordBytes)
	}
	if !utf8.ValidString(v) || utf8.RuneCountInString(v) < minPasswordRunes {
		return kve.Errorf(kve.KindInvalid, "invalid_password", "password must be at least %d characters", minPasswordRunes)
	}
	return nil
}

func randomBytes(n int) []byte {
	b := make([]byte, n)
	rand.Read(b) // never fails (crypto/rand, Go ≥ 1.24)
	return b
}
