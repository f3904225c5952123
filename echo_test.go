package main

import (
	"bufio"
	"bytes"
	"compress/flate"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

func TestEchoPrefix(t *testing.T) {
	srv := newTestServer(t, "echo")
	c := dialTest(t, srv.url, nil)
	big := make([]byte, 1<<20-len(defaultPrefix))
	rand.Read(big)
	tests := []struct {
		name string
		op   int
		data []byte
	}{
		{"text", websocket.TextMessage, []byte("hello")},
		{"utf-8 with newlines", websocket.TextMessage, []byte("héllo\nwörld 🌍\r\n")},
		{"empty text", websocket.TextMessage, []byte{}},
		{"binary", websocket.BinaryMessage, []byte{0, 1, 2, 0xff, 0xfe}},
		{"binary 1 MiB random", websocket.BinaryMessage, big},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := c.WriteMessage(tt.op, tt.data); err != nil {
				t.Fatal(err)
			}
			op, got := readMsg(t, c)
			want := append([]byte(defaultPrefix), tt.data...)
			if op != tt.op {
				t.Errorf("reply type %d, want %d", op, tt.op)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("reply differs: got %d bytes (sha %x), want %d bytes (sha %x)", len(got), sha256.Sum256(got), len(want), sha256.Sum256(want))
			}
		})
	}
}

func TestEchoPureAndWelcome(t *testing.T) {
	srv := newTestServer(t, "echo", "--prefix", "", "--welcome", "hi there")
	c := dialTest(t, srv.url, nil)
	if op, got := readMsg(t, c); op != websocket.TextMessage || string(got) != "hi there" {
		t.Fatalf("welcome = %d %q, want text %q", op, got, "hi there")
	}
	payload := make([]byte, 100000)
	rand.Read(payload)
	c.WriteMessage(websocket.BinaryMessage, payload)
	if op, got := readMsg(t, c); op != websocket.BinaryMessage || !bytes.Equal(got, payload) {
		t.Fatalf("pure echo of %d random bytes: got type %d, %d bytes", len(payload), op, len(got))
	}
}

func TestEchoReplyTemplate(t *testing.T) {
	srv := newTestServer(t, "echo", "--reply", `this is server :{{.Time.Format "2006-01-02 15:04:05"}} {{.Type}} {{.ID}} [{{.Data}}]`)
	c := dialTest(t, srv.url, nil)
	c.WriteMessage(websocket.TextMessage, []byte("ping"))
	_, got := readMsg(t, c)
	re := regexp.MustCompile(`^this is server :\d{4}-\d\d-\d\d \d\d:\d\d:\d\d text 1 \[ping\]$`)
	if !re.Match(got) {
		t.Errorf("reply %q does not match %s", got, re)
	}
	c.WriteMessage(websocket.BinaryMessage, []byte{1, 2})
	if op, got := readMsg(t, c); op != websocket.BinaryMessage || !bytes.HasSuffix(got, []byte("binary 1 [\x01\x02]")) {
		t.Errorf("binary reply = %d %q", op, got)
	}
}

func TestEchoInvalidUTF8Closes1007(t *testing.T) {
	srv := newTestServer(t, "echo")
	c := dialTest(t, srv.url, nil)
	c.WriteMessage(websocket.TextMessage, []byte("bad \xff\xfe"))
	expectClose(t, c, websocket.CloseInvalidFramePayloadData)
}

func TestEchoOversizeCloses1009(t *testing.T) {
	srv := newTestServer(t, "echo", "--max-message-size", "1KiB")
	c := dialTest(t, srv.url, nil)
	c.WriteMessage(websocket.TextMessage, bytes.Repeat([]byte("a"), 1024))
	if _, got := readMsg(t, c); len(got) != 1024+len(defaultPrefix) {
		t.Fatalf("a message at the limit: reply of %d bytes", len(got))
	}
	c.WriteMessage(websocket.TextMessage, bytes.Repeat([]byte("a"), 1025))
	expectClose(t, c, websocket.CloseMessageTooBig)
}

func TestEchoMaxConns503(t *testing.T) {
	srv := newTestServer(t, "echo", "--max-conns", "2")
	dialTest(t, srv.url, nil)
	second := dialTest(t, srv.url, nil)
	_, resp, err := websocket.DefaultDialer.Dial(srv.url, nil)
	if err == nil || resp == nil || resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("third connection: err %v, response %v; want 503", err, resp)
	}
	body, _ := io.ReadAll(resp.Body)
	if !strings.Contains(string(body), "too many connections") {
		t.Errorf("503 body %q gives no reason", body)
	}
	// A slot frees up when a client leaves.
	second.WriteMessage(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""))
	expectClose(t, second, websocket.CloseNormalClosure)
	waitFor(t, func() bool { // a slot frees once the server has seen the close
		c, _, err := websocket.DefaultDialer.Dial(srv.url, nil)
		if err == nil {
			c.Close()
		}
		return err == nil
	})
}

func TestEchoOrigin403(t *testing.T) {
	srv := newTestServer(t, "echo", "--origin", "https://*.example.com")
	ok := http.Header{"Origin": {"https://app.example.com"}}
	dialTest(t, srv.url, ok)
	_, resp, err := websocket.DefaultDialer.Dial(srv.url, http.Header{"Origin": {"https://evil.test"}})
	if err == nil || resp == nil || resp.StatusCode != http.StatusForbidden {
		t.Fatalf("refused origin: err %v, response %v; want 403", err, resp)
	}
}

func TestEchoPlainGET426(t *testing.T) {
	srv := newTestServer(t, "echo")
	resp, err := http.Get(httpURL(srv.url))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusUpgradeRequired {
		t.Errorf("plain GET: %s, want 426", resp.Status)
	}
	if !strings.Contains(string(body), "WebSocket endpoint") || !strings.Contains(string(body), "ws://") {
		t.Errorf("426 body %q does not say how to connect", body)
	}
}

func TestEchoTLSSelfSigned(t *testing.T) {
	srv := newTestServer(t, "echo", "--tls-self-signed")
	if !strings.HasPrefix(srv.url, "wss://") {
		t.Fatalf("start line URL %s, want wss://", srv.url)
	}
	d := websocket.Dialer{TLSClientConfig: pinnedTLS(t, srv)}
	c, _, err := d.Dial(srv.url, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.WriteMessage(websocket.TextMessage, []byte("secure"))
	if _, got := readMsg(t, c); string(got) != defaultPrefix+"secure" {
		t.Errorf("reply %q", got)
	}
	// And the certificate is valid for localhost by the usual checks.
	state := c.UnderlyingConn().(*tls.Conn).ConnectionState()
	if err := state.PeerCertificates[0].VerifyHostname("127.0.0.1"); err != nil {
		t.Errorf("certificate not valid for 127.0.0.1: %v", err)
	}
}

func TestEchoDropsClientIgnoringPings(t *testing.T) {
	srv := newTestServer(t, "echo", "--ping-interval", "100ms")
	deaf := dialTest(t, srv.url, nil)
	deaf.SetPingHandler(func(string) error { return nil }) // never answers
	alive := dialTest(t, srv.url, nil)
	pings := answerPings(alive)
	aliveMsgs := readAll(alive)
	deaf.SetReadDeadline(time.Now().Add(testTimeout))
	var err error
	for err == nil {
		_, _, err = deaf.ReadMessage()
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("client ignoring pings was not dropped: %v", err)
	}
	if !strings.Contains(srv.stderr.String(), "did not answer pings") {
		t.Errorf("drop not logged:\n%s", srv.stderr.String())
	}
	// The client that answers pings outlives several intervals.
	for i := range 5 {
		next(t, pings, fmt.Sprintf("ping %d", i+1))
	}
	alive.WriteMessage(websocket.TextMessage, []byte("still here"))
	select {
	case got := <-aliveMsgs:
		if string(got) != defaultPrefix+"still here" {
			t.Errorf("client answering pings: reply %q", got)
		}
	case <-time.After(testTimeout):
		t.Fatal("client answering pings got no reply")
	}
}

func TestEchoCompression(t *testing.T) {
	srv := newTestServer(t, "echo", "--compress")
	d := websocket.Dialer{EnableCompression: true}
	c, resp, err := d.Dial(srv.url, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if ext := resp.Header.Get("Sec-WebSocket-Extensions"); !strings.HasPrefix(ext, "permessage-deflate") {
		t.Fatalf("Sec-WebSocket-Extensions %q, want permessage-deflate", ext)
	}
	msg := strings.Repeat("compress me ", 1000)
	for i := 0; i < 3; i++ {
		c.WriteMessage(websocket.TextMessage, []byte(msg))
		if _, got := readMsg(t, c); string(got) != defaultPrefix+msg {
			t.Fatalf("compressed round trip %d: got %d bytes", i, len(got))
		}
	}
}

// TestCompressedFrameIsDeflate checks our frame encoder against the flate
// decoder directly, with the tail permessage-deflate strips restored.
func TestCompressedFrameIsDeflate(t *testing.T) {
	for _, payload := range []string{"", "a", strings.Repeat("xyz", 50000)} {
		f := encodeFrame(websocket.BinaryMessage, []byte(payload), true)
		if f[0] != finBit|rsv1Bit|websocket.BinaryMessage {
			t.Fatalf("first byte %#x", f[0])
		}
		hdr := 2
		switch f[1] {
		case 126:
			hdr = 4
		case 127:
			hdr = 10
		}
		r := flate.NewReader(io.MultiReader(bytes.NewReader(f[hdr:]), bytes.NewReader(append(compressedTail, 1, 0, 0, 0xff, 0xff))))
		got, err := io.ReadAll(r)
		if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Fatalf("inflate: %v", err)
		}
		if string(got) != payload {
			t.Errorf("inflated %d bytes, want %d", len(got), len(payload))
		}
	}
}

func TestEchoSubprotocol(t *testing.T) {
	srv := newTestServer(t, "echo", "--subprotocol", "chat.v2", "--subprotocol", "chat.v1")
	d := websocket.Dialer{Subprotocols: []string{"chat.v1"}}
	c, _, err := d.Dial(srv.url, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if c.Subprotocol() != "chat.v1" {
		t.Errorf("subprotocol %q, want chat.v1", c.Subprotocol())
	}
}

// TestEchoBinaryStartLineAndSIGTERM runs the built binary: port 0 gives the
// real port on stdout, and SIGTERM closes every client with 1001, exit 0.
func TestEchoBinaryStartLineAndSIGTERM(t *testing.T) {
	p := startWSX(t, "echo", "--addr", "127.0.0.1:0")
	url := p.startLineURL(t)
	if strings.HasSuffix(url, ":0/") {
		t.Fatalf("start line %s shows port 0, not the bound port", url)
	}
	clients := make([]*websocket.Conn, 3)
	for i := range clients {
		clients[i] = dialTest(t, url, nil)
		clients[i].WriteMessage(websocket.TextMessage, []byte("x"))
		readMsg(t, clients[i])
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	for i, c := range clients {
		ce := expectClose(t, c, websocket.CloseGoingAway)
		if ce.Text != "server shutting down" {
			t.Errorf("client %d: close reason %q", i, ce.Text)
		}
	}
	if code := p.wait(t); code != exitOK {
		t.Errorf("exit code %d after SIGTERM, want 0; stderr:\n%s", code, p.stderr.String())
	}
	if _, err := net.DialTimeout("tcp", strings.TrimPrefix(strings.TrimSuffix(url, "/"), "ws://"), time.Second); err == nil {
		t.Error("still accepting connections after exit")
	}
}

func TestEchoLogs(t *testing.T) {
	srv := newTestServer(t, "echo", "-v")
	c := dialTest(t, srv.url, nil)
	c.WriteMessage(websocket.TextMessage, []byte("hello log"))
	readMsg(t, c)
	c.WriteMessage(websocket.CloseMessage, websocket.FormatCloseMessage(4000, "bye"))
	expectClose(t, c, 4000)
	waitFor(t, func() bool { return strings.Contains(srv.stderr.String(), "has disconnected") })
	log := srv.stderr.String()
	for _, want := range []string{"New connection! (1) from 127.0.0.1:", `"hello log"`, "Connection 1 has disconnected (4000 bye)"} {
		if !strings.Contains(log, want) {
			t.Errorf("log lacks %q:\n%s", want, log)
		}
	}
}

func TestEchoJSONLogs(t *testing.T) {
	srv := newTestServer(t, "--log-format", "json", "echo")
	c := dialTest(t, srv.url, nil)
	c.WriteMessage(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, "done"))
	expectClose(t, c, websocket.CloseNormalClosure)
	waitFor(t, func() bool { return strings.Contains(srv.stderr.String(), `"event":"close"`) })
	events := map[string]map[string]any{}
	for _, line := range strings.Split(strings.TrimSpace(srv.stderr.String()), "\n") {
		var obj map[string]any
		if err := json.Unmarshal([]byte(line), &obj); err != nil {
			t.Fatalf("log line %q is not JSON: %v", line, err)
		}
		events[fmt.Sprint(obj["event"])] = obj
	}
	open, closed := events["open"], events["close"]
	if open == nil || open["conn"] != float64(1) || !strings.HasPrefix(fmt.Sprint(open["remote"]), "127.0.0.1:") || open["time"] == nil {
		t.Errorf("open event = %v", open)
	}
	if closed == nil || closed["code"] != float64(1000) || closed["reason"] != "done" {
		t.Errorf("close event = %v", closed)
	}
}

func TestEchoListenFailureExit1(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	var stderr bytes.Buffer
	code := run(context.Background(), []string{"wsx", "echo", "--addr", ln.Addr().String()}, strings.NewReader(""), io.Discard, &stderr)
	if code != exitFailure || !strings.Contains(stderr.String(), "address already in use") {
		t.Errorf("exit %d, stderr %q; want 1 and the reason", code, stderr.String())
	}
}

// TestEchoCompressedOversizeCloses1009: the limit applies to the message,
// not to its compressed size on the wire.
func TestEchoCompressedOversizeCloses1009(t *testing.T) {
	srv := newTestServer(t, "echo", "--compress", "--max-message-size", "4KiB")
	d := websocket.Dialer{EnableCompression: true}
	c, _, err := d.Dial(srv.url, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.WriteMessage(websocket.TextMessage, bytes.Repeat([]byte("a"), 1<<20)) // about 1 KiB compressed
	expectClose(t, c, websocket.CloseMessageTooBig)
}

// TestEchoNoCompressionUnlessNegotiated: a malformed offer gets no
// extension in the 101, so replies must not be compressed either.
func TestEchoNoCompressionUnlessNegotiated(t *testing.T) {
	srv := newTestServer(t, "echo", "--compress", "--prefix", "")
	host := strings.TrimSuffix(strings.TrimPrefix(srv.url, "ws://"), "/")
	conn, err := net.Dial("tcp", host)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "GET / HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Extensions: foo bar, permessage-deflate\r\n\r\n", host)
	r := bufio.NewReader(conn)
	resp, err := http.ReadResponse(r, nil)
	if err != nil || resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("handshake: %v %v", err, resp)
	}
	if ext := resp.Header.Get("Sec-WebSocket-Extensions"); ext != "" {
		t.Fatalf("gorilla negotiated %q for a malformed offer; this test needs another one", ext)
	}
	conn.Write(maskedFrame(websocket.TextMessage, []byte("plain please")))
	conn.SetReadDeadline(time.Now().Add(testTimeout))
	first, err := r.ReadByte()
	if err != nil {
		t.Fatal(err)
	}
	if first&rsv1Bit != 0 {
		t.Errorf("reply has RSV1 set (%#x) though no compression was negotiated", first)
	}
}

func TestEchoProtocolErrorIsLogged(t *testing.T) {
	srv := newTestServer(t, "echo")
	c := newRawClient(t, srv.url)
	c.conn.Write(appendFrame(nil, websocket.TextMessage, nil, []byte("unmasked"), false)) // clients must mask
	c.conn.SetReadDeadline(time.Now().Add(testTimeout))
	io.Copy(io.Discard, c.r) // the close frame, then the server's FIN
	c.conn.Close()
	waitFor(t, func() bool { return strings.Contains(srv.stderr.String(), "has disconnected") })
	if log := srv.stderr.String(); !strings.Contains(log, "An error has occurred") || !strings.Contains(log, "MASK") {
		t.Errorf("protocol error not explained in the log:\n%s", log)
	}
}
