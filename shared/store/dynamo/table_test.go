package dynamo

import (
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"
	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/keyvault-edge/kve/shared/kve"
)

func TestCreateTable(t *testing.T) {
	e := newEnv(t)
	out, err := e.client.DescribeTable(e.ctx, &dynamodb.DescribeTableInput{TableName: aws.String(e.table)})
	if err != nil {
		t.Fatalf("DescribeTable: %v", err)
	}
	type element struct{ Name, Type string }
	var keys []element
	for _, k := range out.Table.KeySchema {
		keys = append(keys, element{aws.ToString(k.AttributeName), string(k.KeyType)})
	}
	want := []element{{"pk", "HASH"}, {"sk", "RANGE"}}
	if diff := cmp.Diff(want, keys); diff != "" {
		t.Errorf("key schema (-want +got):\n%s", diff)
	}
	if n := len(out.Table.GlobalSecondaryIndexes) + len(out.Table.LocalSecondaryIndexes); n != 0 {
		t.Errorf("table has %d secondary indexes, want none", n)
	}

	err = CreateTable(e.ctx, e.client, e.table)
	var inUse *types.ResourceInUseException
	if !errors.As(err, &inUse) {
		t.Errorf("CreateTable of an existing table: error = %v, want ResourceInUseException", err)
	}
}

func TestUnknownOperation(t *testing.T) {
	resp := func(status int) *smithyhttp.Response {
		return &smithyhttp.Response{Response: &http.Response{StatusCode: status}}
	}
	for _, tc := range []struct {
		name string
		err  error
		want bool
	}{
		{"dynalite", &smithy.GenericAPIError{Code: "UnknownOperationException"}, true},
		{"minidyn: 400 without an error document", &smithyhttp.ResponseError{
			Response: resp(400),
			Err:      &smithy.DeserializationError{Err: errors.New("invalid character 'u'")},
		}, true},
		{"validation", &smithy.GenericAPIError{Code: "ValidationException"}, false},
		{"access denied", &smithy.GenericAPIError{Code: "AccessDeniedException"}, false},
		{"table in use", &types.ResourceInUseException{Message: aws.String("creating")}, false},
		{"500 without an error document", &smithyhttp.ResponseError{
			Response: resp(500),
			Err:      &smithy.DeserializationError{Err: errors.New("invalid character '<'")},
		}, false},
		{"connection refused", errors.New("dial tcp 127.0.0.1:1: connection refused"), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := fmt.Errorf("operation error DynamoDB: UpdateTimeToLive: %w", tc.err)
			if got := unknownOperation(err); got != tc.want {
				t.Errorf("unknownOperation(%v) = %v, want %v", err, got, tc.want)
			}
		})
	}
}

// TestItemShapes pins the keys of every access pattern in table.go: other
// code (the CDK stack's IAM conditions, operators reading the table) relies
// on them.
func TestItemShapes(t *testing.T) {
	e := newEnv(t)
	s := e.seed()
	user := kve.User{ID: s.owner.UserID, Email: "Owner@Example.test", Name: "Owner", Password: []byte("phc-FAKE"), CreatedAt: testNow}
	sess := kve.Session{ID: kve.NewID(kve.PrefixSession, testNow), UserID: user.ID, Kind: kve.SessionBrowser,
		Hash: []byte{0xde, 0xad, 0xbe, 0xef}, CreatedAt: testNow, ExpiresAt: testNow.Add(12 * time.Hour)}
	e.ok(e.store.CompleteSetup(e.ctx, user, sess))
	use := kve.Usage{RequestID: "req_1", At: testNow, OrgID: s.org.ID, TokenID: s.token.ID, CostMicro: 42, Status: 200}
	e.ok(e.store.RecordUsage(e.ctx, []kve.Usage{use}))
	ev := e.event(s.org.ID, "token.reveal", s.token.ID)
	e.ok(e.store.AddEvent(e.ctx, ev))

	hash := hex.EncodeToString(s.token.Hash)
	expiry := fmt.Sprint(sess.ExpiresAt.Unix())
	usageExpiry := fmt.Sprint(testNow.Add(400 * 24 * time.Hour).Unix())
	dayExpiry := fmt.Sprint(time.Date(2026, 3, 14, 0, 0, 0, 0, time.UTC).Add(400 * 24 * time.Hour).Unix())
	for _, tc := range []struct {
		name   string
		pk, sk string
		want   map[string]string // some attributes, as text
	}{
		{"token for the proxy", "tokenhash#" + hash, "token", map[string]string{"id": s.token.ID, "version": "0", "last_used": formatTime(testNow)}},
		{"token for management", "org#" + s.org.ID, "token#" + s.token.ID, map[string]string{"key_id": s.key.ID, "last_used": formatTime(testNow)}},
		{"spend of the day", "tokenhash#" + hash, "spend#2026-03-14", map[string]string{"micro": "42", "ttl": dayExpiry}},
		{"usage record", "usage#" + s.org.ID, "2026-03-14T15:09:26.000000000Z#req_1", map[string]string{"token_id": s.token.ID, "ttl": usageExpiry}},
		{"org", "org#" + s.org.ID, "org", map[string]string{"slug": "acme"}},
		{"slug", "slug#acme", "slug", map[string]string{"org_id": s.org.ID}},
		{"member", "org#" + s.org.ID, "member#" + user.ID, map[string]string{"role": "owner"}},
		{"membership", "user#" + user.ID, "org#" + s.org.ID, map[string]string{"slug": "acme", "role": "owner"}},
		{"key", "org#" + s.org.ID, "key#main", map[string]string{"id": s.key.ID, "secret_version": "version-1", "gen": "1"}},
		{"audit event", "audit#" + s.org.ID, ev.ID, map[string]string{"action": "token.reveal"}},
		{"event id claim", "event#" + ev.ID, "event", map[string]string{"org_id": s.org.ID}},
		{"user", "user#" + user.ID, "user", map[string]string{"email": user.Email}},
		{"email, canonical", "email#owner@example.test", "email", map[string]string{"user_id": user.ID}},
		{"session by hash", "session#deadbeef", "session", map[string]string{"id": sess.ID, "ttl": expiry}},
		{"user's session", "user#" + user.ID, "session#" + sess.ID, map[string]string{"hash": "deadbeef", "ttl": expiry}},
		{"session by id", "sessionid#" + sess.ID, "session", map[string]string{"user_id": user.ID, "ttl": expiry}},
		{"setup", "system", "setup", map[string]string{"user_id": user.ID}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			it := e.raw(tc.pk, tc.sk)
			if len(it) == 0 {
				t.Fatalf("no item at %s / %s", tc.pk, tc.sk)
			}
			got := map[string]string{}
			for name := range tc.want {
				got[name] = text(it[name])
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("attributes (-want +got):\n%s", diff)
			}
		})
	}
}

// text renders an attribute value for comparison; binary as hex.
func text(av types.AttributeValue) string {
	switch v := av.(type) {
	case *types.AttributeValueMemberS:
		return v.Value
	case *types.AttributeValueMemberN:
		return v.Value
	case *types.AttributeValueMemberB:
		return hex.EncodeToString(v.Value)
	case nil:
		return "<missing>"
	}
	return fmt.Sprintf("%T", av)
}

// TestItemRoundTrip checks that what an item leaves out reads back as the
// zero value, and that nil and empty maps stay apart.
func TestItemRoundTrip(t *testing.T) {
	ev := kve.Event{ID: "evt_1", OrgID: "org_1", At: testNow, Detail: map[string]string{}}
	got, err := decodeEvent(eventItem(ev))
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(ev, got); diff != "" {
		t.Errorf("event (-want +got):\n%s", diff)
	}
	tok := kve.Token{ID: "tok_1", Hash: []byte{1}, Policy: kve.Policy{Origins: []kve.Origin{}}}
	it, err := tokenItem(&tok)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"owner_id", "revoked_at", "expires_at", "last_used", "sealed"} {
		if _, ok := it[name]; ok {
			t.Errorf("attribute %s stored for a zero value", name)
		}
	}
	back, err := decodeToken(it)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(tok, back, cmpopts.EquateComparable(kve.Origin{})); diff != "" {
		t.Errorf("token (-want +got):\n%s", diff)
	}
	f := fields{it: item{"version": str("seven")}}
	f.num("version")
	if f.err == nil {
		t.Error("reading a string as a number: no error")
	}
}
