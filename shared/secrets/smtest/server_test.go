package smtest_test

import (
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager/types"
	"github.com/aws/smithy-go"
	"github.com/google/go-cmp/cmp"

	"github.com/keyvault-edge/kve/shared/secrets/smtest"
)

const (
	name   = "kve/org_a/keys/key_a"
	token1 = "00000000-0000-4000-8000-000000000001"
	token2 = "00000000-0000-4000-8000-000000000002"
	token3 = "00000000-0000-4000-8000-000000000003"
)

func TestVersionsAndStages(t *testing.T) {
	ctx := t.Context()
	c := smtest.NewServer(t).Client(t)
	created, err := c.CreateSecret(ctx, &secretsmanager.CreateSecretInput{
		Name: aws.String(name), SecretString: aws.String("sk-test-FAKE-1"), ClientRequestToken: aws.String(token1),
	})
	if err != nil {
		t.Fatal(err)
	}
	if got := aws.ToString(created.VersionId); got != token1 {
		t.Errorf("VersionId = %q, want the ClientRequestToken %q", got, token1)
	}
	if !strings.HasPrefix(aws.ToString(created.ARN), "arn:aws:secretsmanager:us-east-1:123456789012:secret:"+name+"-") {
		t.Errorf("ARN = %q", aws.ToString(created.ARN))
	}
	for _, tok := range []string{token2, token3} {
		if _, err := c.PutSecretValue(ctx, &secretsmanager.PutSecretValueInput{
			SecretId: aws.String(name), SecretString: aws.String("sk-test-FAKE-" + tok[len(tok)-1:]), ClientRequestToken: aws.String(tok),
		}); err != nil {
			t.Fatal(err)
		}
	}

	tests := []struct {
		name           string
		in             secretsmanager.GetSecretValueInput
		value, version string
		stages         []string
	}{
		{"current by default", secretsmanager.GetSecretValueInput{}, "sk-test-FAKE-3", token3, []string{"AWSCURRENT"}},
		{"previous by stage", secretsmanager.GetSecretValueInput{VersionStage: aws.String("AWSPREVIOUS")}, "sk-test-FAKE-2", token2, []string{"AWSPREVIOUS"}},
		{"deprecated by id", secretsmanager.GetSecretValueInput{VersionId: aws.String(token1)}, "sk-test-FAKE-1", token1, []string{}},
		{"by ARN", secretsmanager.GetSecretValueInput{SecretId: created.ARN}, "sk-test-FAKE-3", token3, []string{"AWSCURRENT"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := tt.in
			if in.SecretId == nil {
				in.SecretId = aws.String(name)
			}
			out, err := c.GetSecretValue(ctx, &in)
			if err != nil {
				t.Fatal(err)
			}
			got := []any{aws.ToString(out.SecretString), aws.ToString(out.VersionId), out.VersionStages, aws.ToString(out.Name)}
			want := []any{tt.value, tt.version, tt.stages, name}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("GetSecretValue (-want +got):\n%s", diff)
			}
		})
	}

	desc, err := c.DescribeSecret(ctx, &secretsmanager.DescribeSecretInput{SecretId: aws.String(name)})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string][]string{token2: {"AWSPREVIOUS"}, token3: {"AWSCURRENT"}}
	if diff := cmp.Diff(want, desc.VersionIdsToStages); diff != "" {
		t.Errorf("VersionIdsToStages lists labelled versions only (-want +got):\n%s", diff)
	}
}

func TestClientRequestTokenIsIdempotent(t *testing.T) {
	ctx := t.Context()
	c := smtest.NewServer(t).Client(t)
	if _, err := c.CreateSecret(ctx, &secretsmanager.CreateSecretInput{Name: aws.String(name), SecretString: aws.String("sk-test-FAKE-1")}); err != nil {
		t.Fatal(err)
	}
	put := func(value string) error {
		_, err := c.PutSecretValue(ctx, &secretsmanager.PutSecretValueInput{
			SecretId: aws.String(name), SecretString: aws.String(value), ClientRequestToken: aws.String(token2),
		})
		return err
	}
	if err := put("sk-test-FAKE-2"); err != nil {
		t.Fatal(err)
	}
	if err := put("sk-test-FAKE-2"); err != nil {
		t.Errorf("repeating a PutSecretValue: %v", err)
	}
	if err := put("sk-test-FAKE-other"); !errors.As(err, new(*types.ResourceExistsException)) {
		t.Errorf("reusing a token for another value: got %v, want ResourceExistsException", err)
	}
	desc, err := c.DescribeSecret(ctx, &secretsmanager.DescribeSecretInput{SecretId: aws.String(name)})
	if err != nil {
		t.Fatal(err)
	}
	if n := len(desc.VersionIdsToStages); n != 2 {
		t.Errorf("%d labelled versions, want 2", n)
	}
}

func TestErrorsDecodeToSDKTypes(t *testing.T) {
	ctx := t.Context()
	c := smtest.NewServer(t).Client(t)
	for _, n := range []string{name, name + "-deleted"} {
		if _, err := c.CreateSecret(ctx, &secretsmanager.CreateSecretInput{Name: aws.String(n), SecretString: aws.String("sk-test-FAKE")}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := c.DeleteSecret(ctx, &secretsmanager.DeleteSecretInput{SecretId: aws.String(name + "-deleted"), RecoveryWindowInDays: aws.Int64(7)}); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		call func() error
		want string
	}{
		{"get unknown", func() error {
			_, err := c.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String("kve/none")})
			return err
		}, "ResourceNotFoundException"},
		{"get unknown version", func() error {
			_, err := c.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String(name), VersionId: aws.String(token3)})
			return err
		}, "ResourceNotFoundException"},
		{"get malformed version", func() error {
			_, err := c.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String(name), VersionId: aws.String("v1")})
			return err
		}, "ValidationException"},
		{"create existing", func() error {
			_, err := c.CreateSecret(ctx, &secretsmanager.CreateSecretInput{Name: aws.String(name), SecretString: aws.String("sk-test-FAKE")})
			return err
		}, "ResourceExistsException"},
		{"create bad name", func() error {
			_, err := c.CreateSecret(ctx, &secretsmanager.CreateSecretInput{Name: aws.String("has space"), SecretString: aws.String("sk-test-FAKE")})
			return err
		}, "ValidationException"},
		{"create too large", func() error {
			_, err := c.CreateSecret(ctx, &secretsmanager.CreateSecretInput{Name: aws.String("big"), SecretString: aws.String(strings.Repeat("x", 65537))})
			return err
		}, "ValidationException"},
		{"both values", func() error {
			_, err := c.PutSecretValue(ctx, &secretsmanager.PutSecretValueInput{SecretId: aws.String(name), SecretString: aws.String("a"), SecretBinary: []byte("b")})
			return err
		}, "InvalidParameterException"},
		{"delete with window and force", func() error {
			_, err := c.DeleteSecret(ctx, &secretsmanager.DeleteSecretInput{SecretId: aws.String(name), RecoveryWindowInDays: aws.Int64(7), ForceDeleteWithoutRecovery: aws.Bool(true)})
			return err
		}, "InvalidParameterException"},
		{"delete with a short window", func() error {
			_, err := c.DeleteSecret(ctx, &secretsmanager.DeleteSecretInput{SecretId: aws.String(name), RecoveryWindowInDays: aws.Int64(6)})
			return err
		}, "InvalidParameterException"},
		{"get scheduled", func() error {
			_, err := c.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String(name + "-deleted")})
			return err
		}, "InvalidRequestException"},
		{"put scheduled", func() error {
			_, err := c.PutSecretValue(ctx, &secretsmanager.PutSecretValueInput{SecretId: aws.String(name + "-deleted"), SecretString: aws.String("x")})
			return err
		}, "InvalidRequestException"},
		{"create scheduled", func() error {
			_, err := c.CreateSecret(ctx, &secretsmanager.CreateSecretInput{Name: aws.String(name + "-deleted"), SecretString: aws.String("x")})
			return err
		}, "InvalidRequestException"},
		{"delete scheduled", func() error {
			_, err := c.DeleteSecret(ctx, &secretsmanager.DeleteSecretInput{SecretId: aws.String(name + "-deleted"), RecoveryWindowInDays: aws.Int64(7)})
			return err
		}, "InvalidRequestException"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var apiErr smithy.APIError
			if err := tt.call(); !errors.As(err, &apiErr) || apiErr.ErrorCode() != tt.want {
				t.Fatalf("got %v, want %s", err, tt.want)
			}
			if apiErr.ErrorMessage() == "" || apiErr.ErrorMessage() == apiErr.ErrorCode() {
				t.Errorf("no message decoded: %v", apiErr)
			}
		})
	}
	var rnf *types.ResourceNotFoundException
	if _, err := c.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String("kve/none")}); !errors.As(err, &rnf) {
		t.Errorf("got %T, want the SDK's modelled *types.ResourceNotFoundException", err)
	}
}

func TestForceDeleteRemovesAtOnce(t *testing.T) {
	ctx := t.Context()
	c := smtest.NewServer(t).Client(t)
	if _, err := c.CreateSecret(ctx, &secretsmanager.CreateSecretInput{Name: aws.String(name), SecretString: aws.String("sk-test-FAKE")}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.DeleteSecret(ctx, &secretsmanager.DeleteSecretInput{SecretId: aws.String(name), RecoveryWindowInDays: aws.Int64(7)}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.DeleteSecret(ctx, &secretsmanager.DeleteSecretInput{SecretId: aws.String(name), ForceDeleteWithoutRecovery: aws.Bool(true)}); err != nil {
		t.Fatalf("force delete of a scheduled secret: %v", err)
	}
	_, err := c.DescribeSecret(ctx, &secretsmanager.DescribeSecretInput{SecretId: aws.String(name)})
	if !errors.As(err, new(*types.ResourceNotFoundException)) {
		t.Fatalf("DescribeSecret after force delete: got %v, want ResourceNotFoundException", err)
	}
	if _, err := c.CreateSecret(ctx, &secretsmanager.CreateSecretInput{Name: aws.String(name), SecretString: aws.String("sk-test-FAKE")}); err != nil {
		t.Errorf("the name is free again after force delete: %v", err)
	}
}

func TestFaults(t *testing.T) {
	ctx := t.Context()
	srv := smtest.NewServer(t)
	c := srv.Client(t)
	if _, err := c.CreateSecret(ctx, &secretsmanager.CreateSecretInput{Name: aws.String(name), SecretString: aws.String("sk-test-FAKE")}); err != nil {
		t.Fatal(err)
	}
	get := func() error {
		_, err := c.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String(name)})
		return err
	}

	twice := smtest.Throttling
	twice.Times = 2
	srv.Fail("GetSecretValue", twice)
	if err := get(); err != nil {
		t.Errorf("two throttles within the SDK's three attempts: %v", err)
	}
	if n := srv.Calls("GetSecretValue"); n != 3 {
		t.Errorf("Calls = %d, want 3", n)
	}

	srv.Fail("GetSecretValue", smtest.Throttling)
	var apiErr smithy.APIError
	if err := get(); !errors.As(err, &apiErr) || apiErr.ErrorCode() != "ThrottlingException" {
		t.Errorf("throttled until cleared: got %v", err)
	}
	if err := get(); err == nil {
		t.Error("the fault cleared itself")
	}
	srv.Fail("GetSecretValue", smtest.Fault{})
	if err := get(); err != nil {
		t.Errorf("after clearing: %v", err)
	}
	if n := srv.Calls("DescribeSecret"); n != 0 {
		t.Errorf("Calls(DescribeSecret) = %d, want 0", n)
	}
}

// TestRawProtocol checks the wire shapes directly, without the SDK.
func TestRawProtocol(t *testing.T) {
	srv := smtest.NewServer(t)
	const signed = "AWS4-HMAC-SHA256 Credential=AKIDFAKE/20300101/us-east-1/secretsmanager/aws4_request, SignedHeaders=host, Signature=fake"
	tests := []struct {
		name        string
		method      string
		target      string
		contentType string
		auth        string
		body        string
		status      int
		typ         string
	}{
		{"not found", "POST", "secretsmanager.GetSecretValue", "application/x-amz-json-1.1", signed, `{"SecretId":"kve/none"}`, 400, "ResourceNotFoundException"},
		{"unsigned", "POST", "secretsmanager.GetSecretValue", "application/x-amz-json-1.1", "", `{"SecretId":"kve/none"}`, 403, "MissingAuthenticationTokenException"},
		{"unknown operation", "POST", "secretsmanager.RotateSecret", "application/x-amz-json-1.1", signed, `{}`, 400, "UnknownOperationException"},
		{"other service", "POST", "DynamoDB_20120810.GetItem", "application/x-amz-json-1.1", signed, `{}`, 400, "UnknownOperationException"},
		{"wrong content type", "POST", "secretsmanager.GetSecretValue", "application/json", signed, `{"SecretId":"kve/none"}`, 400, "SerializationException"},
		{"bad JSON", "POST", "secretsmanager.GetSecretValue", "application/x-amz-json-1.1", signed, `{"SecretId":`, 400, "SerializationException"},
		{"GET", "GET", "secretsmanager.GetSecretValue", "application/x-amz-json-1.1", signed, ``, 404, "UnknownOperationException"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, err := http.NewRequestWithContext(t.Context(), tt.method, srv.URL+"/", strings.NewReader(tt.body))
			if err != nil {
				t.Fatal(err)
			}
			req.Header.Set("X-Amz-Target", tt.target)
			req.Header.Set("Content-Type", tt.contentType)
			if tt.auth != "" {
				req.Header.Set("Authorization", tt.auth)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			var body map[string]string
			if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
				t.Fatal(err)
			}
			got := []any{resp.StatusCode, resp.Header.Get("Content-Type"), body["__type"], body["Message"] != ""}
			want := []any{tt.status, "application/x-amz-json-1.1", tt.typ, true}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("status, content type, __type, has Message (-want +got):\n%s", diff)
			}
		})
	}
}

func TestReplication(t *testing.T) {
	ctx := t.Context()
	srv := smtest.NewServer(t)
	c := srv.Client(t)
	created, err := c.CreateSecret(ctx, &secretsmanager.CreateSecretInput{
		Name: aws.String(name), SecretString: aws.String("sk-test-FAKE-1"),
		AddReplicaRegions: []types.ReplicaRegionType{
			{Region: aws.String("eu-west-1"), KmsKeyId: aws.String("alias/kve")},
			{Region: aws.String("ap-southeast-2")},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	// The response that starts replication shows it under way.
	want := map[string][2]string{"eu-west-1": {"alias/kve", "InProgress"}, "ap-southeast-2": {"alias/aws/secretsmanager", "InProgress"}}
	if diff := cmp.Diff(want, replicas(created.ReplicationStatus)); diff != "" {
		t.Errorf("CreateSecret ReplicationStatus (-want +got):\n%s", diff)
	}
	describe := func() *secretsmanager.DescribeSecretOutput {
		t.Helper()
		out, err := c.DescribeSecret(ctx, &secretsmanager.DescribeSecretInput{SecretId: aws.String(name)})
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	desc := describe()
	want = map[string][2]string{"eu-west-1": {"alias/kve", "InSync"}, "ap-southeast-2": {"alias/aws/secretsmanager", "InSync"}}
	if diff := cmp.Diff(want, replicas(desc.ReplicationStatus)); diff != "" {
		t.Errorf("DescribeSecret ReplicationStatus (-want +got):\n%s", diff)
	}
	if got := aws.ToString(desc.PrimaryRegion); got != smtest.Region {
		t.Errorf("PrimaryRegion = %q, want %q", got, smtest.Region)
	}

	// A primary with replicas cannot be deleted, with or without recovery.
	for _, in := range []*secretsmanager.DeleteSecretInput{
		{SecretId: aws.String(name), RecoveryWindowInDays: aws.Int64(7)},
		{SecretId: aws.String(name), ForceDeleteWithoutRecovery: aws.Bool(true)},
	} {
		_, err := c.DeleteSecret(ctx, in)
		var apiErr smithy.APIError
		if !errors.As(err, &apiErr) || apiErr.ErrorCode() != "InvalidParameterException" ||
			!strings.Contains(apiErr.ErrorMessage(), "still has replica regions [eu-west-1, ap-southeast-2]") {
			t.Fatalf("DeleteSecret with replicas: got %v, want InvalidParameterException naming the replica regions", err)
		}
	}

	removed, err := c.RemoveRegionsFromReplication(ctx, &secretsmanager.RemoveRegionsFromReplicationInput{
		SecretId: aws.String(name), RemoveReplicaRegions: []string{"ap-southeast-2", "us-west-2"}, // no replica in us-west-2: ignored
	})
	if err != nil {
		t.Fatal(err)
	}
	want = map[string][2]string{"eu-west-1": {"alias/kve", "InSync"}}
	if diff := cmp.Diff(want, replicas(removed.ReplicationStatus)); diff != "" {
		t.Errorf("RemoveRegionsFromReplication ReplicationStatus (-want +got):\n%s", diff)
	}
	added, err := c.ReplicateSecretToRegions(ctx, &secretsmanager.ReplicateSecretToRegionsInput{
		SecretId:          aws.String(name),
		AddReplicaRegions: []types.ReplicaRegionType{{Region: aws.String("us-west-2"), KmsKeyId: aws.String("alias/kve")}},
	})
	if err != nil {
		t.Fatal(err)
	}
	want = map[string][2]string{"eu-west-1": {"alias/kve", "InSync"}, "us-west-2": {"alias/kve", "InProgress"}}
	if diff := cmp.Diff(want, replicas(added.ReplicationStatus)); diff != "" {
		t.Errorf("ReplicateSecretToRegions ReplicationStatus (-want +got):\n%s", diff)
	}

	// A new version replicates without further calls; the replicas go, then the primary can.
	if _, err := c.PutSecretValue(ctx, &secretsmanager.PutSecretValueInput{SecretId: aws.String(name), SecretString: aws.String("sk-test-FAKE-2")}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.RemoveRegionsFromReplication(ctx, &secretsmanager.RemoveRegionsFromReplicationInput{
		SecretId: aws.String(name), RemoveReplicaRegions: []string{"eu-west-1", "us-west-2"},
	}); err != nil {
		t.Fatal(err)
	}
	if desc := describe(); desc.ReplicationStatus != nil || desc.PrimaryRegion != nil {
		t.Errorf("after removing every replica: ReplicationStatus %v, PrimaryRegion %v; want neither", desc.ReplicationStatus, aws.ToString(desc.PrimaryRegion))
	}
	if _, err := c.DeleteSecret(ctx, &secretsmanager.DeleteSecretInput{SecretId: aws.String(name), RecoveryWindowInDays: aws.Int64(7)}); err != nil {
		t.Errorf("DeleteSecret without replicas: %v", err)
	}
}

func TestReplicationErrors(t *testing.T) {
	ctx := t.Context()
	c := smtest.NewServer(t).Client(t)
	for _, n := range []string{name, name + "-deleted"} {
		if _, err := c.CreateSecret(ctx, &secretsmanager.CreateSecretInput{
			Name: aws.String(n), SecretString: aws.String("sk-test-FAKE"),
			AddReplicaRegions: []types.ReplicaRegionType{{Region: aws.String("eu-west-1")}},
		}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := c.RemoveRegionsFromReplication(ctx, &secretsmanager.RemoveRegionsFromReplicationInput{
		SecretId: aws.String(name + "-deleted"), RemoveReplicaRegions: []string{"eu-west-1"},
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.DeleteSecret(ctx, &secretsmanager.DeleteSecretInput{SecretId: aws.String(name + "-deleted"), RecoveryWindowInDays: aws.Int64(7)}); err != nil {
		t.Fatal(err)
	}
	regions := func(rs ...string) []types.ReplicaRegionType {
		var out []types.ReplicaRegionType
		for _, r := range rs {
			out = append(out, types.ReplicaRegionType{Region: aws.String(r)})
		}
		return out
	}
	create := func(add []types.ReplicaRegionType) func() error {
		return func() error {
			_, err := c.CreateSecret(ctx, &secretsmanager.CreateSecretInput{Name: aws.String(name + "-new"), SecretString: aws.String("sk-test-FAKE"), AddReplicaRegions: add})
			return err
		}
	}
	replicate := func(id string, add []types.ReplicaRegionType) func() error {
		return func() error {
			_, err := c.ReplicateSecretToRegions(ctx, &secretsmanager.ReplicateSecretToRegionsInput{SecretId: aws.String(id), AddReplicaRegions: add})
			return err
		}
	}
	remove := func(id string, rs ...string) func() error {
		return func() error {
			_, err := c.RemoveRegionsFromReplication(ctx, &secretsmanager.RemoveRegionsFromReplicationInput{SecretId: aws.String(id), RemoveReplicaRegions: append([]string{}, rs...)})
			return err
		}
	}
	tests := []struct {
		name string
		call func() error
		want string
	}{
		{"create replicated to its own region", create(regions(smtest.Region)), "InvalidParameterException"},
		{"create with a malformed region", create(regions("Europe")), "ValidationException"},
		{"create naming a region twice", create(regions("eu-west-1", "eu-west-1")), "InvalidParameterException"},
		{"replicate where a replica is", replicate(name, regions("eu-west-1")), "InvalidParameterException"},
		{"replicate nowhere", replicate(name, []types.ReplicaRegionType{}), "ValidationException"},
		{"replicate unknown", replicate("kve/none", regions("us-west-2")), "ResourceNotFoundException"},
		{"replicate scheduled", replicate(name+"-deleted", regions("us-west-2")), "InvalidRequestException"},
		{"remove nothing", remove(name), "ValidationException"},
		{"remove unknown", remove("kve/none", "eu-west-1"), "ResourceNotFoundException"},
		{"remove from scheduled", remove(name+"-deleted", "eu-west-1"), "InvalidRequestException"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var apiErr smithy.APIError
			if err := tt.call(); !errors.As(err, &apiErr) || apiErr.ErrorCode() != tt.want {
				t.Fatalf("got %v, want %s", err, tt.want)
			}
		})
	}
	if _, err := c.DescribeSecret(ctx, &secretsmanager.DescribeSecretInput{SecretId: aws.String(name + "-new")}); !errors.As(err, new(*types.ResourceNotFoundException)) {
		t.Errorf("a refused CreateSecret created the secret: %v", err)
	}
}

// replicas maps a ReplicationStatus by region to its key and status.
func replicas(status []types.ReplicationStatusType) map[string][2]string {
	out := map[string][2]string{}
	for _, s := range status {
		out[aws.ToString(s.Region)] = [2]string{aws.ToString(s.KmsKeyId), string(s.Status)}
	}
	return out
}
