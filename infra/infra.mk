# infra/infra.mk: the CDK app's targets. The top-level Makefile includes it
# (include infra/infra.mk) and provides `build`, which writes the function
# assets infra/assets/<fn>/bootstrap (linux/arm64) that synth and deploy
# package.
#
#   make synth                    CloudFormation into infra/cdk.out; offline,
#                                 no AWS credentials (environment-agnostic)
#   make cdk-bootstrap            once per account and region, before deploy
#   make deploy CDK_CONTEXT='-c domain=kve.example.com -c hostedZoneId=Z… -c alertEmail=ops@example.com'
#   make diff                     what deploy would change
#   make infra-test               assertion tests of the stack (offline)
#
# CDK_CONTEXT passes settings through as -c key=value (see infra/README.md);
# CDK_ARGS passes anything else to the CLI (e.g. --require-approval never).
# deploy and diff act on every stack (--all): one per region.

CDK_CONTEXT ?=
CDK_ARGS ?=
GO ?= go

# The CLI is pinned in infra/package.json; nothing is installed globally.
# The version check and telemetry would call out to the internet, and the
# Node 20 end-of-life banner (jsii prints it) is noise on every run.
INFRA_CDK = CDK_DISABLE_VERSION_CHECK=1 CDK_DISABLE_CLI_TELEMETRY=true \
	JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION=20 \
	infra/node_modules/.bin/cdk --no-notices

.PHONY: synth deploy diff cdk-bootstrap infra-test infra-cli infra-clean

# npm ci installs exactly package-lock.json. The CLI ships Go templates for
# `cdk init` that are not valid Go: the root go.mod ignores
# infra/node_modules, and the templates are deleted so that gofmt walking
# the tree does not trip on them either.
infra/node_modules/.bin/cdk: infra/package.json infra/package-lock.json
	npm ci --prefix infra --no-audit --no-fund
	find infra/node_modules -name '*.go' -delete
	touch $@

infra-cli: infra/node_modules/.bin/cdk

synth: infra-cli
	$(MAKE) build
	$(INFRA_CDK) synth --quiet $(CDK_CONTEXT) $(CDK_ARGS)

deploy: infra-cli
	$(MAKE) build
	$(INFRA_CDK) deploy --all $(CDK_CONTEXT) $(CDK_ARGS)

diff: infra-cli
	$(MAKE) build
	$(INFRA_CDK) diff --all $(CDK_CONTEXT) $(CDK_ARGS)

# Uses the CLI's credentials; a deployment pinned to regions needs each of
# them bootstrapped: CDK_ARGS='aws://<account>/us-east-1 aws://<account>/eu-west-1'.
cdk-bootstrap: infra-cli
	$(MAKE) build
	$(INFRA_CDK) bootstrap $(CDK_CONTEXT) $(CDK_ARGS)

infra-test:
	JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION=20 $(GO) test -count=1 ./infra/...

infra-clean:
	rm -rf infra/cdk.out
