package stackenv_test

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/keyvault-edge/kve/shared/kve"
	"github.com/keyvault-edge/kve/shared/stackenv"
)

func TestLoadAlerts(t *testing.T) {
	tests := []struct {
		name string
		vars map[string]string
		dlq  string
		envs []kve.Env
		err  string
	}{
		{"defaults", nil, "", nil, ""},
		{"dead-letter queue", map[string]string{stackenv.EnvAlertDLQ: "arn:aws:sqs:us-east-1:123456789012:kve-dlq"},
			"arn:aws:sqs:us-east-1:123456789012:kve-dlq", nil, ""},
		{"leak suspension of prd only", map[string]string{stackenv.EnvLeakSuspendEnvs: "prd"}, "", []kve.Env{kve.EnvPrd}, ""},
		{"no leak suspension", map[string]string{stackenv.EnvLeakSuspendEnvs: "none"}, "", []kve.Env{}, ""},
		{"all three", map[string]string{stackenv.EnvLeakSuspendEnvs: "dev, stg,prd"}, "", []kve.Env{kve.EnvDev, kve.EnvStg, kve.EnvPrd}, ""},
		{"unknown environment", map[string]string{stackenv.EnvLeakSuspendEnvs: "prod"}, "", nil, `"prod" is not dev, stg or prd`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := apiEnv()
			for k, v := range tt.vars {
				env[k] = v
			}
			c, err := stackenv.Load("api", func(k string) string { return env[k] })
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("Load error = %v, want one holding %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff([]any{tt.dlq, tt.envs}, []any{c.AlertDLQ, c.LeakSuspendEnvs}); diff != "" {
				t.Errorf("alert settings (-want +got):\n%s", diff)
			}
		})
	}
}
