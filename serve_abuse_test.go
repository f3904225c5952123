package main

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"regexp"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// Abuse that must not hurt anyone else: floods, slowloris, oversized
// handshakes and connections dropped without a word.

// floodReaders connects n raw readers that count what they receive until
// they have want messages or their connection ends, and reports each
// one's count and how it ended.
func floodReaders(t *testing.T, url string, n, want int) (wait func() (counts []int, ends []error)) {
	t.Helper()
	counts := make([]int, n)
	ends := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		c := dialTest(t, url, nil)
		wg.Add(1)
		go func() {
			defer wg.Done()
			c.SetReadDeadline(time.Now().Add(testTimeout))
			for counts[i] < want {
				_, data, err := c.ReadMessage()
				if err != nil {
					ends[i] = err
					return
				}
				if string(data) != fmt.Sprintf("m%05d", counts[i]) {
					ends[i] = fmt.Errorf("message %d is %q", counts[i], data)
					return
				}
				counts[i]++
			}
		}()
	}
	return func() ([]int, []error) { wg.Wait(); return counts, ends }
}

// flood sends n text messages m00000, m00001, ... as fast as the socket
// takes them, all in one write.
func flood(t *testing.T, c *rawClient, n int) {
	t.Helper()
	var b []byte
	for i := range n {
		b = append(b, maskedFrame(websocket.TextMessage, fmt.Appendf(nil, "m%05d", i))...)
	}
	c.conn.SetWriteDeadline(time.Now().Add(testTimeout))
	c.conn.Write(b) // a cut flooder's write may fail
}

func TestServeFloodWithoutRateReachesEveryReader(t *testing.T) {
	const readers, messages = 100, 2000
	srv := newTestServer(t, "serve", "--history", "0")
	wait := floodReaders(t, srv.url, readers, messages)
	flood(t, newRawClient(t, srv.url), messages)
	counts, ends := wait()
	for i := range readers {
		if ends[i] != nil || counts[i] != messages {
			t.Fatalf("reader %d got %d of %d messages, ended by %v; log:\n%s", i, counts[i], messages, ends[i], srv.stderr.String())
		}
	}
}

func TestServeFloodWithRateCutsOnlyTheFlooder(t *testing.T) {
	const readers = 100
	srv := newTestServer(t, "serve", "--history", "0", "--rate", "20")
	var conns []*websocket.Conn
	for range readers {
		conns = append(conns, dialTest(t, srv.url, nil))
	}
	flooder := newRawClient(t, srv.url)
	flood(t, flooder, 2000)
	flooder.expectCloseFrame(t, websocket.ClosePolicyViolation)
	// Every reader is still there, got no more than the rate's burst, and
	// hears the next message.
	speaker := dialTest(t, srv.url, nil)
	speaker.WriteMessage(websocket.TextMessage, []byte("after the flood"))
	for i, c := range conns {
		c.SetReadDeadline(time.Now().Add(testTimeout))
		got := 0
		for {
			_, data, err := c.ReadMessage()
			if err != nil {
				t.Fatalf("reader %d: %v after %d messages", i, err, got)
			}
			if string(data) == "after the flood" {
				break
			}
			got++
		}
		if got >= 60 { // the burst of 20, and 20/s refilled while the flood lasts
			t.Errorf("reader %d got %d flood messages, want about the burst of 20", i, got)
		}
	}
}

func TestServeSlowlorisAndHalfHandshakes(t *testing.T) {
	const n = 1000
	oldTimeout, oldInterval := readHeaderTimeout, guardInterval
	readHeaderTimeout, guardInterval = time.Second, 200*time.Millisecond
	t.Cleanup(func() { readHeaderTimeout, guardInterval = oldTimeout, oldInterval })
	srv := newTestServer(t, "serve")
	addr := strings.TrimSuffix(strings.TrimPrefix(srv.url, "ws://"), "/")
	var idle []net.Conn
	for i := range 2 * n {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatalf("connection %d: %v", i, err)
		}
		t.Cleanup(func() { c.Close() })
		if i%2 == 1 {
			fmt.Fprintf(c, "GET / HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\n", addr) // and no more
		}
		idle = append(idle, c)
	}
	// A real client is served at once meanwhile.
	a, b := dialTest(t, srv.url, nil), dialTest(t, srv.url, nil)
	a.WriteMessage(websocket.TextMessage, []byte("still served"))
	if _, data := readMsg(t, b); string(data) != "still served" {
		t.Fatalf("got %q", data)
	}
	// The server frees them all by its timeout.
	for i, c := range idle {
		c.SetReadDeadline(time.Now().Add(testTimeout))
		if _, err := io.Copy(io.Discard, c); err != nil {
			t.Fatalf("connection %d not closed by the server: %v", i, err)
		}
	}
	waitFor(t, func() bool {
		return strings.Contains(srv.stderr.String(), "connections closed without sending a request")
	})
	if lines := strings.Count(srv.stderr.String(), "\n"); lines > 50 {
		t.Errorf("%d log lines for %d abandoned connections, want a summary:\n%s", lines, 2*n, srv.stderr.String())
	}
}

func TestServeOversizedHandshakes431(t *testing.T) {
	srv := newTestServer(t, "serve")
	tests := []struct {
		name   string
		header http.Header
	}{
		{"1 MB Sec-WebSocket-Protocol", http.Header{"Sec-Websocket-Protocol": {strings.Repeat("a", 1<<20)}}},
		{"5,000 headers", func() http.Header {
			h := http.Header{}
			for i := range 5000 {
				h.Set(fmt.Sprintf("X-Header-%d", i), "value")
			}
			return h
		}()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, resp, err := websocket.DefaultDialer.Dial(srv.url, tt.header)
			if resp == nil || resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
				t.Fatalf("got %v, %v; want 431", resp, err)
			}
		})
	}
	dialTest(t, srv.url, nil) // and the server goes on
}

func TestServeDroppedConnectionsLeaveNothing(t *testing.T) {
	const total, batch = 10000, 500
	// Quiet: 20,000 log lines would grow the heap themselves.
	srv := newTestServer(t, "serve", "--ping-interval", "0", "-q")
	runtime.GC()
	var before runtime.MemStats
	runtime.ReadMemStats(&before)
	goroutines := runtime.NumGoroutine()
	addr := strings.TrimSuffix(strings.TrimPrefix(srv.url, "ws://"), "/")
	handshake := fmt.Sprintf("GET / HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n", addr)
	for range total / batch {
		var conns []net.Conn
		for range batch {
			c, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			c.SetDeadline(time.Now().Add(testTimeout))
			io.WriteString(c, handshake)
			if resp, err := http.ReadResponse(bufio.NewReader(c), nil); err != nil || resp.StatusCode != http.StatusSwitchingProtocols {
				t.Fatalf("handshake: %v %v", resp, err)
			}
			conns = append(conns, c)
		}
		for _, c := range conns {
			c.Close() // no close frame
		}
	}
	health := func() (conns, rooms int) {
		resp, err := http.Get(httpURL(srv.url) + "healthz")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		fmt.Fscanf(bufio.NewReader(resp.Body), `{"status":"ok","connections":%d,"rooms":%d}`, &conns, &rooms)
		return conns, rooms
	}
	waitFor(t, func() bool { c, r := health(); return c == 0 && r == 0 })
	http.DefaultClient.CloseIdleConnections()
	waitFor(t, func() bool { return runtime.NumGoroutine() <= goroutines+5 })
	runtime.GC()
	var after runtime.MemStats
	runtime.ReadMemStats(&after)
	t.Logf("heap in use: %d kB before, %d kB after", before.HeapInuse>>10, after.HeapInuse>>10)
	if grown := int64(after.HeapInuse) - int64(before.HeapInuse); grown > 8<<20 {
		t.Errorf("heap in use grew by %d kB after %d dropped connections", grown>>10, total)
	}
}

// TestServeGuardIgnoresAnsweredRequests: requests that were answered and
// closed (Connection: close, as load balancers' probes send) are not
// abandoned connections.
func TestServeGuardIgnoresAnsweredRequests(t *testing.T) {
	old := guardInterval
	guardInterval = 50 * time.Millisecond
	t.Cleanup(func() { guardInterval = old })
	srv := newTestServer(t, "serve")
	for range 3 {
		req, _ := http.NewRequest(http.MethodGet, httpURL(srv.url)+"healthz", nil)
		req.Close = true
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	// One that is abandoned, so the guard has something to report.
	c, err := net.Dial("tcp", strings.TrimSuffix(strings.TrimPrefix(srv.url, "ws://"), "/"))
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	waitFor(t, func() bool {
		return strings.Contains(srv.stderr.String(), "connections closed without sending a request")
	})
	if log := srv.stderr.String(); regexp.MustCompile(`and [1-9][0-9]* in the middle of one`).MatchString(log) {
		t.Errorf("answered requests counted as abandoned:\n%s", log)
	}
}
