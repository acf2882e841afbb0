// Package dynamo is the store on Amazon DynamoDB: one table, items designed
// from kve's access patterns (listed in table.go), transactions for every
// invariant and for the audit event that goes with each change.
//
// Reads that decide something (the proxy's token lookup, sessions, the
// reads before a conditional write, lists) are strongly consistent: the
// table has no secondary index, so every read can be.
package dynamo

import (
	"context"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"

	"github.com/keyvault-edge/kve/shared/kve"
	"github.com/keyvault-edge/kve/shared/store"
)

// API is the part of *dynamodb.Client the store calls; tests wrap it to
// count calls.
type API interface {
	GetItem(ctx context.Context, in *dynamodb.GetItemInput, opts ...func(*dynamodb.Options)) (*dynamodb.GetItemOutput, error)
	Query(ctx context.Context, in *dynamodb.QueryInput, opts ...func(*dynamodb.Options)) (*dynamodb.QueryOutput, error)
	TransactWriteItems(ctx context.Context, in *dynamodb.TransactWriteItemsInput, opts ...func(*dynamodb.Options)) (*dynamodb.TransactWriteItemsOutput, error)
	// UpdateItem serves single-item counters that many writers hit at once
	// (a flood's breach incident): it serializes on the item where
	// transactions would conflict, and returns the item it wrote.
	UpdateItem(ctx context.Context, in *dynamodb.UpdateItemInput, opts ...func(*dynamodb.Options)) (*dynamodb.UpdateItemOutput, error)
}

// Store is kve's state in one DynamoDB table. It is safe for concurrent use.
type Store struct {
	db    API
	table *string
	now   func() time.Time
	pause func(ctx context.Context, attempt int) error // before a retry
}

var _ store.Store = (*Store)(nil)

// Option configures a Store.
type Option func(*Store)

// WithClock sets the clock that decides which UTC day's spend TokenByHash
// reports (time.Now by default).
func WithClock(now func() time.Time) Option { return func(s *Store) { s.now = now } }

// Open returns a store on an existing table (see CreateTable for its
// schema). It makes no call: a missing table shows on first use.
func Open(client API, table string, opts ...Option) *Store {
	s := &Store{db: client, table: aws.String(table), now: time.Now, pause: pause}
	for _, o := range opts {
		o(s)
	}
	return s
}

// Close implements store.Store; the client needs no closing.
func (s *Store) Close() error { return nil }

// get reads one item, strongly consistent; a missing item is kve.ErrNotFound.
func (s *Store) get(ctx context.Context, pk, sk string) (item, error) {
	out, err := s.db.GetItem(ctx, &dynamodb.GetItemInput{
		TableName:      s.table,
		Key:            primaryKey(pk, sk),
		ConsistentRead: aws.Bool(true),
	})
	if err != nil {
		return nil, translate(err)
	}
	if len(out.Item) == 0 {
		return nil, kve.ErrNotFound
	}
	return out.Item, nil
}
