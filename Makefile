# kve — make dev (local mode), make test, make build (Lambda zips), make invoke,
# make synth / make deploy (CDK, see infra/README.md).

GO        ?= go
FUNCTIONS := proxy api console
ASSETS    := infra/assets
EVENT     ?= events/proxy-chat.json
RIE_VERSION := v0.0.0-20261030222936-bef5c4ba774d
GOAWS_VERSION := v0.4.5

.PHONY: dev test build invoke race vet tools clean

## dev: local mode on 127.0.0.1:8080 with data in .kve-local/ (no AWS, no other service)
dev:
	$(GO) run ./functions/local $(ARGS)

## test: every test; tests that need an emulator skip with a message unless KVE_REQUIRE_SERVICES=1
test:
	$(GO) test ./...

## race: the race detector on the packages with concurrency
race:
	$(GO) test -race ./shared/proxy/... ./shared/secrets/... ./shared/store/... ./shared/usage/... ./shared/limits/... ./shared/lambdahttp/... ./shared/local/... ./shared/manage/... ./shared/api/... ./shared/alerts/...

vet:
	$(GO) vet ./...

## build: the Lambda bootstrap of each function (linux/arm64, provided.al2023) and its zip,
## with at least go.mod's toolchain line (the standard library's security fixes), which the go
## command fetches from the module proxy when the local Go is older
build:
	@for fn in $(FUNCTIONS); do \
		echo "build $$fn"; \
		mkdir -p $(ASSETS)/$$fn && \
		GOTOOLCHAIN=auto CGO_ENABLED=0 GOOS=linux GOARCH=arm64 $(GO) build -tags lambda.norpc -trimpath \
			-ldflags='-s -w' -o $(ASSETS)/$$fn/bootstrap ./functions/$$fn && \
		rm -f $(ASSETS)/$$fn.zip && zip -qjX $(ASSETS)/$$fn.zip $(ASSETS)/$$fn/bootstrap || exit 1; \
	done
	@ls -l $(ASSETS)/*.zip

## invoke: run an API Gateway event fixture through a handler (EVENT=events/…json TOKEN=kve_…)
invoke:
	$(GO) run ./functions/local invoke --event $(EVENT) $(if $(TOKEN),--token $(TOKEN))

## tools: the AWS Lambda Runtime Interface Emulator used by the Lambda tests, and
## the goaws SNS emulator of the alert tests (its main package is app/cmd: renamed goaws)
tools:
	$(GO) install github.com/aws/aws-lambda-runtime-interface-emulator/cmd/aws-lambda-rie@$(RIE_VERSION)
	tmp=$$(mktemp -d) && GOBIN=$$tmp $(GO) install github.com/Admiral-Piett/goaws/app/cmd@$(GOAWS_VERSION) && \
		mv $$tmp/cmd "$$($(GO) env GOPATH)/bin/goaws" && rmdir $$tmp

clean:
	rm -rf $(ASSETS) infra/cdk.out

-include infra/infra.mk
