package api

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"

	"github.com/keyvault-edge/kve/shared/kve"
)

// writeJSON writes v with status. Answers may carry token values, so no
// cache may keep them.
func writeJSON(w http.ResponseWriter, status int, v any) {
	h := w.Header()
	h.Set("Content-Type", "application/json; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v) // an error here is the client gone; nothing left to tell it
}

// list is the shape of every list answer: items, never null, and the cursor
// of the next page when there is one.
type list[T any] struct {
	Items []T    `json:"items"`
	Next  string `json:"next,omitempty"`
}

// decode reads a request body into v: at most maxBody bytes, exactly one JSON
// value, no field v does not declare (so a privilege-raising field such as
// owner_id or org_id is refused rather than ignored).
func (s *server) decode(w http.ResponseWriter, r *http.Request, v any) error {
	body := http.MaxBytesReader(w, r.Body, s.maxBody)
	dec := json.NewDecoder(body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return decodeErr(err)
	}
	var extra json.RawMessage
	if err := dec.Decode(&extra); err != io.EOF {
		if err == nil {
			return kve.Errorf(kve.KindInvalid, "invalid_json", "the request body must be exactly one JSON value")
		}
		return decodeErr(err)
	}
	return nil
}

func decodeErr(err error) error {
	var tooLarge *http.MaxBytesError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &tooLarge):
		return kve.Errorf(kve.KindTooLarge, "request_too_large", "the request body is over %d bytes", tooLarge.Limit)
	case errors.Is(err, io.EOF):
		return kve.Errorf(kve.KindInvalid, "invalid_json", "the request body is empty; send a JSON object")
	case errors.As(err, &typ):
		return kve.Errorf(kve.KindInvalid, "invalid_json", "field %q has the wrong type", kve.Truncate(typ.Field, 64))
	}
	// encoding/json has no error type for unknown fields; the message names
	// the field, which the caller sent.
	if field, ok := strings.CutPrefix(err.Error(), "json: unknown field "); ok {
		return kve.Errorf(kve.KindInvalid, "unknown_field", "unknown field %s", kve.Truncate(field, 64))
	}
	return kve.Wrap(kve.KindInvalid, "invalid_json", "the request body is not valid JSON", err)
}
