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
