package usage

import (
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/keyvault-edge/kve/shared/kve"
)

// The spool writes two lines per request on the proxy's path, so they are
// built by appending, without reflection: the JSON that encoding/json
// writes for spoolLine (with kve.Usage's field names), which replay reads
// back with encoding/json. A test fills every field of kve.Usage and
// checks the round trip, so a field added there cannot be dropped here.
//
// A record line whose hold is in the spool leaves out what the hold has
// and the request cannot change: who and what the request was (see
// identity); replay takes those from the hold.

// appendHold appends a hold line.
func appendHold(b []byte, u *kve.Usage, micro int64) []byte {
	b = append(b, `{"hold":{"usage":`...)
	b = appendUsage(b, u, true)
	b = append(b, `,"micro":`...)
	b = strconv.AppendInt(b, micro, 10)
	return append(b, "}}\n"...)
}

// appendDone appends a record line; without identity when its hold is in
// the spool.
func appendDone(b []byte, u *kve.Usage, identity bool) []byte {
	b = append(b, `{"done":`...)
	b = appendUsage(b, u, identity)
	return append(b, "}\n"...)
}

// stringField is a string field of a record and its name in a line.
type stringField struct {
	name string
	v    *string
}

// identityFields are a record's fields that its hold has already: the
// organization, token and member, and the request as the client sent it.
func identityFields(u *kve.Usage) [10]stringField {
	return [...]stringField{
		{"org_id", &u.OrgID}, {"token_id", &u.TokenID}, {"user_id", &u.UserID}, {"env", (*string)(&u.Env)},
		{"provider", &u.Provider}, {"method", &u.Method}, {"path", &u.Path},
		{"client_ip", &u.ClientIP}, {"origin", &u.Origin}, {"user_agent", &u.UserAgent},
	}
}

// withIdentity fills a lean record's identity fields and arrival time from
// its hold's.
func withIdentity(u *kve.Usage, hold *kve.Usage) {
	if u.At.IsZero() {
		u.At = hold.At
	}
	to, from := identityFields(u), identityFields(hold)
	for i := range to {
		if *to[i].v == "" {
			*to[i].v = *from[i].v
		}
	}
}

func appendUsage(b []byte, u *kve.Usage, identity bool) []byte {
	b = append(b, `{"request_id":`...)
	b = appendString(b, u.RequestID)
	if identity { // the time the request arrived is the hold's too
		b = append(b, `,"at":"`...)
		b = u.At.AppendFormat(b, time.RFC3339Nano)
		b = append(b, '"')
	}
	appendField := func(name, v string) {
		if v != "" {
			b = append(b, ',', '"')
			b = append(b, name...)
			b = append(b, '"', ':')
			b = appendString(b, v)
		}
	}
	if identity {
		for _, f := range identityFields(u) {
			appendField(f.name, *f.v)
		}
	}
	appendField("model", u.Model)
	appendField("reason", u.Reason)
	for _, f := range [...]struct {
		name string
		v    int64
	}{
		{"status", int64(u.Status)}, {"duration_ns", int64(u.Duration)}, {"upstream_ns", int64(u.Upstream)},
		{"bytes_in", u.BytesIn}, {"bytes_out", u.BytesOut}, {"prompt_tokens", u.PromptTokens},
		{"completion_tokens", u.CompletionTokens}, {"cached_tokens", u.CachedTokens},
		{"reasoning_tokens", u.ReasoningTokens}, {"cost_micro_usd", u.CostMicro},
	} {
		if f.v != 0 {
			b = append(b, ',', '"')
			b = append(b, f.name...)
			b = append(b, '"', ':')
			b = strconv.AppendInt(b, f.v, 10)
		}
	}
	if u.Estimated {
		b = append(b, `,"estimated":true`...)
	}
	if u.ClientAborted {
		b = append(b, `,"client_aborted":true`...)
	}
	return append(b, '}')
}

// appendString appends s as a JSON string, as encoding/json would read it
// back: quotes, backslashes and control characters escaped, invalid UTF-8
// replaced. Runs of bytes that need none of that are appended whole.
func appendString(b []byte, s string) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c >= 0x20 && c != '"' && c != '\\' && c < utf8.RuneSelf {
			i++
			continue
		}
		b = append(b, s[start:i]...)
		switch {
		case c == '"' || c == '\\':
			b = append(b, '\\', c)
			i++
		case c < 0x20:
			b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
			i++
		default:
			r, size := utf8.DecodeRuneInString(s[i:])
			if r == utf8.RuneError && size == 1 {
				b = append(b, `\ufffd`...)
			} else {
				b = append(b, s[i:i+size]...)
			}
			i += size
		}
		start = i
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}
