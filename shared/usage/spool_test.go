package usage

import (
	"bytes"
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
// spool; the next start recovers a record for every request: those that
// completed with their record, those that never completed, or completed
// within doneDelay of the kill, as interrupted at their reservation. A
// torn last line is skipped.
func TestSpoolRecovers(t *testing.T) {
	dir := t.TempDir()
	sp, recovered, old, err := openSpool(dir)
	if err != nil || len(recovered) != 0 || len(old) != 0 {
		t.Fatalf("new spool: %v, %d recovered, %d old segments", err, len(recovered), len(old))
	}
	path := filepath.Join(dir, segmentName(sp.seq))
	hold := func(u kve.Usage) {
		t.Helper()
		if err := sp.hold(&u, 777); err != nil {
			t.Fatal(err)
		}
	}
	done := func(u kve.Usage) {
		t.Helper()
		u.Status, u.CostMicro, u.PromptTokens = 200, 42, 10
		if _, err := sp.done(&u); err != nil {
			t.Fatal(err)
		}
	}
	carried, flushed := spooled("req_carried", testNow), spooled("req_flushed", testNow)
	open, late := spooled("req_open", testNow), spooled("req_late", testNow)

	hold(carried)
	done(carried) // written with the next hold
	hold(open)
	hold(flushed)
	done(flushed) // written by the timer: no hold follows
	for deadline := time.Now().Add(5 * time.Second); ; {
		b, _ := os.ReadFile(path)
		if bytes.Contains(b, []byte(`"done":{"request_id":"req_flushed"`)) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("a record line with no hold after it was not written")
		}
		time.Sleep(doneDelay / 2)
	}
	hold(late)
	done(late) // completes just before the kill: its line never written
	// The process is killed here: no close. A power loss tore a last line.
	sp.timer.Stop()
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
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
	if len(got) != 4 {
		t.Fatalf("recovered %v, want four requests", got)
	}
	for _, id := range []string{"req_carried", "req_flushed"} {
		if r := got[id]; r.Status != 200 || r.CostMicro != 42 || r.Reason != "" {
			t.Errorf("completed record %s recovered as %+v", id, r)
		}
	}
	for _, id := range []string{"req_open", "req_late"} {
		if r := got[id]; r.Reason != "interrupted" || !r.Estimated || r.CostMicro != 777 || r.Model != "gpt-4o-mini" {
			t.Errorf("%s recovered as %+v, want interrupted, estimated, at its reservation 777", id, r)
		}
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
