// Command api is the Lambda function of kve's management API (/api/v1/…).
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
	h, err := deploy.API(context.Background(), os.Getenv)
	if err != nil {
		fmt.Fprintln(os.Stderr, "kve api:", err)
		os.Exit(1)
	}
	lambda.Start(lambdahttp.Buffered(h))
}
