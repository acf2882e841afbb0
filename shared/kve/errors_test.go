package kve_test

import (
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"

	"github.com/keyvault-edge/kve/shared/kve"
)

// errInternalCause is an error whose text must never reach a user: it names a
// table, an upstream URL and a fake key.
var errInternalCause = errors.New("dynamodb: table kve-prod at https://internal.example: sk-test-FAKE-cause")

func TestErrorClassification(t *testing.T) {
	invalid := kve.Errorf(kve.KindInvalid, "invalid_origin", "%q is not a valid origin", "null")
	unavailable := kve.Wrap(kve.KindUnavailable, "store_unavailable", "the store is unavailable", errInternalCause)
	noCode := kve.Errorf(kve.KindForbidden, "", "not allowed")

	tests := []struct {
		name        string
		err         error
		wantKind    kve.Kind
		wantCode    string
		wantMessage string
	}{
		{"Errorf", invalid, kve.KindInvalid, "invalid_origin", `"null" is not a valid origin`},
		{"Wrap", unavailable, kve.KindUnavailable, "store_unavailable", "the store is unavailable"},
		{"wrapped once", fmt.Errorf("load token: %w", unavailable), kve.KindUnavailable, "store_unavailable", "the store is unavailable"},
		{"wrapped twice", fmt.Errorf("proxy: %w", fmt.Errorf("load token: %w", invalid)), kve.KindInvalid, "invalid_origin", `"null" is not a valid origin`},
		{"joined", errors.Join(io.EOF, noCode), kve.KindForbidden, "forbidden", "not allowed"},
		{"code defaults to kind", noCode, kve.KindForbidden, "forbidden", "not allowed"},
		{"ErrNotFound", fmt.Errorf("token tok_1: %w", kve.ErrNotFound), kve.KindNotFound, "not_found", "not found"},
		{"ErrConflict", kve.ErrConflict, kve.KindConflict, "conflict", "conflicts with the current state"},
		{"ErrUnavailable", kve.ErrUnavailable, kve.KindUnavailable, "unavailable", "temporarily unavailable"},
		{"outermost kind wins", kve.Wrap(kve.KindForbidden, "denied", "denied", kve.ErrNotFound), kve.KindForbidden, "denied", "denied"},
		{"plain error", errInternalCause, kve.KindInternal, "internal", "internal error"},
		{"wrapped plain error", fmt.Errorf("save: %w", errInternalCause), kve.KindInternal, "internal", "internal error"},
		{"nil", nil, kve.KindInternal, "internal", "internal error"},
		{"internal kind with a message", kve.Wrap(kve.KindInternal, "bug", "seal token sk-test-FAKE-msg", errInternalCause), kve.KindInternal, "bug", "internal error"},
		{"internal over a client error", kve.Wrap(kve.KindInternal, "", "", invalid), kve.KindInternal, "internal", "internal error"},
		{"empty message", kve.Wrap(kve.KindUnavailable, "", "", errInternalCause), kve.KindUnavailable, "unavailable", "internal error"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := kve.KindOf(tc.err); got != tc.wantKind {
				t.Errorf("KindOf = %v, want %v", got, tc.wantKind)
			}
			if got := kve.CodeOf(tc.err); got != tc.wantCode {
				t.Errorf("CodeOf = %q, want %q", got, tc.wantCode)
			}
			msg := kve.MessageOf(tc.err)
			if msg != tc.wantMessage {
				t.Errorf("MessageOf = %q, want %q", msg, tc.wantMessage)
			}
			for _, internal := range []string{"dynamodb", "internal.example", "sk-test-FAKE", "load token", "proxy:"} {
				if strings.Contains(msg, internal) {
					t.Errorf("MessageOf = %q holds the internal %q", msg, internal)
				}
			}
		})
	}
}

func TestErrorText(t *testing.T) {
	tests := []struct {
		name string
		err  *kve.Error
		want string
	}{
		{"message only", &kve.Error{Kind: kve.KindInvalid, Message: "bad"}, "bad"},
		{"cause only", &kve.Error{Kind: kve.KindInternal, Err: io.EOF}, "EOF"},
		{"both", &kve.Error{Kind: kve.KindUnavailable, Message: "store down", Err: io.EOF}, "store down: EOF"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.err.Error(); got != tc.want {
				t.Errorf("Error() = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestErrorUnwrap(t *testing.T) {
	err := fmt.Errorf("load: %w", kve.Wrap(kve.KindUnavailable, "", "store down", errInternalCause))
	if !errors.Is(err, errInternalCause) {
		t.Error("errors.Is does not find the cause through a kve error")
	}
	if !errors.Is(fmt.Errorf("x: %w", kve.ErrNotFound), kve.ErrNotFound) {
		t.Error("errors.Is does not find ErrNotFound through wrapping")
	}
	var e *kve.Error
	if !errors.As(err, &e) || e.Code != "" || e.Kind != kve.KindUnavailable {
		t.Errorf("errors.As = %+v", e)
	}
}

func TestKindString(t *testing.T) {
	want := map[kve.Kind]string{
		kve.KindInternal:        "internal",
		kve.KindInvalid:         "invalid",
		kve.KindUnauthenticated: "unauthenticated",
		kve.KindForbidden:       "forbidden",
		kve.KindNotFound:        "not_found",
		kve.KindConflict:        "conflict",
		kve.KindGone:            "gone",
		kve.KindTooLarge:        "too_large",
		kve.KindRateLimited:     "rate_limited",
		kve.KindUnavailable:     "unavailable",
		kve.Kind(42):            "kind(42)",
		kve.Kind(-1):            "kind(-1)",
	}
	for k, s := range want {
		t.Run(s, func(t *testing.T) {
			if got := kindString(t, k); got != s {
				t.Errorf("Kind(%d).String() = %q, want %q", int(k), got, s)
			}
		})
	}
}

// kindString calls k.String, turning a panic into a test failure so that the
// other cases still run.
func kindString(t *testing.T, k kve.Kind) (s string) {
	t.Helper()
	defer func() {
		if r := recover(); r != nil {
			t.Errorf("Kind(%d).String() panics: %v", int(k), r)
		}
	}()
	return k.String()
}
