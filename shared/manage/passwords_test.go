package manage

import (
	"context"
	"regexp"
	"strings"
	"testing"

	"github.com/keyvault-edge/kve/shared/kve"
)

func TestHashDefaultsArePHCAtOWASPCost(t *testing.T) {
	h := newHasher(PasswordConfig{})
	enc, err := h.hash(t.Context(), "correct horse battery")
	if err != nil {
		t.Fatal(err)
	}
	phcForm := regexp.MustCompile(`^\$argon2id\$v=19\$m=19456,t=2,p=1\$[A-Za-z0-9+/]{22}\$[A-Za-z0-9+/]{43}$`)
	if !phcForm.Match(enc) {
		t.Errorf("hash = %s, want argon2id PHC with m=19456,t=2,p=1", enc)
	}
	if !phcForm.Match(h.dummy) {
		t.Errorf("dummy hash = %s, want the same form and cost as a real one", h.dummy)
	}
}

func TestVerify(t *testing.T) {
	h := newHasher(PasswordConfig{Memory: 64, Time: 1, Threads: 1})
	enc, err := h.hash(t.Context(), "correct horse battery")
	if err != nil {
		t.Fatal(err)
	}
	// A hash made at another cost still verifies: the cost is read from it.
	other, err := newHasher(PasswordConfig{Memory: 128, Time: 2, Threads: 1}).hash(t.Context(), "correct horse battery")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name     string
		encoded  []byte
		password kve.Secret
		want     bool
		wantErr  bool
	}{
		{"right", enc, "correct horse battery", true, false},
		{"wrong", enc, "correct horse batterx", false, false},
		{"other cost", other, "correct horse battery", true, false},
		{"dummy", h.dummy, "correct horse battery", false, false},
		{"not phc", []byte("plaintext"), "plaintext", false, true},
		{"bcrypt", []byte("$2a$10$abcdefghijklmnopqrstuv"), "x", false, true},
		{"huge memory", []byte("$argon2id$v=19$m=4294967295,t=2,p=1$c2FsdHNhbHRzYWx0$aGFzaGhhc2hoYXNoaGFzaA"), "x", false, true},
		{"empty", nil, "x", false, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := h.verify(t.Context(), tt.encoded, tt.password)
			if (err != nil) != tt.wantErr || got != tt.want {
				t.Errorf("verify = %v, %v; want %v, error %v", got, err, tt.want, tt.wantErr)
			}
		})
	}
}

func TestVerifyWaitsForASlot(t *testing.T) {
	h := newHasher(PasswordConfig{Memory: 64, Time: 1, Threads: 1, Concurrency: 1})
	h.slots <- struct{}{} // every slot taken
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	_, err := h.verify(ctx, h.dummy, "whatever")
	if kve.KindOf(err) != kve.KindUnavailable {
		t.Errorf("verify with no slot and a cancelled context: %v, want KindUnavailable", err)
	}
}

func TestCheckNewPassword(t *testing.T) {
	tests := []struct {
		name     string
		password string
		ok       bool
	}{
		{"12 characters", "abcdefghijkl", true},
		{"11 characters", "abcdefghijk", false},
		{"12 runes of 2 bytes", strings.Repeat("é", 12), true},
		{"256 bytes", strings.Repeat("a", 256), true},
		{"257 bytes", strings.Repeat("a", 257), false},
		{"invalid UTF-8", strings.Repeat("\xff", 20), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := checkNewPassword(kve.Secret(tt.password))
			if (err == nil) != tt.ok {
				t.Errorf("checkNewPassword = %v, want ok %v", err, tt.ok)
			}
		})
	}
}
