package local

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/aws/aws-lambda-go/events"

	"github.com/keyvault-edge/kve/shared/lambdahttp"
)

// Invoke runs an API Gateway event fixture (events/*.json) through the same
// Lambda adapter the deployed functions use, with local mode's handlers and
// backends, and prints the Lambda response: `make invoke`. A token passed
// with --token replaces the fixtures' placeholder token.
func Invoke(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("kve-local invoke", flag.ContinueOnError)
	fs.SetOutput(stderr)
	eventPath := fs.String("event", "events/proxy-chat.json", "API Gateway REST proxy event to invoke")
	token := fs.String("token", "", "kve token to put in place of the fixture's placeholder")
	data := fs.String("data", ".kve-local", "local mode data directory")
	if err := fs.Parse(args); err != nil {
		return err
	}
	raw, err := os.ReadFile(*eventPath)
	if err != nil {
		return fmt.Errorf("read event: %w", err)
	}
	if *token != "" {
		raw = bytes.ReplaceAll(raw, []byte(placeholderToken), []byte(*token))
	}
	var ev events.APIGatewayProxyRequest
	if err := json.Unmarshal(raw, &ev); err != nil {
		return fmt.Errorf("parse event %s: %w", *eventPath, err)
	}
	cfg, err := ParseConfig([]string{"--data", *data}, getenv, stderr)
	if err != nil {
		return err
	}
	m := &Main{Config: cfg, Stdout: io.Discard}
	if err := m.Open(ctx); err != nil {
		return err
	}
	defer m.Close(context.Background())
	m.ready.Store(true)

	enc := json.NewEncoder(stdout)
	enc.SetIndent("", "  ")
	if strings.HasPrefix(ev.Path, "/api/") {
		res, err := lambdahttp.Buffered(m.handler)(ctx, ev)
		if err != nil {
			return fmt.Errorf("invoke: %w", err)
		}
		return enc.Encode(res)
	}
	res, err := lambdahttp.Streaming(m.handler)(ctx, ev)
	if err != nil {
		return fmt.Errorf("invoke: %w", err)
	}
	defer res.Body.(io.Closer).Close()
	if err := enc.Encode(struct {
		StatusCode        int                 `json:"statusCode"`
		MultiValueHeaders map[string][]string `json:"multiValueHeaders"`
	}{res.StatusCode, res.MultiValueHeaders}); err != nil {
		return err
	}
	fmt.Fprintln(stdout, "--- streamed body ---")
	_, err = io.Copy(stdout, res.Body)
	return err
}

// placeholderToken is the token value in the fixtures of events/.
const placeholderToken = "kve_hb_dev_FIXTUREPLACEHOLDER00000000000000000000"
