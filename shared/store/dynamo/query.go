package dynamo

import (
	"context"
	"encoding/base64"
	"encoding/json"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/keyvault-edge/kve/shared/kve"
)

// query is a strongly consistent Query of one partition: pk = the given
// value, an optional condition on sk, an optional filter, all written over
// the query's expr.
type query struct {
	expr
	pk       string
	keyCond  string
	filter   string
	backward bool // newest first, for sort keys that grow with time
}

func newQuery(pk string) *query {
	q := &query{pk: pk}
	q.keyCond = q.name(AttrPK) + " = " + q.value(str(pk))
	return q
}

// prefix limits the query to sort keys that begin with p.
func (q *query) prefix(p string) *query {
	q.keyCond += " AND begins_with(" + q.name(AttrSK) + ", " + q.value(str(p)) + ")"
	return q
}

// from limits the query to sort keys at or after lo.
func (q *query) from(lo string) *query {
	q.keyCond += " AND " + q.name(AttrSK) + " >= " + q.value(str(lo))
	return q
}

// between limits the query to sort keys from lo to hi, both included.
func (q *query) between(lo, hi string) *query {
	q.keyCond += " AND " + q.name(AttrSK) + " BETWEEN " + q.value(str(lo)) + " AND " + q.value(str(hi))
	return q
}

// where adds cond to the filter, which DynamoDB applies after reading.
func (q *query) where(cond string) {
	if q.filter == "" {
		q.filter = cond
		return
	}
	q.filter += " AND " + cond
}

func (q *query) input(table *string, start item, limit int) *dynamodb.QueryInput {
	in := &dynamodb.QueryInput{
		TableName:                 table,
		KeyConditionExpression:    aws.String(q.keyCond),
		FilterExpression:          optional(q.filter),
		ExpressionAttributeNames:  q.Names(),
		ExpressionAttributeValues: q.Values(),
		ConsistentRead:            aws.Bool(true),
		ScanIndexForward:          aws.Bool(!q.backward),
		ExclusiveStartKey:         start,
	}
	if limit > 0 {
		in.Limit = aws.Int32(int32(limit))
	}
	return in
}

// all returns every item q matches, following DynamoDB's pages.
func (s *Store) all(ctx context.Context, q *query) ([]item, error) {
	var items []item
	var start item
	for {
		out, err := s.db.Query(ctx, q.input(s.table, start, 0))
		if err != nil {
			return nil, translate(err)
		}
		for _, it := range out.Items {
			items = append(items, it)
		}
		if len(out.LastEvaluatedKey) == 0 {
			return items, nil
		}
		start = out.LastEvaluatedKey
	}
}

// page returns up to limit items q matches after cursor, and the cursor of
// the next page ("" when there is none). It reads one item more than asked
// so that a full last page does not promise a next one; with a filter it
// reads in larger steps, since DynamoDB counts its limit before filtering.
// The cursor is the key of the last item returned, so items read beyond it
// are read again by the next page rather than lost.
func (s *Store) page(ctx context.Context, q *query, cursor string, limit int) ([]item, string, error) {
	start, err := decodeCursor(cursor, q.pk)
	if err != nil {
		return nil, "", err
	}
	step := limit + 1
	if q.filter != "" {
		step = max(step, 100)
	}
	var items []item
	for {
		out, err := s.db.Query(ctx, q.input(s.table, start, step))
		if err != nil {
			return nil, "", translate(err)
		}
		for _, it := range out.Items {
			items = append(items, it)
		}
		if len(items) > limit {
			last := items[limit-1]
			return items[:limit], encodeCursor(last[AttrPK], last[AttrSK]), nil
		}
		if len(out.LastEvaluatedKey) == 0 {
			return items, "", nil
		}
		start = out.LastEvaluatedKey
	}
}

// cursor is the key a page ends at. It is opaque to callers but not secret:
// it holds the partition it belongs to, checked on use, so a cursor of one
// organization's list cannot page through another's.
type cursor struct {
	PK string `json:"pk"`
	SK string `json:"sk"`
}

func encodeCursor(pk, sk types.AttributeValue) string {
	var c cursor
	if v, ok := pk.(*types.AttributeValueMemberS); ok {
		c.PK = v.Value
	}
	if v, ok := sk.(*types.AttributeValueMemberS); ok {
		c.SK = v.Value
	}
	b, _ := json.Marshal(c) // two strings always marshal
	return base64.RawURLEncoding.EncodeToString(b)
}

var errBadCursor = kve.Errorf(kve.KindInvalid, "invalid_cursor", "the cursor is not valid for this list")

func decodeCursor(s, pk string) (item, error) {
	if s == "" {
		return nil, nil
	}
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return nil, errBadCursor
	}
	var c cursor
	if err := json.Unmarshal(b, &c); err != nil || c.PK != pk || c.SK == "" {
		return nil, errBadCursor
	}
	return primaryKey(c.PK, c.SK), nil
}
