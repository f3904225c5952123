package main

// wsx bench against scripted peers that misbehave on purpose: they drop,
// duplicate, stall and close, and greet in the handshake's own write.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// echoPeer runs an echo server that prefixes each reply with "echo: " and
// lets behave change what happens to a connection's message i (from 0):
// how many replies it gets (0 drops it, 2 duplicates it) and how long the
// server stalls, reading nothing, before replying. It returns the URL and
// a count of the connections it accepted.
func echoPeer(t *testing.T, behave func(i int) (replies int, stall time.Duration)) (string, *atomic.Int64) {
	var conns atomic.Int64
	url := newPeer(t, func(w http.ResponseWriter, r *http.Request) {
		c := accept(t, w, r)
		if c == nil {
			return
		}
		conns.Add(1)
		c.SetReadDeadline(time.Time{}) // the test's end closes it
		for i := 0; ; i++ {
			op, data, err := c.ReadMessage()
			if err != nil {
				return
			}
			replies, stall := behave(i)
			time.Sleep(stall)
			for range replies {
				if c.WriteMessage(op, append([]byte("echo: "), data...)) != nil {
					return
				}
			}
		}
	})
	return url, &conns
}

func TestBenchDetectsLostMessages(t *testing.T) {
	url, _ := echoPeer(t, func(i int) (int, time.Duration) {
		if i%10 == 9 {
			return 0, 0 // every 10th is dropped
		}
		return 1, 0
	})
	snap, code, stderr := runBenchTest(t, url, "-c", "2", "--messages", "200", "--rate", "2000")
	if code != exitAbnormal {
		t.Errorf("exit %d, want 3; stderr:\n%s", code, stderr)
	}
	wantMessages(t, snap, 200, 180, 20, 0)
	if !strings.Contains(stderr, "20 of 200 deliveries lost") {
		t.Errorf("stderr does not say what was lost:\n%s", stderr)
	}
}

func TestBenchDetectsDuplicates(t *testing.T) {
	url, _ := echoPeer(t, func(i int) (int, time.Duration) {
		if i%5 == 4 {
			return 2, 0 // every 5th twice
		}
		return 1, 0
	})
	snap, code, stderr := runBenchTest(t, url, "-c", "2", "--messages", "100")
	if code != exitOK {
		t.Errorf("exit %d, want 0 (nothing lost); stderr:\n%s", code, stderr)
	}
	wantMessages(t, snap, 100, 100, 0, 20)
}

// TestBenchCorrectedLatencyShowsStall stalls a server for stallFor once: in
// a closed loop, one message waits and the percentiles hide it; on an open
// loop schedule every message due during the stall waits, and the
// corrected latency shows it. The bounds follow from the schedule, not
// from timing: at 200 messages/s, the 10 messages due in the first 50 ms
// of the stall wait at least 250 ms each.
func TestBenchCorrectedLatencyShowsStall(t *testing.T) {
	const stallFor = 300 * time.Millisecond
	stall := func(i int) (int, time.Duration) {
		if i == 100 {
			return 1, stallFor
		}
		return 1, 0
	}
	openURL, _ := echoPeer(t, stall)
	closedURL, _ := echoPeer(t, stall)
	open, code, stderr := runBenchTest(t, openURL, "-c", "1", "--messages", "300", "--rate", "200")
	if code != exitOK {
		t.Fatalf("open loop: exit %d; stderr:\n%s", code, stderr)
	}
	closed, code, stderr := runBenchTest(t, closedURL, "-c", "1", "--messages", "300")
	if code != exitOK {
		t.Fatalf("closed loop: exit %d; stderr:\n%s", code, stderr)
	}
	if p99 := open.Latency.Corrected.P99; p99 < 250e3 {
		t.Errorf("open loop: corrected p99 %.0f µs, want at least 250 ms after a %v stall", p99, stallFor)
	}
	if closed.Latency.Corrected.Max < 250e3 {
		t.Errorf("closed loop: corrected max %.0f µs, want the stalled message's %v", closed.Latency.Corrected.Max, stallFor)
	}
	if o, c := open.Latency.Corrected.P90, closed.Latency.Corrected.P90; o <= c {
		t.Errorf("corrected p90: open loop %.0f µs, closed loop %.0f µs; the open loop should show the stall", o, c)
	}
}

// TestBenchReadsWelcomeSentWithHandshake checks that frames arriving with
// the handshake response are not lost in gorilla's buffer: the peer sends
// a greeting in the very write of its 101 response.
func TestBenchReadsWelcomeSentWithHandshake(t *testing.T) {
	welcome := []byte{0x81, 7, 'w', 'e', 'l', 'c', 'o', 'm', 'e'} // one text frame
	url := newPeer(t, func(w http.ResponseWriter, r *http.Request) {
		c := accept(t, withFirstWrite{w, welcome}, r)
		if c == nil {
			return
		}
		for {
			op, data, err := c.ReadMessage()
			if err != nil {
				return
			}
			c.WriteMessage(op, data)
		}
	})
	snap, code, stderr := runBenchTest(t, url, "-c", "1", "--messages", "10")
	if code != exitOK {
		t.Errorf("exit %d; stderr:\n%s", code, stderr)
	}
	if snap.Messages.Other != 1 {
		t.Errorf("other messages %d, want the welcome", snap.Messages.Other)
	}
	wantMessages(t, snap, 10, 10, 0, 0)
}

// withFirstWrite hijacks to a connection whose first write, the upgrade
// response, carries extra bytes too.
type withFirstWrite struct {
	http.ResponseWriter
	extra []byte
}

func (w withFirstWrite) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	c, rw, err := w.ResponseWriter.(http.Hijacker).Hijack()
	return &firstWriteConn{Conn: c, extra: w.extra}, rw, err
}

type firstWriteConn struct {
	net.Conn
	extra []byte
}

func (c *firstWriteConn) Write(p []byte) (int, error) {
	if c.extra == nil {
		return c.Conn.Write(p)
	}
	b := append(bytes.Clone(p), c.extra...)
	c.extra = nil
	_, err := c.Conn.Write(b)
	return len(p), err
}

func TestBenchCtrlCPrintsResultsSoFar(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	url, _ := echoPeer(t, func(i int) (int, time.Duration) {
		if i == 50 {
			cancel() // as Ctrl-C would, in the middle of a one-minute run
		}
		return 1, 0
	})
	var stdout, stderr bytes.Buffer
	code := run(ctx, []string{"wsx", "bench", url, "-c", "1", "--duration", "1m", "--json"}, strings.NewReader(""), &stdout, &stderr)
	var snap benchSnapshot
	if err := json.Unmarshal(stdout.Bytes(), &snap); err != nil {
		t.Fatalf("no results after the interrupt: %v\n%s\nstderr:\n%s", err, stdout.String(), stderr.String())
	}
	if code != exitOK || !snap.Interrupted || snap.Messages.Sent < 51 || snap.Messages.Lost != 0 {
		t.Errorf("exit %d, interrupted %v, messages %+v; want 0, true, at least 51 sent and none lost", code, snap.Interrupted, snap.Messages)
	}
}

func TestBenchCountsServerCloses(t *testing.T) {
	url := newPeer(t, func(w http.ResponseWriter, r *http.Request) {
		c := accept(t, w, r)
		if c == nil {
			return
		}
		for i := 0; ; i++ {
			op, data, err := c.ReadMessage()
			if err != nil {
				return
			}
			if i == 5 {
				c.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(4000, "enough"), time.Now().Add(testTimeout))
				return
			}
			c.WriteMessage(op, data)
		}
	})
	snap, code, stderr := runBenchTest(t, url, "-c", "2", "--messages", "20")
	if code != exitAbnormal {
		t.Errorf("exit %d, want 3 (messages lost); stderr:\n%s", code, stderr)
	}
	if snap.Closes["4000"] != 2 || snap.Messages.Received != 10 {
		t.Errorf("closes %v, received %d; want 2 closes 4000 and 10 replies", snap.Closes, snap.Messages.Received)
	}
}
