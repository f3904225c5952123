package main

import (
	"bufio"
	"bytes"
	"compress/flate"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os/exec"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// Conformance with RFC 6455 (WebSocket) and RFC 7692 (permessage-deflate),
// checked the way Autobahn|Testsuite checks: hand-made frames on a bare
// socket, and the exact frames that come back. The section of the RFC each
// test holds wsx to is in its name.

// send writes hand-made client frames: b0 is FIN, RSV and the opcode.
func (c *rawClient) send(t *testing.T, frames ...[]byte) {
	t.Helper()
	for _, f := range frames {
		if _, err := c.conn.Write(f); err != nil {
			t.Fatalf("write: %v", err)
		}
	}
}

// clientFrame is a masked client frame with any first byte.
func clientFrame(b0 byte, payload []byte) []byte {
	f := maskedFrame(int(b0&0x0f), payload)
	f[0] = b0
	return f
}

// next reads the next frame the server sends.
func (c *rawClient) next(t *testing.T) rawFrame {
	t.Helper()
	c.conn.SetReadDeadline(time.Now().Add(testTimeout))
	f, err := readRawFrame(c.r)
	if err != nil {
		t.Fatalf("read frame: %v", err)
	}
	return f
}

// expectCloseFrame reads frames up to a close and checks its code.
func (c *rawClient) expectCloseFrame(t *testing.T, code int) {
	t.Helper()
	for {
		f := c.next(t)
		if f.op != websocket.CloseMessage {
			continue
		}
		if len(f.payload) < 2 {
			t.Fatalf("close without a code, want %d", code)
		}
		if got := int(binary.BigEndian.Uint16(f.payload)); got != code {
			t.Fatalf("close %d %q, want %d", got, f.payload[2:], code)
		}
		return
	}
}

// compressed deflates p as permessage-deflate does: the final empty stored
// block's tail removed.
func compressed(t *testing.T, p []byte) []byte {
	t.Helper()
	var b bytes.Buffer
	w, _ := flate.NewWriter(&b, flate.BestSpeed)
	w.Write(p)
	w.Flush()
	return bytes.TrimSuffix(b.Bytes(), []byte{0, 0, 0xff, 0xff})
}

// inflate undoes compressed.
func inflate(t *testing.T, p []byte) []byte {
	t.Helper()
	out, err := io.ReadAll(flate.NewReader(io.MultiReader(bytes.NewReader(p), bytes.NewReader([]byte{0, 0, 0xff, 0xff, 1, 0, 0, 0xff, 0xff}))))
	if err != nil {
		t.Fatalf("inflate: %v", err)
	}
	return out
}

const (
	fin    = finBit
	rsv1   = rsv1Bit
	opText = websocket.TextMessage
	opPing = websocket.PingMessage
)

func TestRFC6455_5_4_FragmentsWithPingBetween(t *testing.T) {
	srv := newTestServer(t, "echo")
	c := newRawClient(t, srv.url)
	c.send(t, clientFrame(opText, []byte("hel")), clientFrame(fin|opPing, []byte("p")),
		clientFrame(opContinuation, []byte("l")), clientFrame(fin|opContinuation, []byte("o")))
	if f := c.next(t); f.op != websocket.PongMessage || string(f.payload) != "p" {
		t.Fatalf("got op %d %q, want the pong first", f.op, f.payload)
	}
	if f := c.next(t); f.op != opText || !f.fin || string(f.payload) != defaultPrefix+"hello" {
		t.Fatalf("got op %d fin %v %q, want one text frame %q", f.op, f.fin, f.payload, defaultPrefix+"hello")
	}
}

func TestRFC6455_5_2_ReservedBitsAndOpcodes(t *testing.T) {
	tests := []struct {
		name  string
		frame []byte
	}{
		{"RSV1 without an extension", clientFrame(fin|rsv1|opText, []byte("x"))},
		{"RSV2", clientFrame(fin|0x20|opText, []byte("x"))},
		{"reserved data opcode 3", clientFrame(fin|0x3, nil)},
		{"reserved control opcode 11", clientFrame(fin|0xb, nil)},
		{"continuation with nothing to continue", clientFrame(fin|opContinuation, []byte("x"))},
		{"fragmented ping (RFC 6455 5.5)", clientFrame(opPing, nil)},
		{"ping over 125 bytes (RFC 6455 5.5)", clientFrame(fin|opPing, make([]byte, 126))},
		{"64-bit length with the top bit set", []byte{fin | 0x2, 0x80 | 127, 0x80, 0, 0, 0, 0, 0, 0, 1, 1, 2, 3, 4}},
	}
	srv := newTestServer(t, "echo")
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newRawClient(t, srv.url)
			c.send(t, tt.frame)
			c.expectCloseFrame(t, websocket.CloseProtocolError)
		})
	}
}

func TestRFC6455_8_1_InvalidUTF8FailsAtFirstBadFragment(t *testing.T) {
	srv := newTestServer(t, "echo")
	c := newRawClient(t, srv.url)
	// The message never ends: the close must come from the first fragment.
	c.send(t, clientFrame(opText, []byte("ok \xc3\x28 then more")))
	c.expectCloseFrame(t, websocket.CloseInvalidFramePayloadData)
}

func TestRFC6455_8_1_CharacterSplitAcrossFragments(t *testing.T) {
	srv := newTestServer(t, "echo", "--prefix", "")
	c := newRawClient(t, srv.url)
	euro := []byte("€") // e2 82 ac
	c.send(t, clientFrame(opText, euro[:1]), clientFrame(opContinuation, euro[1:2]), clientFrame(fin|opContinuation, euro[2:]))
	if f := c.next(t); string(f.payload) != "€" {
		t.Fatalf("got %q, want €", f.payload)
	}
	// A message that ends inside a character is invalid.
	c.send(t, clientFrame(fin|opText, euro[:2]))
	c.expectCloseFrame(t, websocket.CloseInvalidFramePayloadData)
}

func TestRFC6455_7_4_CloseCodes(t *testing.T) {
	tests := []struct {
		code int
		want int
	}{
		{1000, 1000}, {1001, 1001}, {3000, 3000}, {4999, 4999},
		{999, websocket.CloseProtocolError}, {1005, websocket.CloseProtocolError},
		{1006, websocket.CloseProtocolError}, {5000, websocket.CloseProtocolError},
	}
	srv := newTestServer(t, "echo")
	for _, tt := range tests {
		c := newRawClient(t, srv.url)
		c.send(t, clientFrame(fin|websocket.CloseMessage, binary.BigEndian.AppendUint16(nil, uint16(tt.code))))
		c.expectCloseFrame(t, tt.want)
	}
}

func TestRFC7692_7_DeflateNegotiation(t *testing.T) {
	tests := []struct {
		offer string
		want  string // the answer; "" = declined, no compression
	}{
		{"permessage-deflate", gorillaDeflateAnswer},
		{"permessage-deflate; client_max_window_bits", gorillaDeflateAnswer},
		{"permessage-deflate; client_max_window_bits=10; server_no_context_takeover", gorillaDeflateAnswer},
		{"permessage-deflate; server_max_window_bits=15", gorillaDeflateAnswer + "; server_max_window_bits=15"},
		{`permessage-deflate; server_max_window_bits="15"`, gorillaDeflateAnswer + "; server_max_window_bits=15"},
		{"permessage-deflate; server_max_window_bits=9", ""},
		{"permessage-deflate; server_max_window_bits=9, permessage-deflate", gorillaDeflateAnswer},
		{"x-webkit-deflate-frame, permessage-deflate", gorillaDeflateAnswer},
		{"permessage-deflate; foo=1", ""},
		{"permessage-deflate; server_no_context_takeover; server_no_context_takeover", ""},
		{"permessage-deflate; server_max_window_bits=16", ""},
		{"permessage-deflate; client_max_window_bits=7", ""},
		{"permessage-deflate; server_max_window_bits", ""},
		{"permessage-deflate; server_no_context_takeover=1", ""},
		{"permessage-deflate; server_max_window_bits=015", ""},
		{"permessage-deflate;", ""},
		{"x-webkit-deflate-frame", ""},
	}
	srv := newTestServer(t, "echo", "--compress")
	for _, tt := range tests {
		t.Run(tt.offer, func(t *testing.T) {
			_, resp := rawHandshake(t, srv.url, "Sec-WebSocket-Extensions: "+tt.offer+"\r\n")
			if resp.StatusCode != http.StatusSwitchingProtocols {
				t.Fatalf("offer %q: %s, want 101", tt.offer, resp.Status)
			}
			if got := resp.Header.Get("Sec-WebSocket-Extensions"); got != tt.want {
				t.Errorf("offer %q: answer %q, want %q", tt.offer, got, tt.want)
			}
		})
	}
}

func TestRFC7692_7_1_2_1_CompressesWithinGrantedWindow(t *testing.T) {
	srv := newTestServer(t, "echo", "--compress", "--prefix", "")
	c, resp := rawHandshake(t, srv.url, "Sec-WebSocket-Extensions: permessage-deflate; server_max_window_bits=15\r\n")
	if !strings.Contains(resp.Header.Get("Sec-WebSocket-Extensions"), "server_max_window_bits=15") {
		t.Fatalf("answer %q", resp.Header.Get("Sec-WebSocket-Extensions"))
	}
	msg := bytes.Repeat([]byte("window "), 10000) // back-references across 70 kB
	c.send(t, clientFrame(fin|rsv1|opText, compressed(t, msg)))
	f := c.next(t)
	if !f.rsv1 {
		t.Fatal("reply not compressed")
	}
	if got := inflate(t, f.payload); !bytes.Equal(got, msg) {
		t.Fatalf("reply inflates to %d bytes, want the %d sent", len(got), len(msg))
	}
}

func TestRFC7692_6_1_RSV1OnlyOnFirstDataFrame(t *testing.T) {
	tests := []struct {
		name   string
		frames [][]byte
	}{
		{"RSV1 on a continuation frame", [][]byte{clientFrame(rsv1|opText, nil), clientFrame(fin|rsv1|opContinuation, nil)}},
		{"RSV1 on a ping", [][]byte{clientFrame(fin|rsv1|opPing, []byte("p"))}},
		{"RSV1 on a close", [][]byte{clientFrame(fin|rsv1|websocket.CloseMessage, []byte{3, 232})}},
	}
	srv := newTestServer(t, "echo", "--compress")
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, _ := rawHandshake(t, srv.url, "Sec-WebSocket-Extensions: permessage-deflate\r\n")
			c.send(t, tt.frames...)
			f := c.next(t) // a pong here would be the bug
			if f.op != websocket.CloseMessage || len(f.payload) < 2 || binary.BigEndian.Uint16(f.payload) != websocket.CloseProtocolError {
				t.Fatalf("got op %d %q, want close 1002", f.op, f.payload)
			}
		})
	}
}

// TestRFC6455_4_1_DialRefusesUnofferedExtension: a server that answers
// with an extension wsx dial did not offer gets the connection refused,
// exit 1, with the reason.
func TestRFC6455_4_1_DialRefusesUnofferedExtension(t *testing.T) {
	url := newPeer(t, func(w http.ResponseWriter, r *http.Request) {
		conn, _, err := http.NewResponseController(w).Hijack()
		if err != nil {
			t.Error(err)
			return
		}
		defer conn.Close()
		fmt.Fprintf(conn, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: %s\r\nSec-WebSocket-Extensions: %s\r\n\r\n",
			acceptKey(r.Header.Get("Sec-WebSocket-Key")), gorillaDeflateAnswer)
		conn.SetReadDeadline(time.Now().Add(testTimeout))
		io.Copy(io.Discard, conn) // until wsx hangs up
	})
	cmd := exec.Command(wsxBinary, "dial", url, "-x", "hi")
	out, err := cmd.CombinedOutput()
	if code := cmd.ProcessState.ExitCode(); code != exitFailure {
		t.Fatalf("exit %d (%v), want 1; output:\n%s", code, err, out)
	}
	if !strings.Contains(string(out), "the server answered with the extension permessage-deflate, which wsx did not offer") {
		t.Errorf("output does not say why:\n%s", out)
	}
}

func TestRFC6455_8_1_DialFailsInvalidUTF8AtFirstFragment(t *testing.T) {
	closed := make(chan int, 1)
	url := newPeer(t, func(w http.ResponseWriter, r *http.Request) {
		c := accept(t, w, r)
		// The first fragment of a text message that never ends.
		// More than gorilla's write buffer: the first fragment goes out
		// on its own, and the message is never finished.
		nw, _ := c.NextWriter(websocket.TextMessage)
		nw.Write(append([]byte("ok \xc3\x28"), bytes.Repeat([]byte("a"), 8192)...))
		c.NetConn().SetReadDeadline(time.Now().Add(testTimeout))
		_, _, err := c.ReadMessage()
		var ce *websocket.CloseError
		if errors.As(err, &ce) {
			closed <- ce.Code
		}
		close(closed)
	})
	r := dialInProcess(t, strings.NewReader(""), url, "--wait", "-1")
	r.wantExit(t, exitAbnormal)
	if code := <-closed; code != websocket.CloseInvalidFramePayloadData {
		t.Errorf("server saw close %d, want 1007", code)
	}
}

// rawPeer is a server on a bare socket for dial: it answers the handshake
// with extra response header lines, then runs script on the connection.
func rawPeer(t *testing.T, extra string, script func(conn net.Conn, r *bufio.Reader)) string {
	t.Helper()
	return newPeer(t, func(w http.ResponseWriter, r *http.Request) {
		conn, brw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			t.Error(err)
			return
		}
		defer conn.Close()
		conn.SetDeadline(time.Now().Add(testTimeout))
		fmt.Fprintf(conn, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n%s\r\n",
			acceptKey(r.Header.Get("Sec-WebSocket-Key")), extra)
		script(conn, brw.Reader)
	})
}

// serverClose is an unmasked close frame with code and reason.
func serverClose(code int, reason string) []byte {
	return encodeFrame(websocket.CloseMessage, websocket.FormatCloseMessage(code, reason), false)
}

func TestRFC6455_7_4_2_DialAcceptsCloseCodes1012To1014(t *testing.T) {
	for _, code := range []int{1012, 1013, 1014} {
		replies := make(chan rawFrame, 1)
		url := rawPeer(t, "", func(conn net.Conn, r *bufio.Reader) {
			conn.Write(serverClose(code, "going"))
			if f, err := readRawFrame(r); err == nil {
				replies <- f
			}
			close(replies)
		})
		res := dialInProcess(t, strings.NewReader(""), url, "--wait", "-1")
		res.wantExit(t, exitAbnormal)
		if want := fmt.Sprintf("Connection closed (%d - going)", code); !strings.Contains(res.stderr, want) {
			t.Errorf("close %d: stderr does not say %q:\n%s", code, want, res.stderr)
		}
		f, ok := <-replies
		if !ok || f.op != websocket.CloseMessage || len(f.payload) < 2 || int(binary.BigEndian.Uint16(f.payload)) != code {
			t.Errorf("close %d: dial answered %+v, want a close with the same code", code, f)
		}
	}
}

func TestRFC6455_7_4_2_DialReconnectsAfter1014(t *testing.T) {
	var conns atomic.Int32
	url := rawPeer(t, "", func(conn net.Conn, r *bufio.Reader) {
		code := closeBadGateway
		if conns.Add(1) > 1 {
			code = websocket.CloseNormalClosure
		}
		conn.Write(serverClose(code, ""))
		readRawFrame(r)
	})
	res := dialInProcess(t, strings.NewReader(""), url, "--wait", "-1", "--reconnect")
	res.wantExit(t, exitOK)
	if conns.Load() != 2 {
		t.Errorf("%d connections, want a reconnection after 1014; stderr:\n%s", conns.Load(), res.stderr)
	}
}

func TestRFC7692_6_1_DialFailsRSV1OnControlFrame(t *testing.T) {
	replies := make(chan rawFrame, 1)
	url := rawPeer(t, "Sec-WebSocket-Extensions: "+gorillaDeflateAnswer+"\r\n", func(conn net.Conn, r *bufio.Reader) {
		conn.Write([]byte{fin | rsv1 | opPing, 1, 'p'})
		for {
			f, err := readRawFrame(r)
			if err != nil {
				break
			}
			if f.op != websocket.PongMessage {
				replies <- f
				break
			}
		}
		close(replies)
	})
	res := dialInProcess(t, strings.NewReader(""), url, "--compress", "--wait", "-1")
	res.wantExit(t, exitAbnormal)
	f, ok := <-replies
	if !ok || f.op != websocket.CloseMessage || binary.BigEndian.Uint16(f.payload) != websocket.CloseProtocolError {
		t.Errorf("dial answered %+v, want close 1002; stderr:\n%s", f, res.stderr)
	}
}

// TestServerBufferFollowsArrivingPayload: a frame header that announces
// nearly --max-message-size makes the server allocate for what arrives,
// not for what the header claims.
func TestServerBufferFollowsArrivingPayload(t *testing.T) {
	header := []byte{fin | 0x2, 0x80 | 127, 0, 0, 0, 0, 0, 0x0f, 0xff, 0xf0, 1, 2, 3, 4} // 1 MiB - 16
	c := readerOf(t, append(header, "only this"...), false, 1<<20)
	if _, _, err := c.readFrame(); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("readFrame: %v, want the unexpected end", err)
	}
	if cap(c.msg) > 64<<10 {
		t.Errorf("buffer of %d bytes for 9 bytes received", cap(c.msg))
	}
}
