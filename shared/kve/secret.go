package kve

import (
	"fmt"
	"log/slog"
)

// Secret holds a value that must never reach a log, an error or a response by
// accident: a real key, a token value, a password, a pepper. Every way of
// printing it (fmt verbs, slog, JSON) yields "[redacted]"; code that must use
// the value calls Reveal, which makes each use visible in review.
type Secret string

const redacted = "[redacted]"

// Reveal returns the plaintext. Call it only where the value leaves kve on purpose.
func (s Secret) Reveal() string { return string(s) }

// String implements fmt.Stringer.
func (s Secret) String() string { return redacted }

// GoString implements fmt.GoStringer.
func (s Secret) GoString() string { return redacted }

// Format implements fmt.Formatter, so that %x and %q do not print the value either.
func (s Secret) Format(f fmt.State, _ rune) { fmt.Fprint(f, redacted) }

// LogValue implements slog.LogValuer.
func (s Secret) LogValue() slog.Value { return slog.StringValue(redacted) }

// MarshalJSON implements json.Marshaler; a Secret never serializes its value.
func (s Secret) MarshalJSON() ([]byte, error) { return []byte(`"` + redacted + `"`), nil }

// MarshalText implements encoding.TextMarshaler.
func (s Secret) MarshalText() ([]byte, error) { return []byte(redacted), nil }

// Last4 returns the last four characters, the part of a key kve may show.
func (s Secret) Last4() string {
	if len(s) <= 8 {
		return "" // too short to show any of it safely
	}
	return string(s[len(s)-4:])
}
