package alerts

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sns"
	"github.com/aws/aws-sdk-go-v2/service/sns/types"
	"github.com/aws/smithy-go"

	"github.com/keyvault-edge/kve/shared/kve"
	"github.com/keyvault-edge/kve/shared/store"
)

// SNSAPI is the part of *sns.Client that SNS calls.
type SNSAPI interface {
	Publish(ctx context.Context, in *sns.PublishInput, opts ...func(*sns.Options)) (*sns.PublishOutput, error)
	Subscribe(ctx context.Context, in *sns.SubscribeInput, opts ...func(*sns.Options)) (*sns.SubscribeOutput, error)
	Unsubscribe(ctx context.Context, in *sns.UnsubscribeInput, opts ...func(*sns.Options)) (*sns.UnsubscribeOutput, error)
	GetSubscriptionAttributes(ctx context.Context, in *sns.GetSubscriptionAttributesInput, opts ...func(*sns.Options)) (*sns.GetSubscriptionAttributesOutput, error)
}

// SNS is the AWS channel: alerts are published to the deployment's topic,
// which delivers each to the subscriptions whose filter policy matches its
// org attribute, and retries per the topic's delivery policy (set in
// infra/). Its client must be in the topic's region (TopicRegion).
type SNS struct {
	api   SNSAPI
	topic string
	dlq   string // dead-letter queue ARN for new subscriptions; "" for none
}

var _ Channel = (*SNS)(nil)

// NewSNS returns the channel of topicARN. dlqARN, when set, becomes the
// RedrivePolicy of every subscription it makes, so that a message SNS
// gives up on lands in the stack's dead-letter queue (and its alarm).
func NewSNS(api SNSAPI, topicARN, dlqARN string) (*SNS, error) {
	if _, err := TopicRegion(topicARN); err != nil {
		return nil, err
	}
	return &SNS{api: api, topic: topicARN, dlq: dlqARN}, nil
}

// TopicRegion returns the region of a topic ARN. The topic lives in a
// deployment's primary region; every region's functions publish there,
// with an SNS client of that region.
func TopicRegion(topicARN string) (string, error) {
	parts := strings.SplitN(topicARN, ":", 6)
	if len(parts) != 6 || parts[0] != "arn" || parts[2] != "sns" || parts[3] == "" || parts[5] == "" {
		return "", fmt.Errorf("alerts: %q is not an SNS topic ARN", topicARN)
	}
	return parts[3], nil
}

// FilterPolicy is the filter policy of an organization's subscriptions:
// only messages whose org attribute is the organization's.
func FilterPolicy(orgID string) string {
	b, _ := json.Marshal(map[string][]string{"org": {orgID}}) // a map of strings always marshals
	return string(b)
}

// Publish implements Publisher: one message with its attributes (org,
// type, environment, severity).
func (s *SNS) Publish(ctx context.Context, n Notification) error {
	attrs := map[string]types.MessageAttributeValue{}
	for k, v := range n.Attributes() {
		attrs[k] = types.MessageAttributeValue{DataType: aws.String("String"), StringValue: aws.String(v)}
	}
	_, err := s.api.Publish(ctx, &sns.PublishInput{
		TopicArn:          aws.String(s.topic),
		Subject:           aws.String(n.Subject),
		Message:           aws.String(string(n.Message)),
		MessageAttributes: attrs,
	})
	if err != nil {
		return fmt.Errorf("publish alert: %w", snsErr(err))
	}
	return nil
}

// Subscribe implements Channel: an SNS subscription of the endpoint,
// filtered to the organization's alerts, with the dead-letter queue. SNS
// sends the endpoint its confirmation request (or mail) itself.
func (s *SNS) Subscribe(ctx context.Context, sub store.Subscription) (store.Subscription, error) {
	attrs := map[string]string{"FilterPolicy": FilterPolicy(sub.OrgID), "FilterPolicyScope": "MessageAttributes"}
	if s.dlq != "" {
		b, _ := json.Marshal(map[string]string{"deadLetterTargetArn": s.dlq})
		attrs["RedrivePolicy"] = string(b)
	}
	out, err := s.api.Subscribe(ctx, &sns.SubscribeInput{
		TopicArn:              aws.String(s.topic),
		Protocol:              aws.String(sub.Protocol),
		Endpoint:              aws.String(sub.Endpoint),
		Attributes:            attrs,
		ReturnSubscriptionArn: true,
	})
	if err != nil {
		return store.Subscription{}, fmt.Errorf("subscribe: %w", snsErr(err))
	}
	sub.ARN = aws.ToString(out.SubscriptionArn)
	return sub, nil
}

// Subscribed implements Channel; SNS confirms on its own.
func (s *SNS) Subscribed(context.Context, store.Subscription) error { return nil }

// Confirmed implements Channel: whether SNS still waits for the endpoint's
// confirmation. A subscription SNS no longer knows (it drops unconfirmed
// ones after three days) is not confirmed.
func (s *SNS) Confirmed(ctx context.Context, sub store.Subscription) (bool, error) {
	out, err := s.api.GetSubscriptionAttributes(ctx, &sns.GetSubscriptionAttributesInput{SubscriptionArn: aws.String(sub.ARN)})
	if err != nil {
		err = snsErr(err)
		if kve.KindOf(err) == kve.KindNotFound {
			return false, nil
		}
		return false, fmt.Errorf("read subscription: %w", err)
	}
	return out.Attributes["PendingConfirmation"] == "false", nil
}

// Unsubscribe implements Channel. A subscription SNS no longer knows is
// gone already.
func (s *SNS) Unsubscribe(ctx context.Context, sub store.Subscription) error {
	_, err := s.api.Unsubscribe(ctx, &sns.UnsubscribeInput{SubscriptionArn: aws.String(sub.ARN)})
	if err != nil {
		if err = snsErr(err); kve.KindOf(err) == kve.KindNotFound {
			return nil
		}
		return fmt.Errorf("unsubscribe: %w", err)
	}
	return nil
}

// snsErr classifies an SNS error at the boundary: a refused parameter (an
// endpoint SNS will not take) is KindInvalid, an unknown subscription
// KindNotFound, throttling and service errors KindUnavailable.
func snsErr(err error) error {
	var api smithy.APIError
	if !errors.As(err, &api) {
		if errors.Is(err, context.DeadlineExceeded) {
			return kve.Wrap(kve.KindUnavailable, "unavailable", kve.ErrUnavailable.Message, err)
		}
		return err
	}
	switch api.ErrorCode() {
	case "InvalidParameter", "InvalidParameterValue":
		return kve.Wrap(kve.KindInvalid, "invalid_endpoint", "SNS refused the endpoint", err)
	case "NotFound", "ResourceNotFound",
		"AWS.SimpleNotificationService.NonExistentSubscription": // SNS's older code, which goaws answers

		return kve.Wrap(kve.KindNotFound, "not_found", "not found", err)
	case "Throttled", "Throttling", "InternalError", "ServiceUnavailable", "KMSThrottling":
		return kve.Wrap(kve.KindUnavailable, "unavailable", kve.ErrUnavailable.Message, err)
	}
	return err
}
