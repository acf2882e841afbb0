package local_test

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/keyvault-edge/kve/shared/kvetest"
	"github.com/keyvault-edge/kve/shared/local"
)

// TestSlowHeaders (SECURITY T54, class c9): the server bounds how long a
// client may take to send its request head: the default is 10 s (G13), and a
// slowloris connection is cut when the deadline passes (a short one here).
func TestSlowHeaders(t *testing.T) {
	t.Parallel()
	def, err := local.ParseConfig(nil, func(string) string { return "" }, io.Discard)
	if err != nil || def.ReadHeaderTimeout != 10*time.Second {
		t.Fatalf("default ReadHeaderTimeout %v (%v), want 10s", def.ReadHeaderTimeout, err)
	}
	inst := kvetest.Start(t, kvetest.WithConfig(func(c *local.Config) { c.ReadHeaderTimeout = 500 * time.Millisecond }))
	readHeader, idle, maxHeader, ok := local.ServerLimits(inst.Main)
	if !ok {
		t.Fatal("the server is not running")
	}
	if readHeader != 500*time.Millisecond || idle <= 0 || maxHeader <= 0 {
		t.Fatalf("ReadHeaderTimeout %v, IdleTimeout %v, MaxHeaderBytes %d: want the configured header deadline and bounds on idle connections and header size",
			readHeader, idle, maxHeader)
	}
	conn, err := net.Dial("tcp", inst.Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	start := time.Now()
	go func() {
		// One header byte every 20 ms, forever: a slowloris client.
		head := "GET /healthz HTTP/1.1\r\nHost: kve\r\nX-Slow: " + strings.Repeat("a", 1<<20)
		for i := 0; i < len(head); i++ {
			if _, err := conn.Write([]byte{head[i]}); err != nil {
				return
			}
			time.Sleep(20 * time.Millisecond)
		}
	}()
	conn.SetReadDeadline(time.Now().Add(readHeader + 20*time.Second))
	b, err := io.ReadAll(conn)
	inst.Saw("slowloris connection", b)
	if ne, ok := err.(net.Error); ok && ne.Timeout() {
		t.Fatalf("the connection was still open after %v", time.Since(start))
	}
	if d := time.Since(start); d < readHeader-100*time.Millisecond || d > readHeader+5*time.Second {
		t.Errorf("the connection was closed after %v, want about %v", d, readHeader)
	}
}

// TestLargeBodies (SECURITY T54, class c9): a body over the cap is refused
// with 413. Announced with Content-Length, it is refused before kve reads
// it: a client that goes on sending 100 MB gets its answer and a closed
// connection long before it is done. Sent chunked, it is cut at the cap.
func TestLargeBodies(t *testing.T) {
	t.Parallel()
	const maxBody = 1 << 20
	e := newEnv(t, kvetest.WithConfig(func(c *local.Config) { c.MaxBodyBytes = maxBody }))
	tok := e.token(t, nil)

	t.Run("100 MB announced", func(t *testing.T) {
		const size = 100 << 20
		conn, err := net.Dial("tcp", e.inst.Addr)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		head := "POST /openai/v1/chat/completions HTTP/1.1\r\nHost: kve\r\nAuthorization: Bearer " + tok.Value +
			"\r\nContent-Type: application/json\r\nContent-Length: " + strconv.Itoa(size) + "\r\n\r\n"
		if _, err := io.WriteString(conn, head); err != nil {
			t.Fatal(err)
		}
		sent := make(chan int64, 1)
		go func() {
			chunk := make([]byte, 64<<10)
			var n int64
			for n < size {
				m, err := conn.Write(chunk)
				n += int64(m)
				if err != nil {
					break
				}
			}
			sent <- n
		}()
		conn.SetReadDeadline(time.Now().Add(30 * time.Second))
		res, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if err != nil {
			t.Fatalf("no answer while the body was being sent: %v", err)
		}
		body, _ := io.ReadAll(res.Body)
		e.inst.Saw("the 100 MB request's answer", body)
		if res.StatusCode != 413 || errorCode(body) != "request_too_large" {
			t.Errorf("got %d %s, want 413 request_too_large", res.StatusCode, body)
		}
		conn.Close()
		if n := <-sent; n >= size {
			t.Errorf("kve read the whole %d-byte body", n)
		}
	})

	t.Run("chunked over the cap", func(t *testing.T) {
		before := e.up.Calls()
		// A valid JSON document of 2 MiB with no length: kve must stream it,
		// and stops at the cap.
		body := io.MultiReader(strings.NewReader(`{"model":"gpt-4o-mini","messages":[{"role":"user","content":"`),
			strings.NewReader(strings.Repeat("a", 2*maxBody)), strings.NewReader(`"}]}`))
		req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, e.inst.URL+"/openai/v1/chat/completions", body)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", "Bearer "+tok.Value)
		req.Header.Set("Content-Type", "application/json")
		res, err := e.inst.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if res.StatusCode != 413 || errorCode(b) != "request_too_large" {
			t.Errorf("got %d %s, want 413 request_too_large", res.StatusCode, b)
		}
		for _, r := range e.up.Requests()[before:] {
			if len(r.Body) > maxBody {
				t.Errorf("the upstream received %d bytes, over the %d-byte cap", len(r.Body), maxBody)
			}
		}
	})
}
