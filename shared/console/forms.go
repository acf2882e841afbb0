package console

import (
	"errors"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/keyvault-edge/kve/shared/kve"
)

// form is a submitted form as its page shows it again after manage refused
// it: the values (never a secret's: password and key fields are not kept)
// and a message next to the field it concerns.
type form struct {
	Values url.Values
	Errors map[string]string
	Error  string // a message that concerns no single field
}

func newForm(v url.Values) *form { return &form{Values: v, Errors: map[string]string{}} }

// Get returns a field's submitted value.
func (f *form) Get(name string) string { return f.Values.Get(name) }

// Checked reports whether a checkbox was submitted checked.
func (f *form) Checked(name string) bool { return f.Values.Get(name) != "" }

// Err returns the message for a field, or "".
func (f *form) Err(name string) string { return f.Errors[name] }

// Failed reports whether the form holds any message.
func (f *form) Failed() bool { return f.Error != "" || len(f.Errors) > 0 }

// summary joins every message, for a page that cannot show the form.
func (f *form) summary() string {
	msgs := []string{}
	if f.Error != "" {
		msgs = append(msgs, f.Error)
	}
	for _, field := range slices.Sorted(maps.Keys(f.Errors)) {
		msgs = append(msgs, f.Errors[field])
	}
	return strings.Join(msgs, " ")
}

// fields says which form field an error code of manage (or kve) concerns,
// so that its message shows next to that field.
var fields = map[string]string{
	"invalid_setup_code":  "code",
	"invalid_email":       "email",
	"invalid_name":        "name",
	"invalid_password":    "password",
	"wrong_password":      "current_password",
	"invalid_key":         "key",
	"invalid_env":         "env",
	"invalid_origin":      "origins",
	"invalid_policy":      "origins",
	"invalid_ips":         "ips",
	"invalid_paths":       "paths",
	"invalid_rpm":         "rpm",
	"invalid_budget":      "budget_usd",
	"invalid_expires_in":  "expires_in",
	"invalid_provider":    "provider",
	"invalid_upstream":    "upstream",
	"invalid_auth":        "auth_name",
	"invalid_secret":      "secret",
	"key_exists":          "name",
	"invalid_role":        "role",
	"already_member":      "email",
	"invalid_endpoint":    "endpoint",
	"invalid_protocol":    "kind",
	"mail_not_configured": "kind",
	"invalid_price":       "prices",
}

// messages replaces manage's message where it names a JSON field the form
// does not have.
var messages = map[string]string{
	"invalid_policy": "Add at least one browser origin, or allow server use (or both): otherwise nothing could use the token.",
}

// refuse records err on the form and returns the status to render it with.
// Errors that are not the user's to fix (the store is down, a bug) come back
// as they are, for the error page.
func (f *form) refuse(err error) (int, error) {
	kind := kve.KindOf(err)
	switch kind {
	case kve.KindInvalid, kve.KindConflict, kve.KindForbidden, kve.KindGone, kve.KindRateLimited, kve.KindUnauthenticated:
	default:
		return 0, err
	}
	code := kve.CodeOf(err)
	msg, ok := messages[code]
	if !ok {
		msg = kve.MessageOf(err)
	}
	if field, ok := fields[code]; ok {
		f.Errors[field] = msg
	} else {
		f.Error = msg
	}
	return statuses[kind], nil
}

// parseForm reads a urlencoded form body of at most maxForm bytes.
func (s *server) parseForm(w http.ResponseWriter, r *http.Request) (*form, error) {
	r.Body = http.MaxBytesReader(w, r.Body, s.maxForm)
	if err := r.ParseForm(); err != nil {
		if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
			return nil, kve.Errorf(kve.KindTooLarge, "too_large", "The form is too large.")
		}
		return nil, kve.Wrap(kve.KindInvalid, "invalid_form", "The form could not be read.", err)
	}
	return newForm(r.PostForm), nil
}

// lines splits a textarea into its non-empty lines, trimmed: origins and IP
// ranges are entered one per line.
func lines(s string) []string {
	out := []string{}
	for l := range strings.Lines(s) {
		if l = strings.TrimSpace(l); l != "" {
			out = append(out, l)
		}
	}
	return out
}

// optionalInt reads a number field that may be left empty (nil).
func optionalInt(f *form, name string) (*int, bool) {
	v := strings.TrimSpace(f.Get(name))
	if v == "" {
		return nil, true
	}
	n, err := strconv.Atoi(v)
	if err != nil {
		f.Errors[name] = "Enter a whole number, or leave the field empty."
		return nil, false
	}
	return &n, true
}

// optionalFloat reads an amount field that may be left empty (nil).
func optionalFloat(f *form, name string) (*float64, bool) {
	v := strings.TrimSpace(f.Get(name))
	if v == "" {
		return nil, true
	}
	n, err := strconv.ParseFloat(v, 64)
	if err != nil {
		f.Errors[name] = "Enter an amount in dollars such as 2 or 2.50, or leave the field empty."
		return nil, false
	}
	return &n, true
}
