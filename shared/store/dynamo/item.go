package dynamo

import (
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
)

// item is one DynamoDB item. Items are built and read attribute by
// attribute, so each record's attribute names are visible in one function
// (see tokens.go, orgs.go, …). Empty strings, empty byte slices and zero
// times are left out, and read back as the zero value; so is an empty
// string or byte slice that an update left behind (see replace).
type item map[string]types.AttributeValue

// timeLayout is fixed-width and UTC, so stored times sort as text; sort keys
// and "since" conditions rely on it.
const timeLayout = "2006-01-02T15:04:05.000000000Z"

func formatTime(t time.Time) string { return t.UTC().Format(timeLayout) }

func str(v string) types.AttributeValue { return &types.AttributeValueMemberS{Value: v} }
func num(v int64) types.AttributeValue {
	return &types.AttributeValueMemberN{Value: strconv.FormatInt(v, 10)}
}
func bin(v []byte) types.AttributeValue      { return &types.AttributeValueMemberB{Value: v} }
func flag(v bool) types.AttributeValue       { return &types.AttributeValueMemberBOOL{Value: v} }
func stamp(t time.Time) types.AttributeValue { return str(formatTime(t)) }

// epoch is a TTL value: whole seconds since 1970.
func epoch(t time.Time) types.AttributeValue { return num(t.Unix()) }

func (it item) setStr(name, v string) {
	if v != "" {
		it[name] = str(v)
	}
}

func (it item) setNum(name string, v int64) { it[name] = num(v) }

func (it item) setBytes(name string, v []byte) {
	if len(v) > 0 {
		it[name] = bin(v)
	}
}

func (it item) setTime(name string, t time.Time) {
	if !t.IsZero() {
		it[name] = stamp(t)
	}
}

func (it item) setFlag(name string, v bool) {
	if v {
		it[name] = flag(true)
	}
}

// setMap stores a string map as M; nil is left out, an empty map is kept.
func (it item) setMap(name string, m map[string]string) {
	if m == nil {
		return
	}
	av := make(map[string]types.AttributeValue, len(m))
	for k, v := range m {
		av[k] = str(v)
	}
	it[name] = &types.AttributeValueMemberM{Value: av}
}

// setJSON stores v as a JSON string: for value objects (a token's policy)
// that are always read and written whole, whose parts already have a
// canonical text form (origins, IP prefixes).
func (it item) setJSON(name string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encode %s: %w", name, err)
	}
	it[name] = str(string(b))
	return nil
}

// with returns a copy of it plus the primary key.
func (it item) with(pk, sk string) item {
	out := make(item, len(it)+2)
	for k, v := range it {
		out[k] = v
	}
	out[AttrPK], out[AttrSK] = str(pk), str(sk)
	return out
}

// fields reads typed attributes from an item and remembers the first
// attribute of the wrong type, so a decoder reads every field and checks
// one error at the end.
type fields struct {
	it  item
	err error
}

func (f *fields) fail(name, want string) {
	if f.err == nil {
		f.err = fmt.Errorf("attribute %s is not %s", name, want)
	}
}

func (f *fields) str(name string) string {
	switch v := f.it[name].(type) {
	case nil:
		return ""
	case *types.AttributeValueMemberS:
		return v.Value
	}
	f.fail(name, "a string")
	return ""
}

func (f *fields) num(name string) int64 {
	switch v := f.it[name].(type) {
	case nil:
		return 0
	case *types.AttributeValueMemberN:
		n, err := strconv.ParseInt(v.Value, 10, 64)
		if err != nil {
			f.fail(name, "an integer")
		}
		return n
	}
	f.fail(name, "a number")
	return 0
}

func (f *fields) bytes(name string) []byte {
	switch v := f.it[name].(type) {
	case nil:
		return nil
	case *types.AttributeValueMemberB:
		if len(v.Value) == 0 {
			return nil
		}
		return v.Value
	}
	f.fail(name, "binary")
	return nil
}

func (f *fields) time(name string) time.Time {
	s := f.str(name)
	if s == "" {
		return time.Time{}
	}
	t, err := time.Parse(timeLayout, s)
	if err != nil {
		f.fail(name, "a time")
	}
	return t
}

func (f *fields) flag(name string) bool {
	switch v := f.it[name].(type) {
	case nil:
		return false
	case *types.AttributeValueMemberBOOL:
		return v.Value
	}
	f.fail(name, "a boolean")
	return false
}

func (f *fields) strMap(name string) map[string]string {
	switch v := f.it[name].(type) {
	case nil:
		return nil
	case *types.AttributeValueMemberM:
		m := make(map[string]string, len(v.Value))
		for k, av := range v.Value {
			s, ok := av.(*types.AttributeValueMemberS)
			if !ok {
				f.fail(name, "a map of strings")
				return nil
			}
			m[k] = s.Value
		}
		return m
	}
	f.fail(name, "a map")
	return nil
}

func (f *fields) json(name string, v any) {
	s := f.str(name)
	if s == "" {
		return
	}
	if err := json.Unmarshal([]byte(s), v); err != nil && f.err == nil {
		f.err = fmt.Errorf("attribute %s: %w", name, err)
	}
}
