package secrets

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// Files of Local's directory.
const (
	masterKeyFile = "master.key"
	sealedFile    = "secrets.sealed"
)

// sealedAAD binds the ciphertext to its purpose and format version, so that
// another file sealed under the same master key does not open as this one.
const sealedAAD = "kve-local-secrets-v1"

// masterKeySize is the size of the AES-256 master key, in bytes.
const masterKeySize = 32

// ErrSealed is wrapped by every error OpenLocal returns because the master key
// cannot be used: missing, the wrong size, or not the key the secrets file was
// sealed with (SECURITY T29). Local mode refuses to start on it rather than
// serve with garbage or overwrite what it cannot read.
var ErrSealed = errors.New("sealed")

// loadMasterKey reads dir's master key, creating it when neither it nor a
// sealed file exists yet. A sealed file without its key is never given a new
// one: the first write would replace every secret with an empty set.
func loadMasterKey(dir string) ([]byte, error) {
	path := filepath.Join(dir, masterKeyFile)
	key, err := os.ReadFile(path)
	switch {
	case err == nil:
		if len(key) != masterKeySize {
			return nil, fmt.Errorf("%w: master key %s is %d bytes, want %d", ErrSealed, path, len(key), masterKeySize)
		}
		return key, nil
	case !errors.Is(err, fs.ErrNotExist):
		return nil, fmt.Errorf("read master key: %w", err)
	}
	sealed := filepath.Join(dir, sealedFile)
	if _, err := os.Stat(sealed); err == nil {
		return nil, fmt.Errorf("%w: master key %s is missing for %s", ErrSealed, path, sealed)
	}
	key = make([]byte, masterKeySize)
	rand.Read(key)
	if err := createFile(dir, masterKeyFile, key); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return loadMasterKey(dir) // another process created it first; use theirs
		}
		return nil, fmt.Errorf("create master key: %w", err)
	}
	return key, nil
}

// newAEAD returns AES-256-GCM under key.
func newAEAD(key []byte) (cipher.AEAD, error) {
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(block)
}

// readSealed returns the plaintext of dir's sealed file, or nil when there is
// none yet. A file the key does not open (another key, a flipped byte, a
// truncation) is ErrSealed.
func readSealed(aead cipher.AEAD, dir string) ([]byte, error) {
	path := filepath.Join(dir, sealedFile)
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read secrets: %w", err)
	}
	n := aead.NonceSize()
	if len(data) < n+aead.Overhead() {
		return nil, fmt.Errorf("%w: master key does not open %s", ErrSealed, path)
	}
	plain, err := aead.Open(nil, data[:n], data[n:], []byte(sealedAAD))
	if err != nil {
		return nil, fmt.Errorf("%w: master key does not open %s", ErrSealed, path)
	}
	return plain, nil
}

// writeSealed seals plaintext under a fresh nonce and replaces dir's sealed
// file atomically: a crash leaves either the old file or the new one.
func writeSealed(aead cipher.AEAD, dir string, plaintext []byte) error {
	nonce := make([]byte, aead.NonceSize(), aead.NonceSize()+len(plaintext)+aead.Overhead())
	rand.Read(nonce)
	return replaceFile(dir, sealedFile, aead.Seal(nonce, nonce, plaintext, []byte(sealedAAD)))
}

// replaceFile writes data to a temporary file in dir (mode 0600), syncs it,
// renames it over name and syncs dir, so the rename itself is durable.
func replaceFile(dir, name string, data []byte) error {
	tmp, err := writeTemp(dir, name, data)
	if err != nil {
		return err
	}
	if err := os.Rename(tmp, filepath.Join(dir, name)); err != nil {
		os.Remove(tmp)
		return err
	}
	return syncDir(dir)
}

// createFile is replaceFile that never replaces: it links the synced
// temporary file to name, failing with fs.ErrExist if name exists, so a
// crash never leaves a half-written file under name.
func createFile(dir, name string, data []byte) error {
	tmp, err := writeTemp(dir, name, data)
	if err != nil {
		return err
	}
	defer os.Remove(tmp)
	if err := os.Link(tmp, filepath.Join(dir, name)); err != nil {
		return err
	}
	return syncDir(dir)
}

func writeTemp(dir, name string, data []byte) (string, error) {
	f, err := os.CreateTemp(dir, "."+name+".*.tmp") // CreateTemp uses mode 0600
	if err != nil {
		return "", err
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(f.Name())
		return "", err
	}
	return f.Name(), nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
