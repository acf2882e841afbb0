package kve_test

import (
	"encoding/json"
	"hash/crc32"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/keyvault-edge/kve/shared/kve"
)

// tokenContract is the token format regex of DESIGN §2, anchored.
var tokenContract = regexp.MustCompile(`^kve_(hb|pt)_(dev|stg|prd)_[0-9A-Za-z]{38}$`)

// tokenVectors are known-answer vectors. Each CRC32 (IEEE) was computed
// outside Go (Python's zlib.crc32) and written in base62 by hand, e.g.
// 0xa01b7d36 = 2686156086 = 2·62⁵ + 57·62⁴ + 48·62³ + 51·62² + 56·62 + 10
// = "2vmpuA". The second vector's checksum is below 62⁴, so it shows the
// left padding; the third has the largest possible first digit (4).
var tokenVectors = []struct {
	name  string
	value string
	kind  kve.TokenKind
	env   kve.Env
	crc   uint32
}{
	{"shared dev", "kve_hb_dev_FAKE0test0token0not0a0real0value2vmpuA", kve.TokenShared, kve.EnvDev, 0xa01b7d36},
	{"personal stg padded", "kve_pt_stg_FAKE0padded0vector0000000000014500hRXn", kve.TokenPersonal, kve.EnvStg, 0x009dfd43},
	{"shared prd high digit", "kve_hb_prd_FAKE0maximal0vector0000000000005438iUR", kve.TokenShared, kve.EnvPrd, 0xdd306b7f},
	{"personal prd zeros", "kve_pt_prd_000000000000000000000000000000003YbIj1", kve.TokenPersonal, kve.EnvPrd, 0xc24ad4c7},
	{"shared stg z", "kve_hb_stg_zzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz1ZMA4q", kve.TokenShared, kve.EnvStg, 0x55bf16b4},
}

var (
	tokenKinds = []kve.TokenKind{kve.TokenShared, kve.TokenPersonal}
	tokenEnvs  = []kve.Env{kve.EnvDev, kve.EnvStg, kve.EnvPrd}
)

const (
	base62    = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
	headLen   = len("kve_hb_dev_")
	randomLen = 32
	checkLen  = 6
)

// checksum62 is the test's own statement of the checksum: CRC32 (IEEE) of
// everything before it, in base62 with the most significant digit first,
// left-padded with '0' to six characters.
func checksum62(head string) string {
	v := uint64(crc32.ChecksumIEEE([]byte(head)))
	digits := ""
	for v > 0 {
		digits = string(base62[v%62]) + digits
		v /= 62
	}
	return strings.Repeat("0", checkLen-len(digits)) + digits
}

func TestNewTokenValue(t *testing.T) {
	for _, kind := range tokenKinds {
		for _, env := range tokenEnvs {
			t.Run(string(kind)+"_"+string(env), func(t *testing.T) {
				v := kve.NewTokenValue(kind, env).Reveal()
				if !tokenContract.MatchString(v) {
					t.Fatalf("token %s does not match the contract regex", kve.TokenHint(kve.Secret(v)))
				}
				if len(v) != kve.TokenValueLen || kve.TokenValueLen != 49 {
					t.Fatalf("len = %d, TokenValueLen = %d, want 49", len(v), kve.TokenValueLen)
				}
				if want := "kve_" + string(kind) + "_" + string(env) + "_"; !strings.HasPrefix(v, want) {
					t.Errorf("head = %q, want %q", v[:headLen], want)
				}
				gotKind, gotEnv, ok := kve.ParseTokenValue(v)
				if !ok || gotKind != kind || gotEnv != env {
					t.Errorf("ParseTokenValue = %q, %q, %v; want %q, %q, true", gotKind, gotEnv, ok, kind, env)
				}
				if got, want := v[len(v)-checkLen:], checksum62(v[:len(v)-checkLen]); got != want {
					t.Errorf("checksum = %q, want %q", got, want)
				}
			})
		}
	}
}

func TestTokenChecksumKnownAnswer(t *testing.T) {
	for _, tc := range tokenVectors {
		t.Run(tc.name, func(t *testing.T) {
			head, sum := tc.value[:kve.TokenValueLen-checkLen], tc.value[kve.TokenValueLen-checkLen:]
			if got := crc32.ChecksumIEEE([]byte(head)); got != tc.crc {
				t.Fatalf("vector is wrong: crc32 = %#08x, want %#08x", got, tc.crc)
			}
			if got := checksum62(head); got != sum {
				t.Fatalf("vector is wrong: base62 checksum = %q, want %q", got, sum)
			}
			kind, env, ok := kve.ParseTokenValue(tc.value)
			if !ok || kind != tc.kind || env != tc.env {
				t.Errorf("ParseTokenValue = %q, %q, %v; want %q, %q, true", kind, env, ok, tc.kind, tc.env)
			}
		})
	}
}

func TestParseTokenValueRejectsOtherChecksums(t *testing.T) {
	padded := tokenVectors[1].value // checksum "00hRXn"
	head := padded[:kve.TokenValueLen-checkLen]
	castagnoli := crc32.Checksum([]byte(head), crc32.MakeTable(crc32.Castagnoli))
	tests := []struct {
		name string
		sum  string
	}{
		{"CRC32C instead of IEEE", encode62(uint64(castagnoli))},
		{"CRC over the random part only", checksum62(head[headLen:])},
		{"CRC without the kve_ prefix", checksum62(head[len("kve_"):])},
		{"padded on the right", "hRXn00"},
		{"all zeros", "000000"},
		{"upper-case digits", "00HRXN"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if tc.sum == padded[kve.TokenValueLen-checkLen:] {
				t.Fatalf("test is wrong: the alternative checksum equals the right one")
			}
			if _, _, ok := kve.ParseTokenValue(head + tc.sum); ok {
				t.Errorf("ParseTokenValue accepted a token with checksum %q", tc.sum)
			}
		})
	}
}

// encode62 writes v in base62, six digits, for checksums the test needs to forge.
func encode62(v uint64) string {
	b := make([]byte, checkLen)
	for i := checkLen - 1; i >= 0; i-- {
		b[i] = base62[v%62]
		v /= 62
	}
	return string(b)
}

// TestParseTokenValueSingleMutation is T02/F1: a valid token with any one
// byte changed, at any position, to any other byte, is refused.
func TestParseTokenValueSingleMutation(t *testing.T) {
	values := make([]string, 0, len(tokenVectors)+6)
	for _, tc := range tokenVectors {
		values = append(values, tc.value)
	}
	for _, kind := range tokenKinds {
		for _, env := range tokenEnvs {
			values = append(values, kve.NewTokenValue(kind, env).Reveal())
		}
	}
	for _, v := range values {
		t.Run(kve.TokenHint(kve.Secret(v)), func(t *testing.T) {
			b := []byte(v)
			for i := range b {
				orig := b[i]
				for c := 0; c < 256; c++ {
					if byte(c) == orig {
						continue
					}
					b[i] = byte(c)
					if _, _, ok := kve.ParseTokenValue(string(b)); ok {
						t.Errorf("accepted the token with byte %d changed from %q to %q", i, orig, byte(c))
					}
				}
				b[i] = orig
			}
		})
	}
}

// TestParseTokenValueEditedHead is T02: editing the visible kind or env never
// yields a valid token (CRC32 catches any burst of up to 32 bits, so each
// field edit alone is always caught; the vectors fix the combined edits).
func TestParseTokenValueEditedHead(t *testing.T) {
	for _, tc := range tokenVectors {
		t.Run(tc.name, func(t *testing.T) {
			body := tc.value[headLen:]
			for _, kind := range tokenKinds {
				for _, env := range tokenEnvs {
					if kind == tc.kind && env == tc.env {
						continue
					}
					edited := "kve_" + string(kind) + "_" + string(env) + "_" + body
					if _, _, ok := kve.ParseTokenValue(edited); ok {
						t.Errorf("accepted %s edited to kind %s env %s", tc.name, kind, env)
					}
				}
			}
			for _, edited := range []string{
				strings.Replace(tc.value, "_"+string(tc.env)+"_", "_prod_", 1),
				strings.Replace(tc.value, "_"+string(tc.env)+"_", "_prd_", 1),
				strings.Replace(tc.value, "_"+string(tc.env)+"_", "_"+strings.ToUpper(string(tc.env))+"_", 1),
				strings.ToUpper(tc.value[:headLen]) + body,
				"kvm_" + tc.value[4:],
			} {
				if edited == tc.value {
					continue
				}
				if _, _, ok := kve.ParseTokenValue(edited); ok {
					t.Errorf("accepted an edited head %q", edited[:headLen+1])
				}
			}
		})
	}
}

// TestParseTokenValueShapeChanges covers the edits a single-byte mutation does
// not: swapped neighbours, deletions, insertions, truncations.
func TestParseTokenValueShapeChanges(t *testing.T) {
	for _, tc := range tokenVectors {
		t.Run(tc.name, func(t *testing.T) {
			v := tc.value
			for i := 0; i+1 < len(v); i++ {
				if v[i] == v[i+1] {
					continue
				}
				swapped := v[:i] + string(v[i+1]) + string(v[i]) + v[i+2:]
				if _, _, ok := kve.ParseTokenValue(swapped); ok {
					t.Errorf("accepted bytes %d and %d swapped", i, i+1)
				}
			}
			for i := range len(v) {
				if _, _, ok := kve.ParseTokenValue(v[:i] + v[i+1:]); ok {
					t.Errorf("accepted byte %d deleted", i)
				}
				if _, _, ok := kve.ParseTokenValue(v[:i] + "0" + v[i:]); ok {
					t.Errorf("accepted a byte inserted at %d", i)
				}
				if _, _, ok := kve.ParseTokenValue(v[:i]); ok {
					t.Errorf("accepted a truncation to %d bytes", i)
				}
			}
		})
	}
}

// TestParseTokenValueHostile is T01: injection strings, oversized values and
// bytes that could split a header or a log line are refused.
func TestParseTokenValueHostile(t *testing.T) {
	valid := tokenVectors[0].value
	tests := []struct {
		name  string
		value string
	}{
		{"empty", ""},
		{"sql or", "' OR '1'='1"},
		{"sql drop", `"; DROP TABLE tokens;--`},
		{"sql in a token-sized value", "kve_hb_dev_' OR '1'='1' --" + strings.Repeat("A", kve.TokenValueLen-len("kve_hb_dev_' OR '1'='1' --"))},
		{"sql drop token-sized", `kve_hb_dev_"; DROP TABLE tokens;--` + strings.Repeat("a", kve.TokenValueLen-len(`kve_hb_dev_"; DROP TABLE tokens;--`))},
		{"1 MB", strings.Repeat("A", 1<<20)},
		{"1 MB after a valid head", "kve_hb_dev_" + strings.Repeat("A", 1<<20)},
		{"valid then 1 MB", valid + strings.Repeat("A", 1<<20)},
		{"NUL appended", valid + "\x00"},
		{"NUL prepended", "\x00" + valid},
		{"NUL in the body", valid[:20] + "\x00" + valid[21:]},
		{"CRLF appended", valid + "\r\n"},
		{"header injection", valid[:kve.TokenValueLen-2] + "\r\n"},
		{"LF in the body", valid[:30] + "\n" + valid[31:]},
		{"leading space", " " + valid},
		{"trailing space", valid + " "},
		{"bearer prefix", "Bearer " + valid},
		{"non-UTF-8 byte", valid[:40] + "\xff" + valid[41:]},
		{"non-UTF-8 only", strings.Repeat("\xff", kve.TokenValueLen)},
		{"truncated UTF-8", valid[:kve.TokenValueLen-1] + "\xc3"},
		{"cyrillic look-alike", "\u043a" + valid[1:]},
		{"fullwidth digit", valid[:20] + "\uff10" + valid[21:]},
		{"token-sized underscores", strings.Repeat("_", kve.TokenValueLen)},
		{"management token", "kvm_" + strings.Repeat("A", 43)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			kind, env, ok := kve.ParseTokenValue(tc.value)
			if ok || kind != "" || env != "" {
				t.Errorf("ParseTokenValue = %q, %q, %v; want refusal", kind, env, ok)
			}
		})
	}
}

// TestNewTokenValueRandomness checks the random part: no repeats over 10,000
// values, and a character distribution that a chi-square test cannot tell
// from uniform. 140 for 61 degrees of freedom is p ≈ 4·10⁻⁸, so a fair
// generator fails about once in 10⁷ runs of each check; the modulo bias that
// rejection sampling exists to remove scores about 2,000 over all positions.
func TestNewTokenValueRandomness(t *testing.T) {
	const n = 10_000
	const limit = 140.0
	seen := make(map[string]bool, n)
	var total [62]int
	var perPos [randomLen][62]int
	for range n {
		v := kve.NewTokenValue(kve.TokenShared, kve.EnvDev).Reveal()
		if seen[v] {
			t.Fatalf("repeated token value after %d values", len(seen))
		}
		seen[v] = true
		for i, c := range v[headLen : headLen+randomLen] {
			d := strings.IndexRune(base62, c)
			if d < 0 {
				t.Fatalf("random part holds %q", c)
			}
			total[d]++
			perPos[i][d]++
		}
	}
	if x := chiSquare(total[:]); x > limit {
		t.Errorf("all positions: chi-square = %.1f over 61 degrees of freedom, want ≤ %.0f", x, limit)
	}
	for i := range perPos {
		if x := chiSquare(perPos[i][:]); x > limit {
			t.Errorf("position %d: chi-square = %.1f over 61 degrees of freedom, want ≤ %.0f", i, x, limit)
		}
	}
}

// chiSquare is Pearson's statistic of counts against a uniform expectation.
func chiSquare(counts []int) float64 {
	sum := 0
	for _, c := range counts {
		sum += c
	}
	want := float64(sum) / float64(len(counts))
	x := 0.0
	for _, c := range counts {
		d := float64(c) - want
		x += d * d / want
	}
	return x
}

func TestTokenHint(t *testing.T) {
	tests := []struct {
		name  string
		value kve.Secret
		want  string
	}{
		{"vector", kve.Secret(tokenVectors[0].value), "kve_hb_dev_…mpuA"},
		{"personal", kve.Secret(tokenVectors[1].value), "kve_pt_stg_…hRXn"},
		{"too short", kve.Secret(tokenVectors[0].value[:kve.TokenValueLen-1]), ""},
		{"too long", kve.Secret(tokenVectors[0].value + "x"), ""},
		{"empty", "", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := kve.TokenHint(tc.value); got != tc.want {
				t.Errorf("TokenHint = %q, want %q", got, tc.want)
			}
		})
	}

	t.Run("fresh token", func(t *testing.T) {
		v := kve.NewTokenValue(kve.TokenPersonal, kve.EnvPrd)
		hint := kve.TokenHint(v)
		s := v.Reveal()
		if want := s[:headLen] + "…" + s[len(s)-4:]; hint != want {
			t.Fatalf("TokenHint = %q, want head and last four", hint)
		}
		// The hint must not give away the random part beyond the last four characters.
		if strings.Contains(hint, s[headLen:headLen+8]) {
			t.Errorf("TokenHint shows the start of the random part")
		}
	})
}

func TestLooksLikeToken(t *testing.T) {
	tests := []struct {
		in   string
		want bool
	}{
		{tokenVectors[0].value, true},
		{"kve_", true},
		{"kve_anything", true},
		{"kve", false},
		{"", false},
		{"KVE_hb_dev_x", false},
		{"kvm_" + strings.Repeat("A", 43), false},
		{"Bearer kve_hb_dev_x", false},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			if got := kve.LooksLikeToken(tc.in); got != tc.want {
				t.Errorf("LooksLikeToken(%q) = %v, want %v", tc.in, got, tc.want)
			}
		})
	}
}

func TestParseEnv(t *testing.T) {
	tests := []struct {
		in   string
		want kve.Env
		ok   bool
	}{
		{"dev", kve.EnvDev, true},
		{"stg", kve.EnvStg, true},
		{"prd", kve.EnvPrd, true},
		{"prod", "", false},
		{"PRD", "", false},
		{"", "", false},
		{" dev", "", false},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			got, ok := kve.ParseEnv(tc.in)
			if got != tc.want || ok != tc.ok {
				t.Errorf("ParseEnv(%q) = %q, %v; want %q, %v", tc.in, got, ok, tc.want, tc.ok)
			}
		})
	}
}

func TestTokenExpiredRevoked(t *testing.T) {
	at := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		name        string
		token       kve.Token
		now         time.Time
		wantExpired bool
		wantRevoked bool
	}{
		{"no expiry", kve.Token{}, at.AddDate(100, 0, 0), false, false},
		{"before expiry", kve.Token{ExpiresAt: at}, at.Add(-time.Nanosecond), false, false},
		{"at expiry", kve.Token{ExpiresAt: at}, at, true, false},
		{"after expiry", kve.Token{ExpiresAt: at}, at.Add(time.Second), true, false},
		{"expiry in another zone", kve.Token{ExpiresAt: at}, at.In(time.FixedZone("UTC+5", 5*3600)), true, false},
		{"revoked", kve.Token{RevokedAt: at}, at.Add(-time.Hour), false, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.token.Expired(tc.now); got != tc.wantExpired {
				t.Errorf("Expired = %v, want %v", got, tc.wantExpired)
			}
			if got := tc.token.Revoked(); got != tc.wantRevoked {
				t.Errorf("Revoked = %v, want %v", got, tc.wantRevoked)
			}
		})
	}
}

func TestSpendToday(t *testing.T) {
	s := kve.Spend{Day: "2026-03-01", Micro: 1234}
	tests := []struct {
		name string
		now  time.Time
		want int64
	}{
		{"same UTC day", time.Date(2026, 3, 1, 23, 59, 59, 0, time.UTC), 1234},
		{"next UTC day", time.Date(2026, 3, 2, 0, 0, 0, 0, time.UTC), 0},
		{"previous UTC day", time.Date(2026, 2, 28, 23, 59, 59, 0, time.UTC), 0},
		// 2026-03-02 01:00 at UTC+2 is still 2026-03-01 in UTC.
		{"local day differs from UTC day", time.Date(2026, 3, 2, 1, 0, 0, 0, time.FixedZone("UTC+2", 2*3600)), 1234},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := s.Today(tc.now); got != tc.want {
				t.Errorf("Today = %d, want %d", got, tc.want)
			}
		})
	}
}

// TestTokenJSONHidesSecrets: a token as the API returns it never carries its
// MAC, its sealed value, the key's secret name or version (T07, DESIGN §3).
func TestTokenJSONHidesSecrets(t *testing.T) {
	tok := kve.Token{
		ID: "tok_1", OrgID: "org_1", Name: "ci", Kind: kve.TokenShared, Env: kve.EnvDev,
		Hint:   "kve_hb_dev_…FAKE",
		Hash:   []byte("FAKE-MAC-FAKE-MAC"),
		Sealed: []byte("FAKE-SEALED-VALUE"),
		Key: kve.KeyRef{ID: "key_1", Name: "openai", Provider: "openai", Upstream: "https://api.openai.com",
			Secret: "kve/org_1/keys/key_1", Version: "FAKE-VERSION-ID"},
		Version: 7,
		Spend:   kve.Spend{Day: "2026-03-01", Micro: 42},
	}
	b, err := json.Marshal(tok)
	if err != nil {
		t.Fatal(err)
	}
	for _, leak := range []string{"FAKE-MAC", "RkFLRS1NQUMt", "FAKE-SEALED", "RkFLRS1TRUFMRU", "kve/org_1/keys", "FAKE-VERSION-ID", `"hash"`, `"sealed"`, `"spend"`, `"version"`} {
		if strings.Contains(string(b), leak) {
			t.Errorf("token JSON holds %q: %s", leak, b)
		}
	}
	var back map[string]any
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	var keys []string
	for k := range back {
		keys = append(keys, k)
	}
	want := []string{"alerts", "auto_suspend", "created_at", "created_by", "env", "hint", "id", "key", "kind", "name", "org_id", "policy", "updated_at"}
	slices.Sort(keys)
	if diff := cmp.Diff(want, keys); diff != "" {
		t.Errorf("token JSON fields (-want +got):\n%s", diff)
	}
}

// FuzzParseTokenValue is F1: the parser never panics, and whatever it
// accepts has the contract's shape, a kind and env that agree with the text,
// a checksum the test recomputes, and no valid single-byte neighbour.
func FuzzParseTokenValue(f *testing.F) {
	for _, tc := range tokenVectors {
		f.Add(tc.value)
	}
	f.Fuzz(func(t *testing.T, s string) {
		kind, env, ok := kve.ParseTokenValue(s)
		if !ok {
			if kind != "" || env != "" {
				t.Fatalf("refused, yet returned kind %q env %q", kind, env)
			}
			return
		}
		if len(s) != 49 || !tokenContract.MatchString(s) {
			t.Fatalf("accepted %q, which is not of the contract's shape", s)
		}
		if string(kind) != s[4:6] || string(env) != s[7:10] {
			t.Fatalf("accepted %q as kind %q env %q", s, kind, env)
		}
		if got, want := s[len(s)-checkLen:], checksum62(s[:len(s)-checkLen]); got != want {
			t.Fatalf("accepted %q with checksum %q, want %q", s, got, want)
		}
		if got, want := kve.TokenHint(kve.Secret(s)), s[:headLen]+"…"+s[len(s)-4:]; got != want {
			t.Fatalf("TokenHint = %q, want %q", got, want)
		}
		b := []byte(s)
		for i := range b {
			orig := b[i]
			for _, flip := range []byte{0x01, 0x20} {
				b[i] = orig ^ flip
				if _, _, ok := kve.ParseTokenValue(string(b)); ok {
					t.Fatalf("accepted %q and its mutation at byte %d", s, i)
				}
			}
			b[i] = orig
		}
	})
}
