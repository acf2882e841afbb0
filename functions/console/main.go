// Command console is the Lambda function of kve's dashboard: the pages under
// /, /login, /setup, /account, /o/… and their assets under /static/….
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
	h, err := deploy.Console(context.Background(), os.Getenv)
	if err != nil {
		fmt.Fprintln(os.Stderr, "kve console:", err)
		os.Exit(1)
	}
	lambda.Start(lambdahttp.Buffered(h))
}
