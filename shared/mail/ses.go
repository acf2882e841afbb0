package mail

import (
	"context"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sesv2"
	"github.com/aws/aws-sdk-go-v2/service/sesv2/types"
)

// SESAPI is the part of *sesv2.Client that SES calls.
type SESAPI interface {
	SendEmail(ctx context.Context, in *sesv2.SendEmailInput, opts ...func(*sesv2.Options)) (*sesv2.SendEmailOutput, error)
}

// SES sends through Amazon SES (the v2 API), from a verified sender
// address that the CDK stack passes in KVE_MAIL_FROM.
type SES struct {
	client SESAPI
	from   string
}

// NewSES returns a sender on client from the address from.
func NewSES(client SESAPI, from string) (*SES, error) {
	if _, err := Address(from); err != nil {
		return nil, fmt.Errorf("mail: sender %q: %w", from, err)
	}
	return &SES{client: client, from: from}, nil
}

// Send implements Sender: one SendEmail of simple content, which SES
// encodes into the message's headers and body.
func (s *SES) Send(ctx context.Context, m Message) error {
	to, subject, err := check(m)
	if err != nil {
		return err
	}
	_, err = s.client.SendEmail(ctx, &sesv2.SendEmailInput{
		FromEmailAddress: aws.String(s.from),
		Destination:      &types.Destination{ToAddresses: []string{to.Address}},
		Content: &types.EmailContent{Simple: &types.Message{
			Subject: &types.Content{Data: aws.String(subject), Charset: aws.String("UTF-8")},
			Body:    &types.Body{Text: &types.Content{Data: aws.String(m.Text), Charset: aws.String("UTF-8")}},
		}},
	})
	if err != nil {
		return fmt.Errorf("send mail through SES: %w", err)
	}
	return nil
}
