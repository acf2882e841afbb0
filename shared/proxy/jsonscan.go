package proxy

import (
	"bytes"
	"encoding/json"
	"strconv"
)

// The proxy reads a few top-level fields of JSON bodies (the model, the
// output-token limit, the usage) on every request. Decoding the whole body
// with encoding/json costs more than the rest of the hot path; walking the
// top level and decoding only the values it needs costs a byte loop.

// members calls fn with the key (raw, quotes removed, escapes not decoded)
// and the raw value of each member of the top-level object in data, until
// fn returns false. It reports whether data began as a well-formed object
// up to where it stopped; it never allocates.
func members(data []byte, fn func(key, value []byte) bool) bool {
	i := skipSpace(data, 0)
	if i >= len(data) || data[i] != '{' {
		return false
	}
	i = skipSpace(data, i+1)
	if i < len(data) && data[i] == '}' {
		return true
	}
	for i < len(data) {
		if data[i] != '"' {
			return false
		}
		end := skipString(data, i)
		if end < 0 {
			return false
		}
		key := data[i+1 : end-1]
		i = skipSpace(data, end)
		if i >= len(data) || data[i] != ':' {
			return false
		}
		i = skipSpace(data, i+1)
		end = skipValue(data, i)
		if end < 0 {
			return false
		}
		if !fn(key, data[i:end]) {
			return true
		}
		i = skipSpace(data, end)
		if i >= len(data) {
			return false
		}
		switch data[i] {
		case '}':
			return true
		case ',':
			i = skipSpace(data, i+1)
		default:
			return false
		}
	}
	return false
}

func skipSpace(data []byte, i int) int {
	for i < len(data) && (data[i] == ' ' || data[i] == '\n' || data[i] == '\r' || data[i] == '\t') {
		i++
	}
	return i
}

// skipString returns the index after the string starting at data[i] == '"',
// or -1. It jumps from quote to quote (IndexByte); a quote preceded by an
// odd run of backslashes is escaped.
func skipString(data []byte, i int) int {
	for i++; i <= len(data); {
		j := bytes.IndexByte(data[i:], '"')
		if j < 0 {
			return -1
		}
		i += j
		k := i - 1
		for data[k] == '\\' { // stops at the opening quote at the latest
			k--
		}
		if (i-1-k)%2 == 0 {
			return i + 1
		}
		i++
	}
	return -1
}

// skipValue returns the index after the value starting at data[i], or -1.
// Nested objects and arrays are matched by depth, strings skipped whole.
func skipValue(data []byte, i int) int {
	if i >= len(data) {
		return -1
	}
	switch data[i] {
	case '"':
		return skipString(data, i)
	case '{', '[':
		depth := 0
		for ; i < len(data); i++ {
			switch data[i] {
			case '"':
				if i = skipString(data, i); i < 0 {
					return -1
				}
				i--
			case '{', '[':
				depth++
			case '}', ']':
				if depth--; depth == 0 {
					return i + 1
				}
			}
		}
		return -1
	}
	start := i
	for i < len(data) {
		switch data[i] {
		case ',', '}', ']', ' ', '\n', '\r', '\t':
			return i
		}
		i++
	}
	if i == start {
		return -1
	}
	return i
}

// stringValue decodes a raw JSON string value; "" for anything else.
func stringValue(raw []byte) string {
	if len(raw) < 2 || raw[0] != '"' {
		return ""
	}
	inner := raw[1 : len(raw)-1]
	for _, c := range inner {
		if c == '\\' {
			var s string
			json.Unmarshal(raw, &s)
			return s
		}
	}
	return string(inner)
}

// intValue decodes a raw JSON integer; 0 for anything else.
func intValue(raw []byte) int64 {
	n, err := strconv.ParseInt(string(raw), 10, 64)
	if err != nil {
		return 0
	}
	return n
}
