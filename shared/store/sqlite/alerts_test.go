package sqlite

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/keyvault-edge/kve/shared/store"
	"github.com/keyvault-edge/kve/shared/store/storetest"
)

func TestOutbox(t *testing.T) {
	storetest.RunOutbox(t, func(t *testing.T) store.Outbox {
		return openTest(t, filepath.Join(t.TempDir(), "kve.db"))
	})
}

// TestOutboxSurvivesRestart: a delivery queued before the store closes is
// due after it opens again (SECURITY T40: 0 lost across restarts).
func TestOutboxSurvivesRestart(t *testing.T) {
	path := filepath.Join(t.TempDir(), "kve.db")
	now := time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)
	d := store.Delivery{ID: "dlv_1", OrgID: "org_1", SubscriptionID: "sub_1", Body: []byte(`{"Type":"Notification"}`),
		Attempts: 2, NextAt: now, CreatedAt: now.Add(-time.Minute), LastError: "status 503"}
	first, err := Open(t.Context(), path)
	if err != nil {
		t.Fatal(err)
	}
	if err := first.EnqueueDeliveries(t.Context(), []store.Delivery{d}); err != nil {
		t.Fatal(err)
	}
	if err := first.Close(); err != nil {
		t.Fatal(err)
	}
	due, err := openTest(t, path).DueDeliveries(t.Context(), now, 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(due) != 1 || due[0].ID != d.ID || string(due[0].Body) != string(d.Body) || due[0].Attempts != 2 {
		t.Errorf("after a restart: %+v, want the queued delivery", due)
	}
}
