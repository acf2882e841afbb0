package manage

import (
	"context"
	"fmt"
	"regexp"
	"strings"
	"unicode"

	"github.com/keyvault-edge/kve/shared/kve"
	"github.com/keyvault-edge/kve/shared/store"
)

// KeyInput adds a real upstream key. Secret is write-only: no answer ever
// carries it back.
type KeyInput struct {
	Name     string     `json:"name"`
	Provider string     `json:"provider"`
	Upstream string     `json:"upstream,omitempty"`
	Secret   kve.Secret `json:"secret"`
	Auth     *kve.Auth  `json:"auth,omitempty"` // generic providers only
}

// RotateInput is a key's new value.
type RotateInput struct {
	Secret kve.Secret `json:"secret"`
}

var keyName = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,62}$`)

// maxSecretBytes bounds a key value; real provider keys are far shorter.
const maxSecretBytes = 4096

// CreateKey stores a real key's value in the secret store and its reference
// in the store (Owner only). The value is written first; if the reference
// cannot be written, the value is deleted again, so no half-written key stays.
func (s *Service) CreateKey(ctx context.Context, orgRef string, p Principal, in KeyInput) (kve.Key, error) {
	m, err := s.Authorize(ctx, orgRef, p, ownerOnly...)
	if err != nil {
		return kve.Key{}, err
	}
	orgID := m.Org.ID
	k, value, err := s.checkKey(in)
	if err != nil {
		return kve.Key{}, err
	}
	if _, err := s.store.Key(ctx, orgID, k.Name); err == nil {
		return kve.Key{}, errKeyExists(k.Name)
	} else if kve.KindOf(err) != kve.KindNotFound {
		return kve.Key{}, fmt.Errorf("look up key: %w", err)
	}
	now := s.now()
	k.ID = kve.NewID(kve.PrefixKey, now)
	k.OrgID = orgID
	k.Secret = kve.SecretName(orgID, k.ID)
	k.Last4, k.Fingerprint = value.Last4(), kve.Fingerprint(value)
	k.CreatedBy, k.CreatedAt = p.UserID, now.UTC()
	k.Version, err = s.secrets.Put(ctx, k.Secret, value, map[string]string{"kve:org": orgID, "kve:key": k.ID})
	if err != nil {
		return kve.Key{}, fmt.Errorf("put key secret: %w", err)
	}
	ev := p.Event(orgID, "key.create", k.ID, now).With("name", k.Name).With("provider", k.Provider)
	if err := s.store.CreateKey(ctx, k, ev); err != nil {
		// The caller may have gone away; the cleanup must still run.
		if derr := s.secrets.Delete(context.WithoutCancel(ctx), k.Secret); derr != nil {
			s.log.ErrorContext(ctx, "delete_orphan_secret_failed", "org_id", orgID, "key_id", k.ID, "err", derr)
		}
		if kve.KindOf(err) == kve.KindConflict {
			return kve.Key{}, errKeyExists(k.Name)
		}
		return kve.Key{}, fmt.Errorf("create key: %w", err)
	}
	s.log.InfoContext(ctx, "key_created", "org_id", orgID, "key_id", k.ID, "provider", k.Provider)
	return k, nil
}

func errKeyExists(name string) error {
	return kve.Errorf(kve.KindConflict, "key_exists", "a key named %q exists", name)
}

// checkKey validates a new key and returns its reference (without ids) and value.
func (s *Service) checkKey(in KeyInput) (kve.Key, kve.Secret, error) {
	if !keyName.MatchString(in.Name) {
		return kve.Key{}, "", kve.Errorf(kve.KindInvalid, "invalid_name", "key name must be 1 to 63 of a-z, 0-9, '.', '_', '-', starting with a letter or digit")
	}
	prov, ok := kve.LookupProvider(in.Provider)
	if !ok {
		return kve.Key{}, "", kve.Errorf(kve.KindInvalid, "invalid_provider", "provider must be a builtin provider or a generic name like stripe")
	}
	k := kve.Key{Name: in.Name, Provider: prov.Name, Upstream: prov.Upstream}
	switch {
	case in.Upstream != "":
		u, err := kve.ValidateUpstream(in.Upstream, s.insecure)
		if err != nil {
			return kve.Key{}, "", err
		}
		k.Upstream = u
	case prov.Upstream == "":
		return kve.Key{}, "", kve.Errorf(kve.KindInvalid, "invalid_upstream", "provider %s needs an upstream URL", prov.Name)
	}
	if in.Auth != nil {
		if prov.Family != kve.FamilyGeneric {
			return kve.Key{}, "", kve.Errorf(kve.KindInvalid, "invalid_auth", "auth applies to generic providers only; %s injects its key itself", prov.Name)
		}
		k.Auth = *in.Auth
	}
	if prov.Family == kve.FamilyGeneric {
		if err := k.Auth.Validate(); err != nil {
			return kve.Key{}, "", err
		}
	}
	value, err := checkSecret(in.Secret)
	if err != nil {
		return kve.Key{}, "", err
	}
	return k, value, nil
}

// checkSecret trims a key value (copy and paste adds blanks) and refuses what
// could not travel in a header: control characters, spaces inside, excess size.
func checkSecret(v kve.Secret) (kve.Secret, error) {
	s := strings.TrimSpace(v.Reveal())
	if s == "" || len(s) > maxSecretBytes || strings.ContainsFunc(s, func(r rune) bool {
		return unicode.IsControl(r) || unicode.IsSpace(r) || r > unicode.MaxASCII
	}) {
		return "", kve.Errorf(kve.KindInvalid, "invalid_secret", "secret must be the key value: 1 to %d printable ASCII characters", maxSecretBytes)
	}
	return kve.Secret(s), nil
}

// Keys lists an organization's key references (Owner only).
func (s *Service) Keys(ctx context.Context, orgRef string, p Principal) ([]kve.Key, error) {
	m, err := s.Authorize(ctx, orgRef, p, ownerOnly...)
	if err != nil {
		return nil, err
	}
	ks, err := s.store.Keys(ctx, m.Org.ID)
	if err != nil {
		return nil, fmt.Errorf("list keys: %w", err)
	}
	return ks, nil
}

// KeyNames lists the names of an organization's keys (every member), for
// the create-token form. A name is not a secret: the token list shows the
// key of every token to every member, and creating a token names one. The
// rest of a key's reference (upstream, last characters, fingerprint, who
// added it) stays the Owner's, as DESIGN §8 has it.
func (s *Service) KeyNames(ctx context.Context, orgRef string, p Principal) ([]string, error) {
	m, err := s.Authorize(ctx, orgRef, p, allMembers...)
	if err != nil {
		return nil, err
	}
	ks, err := s.store.Keys(ctx, m.Org.ID)
	if err != nil {
		return nil, fmt.Errorf("list keys: %w", err)
	}
	names := make([]string, len(ks))
	for i, k := range ks {
		names[i] = k.Name
	}
	return names, nil
}

// RotateKey stores a new value for a key (Owner only). Every token that uses
// the key moves to the new version, so the next proxied request uses it.
func (s *Service) RotateKey(ctx context.Context, orgRef string, p Principal, name string, in RotateInput) (kve.Key, error) {
	m, err := s.Authorize(ctx, orgRef, p, ownerOnly...)
	if err != nil {
		return kve.Key{}, err
	}
	orgID := m.Org.ID
	value, err := checkSecret(in.Secret)
	if err != nil {
		return kve.Key{}, err
	}
	k, err := s.store.Key(ctx, orgID, name)
	if err != nil {
		return kve.Key{}, keyErr(err)
	}
	now := s.now()
	version, err := s.secrets.Put(ctx, k.Secret, value, map[string]string{"kve:org": orgID, "kve:key": k.ID})
	if err != nil {
		return kve.Key{}, fmt.Errorf("put key secret: %w", err)
	}
	// Until the store records the version, tokens keep the previous one: a
	// failure here leaves a consistent state, and a retry completes it.
	ev := p.Event(orgID, "key.rotate", k.ID, now).With("name", k.Name)
	r := store.Rotation{Version: version, Last4: value.Last4(), Fingerprint: kve.Fingerprint(value), At: now.UTC()}
	k, err = s.store.RotateKey(ctx, orgID, name, r, ev)
	if err != nil {
		return kve.Key{}, keyErr(err)
	}
	s.log.InfoContext(ctx, "key_rotated", "org_id", orgID, "key_id", k.ID)
	return k, nil
}

// DeleteKey removes a key (Owner only): first its reference, so no token can
// be issued for it, then its value. A key that tokens still use is
// KindConflict.
func (s *Service) DeleteKey(ctx context.Context, orgRef string, p Principal, name string) error {
	m, err := s.Authorize(ctx, orgRef, p, ownerOnly...)
	if err != nil {
		return err
	}
	orgID := m.Org.ID
	k, err := s.store.Key(ctx, orgID, name)
	if err != nil {
		return keyErr(err)
	}
	ev := p.Event(orgID, "key.delete", k.ID, s.now()).With("name", k.Name)
	if err := s.store.DeleteKey(ctx, orgID, name, ev); err != nil {
		if kve.KindOf(err) == kve.KindConflict {
			return kve.Errorf(kve.KindConflict, "key_in_use", "tokens still use key %q: revoke them first", name)
		}
		return keyErr(err)
	}
	// The reference is gone, so kve will not use the value again; a value
	// left behind is an operator's clean-up, reported loudly.
	if err := s.secrets.Delete(context.WithoutCancel(ctx), k.Secret); err != nil && kve.KindOf(err) != kve.KindNotFound {
		s.log.ErrorContext(ctx, "delete_key_secret_failed", "org_id", orgID, "key_id", k.ID, "secret_name", k.Secret, "err", err)
	}
	s.log.InfoContext(ctx, "key_deleted", "org_id", orgID, "key_id", k.ID)
	return nil
}

func keyErr(err error) error {
	if kve.KindOf(err) == kve.KindNotFound {
		return kve.Errorf(kve.KindNotFound, "not_found", "key not found")
	}
	return fmt.Errorf("key: %w", err)
}
