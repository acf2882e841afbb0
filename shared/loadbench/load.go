package loadbench

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Load is one run of the load generator: Conns connections, each sending
// its next request as soon as the previous response has been read whole
// (a closed loop, HTTP/1.1 keep-alive), for Warmup and then Duration.
// Only the responses that complete within Duration are counted.
type Load struct {
	URL      string      // http://host:port/path
	Header   http.Header // sent with every request, e.g. the credential
	Body     string
	Conns    int
	Warmup   time.Duration
	Duration time.Duration
}

// Result is what a run measured. Latency runs from the first byte of the
// request written to the last byte of the response read; FirstByte to the
// first byte of the response body (an SSE stream's first event).
type Result struct {
	Conns     int     `json:"conns"`
	Requests  int64   `json:"requests"` // completed within Duration
	Total     int64   `json:"total"`    // completed, warm-up included
	Errors    int64   `json:"errors"`
	FirstErr  string  `json:"first_error,omitempty"`
	Seconds   float64 `json:"seconds"`
	RPS       float64 `json:"rps"`
	Latency   Summary `json:"latency"`
	FirstByte Summary `json:"first_byte"`
}

// Run runs the load until its time is up or ctx ends. Every response must be
// a 200: anything else, or a broken connection, counts as an error.
func (l Load) Run(ctx context.Context) (Result, error) {
	u, err := url.Parse(l.URL)
	if err != nil || u.Scheme != "http" || u.Host == "" {
		return Result{}, fmt.Errorf("load: want an http:// URL, got %q", l.URL)
	}
	if l.Conns < 1 || l.Duration <= 0 {
		return Result{}, errors.New("load: need at least one connection and a duration")
	}
	req := rawRequest(u, l.Header, l.Body)
	start := time.Now()
	from, until := start.Add(l.Warmup), start.Add(l.Warmup+l.Duration)
	ctx, cancel := context.WithDeadline(ctx, until.Add(30*time.Second))
	defer cancel()

	workers := make([]*worker, l.Conns)
	var wg sync.WaitGroup
	for i := range workers {
		w := &worker{addr: u.Host, req: req}
		workers[i] = w
		wg.Go(func() { w.run(ctx, from, until) })
	}
	wg.Wait()

	res := Result{Conns: l.Conns, Seconds: l.Duration.Seconds()}
	var lat, first Histogram
	for _, w := range workers {
		lat.Merge(&w.lat)
		first.Merge(&w.first)
		res.Errors += w.errors
		res.Total += w.total
		if res.FirstErr == "" && w.firstErr != nil {
			res.FirstErr = w.firstErr.Error()
		}
	}
	res.Requests = int64(lat.Count())
	res.RPS = float64(res.Requests) / l.Duration.Seconds()
	res.Latency, res.FirstByte = lat.Summary(), first.Summary()
	if err := ctx.Err(); err != nil && time.Now().Before(until) {
		return res, fmt.Errorf("load: %w", err)
	}
	return res, nil
}

// rawRequest is the request every connection sends, serialized once: the
// load generator spends its CPU on the network, not on building requests.
func rawRequest(u *url.URL, h http.Header, body string) []byte {
	var b strings.Builder
	method := http.MethodGet
	if body != "" {
		method = http.MethodPost
	}
	b.WriteString(method + " " + u.RequestURI() + " HTTP/1.1\r\nHost: " + u.Host + "\r\n")
	for name, vs := range h {
		for _, v := range vs {
			b.WriteString(name + ": " + v + "\r\n")
		}
	}
	if body != "" {
		b.WriteString("Content-Length: " + strconv.Itoa(len(body)) + "\r\n")
	}
	b.WriteString("\r\n" + body)
	return []byte(b.String())
}

// worker is one connection of the load generator.
type worker struct {
	addr string
	req  []byte

	conn     net.Conn
	br       *bufio.Reader
	buf      []byte
	lat      Histogram
	first    Histogram
	total    int64
	errors   int64
	firstErr error
}

func (w *worker) run(ctx context.Context, from, until time.Time) {
	w.buf = make([]byte, 32<<10)
	defer func() {
		if w.conn != nil {
			w.conn.Close()
		}
	}()
	for ctx.Err() == nil {
		start := time.Now()
		first, err := w.once(ctx)
		end := time.Now()
		if end.After(until) {
			return
		}
		if err != nil {
			w.fail(err)
			w.close()
			continue
		}
		w.total++
		if !start.Before(from) {
			w.lat.Record(end.Sub(start))
			w.first.Record(first.Sub(start))
		}
	}
}

// once sends one request and reads its response whole; it returns when the
// first byte of the body arrived.
func (w *worker) once(ctx context.Context) (time.Time, error) {
	if w.conn == nil {
		c, err := (&net.Dialer{}).DialContext(ctx, "tcp", w.addr)
		if err != nil {
			return time.Time{}, err
		}
		// A stuck exchange ends at the run's deadline rather than hanging it.
		if d, ok := ctx.Deadline(); ok {
			c.SetDeadline(d)
		}
		w.conn = c
		if w.br == nil {
			w.br = bufio.NewReaderSize(c, 16<<10)
		} else {
			w.br.Reset(c)
		}
	}
	if _, err := w.conn.Write(w.req); err != nil {
		return time.Time{}, err
	}
	res, err := http.ReadResponse(w.br, nil)
	if err != nil {
		return time.Time{}, err
	}
	defer res.Body.Close()
	n, err := res.Body.Read(w.buf)
	first := time.Now()
	if n == 0 && err != nil && err != io.EOF {
		return first, err
	}
	if _, err := io.CopyBuffer(io.Discard, onlyReader{res.Body}, w.buf); err != nil {
		return first, err
	}
	if res.StatusCode != http.StatusOK {
		return first, fmt.Errorf("status %s", res.Status)
	}
	if res.Close {
		w.close()
	}
	return first, nil
}

func (w *worker) fail(err error) {
	w.errors++
	if w.firstErr == nil {
		w.firstErr = err
	}
}

func (w *worker) close() {
	if w.conn != nil {
		w.conn.Close()
		w.conn = nil
	}
}

// onlyReader hides a body's WriterTo, so that CopyBuffer uses the worker's
// buffer instead of allocating one.
type onlyReader struct{ io.Reader }
