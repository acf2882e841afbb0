package dynamo

import (
	"context"
	"errors"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/keyvault-edge/kve/shared/kve"
)

// clashing fails the next n transactions the way DynamoDB does when
// another transaction holds one of their items, then lets them through.
type clashing struct {
	API
	n int
}

func (c *clashing) TransactWriteItems(ctx context.Context, in *dynamodb.TransactWriteItemsInput, opts ...func(*dynamodb.Options)) (*dynamodb.TransactWriteItemsOutput, error) {
	if c.n > 0 {
		c.n--
		reasons := make([]types.CancellationReason, len(in.TransactItems))
		for i := range reasons {
			reasons[i].Code = aws.String("None")
		}
		reasons[0].Code = aws.String("TransactionConflict")
		return nil, &types.TransactionCanceledException{Message: aws.String("Transaction cancelled"), CancellationReasons: reasons}
	}
	return c.API.TransactWriteItems(ctx, in, opts...)
}

func TestTransactionClashes(t *testing.T) {
	for _, tc := range []struct {
		name    string
		clashes int
		want    kve.Kind // of RecordUsage; KindInternal = success
	}{
		// Metering writes meet each other on a hot token's counters, and
		// get more attempts than management writes.
		{"retried", meteringAttempts - 1, kve.KindInternal},
		{"given up", meteringAttempts, kve.KindConflict},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			s := e.seed()
			db := &clashing{API: e.client, n: tc.clashes}
			st := Open(db, e.table)
			st.pause = func(context.Context, int) error { return nil }
			err := st.RecordUsage(e.ctx, []kve.Usage{{RequestID: "req_1", At: testNow, OrgID: s.org.ID, TokenID: s.token.ID, CostMicro: 3}})
			if tc.want == kve.KindInternal {
				e.ok(err)
				return
			}
			wantKind(t, "RecordUsage", err, tc.want)
			var tce *types.TransactionCanceledException
			if !errors.As(err, &tce) {
				t.Errorf("error %v does not keep the cancellation", err)
			}
		})
	}

	// A read-modify-write reads again after a clash that outlasts the
	// transaction's own retries.
	e := newEnv(t)
	s := e.seed()
	db := &clashing{API: e.client, n: conflictAttempts}
	st := Open(db, e.table)
	st.pause = func(context.Context, int) error { return nil }
	runs := 0
	_, err := st.UpdateToken(e.ctx, s.org.ID, s.token.ID, func(*kve.Token) error { runs++; return nil },
		e.event(s.org.ID, "token.update", s.token.ID))
	e.ok(err)
	if runs != 2 {
		t.Errorf("fn ran %d times, want 2", runs)
	}
}
