package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha1"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// Helpers shared by the tests: the wsx binary and in-process servers, clients
// and peers, and reads with deadlines. Every wait is bounded by testTimeout.

// testTimeout bounds every wait in the tests, so a bug fails fast instead
// of hanging.
const testTimeout = 10 * time.Second

// wsxBinary is the wsx binary built once for the end-to-end tests.
var wsxBinary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "wsx-test")
	if err != nil {
		panic(err)
	}
	wsxBinary = filepath.Join(dir, "wsx")
	build := exec.Command("go", "build", "-race", "-o", wsxBinary, ".")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		panic("go build: " + err.Error())
	}
	code := m.Run()
	stopChromium()
	os.RemoveAll(dir)
	os.Exit(code)
}

// startLine matches the start line every server prints on stdout.
var startLine = regexp.MustCompile(`^Server is running on (wss?://\S+)$`)

// syncBuffer is a bytes.Buffer safe for concurrent writes and reads.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// testServer is a wsx server running in-process through run, so the race
// detector sees the server code.
type testServer struct {
	url    string      // ws:// or wss:// URL from the start line
	stderr *syncBuffer // the server's log
	stop   func() int  // stops the server and returns its exit code
}

// newTestServer runs "wsx ARGS... --addr 127.0.0.1:0" in-process and waits
// for its start line; ARGS may name another --addr, such as the address of
// a server the test stopped, to restart it. The server is stopped when the
// test ends.
func newTestServer(t testing.TB, args ...string) *testServer {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	stderr := new(syncBuffer)
	done := make(chan int, 1)
	argv := append([]string{"wsx"}, args...)
	if !slices.Contains(args, "--addr") {
		argv = append(argv, "--addr", "127.0.0.1:0")
	}
	go func() {
		code := run(ctx, argv, strings.NewReader(""), pw, stderr)
		pw.Close()
		done <- code
	}()
	lines := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(pr)
		first := true
		for sc.Scan() {
			if first {
				lines <- sc.Text()
				first = false
			}
		}
		close(lines)
	}()
	var url string
	select {
	case line, ok := <-lines:
		m := startLine.FindStringSubmatch(line)
		if !ok || m == nil {
			cancel()
			t.Fatalf("wsx %s: no start line (got %q); stderr:\n%s", strings.Join(args, " "), line, stderr.String())
		}
		url = m[1]
	case <-time.After(testTimeout):
		cancel()
		t.Fatalf("wsx %s: no start line within %s; stderr:\n%s", strings.Join(args, " "), testTimeout, stderr.String())
	}
	var once sync.Once
	var code int
	stop := func() int {
		once.Do(func() {
			cancel()
			select {
			case code = <-done:
			case <-time.After(testTimeout):
				t.Errorf("server did not stop within %s", testTimeout)
			}
		})
		return code
	}
	t.Cleanup(func() {
		stop()
		if t.Failed() {
			t.Logf("server log:\n%s", stderr.String())
		}
	})
	return &testServer{url: url, stderr: stderr, stop: stop}
}

// dialTest connects a gorilla client to url, failing the test on error. The
// connection is closed when the test ends.
func dialTest(t *testing.T, url string, h http.Header) *websocket.Conn {
	t.Helper()
	c, resp, err := websocket.DefaultDialer.Dial(url, h)
	if err != nil {
		status := ""
		if resp != nil {
			status = resp.Status
		}
		t.Fatalf("dial %s: %v %s", url, err, status)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// readMsg reads one message with a deadline.
func readMsg(t *testing.T, c *websocket.Conn) (int, []byte) {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(testTimeout))
	op, data, err := c.ReadMessage()
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	return op, data
}

// expectClose reads until the connection ends and checks the close code.
func expectClose(t *testing.T, c *websocket.Conn, code int) *websocket.CloseError {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(testTimeout))
	for {
		_, _, err := c.ReadMessage()
		if err == nil {
			continue
		}
		var ce *websocket.CloseError
		if !errors.As(err, &ce) {
			t.Fatalf("read: %v, want close %d", err, code)
		}
		if ce.Code != code {
			t.Fatalf("close code %d (%q), want %d", ce.Code, ce.Text, code)
		}
		return ce
	}
}

// httpURL turns a ws:// URL into its http:// form.
func httpURL(ws string) string {
	return "http" + strings.TrimPrefix(ws, "ws")
}

// wsxProcess is the wsx binary running as a child process.
type wsxProcess struct {
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	stdout *bufio.Reader
	stderr *syncBuffer
}

// startWSX starts the built binary and returns once it is running. It is
// killed when the test ends if still running.
func startWSX(t testing.TB, args ...string) *wsxProcess {
	t.Helper()
	return startProcess(t, wsxBinary, args...)
}

// startProcess starts the program at path with pipes for stdin and stdout,
// as startWSX does; benchmarks also run peers such as wscat with it.
func startProcess(t testing.TB, path string, args ...string) *wsxProcess {
	t.Helper()
	cmd := exec.Command(path, args...)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	p := &wsxProcess{cmd: cmd, stdin: stdin, stdout: bufio.NewReaderSize(stdout, 64<<10), stderr: new(syncBuffer)}
	cmd.Stderr = p.stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
			cmd.Wait()
		}
	})
	return p
}

// lines reads stdout in a goroutine and sends each line without its
// newline; the channel is closed at the end of stdout.
func (p *wsxProcess) lines() <-chan string {
	ch := make(chan string, 100)
	go func() {
		defer close(ch)
		for {
			l, err := p.stdout.ReadString('\n')
			if err != nil {
				return
			}
			ch <- strings.TrimSuffix(l, "\n")
		}
	}()
	return ch
}

// startLineURL reads the start line from the process's stdout.
func (p *wsxProcess) startLineURL(t *testing.T) string {
	t.Helper()
	line := make(chan string, 1)
	go func() {
		l, _ := p.stdout.ReadString('\n')
		line <- strings.TrimSuffix(l, "\n")
	}()
	select {
	case l := <-line:
		m := startLine.FindStringSubmatch(l)
		if m == nil {
			t.Fatalf("start line %q does not match %s; stderr:\n%s", l, startLine, p.stderr.String())
		}
		return m[1]
	case <-time.After(testTimeout):
		t.Fatalf("no start line within %s; stderr:\n%s", testTimeout, p.stderr.String())
	}
	return ""
}

// signalAndWait sends sig and returns the exit code.
func (p *wsxProcess) signalAndWait(t *testing.T, sig os.Signal) int {
	t.Helper()
	p.cmd.Process.Signal(sig)
	return p.wait(t)
}

// wait returns the exit code once the process ends.
func (p *wsxProcess) wait(t *testing.T) int {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- p.cmd.Wait() }()
	select {
	case <-done:
	case <-time.After(testTimeout):
		p.cmd.Process.Kill()
		t.Fatalf("wsx did not exit within %s; stderr:\n%s", testTimeout, p.stderr.String())
	}
	return p.cmd.ProcessState.ExitCode()
}

// silentServer listens on loopback, accepts connections and holds them
// open without ever answering, until the test ends.
func silentServer(t *testing.T) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		var held []net.Conn
		defer func() {
			for _, c := range held {
				c.Close()
			}
		}()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			held = append(held, c)
		}
	}()
	return ln
}

// readAll reads messages from c in a goroutine until it fails, and sends
// their payloads on the returned channel, which is closed at the end.
func readAll(c *websocket.Conn) <-chan []byte {
	ch := make(chan []byte, 100)
	go func() {
		defer close(ch)
		for {
			_, data, err := c.ReadMessage()
			if err != nil {
				return
			}
			ch <- data
		}
	}()
	return ch
}

// pinnedTLS trusts exactly the self-signed certificate whose fingerprint
// the server logged, as a user pinning it would.
func pinnedTLS(t *testing.T, srv *testServer) *tls.Config {
	t.Helper()
	m := regexp.MustCompile(`fingerprint ([0-9A-F:]{95})`).FindStringSubmatch(srv.stderr.String())
	if m == nil {
		t.Fatalf("no SHA-256 fingerprint logged:\n%s", srv.stderr.String())
	}
	return &tls.Config{
		InsecureSkipVerify: true, // replaced by the pin below
		VerifyPeerCertificate: func(raw [][]byte, _ [][]*x509.Certificate) error {
			if got := fingerprint(raw[0]); got != m[1] {
				return fmt.Errorf("certificate fingerprint %s, printed %s", got, m[1])
			}
			return nil
		},
	}
}

// waitFor polls cond until it holds or the test times out.
func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(testTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met in time")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// next returns what arrived on ch.
func next[T any](t *testing.T, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(testTimeout):
		t.Fatalf("no %s arrived", what)
	}
	var zero T
	return zero
}

// newPeer runs a scripted WebSocket server on a loopback socket: handle
// serves each request, and accept upgrades it. It returns the ws:// URL.
// Connections are closed and handlers waited for when the test ends.
func newPeer(t *testing.T, handle func(w http.ResponseWriter, r *http.Request)) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	srv := &http.Server{
		ReadHeaderTimeout: testTimeout,
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			wg.Add(1)
			defer wg.Done()
			handle(w, r)
		}),
	}
	go srv.Serve(ln)
	t.Cleanup(func() {
		srv.Close()
		done := make(chan struct{})
		go func() { wg.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(testTimeout):
			t.Error("peer handlers did not end")
		}
	})
	return "ws://" + ln.Addr().String() + "/"
}

// accept upgrades a peer request, offering subprotocols. The connection is
// closed when the test ends, which also ends handlers blocked reading it.
func accept(t *testing.T, w http.ResponseWriter, r *http.Request, subprotocols ...string) *websocket.Conn {
	u := websocket.Upgrader{Subprotocols: subprotocols, CheckOrigin: func(*http.Request) bool { return true }}
	c, err := u.Upgrade(w, r, nil)
	if err != nil {
		t.Errorf("upgrade: %v", err)
		return nil
	}
	t.Cleanup(func() { c.Close() })
	c.SetReadDeadline(time.Now().Add(testTimeout))
	return c
}

// noMessage asserts that nothing arrives on c for a short while. It is the
// only way to show a message was not delivered; the wait is bounded and
// short, and the tests send a message that must arrive after it, so a late
// delivery is still caught.
func noMessage(t *testing.T, c *websocket.Conn, what string) {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(150 * time.Millisecond))
	if op, data, err := c.ReadMessage(); err == nil {
		t.Fatalf("%s: got message type %d %q, want none", what, op, data)
	}
}

// rawClients dials n raw clients to url.
func rawClients(t *testing.T, url string, n int) []*websocket.Conn {
	t.Helper()
	cs := make([]*websocket.Conn, n)
	for i := range cs {
		cs[i] = dialTest(t, url, nil)
	}
	return cs
}

// jsonClient dials a client speaking wsx.chat.v1 and returns it with its
// welcome event.
func jsonClient(t *testing.T, url string, h http.Header) (*websocket.Conn, welcomeEvent) {
	t.Helper()
	d := websocket.Dialer{Subprotocols: []string{chatProtocol}}
	c, resp, err := d.Dial(url, h)
	if err != nil {
		t.Fatalf("dial %s: %v %v", url, err, resp)
	}
	t.Cleanup(func() { c.Close() })
	if c.Subprotocol() != chatProtocol {
		t.Fatalf("subprotocol %q, want %s", c.Subprotocol(), chatProtocol)
	}
	var w welcomeEvent
	readJSON(t, c, &w)
	if w.Event != "welcome" {
		t.Fatalf("first event %q, want welcome", w.Event)
	}
	return c, w
}

// readJSON reads one text message and decodes it into v.
func readJSON(t *testing.T, c *websocket.Conn, v any) {
	t.Helper()
	op, data := readMsg(t, c)
	if op != websocket.TextMessage {
		t.Fatalf("JSON event in a message of type %d", op)
	}
	if err := json.Unmarshal(data, v); err != nil {
		t.Fatalf("event %q: %v", data, err)
	}
}

// writeCert writes cert as PEM files and returns their paths.
func writeCert(t *testing.T, cert tls.Certificate) (certFile, keyFile string) {
	t.Helper()
	dir := t.TempDir()
	key, err := x509.MarshalPKCS8PrivateKey(cert.PrivateKey)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Certificate[0]}), 0o600)
	os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: key}), 0o600)
	return certFile, keyFile
}

// answerPings makes c answer pings, as gorilla does by default, and
// signal each one on the returned channel, so a test can wait for several
// keepalive intervals without sleeping. c's reader must run.
func answerPings(c *websocket.Conn) <-chan struct{} {
	pings := make(chan struct{}, 100)
	c.SetPingHandler(func(data string) error {
		select {
		case pings <- struct{}{}:
		default:
		}
		return c.WriteControl(websocket.PongMessage, []byte(data), time.Now().Add(testTimeout))
	})
	return pings
}

// rawFrame is one frame as sent on the wire.
type rawFrame struct {
	fin, rsv1, masked bool
	op                byte
	payload           []byte // unmasked
}

// readRawFrame reads and unmasks one frame.
func readRawFrame(r io.Reader) (rawFrame, error) {
	var h [2]byte
	if _, err := io.ReadFull(r, h[:]); err != nil {
		return rawFrame{}, err
	}
	f := rawFrame{fin: h[0]&finBit != 0, rsv1: h[0]&rsv1Bit != 0, op: h[0] & 0x0f, masked: h[1]&0x80 != 0}
	n := uint64(h[1] & 0x7f)
	switch n {
	case 126:
		var ext [2]byte
		if _, err := io.ReadFull(r, ext[:]); err != nil {
			return f, err
		}
		n = uint64(binary.BigEndian.Uint16(ext[:]))
	case 127:
		var ext [8]byte
		if _, err := io.ReadFull(r, ext[:]); err != nil {
			return f, err
		}
		n = binary.BigEndian.Uint64(ext[:])
	}
	var key [4]byte
	if f.masked {
		if _, err := io.ReadFull(r, key[:]); err != nil {
			return f, err
		}
	}
	f.payload = make([]byte, n)
	if _, err := io.ReadFull(r, f.payload); err != nil {
		return f, err
	}
	for i := range f.payload {
		f.payload[i] ^= key[i%4]
	}
	return f, nil
}

// rawClient is a WebSocket client on a bare socket, for benchmarks.
type rawClient struct {
	conn net.Conn
	r    *bufio.Reader
}

// newRawClient does the opening handshake by hand.
func newRawClient(tb testing.TB, url string) *rawClient {
	tb.Helper()
	c, resp := rawHandshake(tb, url, "")
	if resp.StatusCode != http.StatusSwitchingProtocols {
		tb.Fatalf("handshake: %s", resp.Status)
	}
	return c
}

// testProxy forwards loopback TCP connections to target, each through two
// relays that the test's filters can watch and silence. cut breaks every
// connection so far; the test's end closes it all and waits for its
// goroutines.
type testProxy struct {
	ln     net.Listener
	target string
	// up and down, set before the first connection, see what a client
	// sends and what it is sent, per connection (conn counts from 0), and
	// say whether it passes; nil passes everything.
	up, down func(conn int, p []byte) bool

	wg    sync.WaitGroup
	mu    sync.Mutex
	conns []net.Conn
}

// newTestProxy listens on a free loopback port; start begins forwarding.
func newTestProxy(t testing.TB, target string) *testProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &testProxy{ln: ln, target: target}
	t.Cleanup(func() {
		ln.Close()
		p.cut()
		p.wg.Wait()
	})
	return p
}

// start accepts and forwards connections until the test ends.
func (p *testProxy) start() *testProxy {
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		for i := 0; ; i++ {
			c, err := p.ln.Accept()
			if err != nil {
				return
			}
			s, err := net.Dial("tcp", p.target)
			if err != nil {
				c.Close()
				continue
			}
			p.mu.Lock()
			p.conns = append(p.conns, c, s)
			p.mu.Unlock()
			p.wg.Add(2)
			go p.relay(s, c, i, p.up)
			go p.relay(c, s, i, p.down)
		}
	}()
	return p
}

// relay copies src to dst what pass lets through, and closes dst when src
// ends.
func (p *testProxy) relay(dst, src net.Conn, conn int, pass func(int, []byte) bool) {
	defer p.wg.Done()
	defer dst.Close()
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 && (pass == nil || pass(conn, buf[:n])) {
			if _, err := dst.Write(buf[:n]); err != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

func (p *testProxy) addr() string { return p.ln.Addr().String() }

// cut closes every connection so far, both sides.
func (p *testProxy) cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.conns {
		c.Close()
	}
	p.conns = nil
}

// tcpPair is the two ends of a loopback TCP connection, closed when the
// test ends.
func tcpPair(t *testing.T) (client, server net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	client, err = net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close() })
	server, err = ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { server.Close() })
	return client, server
}

// parkedClients connects n bare-socket clients to a server that parks its
// idle connections in a poller, and waits until the server's goroutines
// for them have ended, which fails the test if they do not.
func parkedClients(t *testing.T, url string, n int) []*rawClient {
	t.Helper()
	before := runtime.NumGoroutine()
	clients := make([]*rawClient, n)
	for i := range clients {
		clients[i] = newRawClient(t, url)
	}
	waitFor(t, func() bool { return runtime.NumGoroutine()-before <= n/10 })
	return clients
}

// rawHandshake sends an opening handshake with extra header lines
// ("Name: value\r\n" each) and returns the client and the response.
func rawHandshake(tb testing.TB, url, extra string) (*rawClient, *http.Response) {
	tb.Helper()
	host := strings.TrimSuffix(strings.TrimPrefix(url, "ws://"), "/")
	conn, err := net.Dial("tcp", host)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { conn.Close() })
	fmt.Fprintf(conn, "GET / HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n%s\r\n", host, extra)
	r := bufio.NewReader(conn)
	resp, err := http.ReadResponse(r, nil)
	if err != nil {
		tb.Fatalf("handshake: %v", err)
	}
	return &rawClient{conn: conn, r: r}, resp
}

// maskedFrame encodes a final client frame with a fixed mask.
func maskedFrame(op int, payload []byte) []byte {
	key := [4]byte{1, 2, 3, 4}
	f := appendHeader(nil, op, len(payload), false)
	f[1] |= 0x80
	f = append(f, key[:]...)
	for i, c := range payload {
		f = append(f, c^key[i%4])
	}
	return f
}

// acceptKey is the Sec-WebSocket-Accept answer to a Sec-WebSocket-Key.
func acceptKey(key string) string {
	sum := sha1.Sum([]byte(key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"))
	return base64.StdEncoding.EncodeToString(sum[:])
}

// readerOf is a server connection whose input is input, for tests of its
// frame reader: what it writes (pongs, closes) is discarded, and the test
// is its reader.
func readerOf(t testing.TB, input []byte, deflate bool, maxMessageSize int64) *wsConn {
	server, client := net.Pipe()
	go io.Copy(io.Discard, client)
	srv := &wsServer{cfg: wsServerConfig{maxMessageSize: maxMessageSize, sendQueue: 1 << 16}, log: slog.New(slog.DiscardHandler)}
	shim := newShimConn(server)
	shim.in = bufio.NewReader(bytes.NewReader(input))
	c := &wsConn{shim: shim, srv: srv, deflate: deflate}
	c.socketOpen.Add(1)
	c.reading.Store(true) // abort must not start a reader
	shim.c = c
	t.Cleanup(func() { c.abort(); client.Close() })
	return c
}
