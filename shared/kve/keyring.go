package kve

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"hash"
	"sync"
)

// Hasher keys the lookup HMAC of tokens and sessions with the server's
// pepper. The proxy holds only a Hasher: it never needs to reveal a token.
type Hasher struct {
	macs sync.Pool // of hash.Hash keyed with the pepper; keying costs as much as hashing a token
}

// NewHasher returns a hasher for a 32-byte pepper.
func NewHasher(pepper []byte) (*Hasher, error) {
	if len(pepper) != KeySize {
		return nil, errors.New("keyring: pepper must be 32 bytes")
	}
	return newHasher(pepper), nil
}

func newHasher(pepper []byte) *Hasher {
	key := append([]byte(nil), pepper...)
	h := &Hasher{}
	h.macs.New = func() any { return hmac.New(sha256.New, key) }
	return h
}

// Keyring holds the two server-side secrets behind tokens: the pepper that
// keys the lookup HMAC, and the key that seals token values for later reveal.
// Both come from the secret store (Secrets Manager on AWS, the local sealed
// file in local mode), never from configuration.
type Keyring struct {
	*Hasher
	aead cipher.AEAD
}

// KeySize is the size of the pepper and of the sealing key, in bytes.
const KeySize = 32

// NewKeyring builds a keyring from a 32-byte pepper and a 32-byte sealing key.
func NewKeyring(pepper, sealKey []byte) (*Keyring, error) {
	if len(pepper) != KeySize || len(sealKey) != KeySize {
		return nil, errors.New("keyring: pepper and sealing key must be 32 bytes each")
	}
	block, err := aes.NewCipher(sealKey)
	if err != nil {
		return nil, err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	return &Keyring{Hasher: newHasher(pepper), aead: aead}, nil
}

// Hash returns HMAC-SHA256(pepper, value): the store's lookup key for a token
// or session. The MAC is never a credential itself.
func (h *Hasher) Hash(value string) []byte {
	m := h.macs.Get().(hash.Hash)
	m.Write([]byte(value))
	sum := m.Sum(nil)
	m.Reset()
	h.macs.Put(m)
	return sum
}

// Seal encrypts plaintext with AES-256-GCM, bound to aad (the row it belongs
// to), so a ciphertext moved to another row does not open.
func (k *Keyring) Seal(plaintext []byte, aad string) []byte {
	nonce := make([]byte, k.aead.NonceSize(), k.aead.NonceSize()+len(plaintext)+k.aead.Overhead())
	rand.Read(nonce)
	return k.aead.Seal(nonce, nonce, plaintext, []byte(aad))
}

// Open decrypts what Seal produced for the same aad.
func (k *Keyring) Open(sealed []byte, aad string) ([]byte, error) {
	n := k.aead.NonceSize()
	if len(sealed) < n+k.aead.Overhead() {
		return nil, errors.New("keyring: sealed value too short")
	}
	return k.aead.Open(nil, sealed[:n], sealed[n:], []byte(aad))
}
