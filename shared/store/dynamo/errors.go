package dynamo

import (
	"context"
	"errors"
	"net"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/ratelimit"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/keyvault-edge/kve/shared/kve"
)

// translate turns an error of the DynamoDB client into a kve kind, keeping
// it as the cause for the log:
//   - a failed condition → KindConflict (callers that know the condition was
//     the object's existence answer kve.ErrNotFound before this);
//   - throttling, 5xx, timeouts and connection failures → KindUnavailable,
//     after the SDK's own retries;
//   - anything else (a validation error is a bug here) → KindInternal.
func translate(err error) error {
	if err == nil {
		return nil
	}
	var ke *kve.Error
	if errors.As(err, &ke) {
		return err
	}
	if conflict(err) {
		return kve.Wrap(kve.KindConflict, "conflict", kve.ErrConflict.Message, err)
	}
	if unavailable(err) {
		return kve.Wrap(kve.KindUnavailable, "unavailable", kve.ErrUnavailable.Message, err)
	}
	return kve.Wrap(kve.KindInternal, "", "", err)
}

func conflict(err error) bool {
	var ccf *types.ConditionalCheckFailedException
	if errors.As(err, &ccf) {
		return true
	}
	var tce *types.TransactionCanceledException
	if errors.As(err, &tce) {
		for _, r := range tce.CancellationReasons {
			switch aws.ToString(r.Code) {
			case "ConditionalCheckFailed", "TransactionConflict":
				return true
			}
		}
	}
	var tc *types.TransactionConflictException
	return errors.As(err, &tc)
}

func unavailable(err error) bool {
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		return true
	}
	var (
		pte *types.ProvisionedThroughputExceededException
		rle *types.RequestLimitExceeded
		ise *types.InternalServerError
		tip *types.TransactionInProgressException
	)
	if errors.As(err, &pte) || errors.As(err, &rle) || errors.As(err, &ise) || errors.As(err, &tip) {
		return true
	}
	var tce *types.TransactionCanceledException
	if errors.As(err, &tce) {
		for _, r := range tce.CancellationReasons {
			switch aws.ToString(r.Code) {
			case "ThrottlingError", "ProvisionedThroughputExceeded", "RequestLimitExceeded":
				return true
			}
		}
	}
	var api smithy.APIError
	if errors.As(err, &api) {
		switch api.ErrorCode() {
		case "ThrottlingException", "Throttling", "LimitExceededException", "ServiceUnavailable":
			return true
		}
	}
	var resp *smithyhttp.ResponseError
	if errors.As(err, &resp) && resp.HTTPStatusCode() >= 500 {
		return true
	}
	var quota ratelimit.QuotaExceededError // the SDK's retry budget ran out on earlier failures
	if errors.As(err, &quota) {
		return true
	}
	var netErr net.Error
	if errors.As(err, &netErr) {
		return true
	}
	var reqErr *smithyhttp.RequestSendError
	return errors.As(err, &reqErr)
}
