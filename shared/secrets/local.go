package secrets

import (
	"context"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"sync"

	"github.com/keyvault-edge/kve/shared/kve"
)

// Local is local mode's Store: every secret in one file, <dir>/secrets.sealed,
// sealed with AES-256-GCM under <dir>/master.key. Like Secrets Manager it
// keeps the current and the previous version of each secret, so a token that
// still names the previous version keeps working while a rotation spreads;
// older versions are dropped. One process owns the directory; within it Local
// is safe for concurrent use.
type Local struct {
	dir  string
	aead cipher.AEAD

	mu      sync.RWMutex
	secrets map[string]*record // mirrors the sealed file; records are replaced, never modified
}

// record is one secret in the sealed document. Values are plain strings here,
// not kve.Secret, because kve.Secret refuses to marshal its value.
type record struct {
	Tags     map[string]string `json:"tags,omitempty"`
	Versions []version         `json:"versions"` // previous (if any), then current
}

type version struct {
	ID    string `json:"id"`
	Value string `json:"value"`
}

// sealedDoc is the plaintext of the sealed file.
type sealedDoc struct {
	Secrets map[string]*record `json:"secrets"`
}

// OpenLocal opens the store in dir, creating dir (mode 0700) and a new master
// key (32 random bytes, mode 0600) on first use. It fails, wrapping ErrSealed,
// when the master key is missing, the wrong size, or does not open the
// secrets file: local mode must refuse to start rather than serve garbage.
func OpenLocal(dir string) (*Local, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("open local secrets: %w", err)
	}
	key, err := loadMasterKey(dir)
	if err != nil {
		return nil, err
	}
	aead, err := newAEAD(key)
	if err != nil {
		return nil, fmt.Errorf("open local secrets: %w", err)
	}
	plain, err := readSealed(aead, dir)
	if err != nil {
		return nil, err
	}
	doc := sealedDoc{Secrets: map[string]*record{}}
	if plain != nil {
		err := json.Unmarshal(plain, &doc)
		clear(plain)
		if err != nil {
			return nil, fmt.Errorf("%w: %s/%s does not hold a secrets document: %v", ErrSealed, dir, sealedFile, err)
		}
		if doc.Secrets == nil {
			doc.Secrets = map[string]*record{}
		}
	}
	return &Local{dir: dir, aead: aead, secrets: doc.Secrets}, nil
}

// Put stores value as the new current version of name and returns its id;
// the former current version becomes the previous one. Tags are recorded when
// the secret is created and kept on later versions, as Secrets Manager does.
func (l *Local) Put(ctx context.Context, name string, value kve.Secret, tags map[string]string) (string, error) {
	if err := checkName(name); err != nil {
		return "", err
	}
	if err := checkValue(value); err != nil {
		return "", err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	id := newVersionID()
	if err := l.commit(name, l.withVersion(name, id, value.Reveal(), tags)); err != nil {
		return "", fmt.Errorf("put secret: %w", err)
	}
	return id, nil
}

// Value returns the given version of name, or the current one when version
// is "". A version older than the previous one is KindNotFound.
func (l *Local) Value(ctx context.Context, name, version string) (kve.Secret, error) {
	l.mu.RLock()
	defer l.mu.RUnlock()
	r, ok := l.secrets[name]
	if !ok {
		return "", notFound(name, "")
	}
	if version == "" {
		return kve.Secret(r.Versions[len(r.Versions)-1].Value), nil
	}
	for _, v := range r.Versions {
		if v.ID == version {
			return kve.Secret(v.Value), nil
		}
	}
	return "", notFound(name, version)
}

// Delete removes name and all its versions.
func (l *Local) Delete(ctx context.Context, name string) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if _, ok := l.secrets[name]; !ok {
		return notFound(name, "")
	}
	if err := l.commit(name, nil); err != nil {
		return fmt.Errorf("delete secret: %w", err)
	}
	return nil
}

// EnsureSystem creates kve's own server secrets, PepperName and SealName, as
// 32 random bytes in base64, unless they exist. Local mode calls it at start;
// on AWS the stack creates them.
func (l *Local) EnsureSystem(ctx context.Context) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, name := range []string{PepperName, SealName} {
		if _, ok := l.secrets[name]; ok {
			continue
		}
		raw := make([]byte, kve.KeySize)
		rand.Read(raw)
		value := base64.StdEncoding.EncodeToString(raw)
		if err := l.commit(name, l.withVersion(name, newVersionID(), value, nil)); err != nil {
			return fmt.Errorf("create %s: %w", name, err)
		}
	}
	return nil
}

// withVersion returns name's record with value added as the current version
// under id, keeping one previous version. Call with l.mu held.
func (l *Local) withVersion(name, id, value string, tags map[string]string) *record {
	next := version{ID: id, Value: value}
	old, ok := l.secrets[name]
	if !ok {
		return &record{Tags: maps.Clone(tags), Versions: []version{next}}
	}
	return &record{Tags: old.Tags, Versions: []version{old.Versions[len(old.Versions)-1], next}}
}

// commit sets name to r (nil deletes it) and writes the sealed file; if the
// write fails, memory is rolled back so it never holds what the disk does not.
// Call with l.mu held for writing.
func (l *Local) commit(name string, r *record) error {
	old, had := l.secrets[name]
	if r == nil {
		delete(l.secrets, name)
	} else {
		l.secrets[name] = r
	}
	err := l.save()
	if err != nil {
		if had {
			l.secrets[name] = old
		} else {
			delete(l.secrets, name)
		}
	}
	return err
}

func (l *Local) save() error {
	plain, err := json.Marshal(sealedDoc{Secrets: l.secrets})
	if err != nil {
		return err
	}
	defer clear(plain)
	return writeSealed(l.aead, l.dir, plain)
}

// newVersionID returns a random UUID (version 4), the shape of Secrets
// Manager's version ids, so nothing downstream can tell the stores apart.
func newVersionID() string {
	var b [16]byte
	rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	const hex = "0123456789abcdef"
	out := make([]byte, 0, 36)
	for i, c := range b {
		if i == 4 || i == 6 || i == 8 || i == 10 {
			out = append(out, '-')
		}
		out = append(out, hex[c>>4], hex[c&0x0f])
	}
	return string(out)
}
