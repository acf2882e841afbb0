package secrets

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net"
	"slices"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager/types"
	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/keyvault-edge/kve/shared/kve"
)

// ManagerAPI is the part of *secretsmanager.Client that Manager uses.
type ManagerAPI interface {
	CreateSecret(ctx context.Context, in *secretsmanager.CreateSecretInput, optFns ...func(*secretsmanager.Options)) (*secretsmanager.CreateSecretOutput, error)
	PutSecretValue(ctx context.Context, in *secretsmanager.PutSecretValueInput, optFns ...func(*secretsmanager.Options)) (*secretsmanager.PutSecretValueOutput, error)
	GetSecretValue(ctx context.Context, in *secretsmanager.GetSecretValueInput, optFns ...func(*secretsmanager.Options)) (*secretsmanager.GetSecretValueOutput, error)
	DeleteSecret(ctx context.Context, in *secretsmanager.DeleteSecretInput, optFns ...func(*secretsmanager.Options)) (*secretsmanager.DeleteSecretOutput, error)
}

// Manager is the Store on AWS Secrets Manager. Each name is one secret; each
// Put a new version, which Secrets Manager labels AWSCURRENT while the one
// before becomes AWSPREVIOUS and stays readable by id. Deleted secrets wait
// out a 7-day recovery window, during which their name cannot be used again
// (Put is KindConflict) and reads are KindNotFound.
type Manager struct {
	api      ManagerAPI
	kmsKeyID string
}

// recoveryWindowDays is the shortest window Secrets Manager allows: a deleted
// key is gone from kve at once, and an owner who deleted it by mistake can
// still have an operator restore it for a week.
const recoveryWindowDays = 7

// NewManager returns a Manager calling api. New secrets are encrypted under
// kmsKeyID (the stack's customer-managed key; "" means Secrets Manager's
// default key).
func NewManager(api ManagerAPI, kmsKeyID string) *Manager {
	return &Manager{api: api, kmsKeyID: kmsKeyID}
}

// Put creates name with value, or, when it exists, adds value as its new
// current version, and returns the version id. Tags are set on creation only.
func (m *Manager) Put(ctx context.Context, name string, value kve.Secret, tags map[string]string) (string, error) {
	if err := checkName(name); err != nil {
		return "", err
	}
	if err := checkValue(value); err != nil {
		return "", err
	}
	in := &secretsmanager.CreateSecretInput{
		Name:         aws.String(name),
		SecretString: aws.String(value.Reveal()),
		Tags:         tagList(tags),
	}
	if m.kmsKeyID != "" {
		in.KmsKeyId = aws.String(m.kmsKeyID)
	}
	out, err := m.api.CreateSecret(ctx, in)
	if err == nil {
		return aws.ToString(out.VersionId), nil
	}
	if !errors.As(err, new(*types.ResourceExistsException)) {
		return "", translate("create secret", err, kve.KindConflict)
	}
	put, err := m.api.PutSecretValue(ctx, &secretsmanager.PutSecretValueInput{
		SecretId:     aws.String(name),
		SecretString: aws.String(value.Reveal()),
	})
	if err != nil {
		return "", translate("put secret value", err, kve.KindConflict)
	}
	return aws.ToString(put.VersionId), nil
}

// Value returns the given version of name (a name or an ARN), or the current
// one when version is "".
func (m *Manager) Value(ctx context.Context, name, version string) (kve.Secret, error) {
	if name == "" {
		return "", kve.Errorf(kve.KindInvalid, "invalid_secret_name", "secret name is empty")
	}
	in := &secretsmanager.GetSecretValueInput{SecretId: aws.String(name)}
	if version != "" {
		in.VersionId = aws.String(version)
	}
	out, err := m.api.GetSecretValue(ctx, in)
	if err != nil {
		return "", translate("get secret value", err, kve.KindNotFound)
	}
	if out.SecretString == nil {
		return "", fmt.Errorf("get secret value: %s holds binary data, not a string", name)
	}
	return kve.Secret(*out.SecretString), nil
}

// Delete schedules name and all its versions for deletion after the recovery
// window; from now on kve sees it as gone.
func (m *Manager) Delete(ctx context.Context, name string) error {
	if name == "" {
		return kve.Errorf(kve.KindInvalid, "invalid_secret_name", "secret name is empty")
	}
	_, err := m.api.DeleteSecret(ctx, &secretsmanager.DeleteSecretInput{
		SecretId:             aws.String(name),
		RecoveryWindowInDays: aws.Int64(recoveryWindowDays),
	})
	if err != nil {
		return translate("delete secret", err, kve.KindNotFound)
	}
	return nil
}

// tagList turns tags into Secrets Manager's list, sorted so requests are
// deterministic.
func tagList(tags map[string]string) []types.Tag {
	var out []types.Tag
	for _, k := range slices.Sorted(maps.Keys(tags)) {
		out = append(out, types.Tag{Key: aws.String(k), Value: aws.String(tags[k])})
	}
	return out
}

// translate turns an SDK error into a kve kind at the store's boundary.
// pending is the kind for InvalidRequestException, which Secrets Manager
// answers for a secret scheduled for deletion: gone for reads and deletes, a
// conflict for a Put that would reuse its name. SDK errors carry the
// operation, status, request id and AWS's message, never the request body,
// so the value cannot reach the cause.
func translate(verb string, err error, pending kve.Kind) error {
	cause := fmt.Errorf("%s: %w", verb, err)
	var apiErr smithy.APIError
	code := ""
	if errors.As(err, &apiErr) {
		code = apiErr.ErrorCode()
	}
	switch {
	case code == "ResourceNotFoundException":
		return kve.Wrap(kve.KindNotFound, "secret_not_found", "secret not found", cause)
	case code == "InvalidRequestException" && pending == kve.KindNotFound:
		return kve.Wrap(kve.KindNotFound, "secret_not_found", "secret not found (scheduled for deletion)", cause)
	case code == "InvalidRequestException":
		return kve.Wrap(pending, "secret_pending_deletion", "secret is scheduled for deletion", cause)
	case code == "InvalidParameterException" || code == "ValidationException":
		return kve.Wrap(kve.KindInvalid, "invalid_secret", "secret store rejected the request", cause)
	case unavailable(err, code):
		return kve.Wrap(kve.KindUnavailable, "secrets_unavailable", "secret store temporarily unavailable", cause)
	}
	return cause
}

// unavailable reports whether err is worth retrying later: throttling, a
// server-side failure, or no answer at all.
func unavailable(err error, code string) bool {
	if _, ok := retry.DefaultThrottleErrorCodes[code]; ok {
		return true
	}
	switch code {
	case "InternalServiceError", "InternalFailure", "ServiceUnavailable":
		return true
	}
	var respErr *awshttp.ResponseError
	if errors.As(err, &respErr) && respErr.HTTPStatusCode() >= 500 {
		return true
	}
	var netErr net.Error
	return errors.As(err, new(*smithyhttp.RequestSendError)) ||
		errors.As(err, &netErr) ||
		errors.Is(err, context.DeadlineExceeded)
}
