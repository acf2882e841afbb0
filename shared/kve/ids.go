package kve

import (
	"crypto/rand"
	"encoding/binary"
	"time"
)

// ID prefixes say what an id names, so a token id can never be mistaken for
// an org id in a URL or a log.
const (
	PrefixOrg     = "org_"
	PrefixUser    = "usr_"
	PrefixToken   = "tok_"
	PrefixKey     = "key_"
	PrefixSession = "ses_"
	PrefixInvite  = "inv_"
	PrefixEvent   = "evt_"
	PrefixRequest = "req_"
)

const idAlphabet = "0123456789abcdefghjkmnpqrstvwxyz" // Crockford base32, lower case

// NewID returns prefix + 26 characters: a 48-bit millisecond timestamp and 80
// random bits, so ids sort by creation time (DynamoDB sort keys rely on it).
func NewID(prefix string, now time.Time) string {
	var raw [16]byte
	binary.BigEndian.PutUint64(raw[:8], uint64(now.UnixMilli())<<16)
	rand.Read(raw[6:])
	b := make([]byte, len(prefix), len(prefix)+26)
	copy(b, prefix)
	// 128 bits → 26 base32 digits, most significant first.
	hi, lo := binary.BigEndian.Uint64(raw[:8]), binary.BigEndian.Uint64(raw[8:])
	var out [26]byte
	for i := 25; i >= 0; i-- {
		out[i] = idAlphabet[lo&31]
		lo = lo>>5 | hi<<59
		hi >>= 5
	}
	return string(append(b, out[:]...))
}

// ValidID reports whether s is prefix followed by a well-formed id body.
func ValidID(prefix, s string) bool {
	if len(s) != len(prefix)+26 || s[:len(prefix)] != prefix {
		return false
	}
	for i := len(prefix); i < len(s); i++ {
		c := s[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'z') || c == 'i' || c == 'l' || c == 'o' || c == 'u' {
			return false
		}
	}
	return s[len(prefix)] <= '7' // 26 digits carry 130 bits; the top two are zero
}
