package dynamo

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"
	"github.com/truora/minidyn/server"

	"github.com/keyvault-edge/kve/shared/kve"
	"github.com/keyvault-edge/kve/shared/store"
)

// storeCalls is one call of each kind the store makes, for tests that
// check how every path fails.
func storeCalls(e *env, s seeded) map[string]func() error {
	return map[string]func() error{
		"TokenByHash": func() error { _, err := e.store.TokenByHash(e.ctx, s.token.Hash); return err },
		"Token":       func() error { _, err := e.store.Token(e.ctx, s.org.ID, s.token.ID); return err },
		"Tokens":      func() error { _, err := e.store.Tokens(e.ctx, s.org.ID, store.TokenFilter{}); return err },
		"CreateToken": func() error {
			tok := e.newToken(s.key)
			return e.store.CreateToken(e.ctx, tok, e.event(s.org.ID, "token.create", tok.ID))
		},
		"UpdateToken": func() error {
			_, err := e.store.UpdateToken(e.ctx, s.org.ID, s.token.ID, func(*kve.Token) error { return nil },
				e.event(s.org.ID, "token.update", s.token.ID))
			return err
		},
		"RecordUsage": func() error {
			return e.store.RecordUsage(e.ctx, []kve.Usage{{RequestID: "req_e", At: testNow, OrgID: s.org.ID, TokenID: s.token.ID}})
		},
		"SessionByHash": func() error { _, err := e.store.SessionByHash(e.ctx, []byte("h")); return err },
		"SetupDone":     func() error { _, err := e.store.SetupDone(e.ctx); return err },
		"Members":       func() error { _, err := e.store.Members(e.ctx, s.org.ID); return err },
		"AddEvent":      func() error { return e.store.AddEvent(e.ctx, e.event(s.org.ID, "token.reveal", s.token.ID)) },
	}
}

// TestBackendErrors makes DynamoDB answer 500 (after the SDK's retries),
// then makes it unreachable: every call is KindUnavailable, with the cause
// kept for the log.
func TestBackendErrors(t *testing.T) {
	e := newEnv(t)
	s := e.seed()
	e.srv.EmulateFailure(server.FailureConditionInternalServerError)
	for name, call := range storeCalls(e, s) {
		t.Run("500/"+name, func(t *testing.T) {
			err := call()
			wantKind(t, name, err, kve.KindUnavailable)
			var ise *types.InternalServerError
			if !errors.As(err, &ise) {
				t.Errorf("%s: error %v does not keep the InternalServerError", name, err)
			}
		})
	}

	e.srv.EmulateFailure(server.FailureConditionNone)
	dead := httptest.NewServer(http.NotFoundHandler())
	dead.Close()
	gone := Open(newClient(dead.URL), e.table)
	_, err := gone.TokenByHash(e.ctx, s.token.Hash)
	wantKind(t, "TokenByHash on an unreachable endpoint", err, kve.KindUnavailable)
	var opErr *net.OpError
	if !errors.As(err, &opErr) {
		t.Errorf("error %v does not keep the connection error", err)
	}
}

func TestConditionFailures(t *testing.T) {
	e := newEnv(t)
	s := e.seed()
	dupKey := e.newKey(s.org.ID, s.key.Name)
	ev := e.event(s.org.ID, "token.reveal", s.token.ID)
	e.ok(e.store.AddEvent(e.ctx, ev))
	for _, tc := range []struct {
		name string
		err  error
		kind kve.Kind
		code string
	}{
		{"key name taken", e.store.CreateKey(e.ctx, dupKey, e.event(s.org.ID, "key.create", dupKey.ID)), kve.KindConflict, "key_exists"},
		{"event id taken", e.store.AddEvent(e.ctx, ev), kve.KindConflict, "duplicate_event"},
		{"token id taken", e.store.CreateToken(e.ctx, s.token, e.event(s.org.ID, "token.create", s.token.ID)), kve.KindConflict, "token_exists"},
		{"touch of an unknown session", e.store.TouchSession(e.ctx, "ses_none", testNow), kve.KindNotFound, "not_found"},
		{"delete of an unknown session", e.store.DeleteSession(e.ctx, "usr_none", "ses_none"), kve.KindNotFound, "not_found"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			wantKind(t, tc.name, tc.err, tc.kind)
			if code := kve.CodeOf(tc.err); code != tc.code {
				t.Errorf("code = %q, want %q", code, tc.code)
			}
		})
	}
}

func TestTranslate(t *testing.T) {
	resp := func(status int) *smithyhttp.Response {
		return &smithyhttp.Response{Response: &http.Response{StatusCode: status}}
	}
	cancelled := func(codes ...string) error {
		tce := &types.TransactionCanceledException{}
		for _, c := range codes {
			tce.CancellationReasons = append(tce.CancellationReasons, types.CancellationReason{Code: aws.String(c)})
		}
		return tce
	}
	for _, tc := range []struct {
		name string
		err  error
		want kve.Kind
	}{
		{"condition", &types.ConditionalCheckFailedException{}, kve.KindConflict},
		{"transaction condition", cancelled("None", "ConditionalCheckFailed"), kve.KindConflict},
		{"transaction conflict", cancelled("TransactionConflict", "None"), kve.KindConflict},
		{"transaction throttled", cancelled("None", "ThrottlingError"), kve.KindUnavailable},
		{"provisioned throughput", &types.ProvisionedThroughputExceededException{}, kve.KindUnavailable},
		{"request limit", &types.RequestLimitExceeded{}, kve.KindUnavailable},
		{"throttling", &smithy.GenericAPIError{Code: "ThrottlingException"}, kve.KindUnavailable},
		{"internal server error", &types.InternalServerError{}, kve.KindUnavailable},
		{"503", &smithyhttp.ResponseError{Response: resp(503), Err: errors.New("service unavailable")}, kve.KindUnavailable},
		{"timeout", context.DeadlineExceeded, kve.KindUnavailable},
		{"connection", &net.OpError{Op: "dial", Err: errors.New("connection refused")}, kve.KindUnavailable},
		{"validation", &smithy.GenericAPIError{Code: "ValidationException"}, kve.KindInternal},
		{"missing table", &types.ResourceNotFoundException{}, kve.KindInternal},
		{"access denied", &smithyhttp.ResponseError{Response: resp(400), Err: &smithy.GenericAPIError{Code: "AccessDeniedException"}}, kve.KindInternal},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := fmt.Errorf("operation error DynamoDB: Query: %w", tc.err)
			got := translate(err)
			if kve.KindOf(got) != tc.want {
				t.Errorf("translate(%v) kind = %v, want %v", err, kve.KindOf(got), tc.want)
			}
			if !errors.Is(got, tc.err) {
				t.Errorf("translate(%v) lost the cause", err)
			}
		})
	}
	if translate(nil) != nil {
		t.Error("translate(nil) != nil")
	}
}
