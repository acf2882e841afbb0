package sqlite

import (
	"cmp"
	"encoding/binary"
	"errors"
	"slices"
	"strings"
	"time"

	"github.com/keyvault-edge/kve/shared/kve"
)

// Usage records are stored in chunks (migration 0006): a row of
// usage_chunks holds up to chunkRecords records of one organization, token
// and member, sorted by (arrival, request id), that arrived within
// chunkSpan of the first. The row's columns carry what lists filter and
// sort by; the records are encoded in its data:
//
//	data    = version(1) record…
//	record  = string(request id) uvarint(at − first_at, ms)
//	          string(env) string(provider) string(method) string(path)
//	          string(model) string(client ip) string(origin) string(reason)
//	          varint(status) varint(duration ns) varint(upstream ns)
//	          varint(bytes in) varint(bytes out) varint(prompt tokens)
//	          varint(completion tokens) varint(cached tokens)
//	          varint(reasoning tokens) varint(cost micro-USD)
//	          byte(1 estimated | 2 client aborted)
//	string  = uvarint(0): the previous record's value (the first record's
//	          previous is ""), or uvarint(n+1) and n bytes
//
// The organization, token and member are the row's. The user agent is not
// stored, as it was not in the usage table.
const (
	chunkRecords = 256
	chunkSpan    = time.Minute
	chunkVersion = 1
)

// Record flags.
const (
	flagEstimated = 1 << iota
	flagClientAborted
)

// chunkKey is what every record of a chunk shares.
type chunkKey struct{ org, token, user string }

func keyOf(u *kve.Usage) chunkKey { return chunkKey{u.OrgID, u.TokenID, u.UserID} }

// byArrival orders a chunk's records: by arrival (as stored, in
// milliseconds), then request id.
func byArrival(a, b *kve.Usage) int {
	if c := cmp.Compare(millis(a.At), millis(b.At)); c != 0 {
		return c
	}
	return strings.Compare(a.RequestID, b.RequestID)
}

// chunked cuts records of one key, sorted byArrival, into chunks and calls
// write with each.
func chunked(records []*kve.Usage, write func([]*kve.Usage) error) error {
	for len(records) > 0 {
		end := min(len(records), chunkRecords)
		last := millis(records[0].At) + chunkSpan.Milliseconds()
		// The first record that arrived too late for this chunk, if any.
		end, _ = slices.BinarySearchFunc(records[:end], last, func(u *kve.Usage, t int64) int {
			if millis(u.At) > t {
				return 1
			}
			return -1
		})
		if err := write(records[:end]); err != nil {
			return err
		}
		records = records[end:]
	}
	return nil
}

// appendChunk appends the data of a chunk of records, sorted byArrival.
func appendChunk(b []byte, records []*kve.Usage) []byte {
	b = append(b, chunkVersion)
	first := millis(records[0].At)
	prev := &kve.Usage{}
	for _, u := range records {
		b = appendString(b, u.RequestID, "")
		b = binary.AppendUvarint(b, uint64(millis(u.At)-first))
		b = appendString(b, string(u.Env), string(prev.Env))
		b = appendString(b, u.Provider, prev.Provider)
		b = appendString(b, u.Method, prev.Method)
		b = appendString(b, u.Path, prev.Path)
		b = appendString(b, u.Model, prev.Model)
		b = appendString(b, u.ClientIP, prev.ClientIP)
		b = appendString(b, u.Origin, prev.Origin)
		b = appendString(b, u.Reason, prev.Reason)
		for _, v := range [...]int64{int64(u.Status), int64(u.Duration), int64(u.Upstream), u.BytesIn, u.BytesOut,
			u.PromptTokens, u.CompletionTokens, u.CachedTokens, u.ReasoningTokens, u.CostMicro} {
			b = binary.AppendVarint(b, v)
		}
		var flags byte
		if u.Estimated {
			flags |= flagEstimated
		}
		if u.ClientAborted {
			flags |= flagClientAborted
		}
		b = append(b, flags)
		prev = u
	}
	return b
}

func appendString(b []byte, s, prev string) []byte {
	if s == prev {
		return append(b, 0)
	}
	b = binary.AppendUvarint(b, uint64(len(s))+1)
	return append(b, s...)
}

var errChunk = errors.New("usage chunk is corrupt")

// decodeChunk appends the records of a chunk to out. Their strings share
// data's memory: one allocation for the chunk, none per record.
func decodeChunk(out []kve.Usage, key chunkKey, first int64, data string) ([]kve.Usage, error) {
	r := chunkReader{s: data}
	if r.byte() != chunkVersion {
		return out, errChunk
	}
	var prev kve.Usage
	for !r.bad { // a chunk holds one record at least
		u := kve.Usage{OrgID: key.org, TokenID: key.token, UserID: key.user}
		u.RequestID = r.string("")
		u.At = fromMillis(first + int64(r.uvarint()))
		u.Env = kve.Env(r.string(string(prev.Env)))
		u.Provider = r.string(prev.Provider)
		u.Method = r.string(prev.Method)
		u.Path = r.string(prev.Path)
		u.Model = r.string(prev.Model)
		u.ClientIP = r.string(prev.ClientIP)
		u.Origin = r.string(prev.Origin)
		u.Reason = r.string(prev.Reason)
		u.Status = int(r.varint())
		u.Duration = time.Duration(r.varint())
		u.Upstream = time.Duration(r.varint())
		u.BytesIn = r.varint()
		u.BytesOut = r.varint()
		u.PromptTokens = r.varint()
		u.CompletionTokens = r.varint()
		u.CachedTokens = r.varint()
		u.ReasoningTokens = r.varint()
		u.CostMicro = r.varint()
		flags := r.byte()
		u.Estimated = flags&flagEstimated != 0
		u.ClientAborted = flags&flagClientAborted != 0
		out = append(out, u)
		prev = u
		if r.i == len(r.s) {
			break
		}
	}
	if r.bad {
		return out, errChunk
	}
	return out, nil
}

// chunkReader reads a chunk's data; a read past its end sets bad and
// returns zero values.
type chunkReader struct {
	s   string
	i   int
	bad bool
}

func (r *chunkReader) byte() byte {
	if r.i >= len(r.s) {
		r.bad = true
		return 0
	}
	r.i++
	return r.s[r.i-1]
}

func (r *chunkReader) uvarint() uint64 {
	var x uint64
	for shift := 0; shift < 64; shift += 7 {
		c := r.byte()
		x |= uint64(c&0x7f) << shift
		if c < 0x80 {
			return x
		}
	}
	r.bad = true
	return 0
}

func (r *chunkReader) varint() int64 {
	ux := r.uvarint()
	x := int64(ux >> 1)
	if ux&1 != 0 {
		x = ^x
	}
	return x
}

func (r *chunkReader) string(prev string) string {
	n := r.uvarint()
	if n == 0 {
		return prev
	}
	if n-1 > uint64(len(r.s)-r.i) {
		r.bad = true
		return ""
	}
	s := r.s[r.i : r.i+int(n-1)]
	r.i += int(n - 1)
	return s
}
