// Command proxy is the Lambda function of kve's hot path, behind API Gateway
// with response streaming: build the handler once per execution
// environment, then serve invocations through the streaming adapter.
package main

import (
	"context"
	"fmt"
	"os"

	"github.com/aws/aws-lambda-go/lambda"

	"github.com/keyvault-edge/kve/shared/deploy"
	"github.com/keyvault-edge/kve/shared/lambdahttp"
)

func main() {
	h, err := deploy.Proxy(context.Background(), os.Getenv)
	if err != nil {
		fmt.Fprintln(os.Stderr, "kve proxy:", err)
		os.Exit(1)
	}
	lambda.Start(lambdahttp.Streaming(h))
}
