package dynamo

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/keyvault-edge/kve/shared/kve"
)

// write is one part of a transaction, with the error that answers for it
// when its condition fails. failWith, when set, decides that error from the
// item as it was (the write asks DynamoDB to return it).
type write struct {
	op       types.TransactWriteItem
	fail     error
	failWith func(old item) error
}

// put writes a whole item if cond (over e) holds.
func (s *Store) put(it item, e *expr, cond string, fail error) write {
	return write{op: types.TransactWriteItem{Put: &types.Put{
		TableName: s.table, Item: it, ConditionExpression: optional(cond),
		ExpressionAttributeNames: e.Names(), ExpressionAttributeValues: e.Values(),
	}}, fail: fail}
}

// create writes a new item; one that exists already fails with fail.
func (s *Store) create(it item, fail error) write {
	var e expr
	return s.put(it, &e, e.notExists(), fail)
}

// update changes the item at k with the update expression upd if cond holds.
func (s *Store) update(k item, e *expr, upd, cond string, fail error) write {
	return write{op: types.TransactWriteItem{Update: &types.Update{
		TableName: s.table, Key: k, UpdateExpression: aws.String(upd), ConditionExpression: optional(cond),
		ExpressionAttributeNames: e.Names(), ExpressionAttributeValues: e.Values(),
	}}, fail: fail}
}

// remove deletes the item at k if cond holds.
func (s *Store) remove(k item, e *expr, cond string, fail error) write {
	return write{op: types.TransactWriteItem{Delete: &types.Delete{
		TableName: s.table, Key: k, ConditionExpression: optional(cond),
		ExpressionAttributeNames: e.Names(), ExpressionAttributeValues: e.Values(),
	}}, fail: fail}
}

// check makes the transaction depend on cond over the item at k, without
// writing it.
func (s *Store) check(k item, e *expr, cond string, fail error) write {
	return write{op: types.TransactWriteItem{ConditionCheck: &types.ConditionCheck{
		TableName: s.table, Key: k, ConditionExpression: aws.String(cond),
		ExpressionAttributeNames: e.Names(), ExpressionAttributeValues: e.Values(),
	}}, fail: fail}
}

// transactAll writes ws in transactions of at most maxTransaction items,
// in order; see batches.
func (s *Store) transactAll(ctx context.Context, txs [][]write) error {
	for _, ws := range txs {
		if len(ws) == 0 {
			continue
		}
		if err := s.transact(ctx, ws...); err != nil {
			return err
		}
	}
	return nil
}

func optional(s string) *string {
	if s == "" {
		return nil
	}
	return aws.String(s)
}

// maxTransaction is DynamoDB's limit of items in one TransactWriteItems.
const maxTransaction = 100

// conflictAttempts bounds retries of a transaction that met another
// transaction on the same item (a hot token's spend counter, say).
const conflictAttempts = 3

// transact writes all of ws or none. A failed condition returns the error
// of the write that failed. A clash with a concurrent transaction on the
// same item is retried a few times, as DynamoDB advises, and then answered
// as errStale, so that a read-modify-write reads again. The SDK gives every
// call an idempotency token, so its own retry of a transaction that did
// commit does not fail on the transaction's own conditions.
func (s *Store) transact(ctx context.Context, ws ...write) error {
	return s.transactAttempts(ctx, conflictAttempts, ws...)
}

// transactAttempts is transact with its own bound on clashes.
func (s *Store) transactAttempts(ctx context.Context, attempts int, ws ...write) error {
	ops := make([]types.TransactWriteItem, len(ws))
	for i, w := range ws {
		ops[i] = w.op
	}
	for attempt := 1; ; attempt++ {
		_, err := s.db.TransactWriteItems(ctx, &dynamodb.TransactWriteItemsInput{TransactItems: ops})
		var tce *types.TransactionCanceledException
		if err == nil || !errors.As(err, &tce) || len(tce.CancellationReasons) != len(ws) {
			return translate(err)
		}
		clash := false
		for i, r := range tce.CancellationReasons {
			switch aws.ToString(r.Code) {
			case "ConditionalCheckFailed":
				if ws[i].failWith != nil {
					return ws[i].failWith(r.Item)
				}
				if ws[i].fail != nil {
					return ws[i].fail
				}
				return kve.ErrConflict
			case "TransactionConflict":
				clash = true
			}
		}
		if !clash {
			return translate(err)
		}
		if attempt == attempts {
			return fmt.Errorf("%w: %w", errStale, err)
		}
		if err := s.pause(ctx, attempt); err != nil {
			return translate(err)
		}
	}
}

// pause waits before retry number attempt: full jitter over an
// exponential step (5 ms, 10 ms, … capped at 200 ms), so writers that
// collided spread out instead of colliding again.
func pause(ctx context.Context, attempt int) error {
	step := min(5*time.Millisecond<<min(attempt-1, 6), 200*time.Millisecond)
	t := time.NewTimer(rand.N(step) + time.Millisecond)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// staleAttempts bounds the read-modify-write loops (UpdateToken, RotateKey,
// DeleteKey). Each lost race means another writer won, so with jittered
// pauses twenty writers on one token all land well within it.
const staleAttempts = 10

// errStale answers a read-modify-write that lost a race; retryStale retries it.
var errStale = kve.Errorf(kve.KindConflict, "conflict", "changed by someone else meanwhile; try again")

// retryStale runs fn (read, decide, write on condition that nothing changed)
// until it does not lose a race, at most staleAttempts times.
func (s *Store) retryStale(ctx context.Context, fn func() error) error {
	for attempt := 1; ; attempt++ {
		err := fn()
		if !errors.Is(err, errStale) || attempt == staleAttempts {
			return err
		}
		if err := s.pause(ctx, attempt); err != nil {
			return translate(err)
		}
	}
}
