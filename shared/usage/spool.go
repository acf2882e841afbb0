package usage

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/keyvault-edge/kve/shared/kve"
	"github.com/keyvault-edge/kve/shared/store"
)

// spool is local mode's write-ahead log of usage (SECURITY T50, G4): a
// request's hold is written before it is forwarded, with one write(2) and
// no fsync, so a process killed at any point (SIGKILL) has a line for every
// request it forwarded: the kernel has the bytes. A request's record, when
// it completes, waits in memory for the next hold's write(2) or at most
// doneDelay: under load the two lines of a request cost one system call,
// not two. On the next start the records are stored and every hold without
// a record becomes one, charged its reservation: the request's execution
// died with its process, or it finished within doneDelay of the kill (the
// store keeps the first record of a request id, so one that reached the
// store in the meantime wins). Only a power loss can lose lines, or tear
// the last one, which replay skips.
//
// The log is a directory of numbered segments. Records also go to the
// store in batches; a segment is deleted once every record in it is
// stored and it is no longer written. A new segment starts with the holds
// still open, so deleting an old one never loses a request in flight.
type spool struct {
	dir string

	mu      sync.Mutex
	f       *os.File
	seq     int               // the segment being written
	lines   int               // lines in it
	open    map[string][]byte // hold lines of requests in flight, by request id
	pending map[int]int       // records per segment not stored yet
	later   []byte            // record lines not written yet
	timer   *time.Timer       // writes later after doneDelay
	failed  error             // the last failure to write later, reported by done
}

// doneDelay is the longest a record line waits for the next hold's write.
const doneDelay = 10 * time.Millisecond

// segmentLines is when a segment is rotated: a few MB of JSON lines.
const segmentLines = 20_000

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

// openSpool reads what the segments in dir hold and starts a new segment.
// The settlements it returns must be stored before the segments they came
// from are dropped (dropRecovered).
func openSpool(dir string) (*spool, []store.Settlement, []int, error) {
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
		if u := done[id]; u != nil {
			recovered = append(recovered, store.Settlement{Usage: *u})
			continue
		}
		h := holds[id]
		u := h.Usage
		u.CostMicro, u.Estimated, u.Reason = h.Micro, true, interrupted
		recovered = append(recovered, store.Settlement{Usage: u})
	}
	s := &spool{dir: dir, open: map[string][]byte{}, pending: map[int]int{}}
	s.timer = time.AfterFunc(time.Hour, s.flushLater)
	s.timer.Stop()
	next := 1
	if len(segs) > 0 {
		next = segs[len(segs)-1] + 1
	}
	if err := s.start(next); err != nil {
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

// readSegment calls fn for each line of a segment that parses; a torn or
// garbled line (a power loss) is skipped.
func readSegment(path string, fn func(*spoolLine)) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	r := bufio.NewReaderSize(f, 64<<10)
	for {
		b, err := r.ReadBytes('\n')
		if len(b) > 0 {
			var l spoolLine
			if json.Unmarshal(b, &l) == nil {
				fn(&l)
			}
		}
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
	}
}

// start opens segment n for appending, with the holds still open.
func (s *spool) start(n int) error {
	f, err := os.OpenFile(filepath.Join(s.dir, segmentName(n)), os.O_WRONLY|os.O_CREATE|os.O_APPEND|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("start usage spool segment: %w", err)
	}
	for _, line := range s.open {
		if _, err := f.Write(line); err != nil {
			f.Close()
			os.Remove(f.Name())
			return fmt.Errorf("start usage spool segment: %w", err)
		}
	}
	old := s.seq
	if s.f != nil {
		s.f.Close()
	}
	s.f, s.seq, s.lines = f, n, len(s.open)
	if old != 0 && s.pending[old] == 0 {
		delete(s.pending, old)
		os.Remove(filepath.Join(s.dir, segmentName(old)))
	}
	return nil
}

// hold writes a request's hold, with the record lines waiting, before the
// request is forwarded.
func (s *spool) hold(u *kve.Usage, micro int64) error {
	line := appendHold(make([]byte, 0, 512), u, micro)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.f == nil {
		return errors.New("spool usage: closed")
	}
	n := len(s.later)
	s.later = append(s.later, line...)
	_, err := s.f.Write(s.later)
	s.later = s.later[:0]
	if err != nil {
		// The records are still on their way to the store; only their
		// lines are lost, and their holds stand in for them on a restart.
		return fmt.Errorf("spool usage: %w", err)
	}
	if n > 0 {
		s.timer.Stop()
	}
	s.lines++
	s.open[u.RequestID] = line
	s.rotate()
	return nil
}

// done queues a request's record line and returns its segment, to be
// passed to stored once the record is in the store.
func (s *spool) done(u *kve.Usage) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.f == nil {
		return 0, errors.New("spool usage: closed")
	}
	delete(s.open, u.RequestID)
	if len(s.later) == 0 {
		s.timer.Reset(doneDelay)
	}
	s.later = appendDone(s.later, u)
	s.lines++
	seg := s.seq
	s.pending[seg]++
	err := s.failed
	s.failed = nil
	s.rotate()
	return seg, err
}

// flushLater writes the record lines no hold took along.
func (s *spool) flushLater() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.writeLater()
}

// writeLater writes the waiting record lines with one write(2); under mu.
func (s *spool) writeLater() {
	if len(s.later) == 0 || s.f == nil {
		return
	}
	if _, err := s.f.Write(s.later); err != nil {
		s.failed = fmt.Errorf("spool usage: %w", err)
	}
	s.later = s.later[:0]
}

// rotate starts the next segment when this one is full, after writing the
// record lines that belong to it. A failure (the disk full, say) leaves the
// full one in use, and the next line tries again; a hold that cannot be
// written at all fails on its own.
func (s *spool) rotate() {
	if s.lines >= segmentLines {
		s.writeLater()
		s.start(s.seq + 1)
	}
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
	if s.f == nil {
		return nil
	}
	s.timer.Stop()
	s.writeLater()
	err := errors.Join(s.failed, s.f.Close())
	if s.pending[s.seq] == 0 && len(s.open) == 0 {
		os.Remove(s.f.Name())
	}
	s.f = nil
	return err
}
