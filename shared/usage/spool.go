package usage

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/keyvault-edge/kve/shared/kve"
	"github.com/keyvault-edge/kve/shared/store"
)

// spool is local mode's write-ahead log of usage (SECURITY T50, G4): a
// request's hold is written before it is forwarded, and its record as it
// completes, each line copied into a segment file mapped into memory (see
// segment), with no fsync: a process killed at any point (SIGKILL) has a
// line for every request it forwarded, because the kernel has the pages.
// On the next start the records are stored and every hold without a record
// becomes one, charged its reservation: the request's execution died with
// its process. Only a power loss can lose lines, or tear the last one,
// which replay skips.
//
// The log is a directory of numbered segments. Records also go to the
// store in batches; a segment is deleted once every record in it is
// stored and it is no longer written. A new segment starts with the holds
// still open, so deleting an old one never loses a request in flight.
type spool struct {
	dir   string
	size  int  // a segment's size, at least
	plain bool // write(2) lines instead of mapping segments (tests)

	mu      sync.Mutex
	seg     *segment          // the segment being written; nil once closed
	seq     int               // its number
	open    map[string][]byte // hold lines of requests in flight, by request id
	pending map[int]int       // records per segment not stored yet
}

// segmentSize is a segment's size: some 16,000 requests' lines.
const segmentSize = 16 << 20

// spoolLine is one line of a segment: a hold or a record.
type spoolLine struct {
	Hold *spooledHold `json:"hold,omitempty"`
	Done *kve.Usage   `json:"done,omitempty"`
}

type spooledHold struct {
	Usage kve.Usage `json:"usage"`
	Micro int64     `json:"micro"`
}

// interrupted is the Reason of a record made from a hold whose request
// never completed.
const interrupted = "interrupted"

// openSpool reads what the segments in dir hold and starts a new segment
// of size bytes (mapped unless plain). The settlements it returns must be
// stored before the segments they came from are dropped (dropRecovered).
func openSpool(dir string, size int, plain bool) (*spool, []store.Settlement, []int, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, nil, nil, fmt.Errorf("open usage spool: %w", err)
	}
	segs, err := segments(dir)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("open usage spool: %w", err)
	}
	holds := map[string]*spooledHold{}
	done := map[string]*kve.Usage{}
	var order []string // request ids in the order first seen
	for _, n := range segs {
		if err := readSegment(filepath.Join(dir, segmentName(n)), func(l *spoolLine) {
			switch {
			case l.Done != nil:
				if holds[l.Done.RequestID] == nil && done[l.Done.RequestID] == nil {
					order = append(order, l.Done.RequestID)
				}
				done[l.Done.RequestID] = l.Done
			case l.Hold != nil:
				if holds[l.Hold.Usage.RequestID] == nil && done[l.Hold.Usage.RequestID] == nil {
					order = append(order, l.Hold.Usage.RequestID)
				}
				holds[l.Hold.Usage.RequestID] = l.Hold
			}
		}); err != nil {
			return nil, nil, nil, fmt.Errorf("open usage spool: %w", err)
		}
	}
	recovered := make([]store.Settlement, 0, len(order))
	for _, id := range order {
		h := holds[id]
		if u := done[id]; u != nil {
			if h != nil {
				withIdentity(u, &h.Usage)
			}
			recovered = append(recovered, store.Settlement{Usage: *u})
			continue
		}
		u := h.Usage
		u.CostMicro, u.Estimated, u.Reason = h.Micro, true, interrupted
		recovered = append(recovered, store.Settlement{Usage: u})
	}
	s := &spool{dir: dir, size: size, plain: plain, open: map[string][]byte{}, pending: map[int]int{}}
	next := 1
	if len(segs) > 0 {
		next = segs[len(segs)-1] + 1
	}
	if err := s.start(next, 0); err != nil {
		return nil, nil, nil, err
	}
	return s, recovered, segs, nil
}

// dropRecovered deletes segments whose content is stored.
func (s *spool) dropRecovered(segs []int) error {
	var errs []error
	for _, n := range segs {
		if err := os.Remove(filepath.Join(s.dir, segmentName(n))); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func segmentName(n int) string { return fmt.Sprintf("%08d.jsonl", n) }

// segments lists the numbers of the regular segment files in dir, in order.
func segments(dir string) ([]int, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var out []int
	for _, e := range entries {
		name, ok := strings.CutSuffix(e.Name(), ".jsonl")
		n, err := strconv.Atoi(name)
		if !ok || err != nil || !e.Type().IsRegular() {
			continue
		}
		out = append(out, n)
	}
	slices.Sort(out)
	return out, nil
}

// readSegment calls fn for each line of a segment that parses. The lines
// end at the first NUL byte (a segment not closed keeps its zeroed tail;
// JSON lines hold no NUL); a torn or garbled line (a power loss) is
// skipped.
func readSegment(path string, fn func(*spoolLine)) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	if end := bytes.IndexByte(b, 0); end >= 0 {
		b = b[:end]
	}
	for line := range bytes.Lines(b) {
		var l spoolLine
		if json.Unmarshal(line, &l) == nil {
			fn(&l)
		}
	}
	return nil
}

// start makes segment n the one written, with the holds still open and
// room for need bytes more; under mu (or before the spool is shared).
func (s *spool) start(n, need int) error {
	for _, line := range s.open {
		need += len(line)
	}
	path := filepath.Join(s.dir, segmentName(n))
	g, err := createSegment(path, max(s.size, 2*need), s.plain)
	if err != nil {
		return fmt.Errorf("start usage spool segment: %w", err)
	}
	for _, line := range s.open {
		if err := g.append(line); err != nil {
			g.close()
			os.Remove(path)
			return fmt.Errorf("start usage spool segment: %w", err)
		}
	}
	old, oldSeq := s.seg, s.seq
	s.seg, s.seq = g, n
	if old != nil {
		old.close() // its lines are in the page cache, whatever close says
		if s.pending[oldSeq] == 0 {
			delete(s.pending, oldSeq)
			os.Remove(old.f.Name())
		}
	}
	return nil
}

// put appends a line, starting the next segment when this one is full or
// broken; under mu. A failure leaves the segment as it was, and the next
// line tries again.
func (s *spool) put(line []byte) error {
	if s.seg == nil {
		return errors.New("spool usage: closed")
	}
	if !s.seg.fits(len(line)) {
		if err := s.start(s.seq+1, len(line)); err != nil {
			return fmt.Errorf("spool usage: %w", err)
		}
	}
	if err := s.seg.append(line); err != nil {
		return fmt.Errorf("spool usage: %w", err)
	}
	return nil
}

// hold writes a request's hold before the request is forwarded.
func (s *spool) hold(u *kve.Usage, micro int64) error {
	line := appendHold(make([]byte, 0, 512), u, micro)
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.put(line); err != nil {
		return err
	}
	s.open[u.RequestID] = line
	return nil
}

// lineBuffers keeps record lines' buffers: a record line is copied into
// the segment and not kept.
var lineBuffers = sync.Pool{New: func() any { return new([]byte) }}

// done writes a request's record and returns its segment, to be passed to
// stored once the record is in the store (0 when it could not be written).
// The line leaves out what the request's hold has when the hold was
// written (held): the hold is then in the same segment, written there or
// carried forward, because it is open until the record is written. A
// record line that cannot be written leaves its hold open, carried into
// every new segment: a kill before the store has the record then still
// charges the request (as interrupted, at its reservation; the store
// keeps the record that reaches it first).
func (s *spool) done(u *kve.Usage, held bool) (int, error) {
	buf := lineBuffers.Get().(*[]byte)
	defer lineBuffers.Put(buf)
	*buf = appendDone((*buf)[:0], u, !held)
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.put(*buf); err != nil {
		return 0, err
	}
	delete(s.open, u.RequestID)
	s.pending[s.seq]++
	return s.seq, nil
}

// stored records that n records of segment seg are in the store; a segment
// no longer written whose records are all stored is deleted.
func (s *spool) stored(seg, n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.pending[seg] -= n; s.pending[seg] > 0 || seg == s.seq {
		return
	}
	delete(s.pending, seg)
	os.Remove(filepath.Join(s.dir, segmentName(seg)))
}

// close closes the segment being written; it is deleted when nothing in it
// is waiting to be stored and no hold is open.
func (s *spool) close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.seg == nil {
		return nil
	}
	err := s.seg.close()
	if s.pending[s.seq] == 0 && len(s.open) == 0 {
		os.Remove(s.seg.f.Name())
	}
	s.seg = nil
	return err
}
