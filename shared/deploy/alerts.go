package deploy

import (
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sns"

	"github.com/keyvault-edge/kve/shared/alerts"
	"github.com/keyvault-edge/kve/shared/proxy"
	"github.com/keyvault-edge/kve/shared/stackenv"
)

// openAlerts builds the SNS channel of the breach alert topic. The topic
// lives in the deployment's primary region, so the client is made for the
// region in its ARN, whichever region this function runs in.
func (b *backends) openAlerts(awsCfg aws.Config) error {
	region, err := alerts.TopicRegion(b.cfg.AlertTopic)
	if err != nil {
		return fmt.Errorf("%s: %w", stackenv.EnvAlertTopic, err)
	}
	client := sns.NewFromConfig(awsCfg, func(o *sns.Options) { o.Region = region })
	if b.alerts, err = alerts.NewSNS(client, b.cfg.AlertTopic, b.cfg.AlertDLQ); err != nil {
		return err
	}
	if k := b.cfg.SecretScanningKeys; k != "" {
		if b.scanner, err = alerts.ParseScanningKeys([]byte(k)); err != nil {
			return fmt.Errorf("%s: %w", stackenv.EnvSecretScanningKeys, err)
		}
	}
	return nil
}

// detectTimeout bounds breach detection in one invocation; it runs
// alongside the usage write (Inline), after the response's bytes.
const detectTimeout = 3 * time.Second

// breaches puts breach detection in front of the proxy's recorder: on
// Lambda it runs within the invocation (Inline), since an execution
// environment freezes once the invocation ends, with its state (counters,
// incidents, the notification claim) in DynamoDB so that every
// environment shares it.
func (b *backends) breaches(next proxy.Recorder) proxy.Recorder {
	detector := alerts.NewDetector(b.store, alerts.DetectorConfig{Logger: b.log})
	responder := alerts.NewResponder(b.store, b.alerts, alerts.ResponderConfig{PublicURL: b.cfg.PublicURL, Logger: b.log})
	return alerts.Inline(next, detector, responder, detectTimeout, b.log)
}
