package dynamo

import (
	"context"
	"fmt"
	"net/http/httptest"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/truora/minidyn/server"

	"github.com/keyvault-edge/kve/shared/kve"
)

// envEndpoint names an external DynamoDB-compatible endpoint (DynamoDB
// Local, an emulator) that TestConformance also runs against when set.
const envEndpoint = "KVE_DYNAMODB_ENDPOINT"

// testNow is the clock of the focused tests.
var testNow = time.Date(2026, 3, 14, 15, 9, 26, 0, time.UTC)

// newClient returns the real SDK client for endpoint, with fake static
// credentials and retries that do not wait.
func newClient(endpoint string) *dynamodb.Client {
	return dynamodb.New(dynamodb.Options{
		Region:       "us-east-1",
		BaseEndpoint: aws.String(endpoint),
		Credentials:  credentials.NewStaticCredentialsProvider("AKIDTESTFAKE", "test-FAKE-secret", ""),
		Retryer: retry.NewStandard(func(o *retry.StandardOptions) {
			o.Backoff = retry.BackoffDelayerFunc(func(int, error) (time.Duration, error) { return 0, nil })
		}),
	})
}

// calls wraps the client the store uses and counts its calls by operation;
// before, when set, runs ahead of each call (to race the store).
type calls struct {
	API
	mu     sync.Mutex
	n      map[string]int
	before func(op string)
}

func (c *calls) count(op string) {
	c.mu.Lock()
	if c.n == nil {
		c.n = map[string]int{}
	}
	c.n[op]++
	before := c.before
	c.mu.Unlock()
	if before != nil {
		before(op)
	}
}

// take returns the counts since the last take.
func (c *calls) take() map[string]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := c.n
	c.n = nil
	if n == nil {
		n = map[string]int{}
	}
	return n
}

func (c *calls) GetItem(ctx context.Context, in *dynamodb.GetItemInput, opts ...func(*dynamodb.Options)) (*dynamodb.GetItemOutput, error) {
	c.count("GetItem")
	return c.API.GetItem(ctx, in, opts...)
}

func (c *calls) Query(ctx context.Context, in *dynamodb.QueryInput, opts ...func(*dynamodb.Options)) (*dynamodb.QueryOutput, error) {
	c.count("Query")
	return c.API.Query(ctx, in, opts...)
}

func (c *calls) TransactWriteItems(ctx context.Context, in *dynamodb.TransactWriteItemsInput, opts ...func(*dynamodb.Options)) (*dynamodb.TransactWriteItemsOutput, error) {
	c.count("TransactWriteItems")
	return c.API.TransactWriteItems(ctx, in, opts...)
}

// env is one test's store on a fresh table, with what tests need to look
// behind it.
type env struct {
	t      *testing.T
	ctx    context.Context
	srv    *server.Server // the in-process emulator; nil for an external endpoint
	url    string         // its endpoint
	client *dynamodb.Client
	table  string
	calls  *calls
	store  *Store
}

// newEnv starts minidyn in process and opens a store on a fresh table.
func newEnv(t *testing.T, opts ...Option) *env {
	t.Helper()
	srv := server.NewServer()
	hs := httptest.NewServer(srv)
	t.Cleanup(hs.Close)
	e := openEnv(t, newClient(hs.URL), opts...)
	e.srv, e.url = srv, hs.URL
	return e
}

var tableSeq atomic.Int64

// openEnv creates a fresh table through client and opens a store on it; the
// table is deleted when the test ends.
func openEnv(t *testing.T, client *dynamodb.Client, opts ...Option) *env {
	t.Helper()
	table := fmt.Sprintf("kve-test-%d-%d", os.Getpid(), tableSeq.Add(1))
	if err := CreateTable(t.Context(), client, table); err != nil {
		t.Fatalf("CreateTable: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if _, err := client.DeleteTable(ctx, &dynamodb.DeleteTableInput{TableName: aws.String(table)}); err != nil {
			t.Logf("delete table %s: %v", table, err)
		}
	})
	c := &calls{API: client}
	return &env{t: t, ctx: t.Context(), client: client, table: table, calls: c, store: Open(c, table, opts...)}
}

// raw reads an item as stored, bypassing the store.
func (e *env) raw(pk, sk string) item {
	e.t.Helper()
	out, err := e.client.GetItem(e.ctx, &dynamodb.GetItemInput{
		TableName: aws.String(e.table), Key: primaryKey(pk, sk), ConsistentRead: aws.Bool(true),
	})
	if err != nil {
		e.t.Fatalf("GetItem %s/%s: %v", pk, sk, err)
	}
	return out.Item
}

// seeded is an organization with a key and a token, all stored.
type seeded struct {
	org   kve.Org
	owner kve.Member
	key   kve.Key
	token kve.Token
}

func (e *env) seed() seeded {
	e.t.Helper()
	actor := kve.Actor{UserID: kve.NewID(kve.PrefixUser, testNow), Email: "owner@example.test"}
	var s seeded
	s.org = kve.Org{ID: kve.NewID(kve.PrefixOrg, testNow), Slug: "acme", Name: "Acme", CreatedAt: testNow, CreatedBy: actor.UserID}
	s.owner = kve.Member{OrgID: s.org.ID, UserID: actor.UserID, Email: actor.Email, Role: kve.RoleOwner, JoinedAt: testNow}
	s.key = e.newKey(s.org.ID, "main")
	s.token = e.newToken(s.key)
	e.ok(e.store.CreateOrg(e.ctx, s.org, s.owner, actor.Event(s.org.ID, "org.create", s.org.ID, testNow)))
	e.ok(e.store.CreateKey(e.ctx, s.key, actor.Event(s.org.ID, "key.create", s.key.ID, testNow)))
	e.ok(e.store.CreateToken(e.ctx, s.token, actor.Event(s.org.ID, "token.create", s.token.ID, testNow)))
	return s
}

func (e *env) newKey(orgID, name string) kve.Key {
	k := kve.Key{ID: kve.NewID(kve.PrefixKey, testNow), OrgID: orgID, Name: name, Provider: "openai",
		Upstream: "https://api.openai.com", Last4: "FAKE", CreatedAt: testNow}
	k.Secret = kve.SecretName(orgID, k.ID)
	k.Version = "version-1"
	k.Fingerprint = kve.Fingerprint(kve.Secret("sk-test-FAKE-" + k.ID))
	return k
}

func (e *env) newToken(k kve.Key) kve.Token {
	id := kve.NewID(kve.PrefixToken, testNow)
	return kve.Token{ID: id, OrgID: k.OrgID, Name: "ci", Kind: kve.TokenShared, Env: kve.EnvDev,
		Hash: []byte("hash-of-" + id), Sealed: []byte("sealed-" + id), Key: k.Ref(),
		Policy: kve.Policy{AllowServer: true, RPM: 60}, CreatedAt: testNow, UpdatedAt: testNow}
}

// event is an audit event in orgID with a fresh id.
func (e *env) event(orgID, action, target string) kve.Event {
	return kve.Actor{UserID: "usr_test", Email: "test@example.test"}.Event(orgID, action, target, testNow)
}

func (e *env) ok(err error) {
	e.t.Helper()
	if err != nil {
		e.t.Fatalf("unexpected error: %v", err)
	}
}

// wantKind fails the test unless err has kind want.
func wantKind(t *testing.T, what string, err error, want kve.Kind) {
	t.Helper()
	if got := kve.KindOf(err); err == nil || got != want {
		t.Errorf("%s: error = %v (kind %v), want kind %v", what, err, kve.KindOf(err), want)
	}
}
