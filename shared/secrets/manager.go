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
	DescribeSecret(ctx context.Context, in *secretsmanager.DescribeSecretInput, optFns ...func(*secretsmanager.Options)) (*secretsmanager.DescribeSecretOutput, error)
	ReplicateSecretToRegions(ctx context.Context, in *secretsmanager.ReplicateSecretToRegionsInput, optFns ...func(*secretsmanager.Options)) (*secretsmanager.ReplicateSecretToRegionsOutput, error)
	RemoveRegionsFromReplication(ctx context.Context, in *secretsmanager.RemoveRegionsFromReplicationInput, optFns ...func(*secretsmanager.Options)) (*secretsmanager.RemoveRegionsFromReplicationOutput, error)
}

// Manager is the Store on AWS Secrets Manager. Each name is one secret; each
// Put a new version, which Secrets Manager labels AWSCURRENT while the one
// before becomes AWSPREVIOUS and stays readable by id. Deleted secrets wait
// out a 7-day recovery window, during which their name cannot be used again
// (Put is KindConflict) and reads are KindNotFound.
//
// With replicas, every secret Put creates is a multi-Region secret: Secrets
// Manager copies it, and each later version, to a read-only replica in each
// replica region, where that region's proxy reads it by the same name.
// Without replicas no replication field is ever sent.
type Manager struct {
	api      ManagerAPI
	kmsKeyID string
	replicas []Replica
}

// Replica is a region a Manager replicates its secrets to, and the KMS key
// the replica there is encrypted with: a key ARN in that region, or an alias
// (alias/kve), which Secrets Manager resolves in that region. An empty
// KMSKeyID means that region's aws/secretsmanager key.
type Replica struct {
	Region   string
	KMSKeyID string
}

// recoveryWindowDays is the shortest window Secrets Manager allows: a deleted
// key is gone from kve at once, and an owner who deleted it by mistake can
// still have an operator restore it for a week.
const recoveryWindowDays = 7

// NewManager returns a Manager calling api, a client of the primary region.
// New secrets are encrypted under kmsKeyID (the stack's customer-managed key;
// "" means Secrets Manager's default key) and replicated to replicas, which
// must not name the client's own region (Secrets Manager refuses that).
func NewManager(api ManagerAPI, kmsKeyID string, replicas ...Replica) *Manager {
	return &Manager{api: api, kmsKeyID: kmsKeyID, replicas: slices.Clone(replicas)}
}

// Put creates name with value, or, when it exists, adds value as its new
// current version, and returns the version id. Tags are set on creation only.
//
// With replicas, a new secret is created with a replica in each replica
// region; a new version of an existing one replicates by itself, and a
// replica region the secret lacks (it predates the region) is added first,
// so a rotation also brings an older secret to every region. Replication is
// asynchronous: Put returns once the primary holds the value, and a replica
// that fails shows as Failed in the secret's ReplicationStatus.
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
	in.AddReplicaRegions = m.replicaRegions(nil)
	out, err := m.api.CreateSecret(ctx, in)
	if err == nil {
		return aws.ToString(out.VersionId), nil
	}
	if !errors.As(err, new(*types.ResourceExistsException)) {
		return "", translate("create secret", err, kve.KindConflict)
	}
	// Replicate before the new version, so that a failure changes nothing
	// and the caller's retry finds the secret as it was.
	if err := m.replicate(ctx, name); err != nil {
		return "", err
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
// window; from now on kve sees it as gone. With replicas, the secret's
// replicas are removed first, since Secrets Manager refuses to delete a
// primary that has any: they go at once, with no recovery window (the
// primary's window still allows a restore, which an operator can replicate
// again).
func (m *Manager) Delete(ctx context.Context, name string) error {
	if name == "" {
		return kve.Errorf(kve.KindInvalid, "invalid_secret_name", "secret name is empty")
	}
	if err := m.unreplicate(ctx, name); err != nil {
		return err
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

// replicaRegions returns the replica regions to add, in the order they were
// configured, leaving out those in have; nil when none is left, so a request
// without replicas carries no replication field at all.
func (m *Manager) replicaRegions(have []string) []types.ReplicaRegionType {
	var out []types.ReplicaRegionType
	for _, r := range m.replicas {
		if slices.Contains(have, r.Region) {
			continue
		}
		add := types.ReplicaRegionType{Region: aws.String(r.Region)}
		if r.KMSKeyID != "" {
			add.KmsKeyId = aws.String(r.KMSKeyID)
		}
		out = append(out, add)
	}
	return out
}

// replicate adds a replica of name in each replica region it has none in.
// Replicas it has are left as they are, whatever their status: one that
// failed needs an operator, not a blind retry on every rotation. A secret
// scheduled for deletion is left to PutSecretValue, which refuses it.
func (m *Manager) replicate(ctx context.Context, name string) error {
	if len(m.replicas) == 0 {
		return nil
	}
	desc, err := m.api.DescribeSecret(ctx, &secretsmanager.DescribeSecretInput{SecretId: aws.String(name)})
	if err != nil {
		return translate("describe secret", err, kve.KindConflict)
	}
	if desc.DeletedDate != nil {
		return nil
	}
	add := m.replicaRegions(regions(desc.ReplicationStatus))
	if add == nil {
		return nil
	}
	_, err = m.api.ReplicateSecretToRegions(ctx, &secretsmanager.ReplicateSecretToRegionsInput{
		SecretId:          aws.String(name),
		AddReplicaRegions: add,
	})
	if err != nil {
		return translate("replicate secret", err, kve.KindConflict)
	}
	return nil
}

// unreplicate removes every replica name has: those it actually has, not
// those configured, so a secret replicated to a region the deployment has
// since left can still be deleted.
func (m *Manager) unreplicate(ctx context.Context, name string) error {
	if len(m.replicas) == 0 {
		return nil
	}
	desc, err := m.api.DescribeSecret(ctx, &secretsmanager.DescribeSecretInput{SecretId: aws.String(name)})
	if err != nil {
		return translate("describe secret", err, kve.KindNotFound)
	}
	have := regions(desc.ReplicationStatus)
	if desc.DeletedDate != nil || len(have) == 0 {
		return nil
	}
	_, err = m.api.RemoveRegionsFromReplication(ctx, &secretsmanager.RemoveRegionsFromReplicationInput{
		SecretId:             aws.String(name),
		RemoveReplicaRegions: have,
	})
	if err != nil {
		return translate("remove replica regions", err, kve.KindNotFound)
	}
	return nil
}

// regions lists the regions of a ReplicationStatus.
func regions(status []types.ReplicationStatusType) []string {
	var out []string
	for _, s := range status {
		out = append(out, aws.ToString(s.Region))
	}
	return out
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
