package secrets_test

import (
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager/types"
	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/keyvault-edge/kve/shared/kve"
	"github.com/keyvault-edge/kve/shared/secrets"
	"github.com/keyvault-edge/kve/shared/secrets/secretstest"
	"github.com/keyvault-edge/kve/shared/secrets/smtest"
)

// No Secrets Manager emulator exists here; smtest's server speaks its JSON
// protocol to the real SDK client, so these tests exercise the SDK's
// serialization, error decoding and retries end to end.

const testKMSKey = "arn:aws:kms:us-east-1:123456789012:key/00000000-fake-4000-8000-000000000000"

func newManager(t *testing.T) (*secrets.Manager, *smtest.Server) {
	t.Helper()
	srv := smtest.NewServer(t)
	return secrets.NewManager(srv.Client(t), testKMSKey), srv
}

// testReplicas are the other regions of a three-region deployment, each
// replica under kve's key there, named by the alias every region has.
var testReplicas = []secrets.Replica{{Region: "eu-west-1", KMSKeyID: "alias/kve"}, {Region: "ap-southeast-2", KMSKeyID: "alias/kve"}}

func newReplicatedManager(t *testing.T) (*secrets.Manager, *smtest.Server) {
	t.Helper()
	srv := smtest.NewServer(t)
	return secrets.NewManager(srv.Client(t), testKMSKey, testReplicas...), srv
}

func TestManagerConformance(t *testing.T) {
	t.Run("one region", func(t *testing.T) {
		secretstest.Run(t, func(t *testing.T) secrets.Store {
			m, _ := newManager(t)
			return m
		})
	})
	t.Run("replicated", func(t *testing.T) {
		secretstest.Run(t, func(t *testing.T) secrets.Store {
			m, _ := newReplicatedManager(t)
			return m
		})
	})
}

func TestManagerPut(t *testing.T) {
	ctx := t.Context()
	m, srv := newManager(t)
	const name = "kve/org_a/keys/key_a"
	tags := map[string]string{"kve:org": "org_a", "kve:provider": "openai"}
	ver1, err := m.Put(ctx, name, "sk-test-FAKE-put-1", tags)
	if err != nil {
		t.Fatal(err)
	}
	ver2, err := m.Put(ctx, name, "sk-test-FAKE-put-2", map[string]string{"kve:org": "org_other"})
	if err != nil {
		t.Fatal(err)
	}

	out, err := srv.Client(t).DescribeSecret(ctx, &secretsmanager.DescribeSecretInput{SecretId: aws.String(name)})
	if err != nil {
		t.Fatal(err)
	}
	if got := aws.ToString(out.KmsKeyId); got != testKMSKey {
		t.Errorf("KmsKeyId = %q, want %q", got, testKMSKey)
	}
	wantTags := []types.Tag{
		{Key: aws.String("kve:org"), Value: aws.String("org_a")},
		{Key: aws.String("kve:provider"), Value: aws.String("openai")},
	}
	if diff := cmp.Diff(wantTags, out.Tags, cmpopts.IgnoreUnexported(types.Tag{})); diff != "" {
		t.Errorf("tags (set on creation, kept on later versions) (-want +got):\n%s", diff)
	}
	wantStages := map[string][]string{ver1: {"AWSPREVIOUS"}, ver2: {"AWSCURRENT"}}
	if diff := cmp.Diff(wantStages, out.VersionIdsToStages); diff != "" {
		t.Errorf("version stages (-want +got):\n%s", diff)
	}
	calls := map[string]int{"CreateSecret": srv.Calls("CreateSecret"), "PutSecretValue": srv.Calls("PutSecretValue")}
	if diff := cmp.Diff(map[string]int{"CreateSecret": 2, "PutSecretValue": 1}, calls); diff != "" {
		t.Errorf("calls (-want +got):\n%s", diff)
	}
}

func TestManagerDeleteSchedulesDeletion(t *testing.T) {
	ctx := t.Context()
	m, srv := newManager(t)
	const name = "kve/org_a/keys/key_a"
	if _, err := m.Put(ctx, name, "sk-test-FAKE-delete", nil); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if err := m.Delete(ctx, name); err != nil {
		t.Fatal(err)
	}
	out, err := srv.Client(t).DescribeSecret(ctx, &secretsmanager.DescribeSecretInput{SecretId: aws.String(name)})
	if err != nil {
		t.Fatalf("DescribeSecret after Delete (the secret should wait out its recovery window): %v", err)
	}
	week := 7 * 24 * time.Hour
	if got := aws.ToTime(out.DeletedDate); got.Before(start.Add(week-time.Minute)) || got.After(time.Now().Add(week+time.Minute)) {
		t.Errorf("deletion scheduled for %v, want 7 days from %v", got, start)
	}
	if _, err := m.Value(ctx, name, ""); kve.KindOf(err) != kve.KindNotFound {
		t.Errorf("Value during the recovery window: got %v, want KindNotFound", err)
	}
	if _, err := m.Put(ctx, name, "sk-test-FAKE-again", nil); kve.KindOf(err) != kve.KindConflict {
		t.Errorf("Put during the recovery window: got %v, want KindConflict", err)
	}
}

func TestManagerErrorKinds(t *testing.T) {
	const name = "kve/org_a/keys/key_a"
	tests := []struct {
		name  string
		op    string
		fault smtest.Fault
		call  func(t *testing.T, m *secrets.Manager) error
		want  kve.Kind // of the error; ignored when ok
		ok    bool
		calls int // requests the server saw for op, counting SDK retries
	}{
		{"throttled reads", "GetSecretValue", smtest.Throttling, value(name), kve.KindUnavailable, false, 3},
		{"failing reads", "GetSecretValue", smtest.InternalError, value(name), kve.KindUnavailable, false, 3},
		{"throttled creates", "CreateSecret", smtest.Throttling, put(name + "-new"), kve.KindUnavailable, false, 3},
		{"throttled puts", "PutSecretValue", smtest.Throttling, put(name), kve.KindUnavailable, false, 3},
		{"throttled deletes", "DeleteSecret", smtest.Throttling, del(name), kve.KindUnavailable, false, 3},
		{"one throttle is retried", "GetSecretValue", once(smtest.Throttling), value(name), 0, true, 2},
		{"access denied", "GetSecretValue", smtest.Fault{Status: 400, Type: "AccessDeniedException", Message: "not allowed"}, value(name), kve.KindInternal, false, 1},
		{"binary secret", "", smtest.Fault{}, value("binary"), kve.KindInternal, false, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, srv := newManager(t)
			if _, err := m.Put(t.Context(), name, "sk-test-FAKE-kinds", nil); err != nil {
				t.Fatal(err)
			}
			_, err := srv.Client(t).CreateSecret(t.Context(), &secretsmanager.CreateSecretInput{
				Name: aws.String("binary"), SecretBinary: []byte("fake"),
			})
			if err != nil {
				t.Fatal(err)
			}
			before := srv.Calls(tt.op)
			srv.Fail(tt.op, tt.fault)
			err = tt.call(t, m)
			if tt.ok {
				if err != nil {
					t.Fatalf("got %v, want success", err)
				}
			} else if err == nil || kve.KindOf(err) != tt.want {
				t.Fatalf("got %v (kind %v), want kind %v", err, kve.KindOf(err), tt.want)
			}
			if got := srv.Calls(tt.op) - before; tt.op != "" && got != tt.calls {
				t.Errorf("server saw %d %s calls, want %d", got, tt.op, tt.calls)
			}
		})
	}
}

func once(f smtest.Fault) smtest.Fault { f.Times = 1; return f }

func value(name string) func(*testing.T, *secrets.Manager) error {
	return func(t *testing.T, m *secrets.Manager) error { _, err := m.Value(t.Context(), name, ""); return err }
}

func put(name string) func(*testing.T, *secrets.Manager) error {
	return func(t *testing.T, m *secrets.Manager) error {
		_, err := m.Put(t.Context(), name, "sk-test-FAKE-kinds-2", nil)
		return err
	}
}

func del(name string) func(*testing.T, *secrets.Manager) error {
	return func(t *testing.T, m *secrets.Manager) error { return m.Delete(t.Context(), name) }
}

func TestManagerUnreachable(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close() // nothing listens there now
	client := secretsmanager.New(secretsmanager.Options{
		Region:           smtest.Region,
		BaseEndpoint:     aws.String("http://" + addr),
		Credentials:      credentials.NewStaticCredentialsProvider("AKIDFAKE", "fake", ""),
		RetryMaxAttempts: 1,
	})
	m := secrets.NewManager(client, "")
	if _, err := m.Value(t.Context(), "kve/org_a/keys/key_a", ""); kve.KindOf(err) != kve.KindUnavailable {
		t.Errorf("Value: got %v, want KindUnavailable", err)
	}
}

// TestManagerErrorsHoldNoValue checks SECURITY INV-4 at this boundary: no
// error a Put can return quotes the value, whichever way it fails.
func TestManagerErrorsHoldNoValue(t *testing.T) {
	const canary = "sk-test-FAKE-CANARY-7f3a9c"
	const name = "kve/org_a/keys/key_a"
	tests := []struct {
		name  string
		setup func(t *testing.T, m *secrets.Manager, srv *smtest.Server)
		value string
	}{
		{"throttled create", func(t *testing.T, m *secrets.Manager, srv *smtest.Server) {
			srv.Fail("CreateSecret", smtest.Throttling)
		}, canary},
		{"failing put", func(t *testing.T, m *secrets.Manager, srv *smtest.Server) {
			if _, err := m.Put(t.Context(), name, "sk-test-FAKE-first", nil); err != nil {
				t.Fatal(err)
			}
			srv.Fail("PutSecretValue", smtest.InternalError)
		}, canary},
		{"scheduled for deletion", func(t *testing.T, m *secrets.Manager, srv *smtest.Server) {
			if _, err := m.Put(t.Context(), name, "sk-test-FAKE-first", nil); err != nil {
				t.Fatal(err)
			}
			if err := m.Delete(t.Context(), name); err != nil {
				t.Fatal(err)
			}
		}, canary},
		{"too large", func(*testing.T, *secrets.Manager, *smtest.Server) {}, canary + strings.Repeat("x", secrets.MaxValueSize)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, srv := newManager(t)
			tt.setup(t, m, srv)
			_, err := m.Put(t.Context(), name, kve.Secret(tt.value), map[string]string{"kve:org": "org_a"})
			if err == nil {
				t.Fatal("Put succeeded; the case needs a failure")
			}
			for _, text := range []string{err.Error(), fmt.Sprintf("%+v", err), fmt.Sprintf("%#v", err), kve.MessageOf(err)} {
				if strings.Contains(text, canary) {
					t.Errorf("error text holds the value: %s", text)
				}
			}
		})
	}
}
