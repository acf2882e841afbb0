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

// recoveredOf maps the recovered records by request id.
func recoveredOf(s []store.Settlement) map[string]kve.Usage {
	out := map[string]kve.Usage{}
	for _, st := range s {
		out[st.Usage.RequestID] = st.Usage
	}
	return out
}

// spoolModes runs a test on mapped segments (as local mode runs on every
// Unix) and on segments written with write(2) (where there is no mmap).
func spoolModes(t *testing.T, test func(t *testing.T, plain bool)) {
	t.Run("mapped", func(t *testing.T) { test(t, false) })
	t.Run("write", func(t *testing.T) { test(t, true) })
}

func testSpool(t *testing.T, dir string, size int, plain bool) (*spool, []store.Settlement, []int) {
	t.Helper()
	sp, recovered, old, err := openSpool(dir, size, plain)
	if err != nil {
		t.Fatal(err)
	}
	return sp, recovered, old
}

func spoolHold(t *testing.T, sp *spool, u kve.Usage) {
	t.Helper()
	if err := sp.hold(&u, 777); err != nil {
		t.Fatal(err)
	}
}

// spoolDone writes a record; held: its hold was written.
func spoolDone(t *testing.T, sp *spool, u kve.Usage, held bool) int {
	t.Helper()
	u.Status, u.CostMicro, u.PromptTokens = 200, 42, 10
	seg, err := sp.done(&u, held)
	if err != nil {
		t.Fatal(err)
	}
	return seg
}

// TestSpoolRecovers: a process that dies leaves holds and records in the
// spool; the next start recovers a record for every request: those that
// completed with their record, those that never completed as interrupted
// at their reservation. A torn last line is skipped.
func TestSpoolRecovers(t *testing.T) {
	spoolModes(t, func(t *testing.T, plain bool) {
		dir := t.TempDir()
		sp, recovered, old := testSpool(t, dir, segmentSize, plain)
		if len(recovered) != 0 || len(old) != 0 {
			t.Fatalf("new spool: %d recovered, %d old segments", len(recovered), len(old))
		}
		completed, open, last := spooled("req_completed", testNow), spooled("req_open", testNow), spooled("req_last", testNow)
		spoolHold(t, sp, completed)
		spoolHold(t, sp, open)
		spoolDone(t, sp, completed, true)
		spoolHold(t, sp, last)
		spoolDone(t, sp, last, true) // completes the instant before the kill
		// The process is killed here: no close. A power loss tore a last
		// line, written where the next line would go.
		torn := []byte(`{"done":{"request_id":"req_torn","at":"2026-11-`)
		if _, err := sp.seg.f.WriteAt(torn, int64(sp.seg.off)); err != nil {
			t.Fatal(err)
		}

		sp2, recovered, old := testSpool(t, dir, segmentSize, plain)
		got := recoveredOf(recovered)
		if len(got) != 3 {
			t.Fatalf("recovered %v, want three requests", got)
		}
		for _, id := range []string{"req_completed", "req_last"} {
			if r := got[id]; r.Status != 200 || r.CostMicro != 42 || r.Reason != "" || r.OrgID != "org_1" || r.Path == "" {
				t.Errorf("completed record %s recovered as %+v", id, r)
			}
		}
		if r := got["req_open"]; r.Reason != "interrupted" || !r.Estimated || r.CostMicro != 777 || r.Model != "gpt-4o-mini" {
			t.Errorf("req_open recovered as %+v, want interrupted, estimated, at its reservation 777", r)
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
	})
}

// TestSpoolSegments: a full segment is rotated with the holds still open
// copied forward, cut to what it holds, and deleted once its records are
// stored, so no request in flight is lost with it.
func TestSpoolSegments(t *testing.T) {
	spoolModes(t, func(t *testing.T, plain bool) {
		dir := t.TempDir()
		const size = 64 << 10
		sp, _, _ := testSpool(t, dir, size, plain)
		long := spooled("req_long", testNow) // a stream that outlives the segment
		spoolHold(t, sp, long)
		stored := map[int]int{}
		for sp.seq == 1 {
			stored[spoolDone(t, sp, spooled(kve.NewID(kve.PrefixRequest, testNow), testNow), false)]++
		}
		first, err := os.Stat(filepath.Join(dir, segmentName(1)))
		if err != nil {
			t.Fatalf("the first segment went before its records were stored: %v", err)
		}
		if first.Size() == 0 || first.Size() > size {
			t.Errorf("the full segment is %d bytes, want its lines only (at most %d)", first.Size(), size)
		}
		for seg, n := range stored {
			sp.stored(seg, n)
		}
		if _, err := os.Stat(filepath.Join(dir, segmentName(1))); !os.IsNotExist(err) {
			t.Errorf("the stored, full segment is still there: %v", err)
		}
		// Killed now: the long request is still recovered, from segment 2.
		_, recovered, _ := testSpool(t, dir, size, plain)
		if r, ok := recoveredOf(recovered)["req_long"]; !ok || r.Reason != "interrupted" {
			t.Errorf("the request in flight across the rotation: %+v, found %v", r, ok)
		}
		// Or it completes in segment 2, its record line leaving out what
		// its hold (carried into segment 2) has, and segment 2 is the
		// only one left when the process is killed.
		spoolDone(t, sp, long, true)
		_, recovered, _ = testSpool(t, dir, size, plain)
		if r := recoveredOf(recovered)["req_long"]; r.Status != 200 || r.OrgID != "org_1" || r.TokenID != "tok_1" || r.Path != long.Path {
			t.Errorf("the request completed across the rotation: %+v", r)
		}
	})
}

// TestSpoolSegmentGrows: holds open at a rotation that fill half a
// segment get a segment twice their size, so a rotation always leaves room.
func TestSpoolSegmentGrows(t *testing.T) {
	dir := t.TempDir()
	const size = 8 << 10
	sp, _, _ := testSpool(t, dir, size, false)
	var ids []string
	for sp.seq < 3 {
		u := spooled(kve.NewID(kve.PrefixRequest, testNow), testNow)
		spoolHold(t, sp, u)
		ids = append(ids, u.RequestID)
	}
	if sp.seg.size <= size || sp.seg.off > sp.seg.size/2+1024 {
		t.Errorf("segment 3 is %d bytes with %d written, want it grown to twice the open holds", sp.seg.size, sp.seg.off)
	}
	_, recovered, _ := testSpool(t, dir, size, false)
	if got := recoveredOf(recovered); len(got) != len(ids) {
		t.Errorf("recovered %d of %d open holds", len(got), len(ids))
	}
}

// TestSpoolFault: a segment cut short under its mapping (what a full disk
// does to a filesystem that cannot preallocate: SIGBUS on the next write)
// fails the line with an error, not a crash; the next line starts a new
// segment, and nothing written before is lost.
func TestSpoolFault(t *testing.T) {
	dir := t.TempDir()
	sp, _, _ := testSpool(t, dir, segmentSize, false)
	before, open := spooled("req_before", testNow), spooled("req_open", testNow)
	spoolHold(t, sp, before)
	spoolHold(t, sp, open)
	spoolDone(t, sp, before, true)
	// The lines so far are copied aside, as a disk that had them would.
	kept, err := os.ReadFile(sp.seg.f.Name())
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(sp.seg.f.Name(), 0); err != nil {
		t.Fatal(err)
	}
	u := spooled("req_faulted", testNow)
	if err := sp.hold(&u, 1); err == nil {
		t.Fatal("a hold into a segment cut under its mapping succeeded")
	} else {
		t.Logf("the hold failed as it should: %v", err)
	}
	after := spooled("req_after", testNow)
	spoolHold(t, sp, after)
	if sp.seq != 2 {
		t.Errorf("writing segment %d after the fault, want 2", sp.seq)
	}
	if err := os.WriteFile(filepath.Join(dir, segmentName(1)), kept, 0o600); err != nil {
		t.Fatal(err)
	}
	_, recovered, _ := testSpool(t, dir, segmentSize, false)
	got := recoveredOf(recovered)
	if got["req_before"].Status != 200 || got["req_open"].Reason != interrupted || got["req_after"].Reason != interrupted {
		t.Errorf("recovered %+v", got)
	}
	if _, ok := got["req_faulted"]; ok {
		t.Error("the refused hold was recovered as a request")
	}
}

// TestSpoolCannotStart: when the next segment cannot be created (the disk
// full, say), the line fails and the full segment stays; the next line
// tries again.
func TestSpoolCannotStart(t *testing.T) {
	dir := t.TempDir()
	sp, _, _ := testSpool(t, dir, 4<<10, false)
	sp.dir = filepath.Join(dir, "gone")
	var u kve.Usage
	for i := 0; ; i++ { // fill the segment: the hold that does not fit fails
		u = spooled(kve.NewID(kve.PrefixRequest, testNow), testNow)
		if err := sp.hold(&u, 1); err != nil {
			break
		}
		if i == 100 {
			t.Fatal("a hold with no segment to write succeeded")
		}
	}
	if sp.seq != 1 || sp.seg.broken {
		t.Errorf("after the failed start: segment %d, broken %v; want 1, intact", sp.seq, sp.seg.broken)
	}
	sp.dir = dir
	spoolHold(t, sp, u)
	if sp.seq != 2 {
		t.Errorf("writing segment %d, want 2", sp.seq)
	}
}

// TestSpoolRecordStartsSegment: a record line that does not fit starts the
// next segment, which carries its hold, so the lean line is complete on a
// replay after the first segment is gone.
func TestSpoolRecordStartsSegment(t *testing.T) {
	dir := t.TempDir()
	const size = 4 << 10
	sp, _, _ := testSpool(t, dir, size, false)
	u := spooled("req_rotating", testNow)
	spoolHold(t, sp, u)
	final := u
	final.Status, final.CostMicro, final.PromptTokens = 200, 42, 10
	lean := len(appendDone(nil, &final, false))
	stored := map[int]int{}
	for sp.seg.off+lean <= size { // small records until this one no longer fits
		stored[spoolDone(t, sp, kve.Usage{RequestID: kve.NewID(kve.PrefixRequest, testNow), At: testNow}, false)]++
	}
	if sp.seq != 1 {
		t.Fatalf("writing segment %d while filling the first", sp.seq)
	}
	if seg := spoolDone(t, sp, u, true); seg != 2 {
		t.Fatalf("the record went to segment %d, want 2", seg)
	}
	for seg, n := range stored {
		sp.stored(seg, n)
	}
	if _, err := os.Stat(filepath.Join(dir, segmentName(1))); !os.IsNotExist(err) {
		t.Fatalf("segment 1 is still there: %v", err)
	}
	_, recovered, _ := testSpool(t, dir, size, false)
	if r := recoveredOf(recovered)["req_rotating"]; r.Status != 200 || r.OrgID != "org_1" || r.Path != u.Path || !r.At.Equal(u.At) {
		t.Errorf("recovered %+v, want the record with its hold's fields", r)
	}
}

// TestSpoolRecordFails: a record line that cannot be written (no segment
// to start) leaves its hold open, so that the request is still in the
// spool, carried into the next segment, when the full one is deleted.
func TestSpoolRecordFails(t *testing.T) {
	dir := t.TempDir()
	sp, _, _ := testSpool(t, dir, 4<<10, false)
	u := spooled("req_unrecorded", testNow)
	spoolHold(t, sp, u)
	final := u
	final.Status = 200
	small := 0
	for sp.seg.off+len(appendDone(nil, &final, false)) <= sp.size { // small records until its own no longer fits
		spoolDone(t, sp, kve.Usage{RequestID: kve.NewID(kve.PrefixRequest, testNow), At: testNow}, false)
		small++
	}
	sp.stored(1, small)
	sp.dir = filepath.Join(dir, "gone")
	if _, err := sp.done(&final, true); err == nil {
		t.Fatal("a record line with no segment to start was written")
	}
	sp.dir = dir
	spoolHold(t, sp, spooled("req_next", testNow)) // starts segment 2; segment 1, its records stored, goes
	if _, err := os.Stat(filepath.Join(dir, segmentName(1))); !os.IsNotExist(err) {
		t.Fatalf("segment 1 is still there: %v", err)
	}
	_, recovered, _ := testSpool(t, dir, segmentSize, false)
	if r, ok := recoveredOf(recovered)["req_unrecorded"]; !ok || r.Reason != interrupted {
		t.Errorf("the request whose record line failed: %+v (found %v), want it charged as interrupted", r, ok)
	}
}
