package stackenv_test

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/keyvault-edge/kve/shared/stackenv"
)

// apiEnv is what the stack sets on the api function of one region.
func apiEnv() map[string]string {
	return map[string]string{
		stackenv.EnvTable:        "kve",
		stackenv.EnvPepperSecret: "arn:aws:secretsmanager:us-east-1:123456789012:secret:kve/system/pepper-AbCdEf",
		stackenv.EnvSealSecret:   "arn:aws:secretsmanager:us-east-1:123456789012:secret:kve/system/seal-AbCdEf",
		stackenv.EnvSetupSecret:  "arn:aws:secretsmanager:us-east-1:123456789012:secret:kve/system/setup-AbCdEf",
		stackenv.EnvKMSKey:       "arn:aws:kms:us-east-1:123456789012:key/00000000-fake-4000-8000-000000000000",
		stackenv.EnvAlertTopic:   "arn:aws:sns:us-east-1:123456789012:kve-alerts",
		stackenv.EnvPublicURL:    "https://console.kve.example.com",
	}
}

func TestLoadReplicas(t *testing.T) {
	tests := []struct {
		name    string
		vars    map[string]string
		regions []string
		key     string
		err     string // a part of the error; "" for none
	}{
		{"one region", nil, nil, "", ""},
		{"two others", map[string]string{stackenv.EnvReplicaRegions: "eu-west-1, ap-southeast-2", stackenv.EnvReplicaKMSKey: "alias/kve"},
			[]string{"eu-west-1", "ap-southeast-2"}, "alias/kve", ""},
		{"no key", map[string]string{stackenv.EnvReplicaRegions: "eu-west-1"}, nil, "", stackenv.EnvReplicaKMSKey + " is not set"},
		{"not a region", map[string]string{stackenv.EnvReplicaRegions: "eu-west-1,Europe", stackenv.EnvReplicaKMSKey: "alias/kve"}, nil, "", `"Europe" is not a region`},
		{"empty entry", map[string]string{stackenv.EnvReplicaRegions: "eu-west-1,", stackenv.EnvReplicaKMSKey: "alias/kve"}, nil, "", `"" is not a region`},
		{"twice", map[string]string{stackenv.EnvReplicaRegions: "eu-west-1,eu-west-1", stackenv.EnvReplicaKMSKey: "alias/kve"}, nil, "", "eu-west-1 is listed twice"},
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
			got := []any{c.ReplicaRegions, c.ReplicaKMSKey}
			if diff := cmp.Diff([]any{tt.regions, tt.key}, got); diff != "" {
				t.Errorf("replica regions and key (-want +got):\n%s", diff)
			}
		})
	}
}
