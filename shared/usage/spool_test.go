package usage

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/keyvault-edge/kve/shared/kve"
	"github.com/keyvault-edge/kve/shared/store"
)

func spooled(id string, at time.Time) kve.Usage {
	return kve.Usage{RequestID: id, At: at, OrgID: "org_1", TokenID: "tok_1", Provider: "openai",
		Method: "POST", Path: "/v1/chat/completions", Model: "gpt-4o-mini", BytesIn: 400}
}

// requestIDs lists the recovered records' ids, reasons and costs.
func recoveredOf(s []store.Settlement) map[string]kve.Usage {
	out := map[string]kve.Usage{}
	for _, st := range s {
		out[st.Usage.RequestID] = st.Usage
	}
	return out
}

// TestSpoolRecovers: a process that dies leaves holds and records in the
// spool; the next start recovers a record for every request, the ones that
// never completed as interrupted at their reservation, and skips a torn
// last line.
func TestSpoolRecovers(t *testing.T) {
	dir := t.TempDir()
	sp, recovered, old, err := openSpool(dir)
	if err != nil || len(recovered) != 0 || len(old) != 0 {
		t.Fatalf("new spool: %v, %d recovered, %d old segments", err, len(recovered), len(old))
	}
	done, open := spooled("req_done", testNow), spooled("req_open", testNow)
	for _, u := range []kve.Usage{done, open} {
		if err := sp.hold(&u, 777); err != nil {
			t.Fatal(err)
		}
	}
	done.Status, done.CostMicro, done.PromptTokens = 200, 42, 10
	if _, err := sp.done(&done); err != nil {
		t.Fatal(err)
	}
	// The process is killed here: no close. A power loss tore a last line.
	f, err := os.OpenFile(filepath.Join(dir, segmentName(sp.seq)), os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString(`{"done":{"request_id":"req_torn","at":"2026-11-`)
	f.Close()

	sp2, recovered, old, err := openSpool(dir)
	if err != nil {
		t.Fatal(err)
	}
	got := recoveredOf(recovered)
	if len(got) != 2 {
		t.Fatalf("recovered %v, want req_done and req_open", got)
	}
	if r := got["req_done"]; r.Status != 200 || r.CostMicro != 42 || r.Reason != "" {
		t.Errorf("completed record recovered as %+v", r)
	}
	if r := got["req_open"]; r.Reason != "interrupted" || !r.Estimated || r.CostMicro != 777 || r.Model != "gpt-4o-mini" {
		t.Errorf("interrupted record recovered as %+v, want interrupted, estimated, at its reservation 777", r)
	}
	if !slices.Equal(old, []int{1}) || sp2.seq != 2 {
		t.Errorf("old segments %v, writing %d; want [1] and 2", old, sp2.seq)
	}
	if err := sp2.dropRecovered(old); err != nil {
		t.Fatal(err)
	}
	if err := sp2.close(); err != nil {
		t.Fatal(err)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Errorf("a clean close left %d files", len(entries))
	}
}

// TestSpoolSegments: a full segment is rotated with the holds still open
// copied forward, and deleted once its records are stored, so no request
// in flight is lost with it.
func TestSpoolSegments(t *testing.T) {
	dir := t.TempDir()
	sp, _, _, err := openSpool(dir)
	if err != nil {
		t.Fatal(err)
	}
	long := spooled("req_long", testNow) // a stream that outlives the segment
	if err := sp.hold(&long, 5); err != nil {
		t.Fatal(err)
	}
	stored := map[int]int{}
	for i := range segmentLines {
		u := spooled(kve.NewID(kve.PrefixRequest, testNow), testNow)
		seg, err := sp.done(&u)
		if err != nil {
			t.Fatalf("record %d: %v", i, err)
		}
		stored[seg]++
	}
	if sp.seq != 2 {
		t.Fatalf("writing segment %d after %d lines, want 2", sp.seq, segmentLines+1)
	}
	if _, err := os.Stat(filepath.Join(dir, segmentName(1))); err != nil {
		t.Fatalf("the first segment went before its records were stored: %v", err)
	}
	for seg, n := range stored {
		sp.stored(seg, n)
	}
	if _, err := os.Stat(filepath.Join(dir, segmentName(1))); !os.IsNotExist(err) {
		t.Errorf("the stored, full segment is still there: %v", err)
	}
	// Killed now: the long request is still recovered, from segment 2.
	_, recovered, _, err := openSpool(dir)
	if err != nil {
		t.Fatal(err)
	}
	if r, ok := recoveredOf(recovered)["req_long"]; !ok || r.Reason != "interrupted" {
		t.Errorf("the request in flight across the rotation: %+v, found %v", r, ok)
	}
}
