// Package deploy wires kve's handlers to the AWS backends of a deployment
// (DynamoDB, Secrets Manager, SNS, SES), configured only by the environment
// variables the CDK stack in infra/ sets (package stackenv). The
// functions/* mains call it and nothing else.
package deploy

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"time"

	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/aws-sdk-go-v2/service/sesv2"

	"github.com/keyvault-edge/kve/shared/alerts"
	"github.com/keyvault-edge/kve/shared/api"
	"github.com/keyvault-edge/kve/shared/kve"
	"github.com/keyvault-edge/kve/shared/mail"
	"github.com/keyvault-edge/kve/shared/manage"
	"github.com/keyvault-edge/kve/shared/proxy"
	"github.com/keyvault-edge/kve/shared/secrets"
	"github.com/keyvault-edge/kve/shared/stackenv"
	"github.com/keyvault-edge/kve/shared/store/dynamo"
	"github.com/keyvault-edge/kve/shared/usage"
)

// backends are the AWS clients of one execution environment, built once at
// start and reused by every invocation.
type backends struct {
	cfg     stackenv.Config
	log     *slog.Logger
	store   *dynamo.Store
	secrets *secrets.Manager
	mail    mail.Sender // nil: no mail; invite links go to the inviter
	// alerts is the breach alert topic; scanner verifies leak reports
	// (nil: the api refuses them). See alerts.go.
	alerts  *alerts.SNS
	scanner *alerts.ScanningKeys
}

// open reads the function's configuration and builds its AWS clients. The
// SDK takes credentials and region from the Lambda environment; endpoints
// can be pointed at emulators with the SDK's own AWS_ENDPOINT_URL_<SERVICE>
// variables (the runtime-emulator tests do).
func open(ctx context.Context, function string, getenv func(string) string) (*backends, error) {
	cfg, err := stackenv.Load(function, getenv)
	if err != nil {
		return nil, err
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(cfg.LogLevel)); cfg.LogLevel != "" && err != nil {
		return nil, fmt.Errorf("%s: %w", stackenv.EnvLogLevel, err)
	}
	log := slog.New(slog.NewJSONHandler(os.Stdout, &slog.HandlerOptions{Level: level})).With("function", function)
	awsCfg, err := awsconfig.LoadDefaultConfig(ctx)
	if err != nil {
		return nil, fmt.Errorf("load AWS configuration: %w", err)
	}
	// In a multi-region deployment the stack names the other regions: each
	// key secret is replicated to every one, under kve's key there.
	var replicas []secrets.Replica
	for _, region := range cfg.ReplicaRegions {
		replicas = append(replicas, secrets.Replica{Region: region, KMSKeyID: cfg.ReplicaKMSKey})
	}
	b := &backends{
		cfg:     cfg,
		log:     log,
		store:   dynamo.Open(dynamodb.NewFromConfig(awsCfg), cfg.Table),
		secrets: secrets.NewManager(secretsmanager.NewFromConfig(awsCfg, func(o *secretsmanager.Options) { o.RetryMaxAttempts = 3 }), cfg.KMSKey, replicas...),
	}
	if err := b.openAlerts(awsCfg); err != nil {
		return nil, err
	}
	// Invite mail goes through SES from the sender the stack names; the
	// proxy sends none.
	if function != "proxy" && cfg.MailFrom != "" {
		if b.mail, err = mail.NewSES(sesv2.NewFromConfig(awsCfg), cfg.MailFrom); err != nil {
			return nil, err
		}
	}
	return b, nil
}

// Proxy builds the proxy function's handler: tokens from DynamoDB (one
// strongly consistent read per request), real keys from Secrets Manager
// (cached per execution environment, keyed by version), rate limits and
// budgets held and usage written in DynamoDB before the invocation ends.
// It reads only the pepper, never the sealing key: the proxy has no use
// for token values.
func Proxy(ctx context.Context, getenv func(string) string) (http.Handler, error) {
	b, err := open(ctx, "proxy", getenv)
	if err != nil {
		return nil, err
	}
	hasher, err := secrets.Hasher(ctx, b.secrets, b.cfg.PepperSecret)
	if err != nil {
		return nil, fmt.Errorf("proxy: %w", err)
	}
	// Rate limits and budgets hold across execution environments: each
	// request is one DynamoDB transaction before it is forwarded and one as
	// it completes (usage.Shared, store.Holds).
	meter := usage.NewShared(b.store, usage.SharedConfig{Logger: b.log})
	px := proxy.New(proxy.Config{
		Domain:       b.cfg.Domain,
		MaxBodyBytes: b.cfg.MaxBodyBytes,
		AllowPrivate: b.cfg.AllowPrivate,
		Logger:       b.log,
	}, proxy.Deps{
		Tokens:   b.store,
		Keys:     secrets.NewCache(b.secrets, b.cfg.KeyCacheTTL, time.Now),
		Hash:     hasher.Hash,
		Recorder: b.breaches(meter),
		Meter:    meter,
	})
	return withHealth(px), nil
}

// withHealth answers GET /healthz, the path the stack's Route 53 health
// checks probe, before the proxy sees it ("healthz" can never name a
// provider).
func withHealth(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/healthz" && (r.Method == http.MethodGet || r.Method == http.MethodHead) {
			w.Header().Set("Content-Type", "text/plain; charset=utf-8")
			w.Write([]byte("ok\n"))
			return
		}
		next.ServeHTTP(w, r)
	})
}

// API builds the management API function's handler.
func API(ctx context.Context, getenv func(string) string) (http.Handler, error) {
	b, err := open(ctx, "api", getenv)
	if err != nil {
		return nil, err
	}
	svc, err := b.service(ctx)
	if err != nil {
		return nil, fmt.Errorf("api: %w", err)
	}
	return api.New(svc, api.Config{Logger: b.log}), nil
}

// service builds the management operations over the AWS backends.
func (b *backends) service(ctx context.Context) (*manage.Service, error) {
	keyring, err := secrets.Keyring(ctx, b.secrets, b.cfg.PepperSecret, b.cfg.SealSecret)
	if err != nil {
		return nil, err
	}
	setup := b.cfg.SetupSecret
	return manage.New(manage.Config{
		Logger: b.log,
		SetupCode: func(ctx context.Context) (kve.Secret, error) {
			return b.secrets.Value(ctx, setup, "")
		},
		AllowInsecureUpstreams: len(b.cfg.AllowPrivate) > 0,
		PublicURL:              b.cfg.PublicURL,
		Domain:                 b.cfg.Domain,
		ScanningKeys:           b.scanner,
		LeakSuspendEnvs:        b.cfg.LeakSuspendEnvs,
	}, manage.Deps{Store: b.store, Secrets: b.secrets, Keyring: keyring, Mail: b.mail, Alerts: b.alerts}), nil
}
