package dynamo

import (
	"maps"
	"slices"
	"strconv"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
)

// expr collects the attribute names and values that one request's
// expressions refer to. Expressions are written as DynamoDB text, with
// e.name and e.value standing in for names and values, so each reads as
// what the service receives:
//
//	e.name("version") + " = " + e.value(num(3))
//
// Every name goes through a placeholder, so none can clash with one of
// DynamoDB's reserved words (ttl, name, key, …).
type expr struct {
	names  map[string]string
	values map[string]types.AttributeValue
}

// name returns the placeholder of an attribute name. kve's attribute names
// are lower case letters and underscores, valid in a placeholder as is.
func (e *expr) name(n string) string {
	if e.names == nil {
		e.names = map[string]string{}
	}
	e.names["#"+n] = n
	return "#" + n
}

// value returns a fresh placeholder for v.
func (e *expr) value(v types.AttributeValue) string {
	if e.values == nil {
		e.values = map[string]types.AttributeValue{}
	}
	p := ":v" + strconv.Itoa(len(e.values))
	e.values[p] = v
	return p
}

// Names and Values return the maps for the request, nil when empty
// (DynamoDB rejects empty maps).
func (e *expr) Names() map[string]string { return e.names }

func (e *expr) Values() map[string]types.AttributeValue { return e.values }

// notExists is the condition of a write that creates an item.
func (e *expr) notExists() string { return "attribute_not_exists(" + e.name(AttrPK) + ")" }

// exists is the condition of a write that changes an item.
func (e *expr) exists() string { return "attribute_exists(" + e.name(AttrPK) + ")" }

// absent is the condition that an attribute holds no value: missing, or
// emptied by replace.
func (e *expr) absent(name string) string {
	n := e.name(name)
	return "(attribute_not_exists(" + n + ") OR " + n + " = " + e.value(str("")) + ")"
}

// replace returns an update expression that turns the stored item old into
// next, leaving the key and the attributes named in keep alone. Unlike a
// Put, it keeps what other writers own (a token's last_used, a key's gen).
// An attribute only old has is set to its type's empty value rather than
// removed: readers treat empty as absent (see fields), and minidyn, the
// emulator the tests always run on, ignores REMOVE (v0.8.2), so this is the
// form that behaves the same on both.
func replace(e *expr, old, next item, keep ...string) string {
	skip := map[string]bool{AttrPK: true, AttrSK: true}
	for _, k := range keep {
		skip[k] = true
	}
	var set string
	for _, name := range slices.Sorted(maps.Keys(next)) {
		if !skip[name] {
			set += sep(set) + e.name(name) + " = " + e.value(next[name])
		}
	}
	for _, name := range slices.Sorted(maps.Keys(old)) {
		if _, ok := next[name]; !ok && !skip[name] {
			set += sep(set) + e.name(name) + " = " + e.value(emptied(old[name]))
		}
	}
	return "SET " + set
}

// emptied is the empty value of av's type.
func emptied(av types.AttributeValue) types.AttributeValue {
	switch av.(type) {
	case *types.AttributeValueMemberN:
		return num(0)
	case *types.AttributeValueMemberB:
		return bin([]byte{})
	case *types.AttributeValueMemberBOOL:
		return flag(false)
	case *types.AttributeValueMemberM:
		return &types.AttributeValueMemberM{Value: map[string]types.AttributeValue{}}
	}
	return str("")
}

func sep(list string) string {
	if list == "" {
		return ""
	}
	return ", "
}
