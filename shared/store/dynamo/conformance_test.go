package dynamo

import (
	"os"
	"testing"

	"github.com/keyvault-edge/kve/shared/store"
	"github.com/keyvault-edge/kve/shared/store/storetest"
)

// TestConformance runs the store suite on minidyn in process, always, and
// also on the endpoint in KVE_DYNAMODB_ENDPOINT when it is set; each subtest
// gets a fresh table.
func TestConformance(t *testing.T) {
	t.Run("minidyn", func(t *testing.T) {
		storetest.Run(t, func(t *testing.T) store.Store { return newEnv(t).store })
	})
	endpoint := os.Getenv(envEndpoint)
	if endpoint == "" {
		t.Logf("%s is not set: not running against an external endpoint", envEndpoint)
		return
	}
	t.Run("endpoint", func(t *testing.T) {
		client := newClient(endpoint)
		storetest.Run(t, func(t *testing.T) store.Store { return openEnv(t, client).store })
	})
}
