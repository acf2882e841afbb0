package kve

import (
	"errors"
	"fmt"
)

// Kind classifies an error for the edge that answers it: the management API
// maps kinds to HTTP statuses in one place, the proxy maps them to its codes.
type Kind int

// Error kinds. KindInternal is the zero value so that an unclassified error is
// never mistaken for a client mistake.
const (
	KindInternal        Kind = iota // a bug or an unexpected failure; details stay in the log
	KindInvalid                     // the request is malformed or breaks a rule
	KindUnauthenticated             // no credential, or one that is not valid
	KindForbidden                   // authenticated, but not allowed
	KindNotFound                    // does not exist, or not visible to the caller
	KindConflict                    // clashes with current state (duplicate, last owner, …)
	KindGone                        // existed but can no longer be used (used invite, expired link)
	KindTooLarge                    // a request body over its limit
	KindRateLimited                 // over a rate limit or budget
	KindUnavailable                 // a dependency (store, secrets) cannot answer now
)

var kindNames = [...]string{"internal", "invalid", "unauthenticated", "forbidden",
	"not_found", "conflict", "gone", "too_large", "rate_limited", "unavailable"}

func (k Kind) String() string {
	if k >= 0 && int(k) < len(kindNames) {
		return kindNames[k]
	}
	return fmt.Sprintf("kind(%d)", int(k))
}

// Error separates what a user may read (Message, Code) from the internal cause
// (Err), which is only ever logged.
type Error struct {
	Kind    Kind
	Code    string // machine-readable, stable; defaults to Kind's name
	Message string // safe to show to the caller
	Err     error  // internal cause; never shown
}

func (e *Error) Error() string {
	if e.Err == nil {
		return e.Message
	}
	if e.Message == "" {
		return e.Err.Error()
	}
	return e.Message + ": " + e.Err.Error()
}

func (e *Error) Unwrap() error { return e.Err }

// Errorf returns an *Error of the given kind whose user-visible message is the
// formatted text. Pass no secret among the arguments.
func Errorf(kind Kind, code, format string, args ...any) *Error {
	return &Error{Kind: kind, Code: code, Message: fmt.Sprintf(format, args...)}
}

// Wrap classifies an internal error: the cause is kept for the log, the caller
// sees only message.
func Wrap(kind Kind, code, message string, err error) *Error {
	return &Error{Kind: kind, Code: code, Message: message, Err: err}
}

// KindOf returns the kind of the first *Error in err's chain, or KindInternal.
func KindOf(err error) Kind {
	if err == nil {
		return KindInternal // without errors.As, whose target escapes: the hot path asks of nil
	}
	var e *Error
	if errors.As(err, &e) {
		return e.Kind
	}
	return KindInternal
}

// CodeOf returns the code of the first *Error in err's chain, defaulting to its kind's name.
func CodeOf(err error) string {
	if err == nil {
		return KindInternal.String()
	}
	var e *Error
	if errors.As(err, &e) {
		if e.Code != "" {
			return e.Code
		}
		return e.Kind.String()
	}
	return KindInternal.String()
}

// MessageOf returns the user-safe message of err: the message of its first
// *Error, or a generic sentence for anything unclassified.
func MessageOf(err error) string {
	var e *Error
	if errors.As(err, &e) && e.Message != "" && e.Kind != KindInternal {
		return e.Message
	}
	return "internal error"
}

// Common errors the store returns at its boundary.
var (
	ErrNotFound    = &Error{Kind: KindNotFound, Code: "not_found", Message: "not found"}
	ErrConflict    = &Error{Kind: KindConflict, Code: "conflict", Message: "conflicts with the current state"}
	ErrUnavailable = &Error{Kind: KindUnavailable, Code: "unavailable", Message: "temporarily unavailable"}
)
