// Command infra is kve's CDK app: `cdk synth` and `cdk deploy` run it (see
// cdk.json at the repository root and infra/README.md). It reads the
// deployment's settings from the CDK context and hands them to package
// stack, where all the infrastructure is defined.
package main

import (
	"fmt"
	"os"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/jsii-runtime-go"

	"github.com/keyvault-edge/kve/infra/stack"
)

func main() {
	defer jsii.Close()
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "kve infra:", err)
		os.Exit(1)
	}
}

func run() error {
	app := awscdk.NewApp(nil)
	s, err := stack.ParseSettings(func(key string) any { return app.Node().TryGetContext(jsii.String(key)) })
	if err != nil {
		return err
	}
	if _, err := stack.New(app, s); err != nil {
		return err
	}
	app.Synth(nil)
	return nil
}
