package dynamo

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/keyvault-edge/kve/shared/kve"
)

// The table's schema. The CDK stack in infra/ creates the production table
// with exactly these names; CreateTable creates the same for tests and
// emulators. Billing is on demand and there is no secondary index: every
// access pattern below is a GetItem or a Query on the primary key.
const (
	AttrPK  = "pk"  // partition key, S
	AttrSK  = "sk"  // sort key, S
	AttrTTL = "ttl" // epoch seconds; DynamoDB deletes the item some time after
)

// Access patterns and the keys they use (pk / sk). Every read and write of
// an organization's objects names the organization in pk, so an id of
// another organization cannot reach them.
//
//	pattern                             pk                  sk                     how
//	token by HMAC (proxy, every req.)   tokenhash#<hex>     spend#<today>…token    Query, consistent: today's spend + token
//	token by id                         org#<org>           token#<id>             GetItem
//	org → tokens, newest first          org#<org>           begins_with token#     Query, backwards (ids sort by time), filters
//	key → its tokens (rotate, delete)   org#<org>           begins_with token#     Query, filter key_id (delete: not revoked)
//	spend per token per UTC day         tokenhash#<hex>     spend#<YYYY-MM-DD>     ADD in Hold (condition) and Settle; TTL 400 days
//	usage records, newest first         usage#<org>         <time>#<request id>    Query, backwards, filters; TTL 400 days
//	org by id (owners, gen, deleted)    org#<org>           org                    GetItem; conditions of member changes
//	org by slug (slug unique)           slug#<slug>         slug                   GetItem → org id
//	org → members (sorted by joining)   org#<org>           member#<user>          Query begins_with member#
//	user → orgs (sorted by joining)     user#<user>         org#<org>              Query begins_with org#
//	member → personal tokens            org#<org>           begins_with token#     Query, filter owner_id, kind, not revoked (offboarding)
//	org → everything it holds           org#<org>           (all)                  Query (DeleteOrg)
//	org → invites, newest first         org#<org>           invite#<id>            Query begins_with invite#, backwards, filter open
//	invite by code HMAC                 invite#<hex>        invite                 GetItem, consistent; TTL = expiry + 7 days
//	org → keys by name (name unique)    org#<org>           key#<name>             GetItem / Query begins_with key#
//	org → audit log, newest first       audit#<org>         <event id>             Query, backwards (ids sort by time), filters
//	event id taken (ids are global)     event#<event id>    event                  written with each event, never read
//	user by id                          user#<user>         user                   GetItem
//	user by email (email unique)        email#<email>       email                  GetItem → user id
//	session by HMAC (every mgmt req.)   session#<hex>       session                GetItem, consistent; TTL = expiry
//	user → sessions (sorted, newest)    user#<user>         session#<id>           Query begins_with session#; TTL = expiry
//	user → sessions limited to an org   user#<user>         session#<id>           Query begins_with session#, filter org_id
//	session by id (touch)               sessionid#<id>      session                GetItem → user id and HMAC; TTL = expiry
//	setup done (once)                   system              setup                  GetItem, consistent
//	request's hold (pending record)     holds#<org>         <time>#<request id>    Put in Hold's transaction, Delete in Settle's; Query < time (stale); metering.go
//	token's rate window per minute      tokenhash#<hex>     rate#<UTC minute>      ADD with conditions in Hold, ADD tokens in Settle; TTL 1 h; metering.go
//	spend per token per UTC month       tokenhash#<hex>     spend#<YYYY-MM>        ADD in Hold (condition) and Settle; TTL 400 days; metering.go
//	org's spend per UTC month           billing#<org>       spend#<YYYY-MM>        ADD in Hold and Settle while the org has a budget; billing.go
//	org's billing settings              billing#<org>       settings               GetItem, Put; billing.go
//	token's limits beyond its policy    billing#<org>       limits#<token id>      GetItem, Put, Query begins_with; billing.go
//	rollup per (day, token, model)      rollup#<org>        <day>#<token>#<model>  ADD in Settle; Query between days; TTL 400 days; rollups.go
//	org → breach incidents              alerts#<org>        incident#<id>          UpdateItem (ADD), Query; alerts.go
//	token → detection counters          detect#<org>#<tok>  minute#… / net#…       UpdateItem, Query; TTL; alerts.go
//	org → alert subscriptions           org#<org>           subscription#<id>      Query begins_with; alerts.go
//	alert endpoint subscribed once      org#<org>           subendpoint#<sha256>   written with the subscription
//
// Why no GSI: the only lookups not by an object's own key are by token,
// session and invite HMAC, email and slug, and each of those is an item of its own,
// written in the same transaction as the object, which also makes the value
// unique (attribute_not_exists). A key's tokens are found by filtering its
// organization's tokens: that runs only on rotation and deletion, and
// DeleteKey needs it strongly consistent, which a GSI cannot be. No GSI
// could serve the proxy either: it is eventually consistent, so it could not
// hold a revocation on the next request.
//
// Known limit: one organization's usage records share a partition
// (usage#<org>), which DynamoDB serves at up to about 1,000 writes per
// second; an organization beyond that needs the partition sharded by a
// suffix.

// Sort key values and prefixes.
const (
	skToken   = "token"
	skOrg     = "org"
	skSlug    = "slug"
	skUser    = "user"
	skEmail   = "email"
	skSession = "session"
	skSetup   = "setup"
	skEvent   = "event"
	skInvite  = "invite"

	prefixToken   = "token#"
	prefixSpend   = "spend#"
	prefixMember  = "member#"
	prefixOrg     = "org#"
	prefixKey     = "key#"
	prefixSession = "session#"
	prefixInvite  = "invite#"
)

// usageTTL is how long usage records and daily spend counters are kept.
const usageTTL = 400 * 24 * time.Hour

func orgPK(orgID string) string        { return "org#" + orgID }
func userPK(userID string) string      { return "user#" + userID }
func tokenHashPK(hash []byte) string   { return "tokenhash#" + hex.EncodeToString(hash) }
func sessionHashPK(hash []byte) string { return "session#" + hex.EncodeToString(hash) }
func sessionIDPK(id string) string     { return "sessionid#" + id }
func slugPK(slug string) string        { return "slug#" + slug }
func emailPK(email string) string      { return "email#" + kve.CanonicalEmail(email) }
func auditPK(orgID string) string      { return "audit#" + orgID }
func inviteHashPK(hash []byte) string  { return "invite#" + hex.EncodeToString(hash) }
func eventIDPK(id string) string       { return "event#" + id }
func usagePK(orgID string) string      { return "usage#" + orgID }

const systemPK = "system"

func spendSK(day string) string { return prefixSpend + day }

// usageSK orders records by arrival time; the request id makes it unique
// and makes a retried record land on the same item.
func usageSK(u *kve.Usage) string { return formatTime(u.At) + "#" + u.RequestID }

// primaryKey returns the key of an item.
func primaryKey(pk, sk string) item {
	return item{AttrPK: str(pk), AttrSK: str(sk)}
}

// TableAPI is what CreateTable needs of a DynamoDB client.
type TableAPI interface {
	CreateTable(ctx context.Context, in *dynamodb.CreateTableInput, opts ...func(*dynamodb.Options)) (*dynamodb.CreateTableOutput, error)
	DescribeTable(ctx context.Context, in *dynamodb.DescribeTableInput, opts ...func(*dynamodb.Options)) (*dynamodb.DescribeTableOutput, error)
	UpdateTimeToLive(ctx context.Context, in *dynamodb.UpdateTimeToLiveInput, opts ...func(*dynamodb.Options)) (*dynamodb.UpdateTimeToLiveOutput, error)
}

// CreateTable creates a table with kve's schema (as the CDK stack does) and
// turns on TTL. Emulators that lack UpdateTimeToLive keep items until they
// are deleted, which is harmless: kve checks every expiry itself.
func CreateTable(ctx context.Context, client TableAPI, name string) error {
	out, err := client.CreateTable(ctx, &dynamodb.CreateTableInput{
		TableName:   aws.String(name),
		BillingMode: types.BillingModePayPerRequest,
		AttributeDefinitions: []types.AttributeDefinition{
			{AttributeName: aws.String(AttrPK), AttributeType: types.ScalarAttributeTypeS},
			{AttributeName: aws.String(AttrSK), AttributeType: types.ScalarAttributeTypeS},
		},
		KeySchema: []types.KeySchemaElement{
			{AttributeName: aws.String(AttrPK), KeyType: types.KeyTypeHash},
			{AttributeName: aws.String(AttrSK), KeyType: types.KeyTypeRange},
		},
	})
	if err != nil {
		return fmt.Errorf("create table %s: %w", name, err)
	}
	if d := out.TableDescription; d != nil && d.TableStatus == types.TableStatusCreating {
		w := dynamodb.NewTableExistsWaiter(client, func(o *dynamodb.TableExistsWaiterOptions) {
			o.MinDelay = time.Second
		})
		if err := w.Wait(ctx, &dynamodb.DescribeTableInput{TableName: aws.String(name)}, 5*time.Minute); err != nil {
			return fmt.Errorf("wait for table %s: %w", name, err)
		}
	}
	_, err = client.UpdateTimeToLive(ctx, &dynamodb.UpdateTimeToLiveInput{
		TableName: aws.String(name),
		TimeToLiveSpecification: &types.TimeToLiveSpecification{
			AttributeName: aws.String(AttrTTL),
			Enabled:       aws.Bool(true),
		},
	})
	if err != nil && !unknownOperation(err) {
		return fmt.Errorf("enable ttl on table %s: %w", name, err)
	}
	return nil
}

// unknownOperation reports whether err says the backend does not implement
// the operation at all, as opposed to refusing this call: dynalite answers
// UnknownOperationException, minidyn a 400 whose body is not a DynamoDB
// error document (real DynamoDB always sends one).
func unknownOperation(err error) bool {
	var api smithy.APIError
	if errors.As(err, &api) {
		switch api.ErrorCode() {
		case "UnknownOperationException", "UnsupportedOperation":
			return true
		}
		return false
	}
	var resp *smithyhttp.ResponseError
	var de *smithy.DeserializationError
	return errors.As(err, &resp) && resp.HTTPStatusCode() == 400 && errors.As(err, &de)
}
