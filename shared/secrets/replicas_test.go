package secrets_test

import (
	"bytes"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/google/go-cmp/cmp"

	"github.com/keyvault-edge/kve/shared/kve"
	"github.com/keyvault-edge/kve/shared/secrets"
	"github.com/keyvault-edge/kve/shared/secrets/smtest"
)

const keyName = "kve/org_a/keys/key_a"

// describe returns what Secrets Manager knows of name.
func describe(t *testing.T, srv *smtest.Server, name string) *secretsmanager.DescribeSecretOutput {
	t.Helper()
	out, err := srv.Client(t).DescribeSecret(t.Context(), &secretsmanager.DescribeSecretInput{SecretId: aws.String(name)})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// replicaKeys maps a secret's replica regions to their KMS keys.
func replicaKeys(out *secretsmanager.DescribeSecretOutput) map[string]string {
	got := map[string]string{}
	for _, s := range out.ReplicationStatus {
		got[aws.ToString(s.Region)] = aws.ToString(s.KmsKeyId)
	}
	return got
}

// calls counts the server's requests of each operation named.
func calls(srv *smtest.Server, ops ...string) map[string]int {
	out := map[string]int{}
	for _, op := range ops {
		out[op] = srv.Calls(op)
	}
	return out
}

var allReplicas = map[string]string{"eu-west-1": "alias/kve", "ap-southeast-2": "alias/kve"}

func TestManagerReplicatesNewSecrets(t *testing.T) {
	ctx := t.Context()
	m, srv := newReplicatedManager(t)
	if _, err := m.Put(ctx, keyName, "sk-test-FAKE-replicated-1", map[string]string{"kve:org": "org_a"}); err != nil {
		t.Fatal(err)
	}
	out := describe(t, srv, keyName)
	if diff := cmp.Diff(allReplicas, replicaKeys(out)); diff != "" {
		t.Errorf("replicas (-want +got):\n%s", diff)
	}
	if got := aws.ToString(out.KmsKeyId); got != testKMSKey {
		t.Errorf("primary KmsKeyId = %q, want %q", got, testKMSKey)
	}

	// A rotation replicates by itself: nothing to add.
	ver, err := m.Put(ctx, keyName, "sk-test-FAKE-replicated-2", nil)
	if err != nil {
		t.Fatal(err)
	}
	wantCalls := map[string]int{"CreateSecret": 2, "PutSecretValue": 1, "ReplicateSecretToRegions": 0}
	if diff := cmp.Diff(wantCalls, calls(srv, "CreateSecret", "PutSecretValue", "ReplicateSecretToRegions")); diff != "" {
		t.Errorf("calls (-want +got):\n%s", diff)
	}
	if got, err := m.Value(ctx, keyName, ver); err != nil || got != "sk-test-FAKE-replicated-2" {
		t.Errorf("Value after rotation: %d bytes, %v", len(got), err)
	}
}

// recorder keeps the body of every request a client sends.
type recorder struct {
	next aws.HTTPClient

	mu     sync.Mutex
	bodies []string
}

func (r *recorder) Do(req *http.Request) (*http.Response, error) {
	b, err := io.ReadAll(req.Body)
	if err != nil {
		return nil, err
	}
	req.Body = io.NopCloser(bytes.NewReader(b))
	r.mu.Lock()
	r.bodies = append(r.bodies, req.Header.Get("X-Amz-Target")+" "+string(b))
	r.mu.Unlock()
	return r.next.Do(req)
}

// A single-region deployment behaves as before replication existed: the
// same calls, and no replication field in any request.
func TestManagerOneRegionSendsNoReplicaFields(t *testing.T) {
	ctx := t.Context()
	srv := smtest.NewServer(t)
	rec := &recorder{}
	client := secretsmanager.New(srv.Client(t).Options(), func(o *secretsmanager.Options) {
		rec.next = o.HTTPClient
		o.HTTPClient = rec
	})
	m := secrets.NewManager(client, testKMSKey)
	if _, err := m.Put(ctx, keyName, "sk-test-FAKE-one-region-1", nil); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Put(ctx, keyName, "sk-test-FAKE-one-region-2", nil); err != nil {
		t.Fatal(err)
	}
	if err := m.Delete(ctx, keyName); err != nil {
		t.Fatal(err)
	}
	var ops []string
	for _, b := range rec.bodies {
		op, body, _ := strings.Cut(b, " ")
		ops = append(ops, op)
		if strings.Contains(body, "Replica") {
			t.Errorf("%s sent a replication field: %s", op, strings.ReplaceAll(body, "sk-test-FAKE", "…"))
		}
	}
	want := []string{"secretsmanager.CreateSecret", "secretsmanager.CreateSecret", "secretsmanager.PutSecretValue", "secretsmanager.DeleteSecret"}
	if diff := cmp.Diff(want, ops); diff != "" {
		t.Errorf("requests (-want +got):\n%s", diff)
	}
}

// A secret made before the deployment reached a region gains a replica
// there when it is next rotated.
func TestManagerRotationAddsMissingReplicas(t *testing.T) {
	tests := []struct {
		name       string
		before     []secrets.Replica // what the secret was created with
		replicates int               // ReplicateSecretToRegions calls the rotation makes
	}{
		{"made in one region", nil, 1},
		{"made in two regions", testReplicas[:1], 1},
		{"made in all three", testReplicas, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := t.Context()
			srv := smtest.NewServer(t)
			if _, err := secrets.NewManager(srv.Client(t), testKMSKey, tt.before...).Put(ctx, keyName, "sk-test-FAKE-before", nil); err != nil {
				t.Fatal(err)
			}
			m := secrets.NewManager(srv.Client(t), testKMSKey, testReplicas...)
			ver, err := m.Put(ctx, keyName, "sk-test-FAKE-after", nil)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(allReplicas, replicaKeys(describe(t, srv, keyName))); diff != "" {
				t.Errorf("replicas after rotation (-want +got):\n%s", diff)
			}
			if got := srv.Calls("ReplicateSecretToRegions"); got != tt.replicates {
				t.Errorf("ReplicateSecretToRegions calls = %d, want %d", got, tt.replicates)
			}
			if got, err := m.Value(ctx, keyName, ""); err != nil || got != "sk-test-FAKE-after" || describe(t, srv, keyName).VersionIdsToStages[ver][0] != "AWSCURRENT" {
				t.Errorf("the rotated value is not current: %d bytes, %v", len(got), err)
			}
		})
	}
}

func TestManagerDeleteRemovesReplicasFirst(t *testing.T) {
	tests := []struct {
		name    string
		created []secrets.Replica // replicas the secret has
		deleter []secrets.Replica // replicas the deleting Manager is configured with
		removes int               // RemoveRegionsFromReplication calls
	}{
		{"replicated", testReplicas, testReplicas, 1},
		// The deployment left ap-southeast-2: its replica still blocks the delete.
		{"replicated to a region since left", testReplicas, testReplicas[:1], 1},
		{"made before replication", nil, testReplicas, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := t.Context()
			srv := smtest.NewServer(t)
			if _, err := secrets.NewManager(srv.Client(t), testKMSKey, tt.created...).Put(ctx, keyName, "sk-test-FAKE-delete", nil); err != nil {
				t.Fatal(err)
			}
			m := secrets.NewManager(srv.Client(t), testKMSKey, tt.deleter...)
			if err := m.Delete(ctx, keyName); err != nil {
				t.Fatalf("Delete: %v", err)
			}
			out := describe(t, srv, keyName)
			if out.DeletedDate == nil || len(out.ReplicationStatus) != 0 {
				t.Errorf("after Delete: deletion %v, replicas %v; want scheduled with none", out.DeletedDate, replicaKeys(out))
			}
			if got := srv.Calls("RemoveRegionsFromReplication"); got != tt.removes {
				t.Errorf("RemoveRegionsFromReplication calls = %d, want %d", got, tt.removes)
			}
			if _, err := m.Value(ctx, keyName, ""); kve.KindOf(err) != kve.KindNotFound {
				t.Errorf("Value after Delete: got %v, want KindNotFound", err)
			}
			if err := m.Delete(ctx, keyName); kve.KindOf(err) != kve.KindNotFound {
				t.Errorf("second Delete: got %v, want KindNotFound", err)
			}
		})
	}
}

// A Delete that fails part way leaves a state its retry completes.
func TestManagerDeleteRetries(t *testing.T) {
	t.Run("replica removal fails", func(t *testing.T) {
		ctx := t.Context()
		m, srv := newReplicatedManager(t)
		if _, err := m.Put(ctx, keyName, "sk-test-FAKE-retry", nil); err != nil {
			t.Fatal(err)
		}
		srv.Fail("RemoveRegionsFromReplication", smtest.Throttling)
		if err := m.Delete(ctx, keyName); kve.KindOf(err) != kve.KindUnavailable {
			t.Fatalf("Delete: got %v, want KindUnavailable", err)
		}
		out := describe(t, srv, keyName)
		if srv.Calls("DeleteSecret") != 0 || out.DeletedDate != nil || len(out.ReplicationStatus) != 2 {
			t.Fatalf("a failed replica removal went on: %d DeleteSecret calls, deletion %v, replicas %v",
				srv.Calls("DeleteSecret"), out.DeletedDate, replicaKeys(out))
		}
		srv.Fail("RemoveRegionsFromReplication", smtest.Fault{})
		if err := m.Delete(ctx, keyName); err != nil {
			t.Errorf("retried Delete: %v", err)
		}
	})
	t.Run("deletion fails after the replicas went", func(t *testing.T) {
		ctx := t.Context()
		m, srv := newReplicatedManager(t)
		if _, err := m.Put(ctx, keyName, "sk-test-FAKE-retry", nil); err != nil {
			t.Fatal(err)
		}
		srv.Fail("DeleteSecret", smtest.InternalError)
		if err := m.Delete(ctx, keyName); kve.KindOf(err) != kve.KindUnavailable {
			t.Fatalf("Delete: got %v, want KindUnavailable", err)
		}
		srv.Fail("DeleteSecret", smtest.Fault{})
		if err := m.Delete(ctx, keyName); err != nil {
			t.Fatalf("retried Delete: %v", err)
		}
		if got := srv.Calls("RemoveRegionsFromReplication"); got != 1 {
			t.Errorf("RemoveRegionsFromReplication calls = %d, want 1 (nothing left to remove on retry)", got)
		}
		if describe(t, srv, keyName).DeletedDate == nil {
			t.Error("the secret is not scheduled for deletion")
		}
	})
}

func TestManagerReplicationErrorKinds(t *testing.T) {
	const unreplicated = "kve/org_a/keys/key_old" // made before the deployment had other regions
	tests := []struct {
		name  string
		op    string
		fault smtest.Fault
		call  func(t *testing.T, m *secrets.Manager) error
		want  kve.Kind
		calls int // requests the server saw for op, counting SDK retries
	}{
		{"throttled describe before delete", "DescribeSecret", smtest.Throttling, del(keyName), kve.KindUnavailable, 3},
		{"throttled replica removal", "RemoveRegionsFromReplication", smtest.Throttling, del(keyName), kve.KindUnavailable, 3},
		{"failing replica removal", "RemoveRegionsFromReplication", smtest.InternalError, del(keyName), kve.KindUnavailable, 3},
		{"throttled describe before rotation", "DescribeSecret", smtest.Throttling, put(keyName), kve.KindUnavailable, 3},
		{"throttled replication on rotation", "ReplicateSecretToRegions", smtest.Throttling, put(unreplicated), kve.KindUnavailable, 3},
		{"replication denied", "ReplicateSecretToRegions", smtest.Fault{Status: 400, Type: "AccessDeniedException", Message: "not allowed"}, put(unreplicated), kve.KindInternal, 1},
		{"delete of an unknown secret", "", smtest.Fault{}, del("kve/org_a/keys/key_none"), kve.KindNotFound, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, srv := newReplicatedManager(t)
			if _, err := m.Put(t.Context(), keyName, "sk-test-FAKE-kinds", nil); err != nil {
				t.Fatal(err)
			}
			if _, err := secrets.NewManager(srv.Client(t), testKMSKey).Put(t.Context(), unreplicated, "sk-test-FAKE-kinds", nil); err != nil {
				t.Fatal(err)
			}
			before := srv.Calls(tt.op)
			srv.Fail(tt.op, tt.fault)
			if err := tt.call(t, m); kve.KindOf(err) != tt.want {
				t.Fatalf("got %v (kind %v), want kind %v", err, kve.KindOf(err), tt.want)
			}
			if got := srv.Calls(tt.op) - before; tt.op != "" && got != tt.calls {
				t.Errorf("server saw %d %s calls, want %d", got, tt.op, tt.calls)
			}
		})
	}
	t.Run("a failed replication changes no value", func(t *testing.T) {
		ctx := t.Context()
		m, srv := newReplicatedManager(t)
		ver, err := secrets.NewManager(srv.Client(t), testKMSKey).Put(ctx, unreplicated, "sk-test-FAKE-kept", nil)
		if err != nil {
			t.Fatal(err)
		}
		srv.Fail("ReplicateSecretToRegions", smtest.Throttling)
		if _, err := m.Put(ctx, unreplicated, "sk-test-FAKE-not-stored", nil); err == nil {
			t.Fatal("Put succeeded while replication failed")
		}
		if got := srv.Calls("PutSecretValue"); got != 0 {
			t.Errorf("PutSecretValue calls = %d, want 0", got)
		}
		out := describe(t, srv, unreplicated)
		if diff := cmp.Diff(map[string][]string{ver: {"AWSCURRENT"}}, out.VersionIdsToStages); diff != "" {
			t.Errorf("versions (-want +got):\n%s", diff)
		}
	})
}

// The replica regions reach Secrets Manager as configured, in order, each
// with its key; an empty key is left to Secrets Manager's default.
func TestManagerReplicaRequest(t *testing.T) {
	ctx := t.Context()
	srv := smtest.NewServer(t)
	m := secrets.NewManager(srv.Client(t), "", secrets.Replica{Region: "eu-central-1", KMSKeyID: "arn:aws:kms:eu-central-1:123456789012:key/00000000-fake-4000-8000-000000000001"}, secrets.Replica{Region: "us-west-2"})
	if _, err := m.Put(ctx, keyName, "sk-test-FAKE-request", nil); err != nil {
		t.Fatal(err)
	}
	var got [][2]string
	for _, s := range describe(t, srv, keyName).ReplicationStatus {
		got = append(got, [2]string{aws.ToString(s.Region), aws.ToString(s.KmsKeyId)})
	}
	want := [][2]string{
		{"eu-central-1", "arn:aws:kms:eu-central-1:123456789012:key/00000000-fake-4000-8000-000000000001"},
		{"us-west-2", "alias/aws/secretsmanager"},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("replicas in order (-want +got):\n%s", diff)
	}
}
