package kvetest

import (
	"github.com/anthropics/anthropic-sdk-go"
	aoption "github.com/anthropics/anthropic-sdk-go/option"
	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
)

// OpenAI returns the official OpenAI client configured as the README tells
// users to: base URL <kve>/openai/v1/ and the kve token as its API key. Its
// HTTP client is the instance's, so the canary check sees every answer.
// opts come last (option.WithMaxRetries(0) for error tests, extra headers).
func (in *Instance) OpenAI(token string, opts ...option.RequestOption) openai.Client {
	return openai.NewClient(append([]option.RequestOption{
		option.WithBaseURL(in.URL + "/openai/v1/"),
		option.WithAPIKey(token),
		option.WithHTTPClient(in.client),
	}, opts...)...)
}

// Anthropic returns the official Anthropic client at <kve>/anthropic with the
// kve token as its API key (sent as x-api-key; aoption.WithAuthToken in opts
// sends it as a bearer token instead). Environment defaults are off, so an
// ANTHROPIC_API_KEY on the machine cannot add a second credential.
func (in *Instance) Anthropic(token string, opts ...aoption.RequestOption) anthropic.Client {
	base := []aoption.RequestOption{
		aoption.WithoutEnvironmentDefaults(),
		aoption.WithBaseURL(in.URL + "/anthropic"),
		aoption.WithHTTPClient(in.client),
	}
	if token != "" {
		base = append(base, aoption.WithAPIKey(token))
	}
	return anthropic.NewClient(append(base, opts...)...)
}
