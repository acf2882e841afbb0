package sqlite

import (
	"encoding/base64"
	"math"
	"strconv"
	"strings"

	"github.com/keyvault-edge/kve/shared/kve"
	"github.com/keyvault-edge/kve/shared/store"
)

// cursor is the sort key of the last item of a page: lists run newest first
// by (time, id), and the next page starts strictly after it. Callers see it
// only as opaque base64.
type cursor struct {
	at int64 // unix milliseconds
	id string
}

// start is the position before the first item of a list.
var start = cursor{at: math.MaxInt64}

func (c cursor) String() string {
	return base64.RawURLEncoding.EncodeToString([]byte(strconv.FormatInt(c.at, 10) + "|" + c.id))
}

// parseCursor reads a Page.Next; "" is the start of the list.
func parseCursor(s string) (cursor, error) {
	if s == "" {
		return start, nil
	}
	invalid := kve.Errorf(kve.KindInvalid, "invalid_cursor", "cursor is not valid; start the list again")
	raw, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return cursor{}, invalid
	}
	at, id, ok := strings.Cut(string(raw), "|")
	if !ok || id == "" {
		return cursor{}, invalid
	}
	c := cursor{id: id}
	if c.at, err = strconv.ParseInt(at, 10, 64); err != nil {
		return cursor{}, invalid
	}
	return c, nil
}

// page cuts the limit+1 rows a list query fetched into a page: the extra row
// only says that there is a next page.
func page[T any](items []T, limit int, key func(*T) cursor) store.Page[T] {
	if len(items) <= limit {
		return store.Page[T]{Items: items}
	}
	items = items[:limit]
	return store.Page[T]{Items: items, Next: key(&items[limit-1]).String()}
}
