package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
	xproxy "golang.org/x/net/proxy"
)

// The connection a client reads through. wsx makes the TCP connection, the
// proxy tunnel and the TLS session itself, so that it can read the server's
// frames before gorilla does: gorilla has no hook between TLS and its own
// frame parser, and it is wrong in two places (below).

const (
	// tapInputBuffer is the client's input buffer in front of gorilla's.
	tapInputBuffer = 4096

	// closeBadGateway is RFC 6455's registered close code 1014, which
	// gorilla's table of valid codes lacks.
	closeBadGateway = 1014

	// closeStandIn is what gorilla is shown instead of 1014: a code it
	// accepts, mapped back by closeCode.
	closeStandIn = websocket.CloseInternalServerErr
)

// netDialers sets d's dial functions to ones that tunnel through the
// environment's proxy themselves and wrap every connection in a tapConn;
// d's Proxy must then answer nil, which dialer makes it do.
func (o handshakeOptions) netDialers(d *websocket.Dialer) {
	d.NetDialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
		conn, err := dialThroughProxy(ctx, "http", network, addr)
		if err != nil {
			return nil, err
		}
		return newTapConn(conn), nil
	}
	d.NetDialTLSContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
		conn, err := dialThroughProxy(ctx, "https", network, addr)
		if err != nil {
			return nil, err
		}
		cfg := o.tls.Clone()
		if cfg == nil {
			cfg = &tls.Config{}
		}
		if cfg.ServerName == "" {
			cfg.ServerName, _, _ = net.SplitHostPort(addr)
		}
		tc := tls.Client(conn, cfg)
		if err := tc.HandshakeContext(ctx); err != nil {
			conn.Close()
			return nil, err
		}
		return newTapConn(tc), nil
	}
}

// dialThroughProxy connects to addr, through the proxy that HTTP_PROXY,
// HTTPS_PROXY and NO_PROXY choose for scheme (http or https) with CONNECT.
func dialThroughProxy(ctx context.Context, scheme, network, addr string) (net.Conn, error) {
	proxy, err := http.ProxyFromEnvironment(&http.Request{URL: &url.URL{Scheme: scheme, Host: addr}})
	if err != nil {
		return nil, err
	}
	var d net.Dialer
	switch {
	case proxy == nil:
		return d.DialContext(ctx, network, addr)
	case proxy.Scheme == "socks5" || proxy.Scheme == "socks5h":
		pd, err := xproxy.FromURL(proxy, &d)
		if err != nil {
			return nil, fmt.Errorf("proxy %s: %w", proxy.Redacted(), err)
		}
		return pd.(xproxy.ContextDialer).DialContext(ctx, network, addr)
	case proxy.Scheme != "http":
		return nil, fmt.Errorf("proxy %s: only http:// and socks5:// proxies are supported", proxy.Redacted())
	}
	proxyAddr := proxy.Host
	if proxy.Port() == "" {
		proxyAddr = net.JoinHostPort(proxy.Hostname(), "80")
	}
	conn, err := d.DialContext(ctx, network, proxyAddr)
	if err != nil {
		return nil, err
	}
	// The proxy's answer is bounded like the rest of the handshake
	// (--connect-timeout) and cut by Ctrl-C.
	if deadline, ok := ctx.Deadline(); ok {
		conn.SetDeadline(deadline)
	}
	stop := context.AfterFunc(ctx, func() { conn.SetDeadline(time.Now()) })
	err = connectTunnel(conn, proxy, addr)
	if !stop() && err == nil {
		err = ctx.Err()
	}
	if err != nil {
		conn.Close()
		return nil, err
	}
	conn.SetDeadline(time.Time{})
	return conn, nil
}

// connectTunnel asks the proxy on conn to CONNECT to addr.
func connectTunnel(conn net.Conn, proxy *url.URL, addr string) error {
	req := "CONNECT " + addr + " HTTP/1.1\r\nHost: " + addr + "\r\n"
	if u := proxy.User; u != nil {
		pw, _ := u.Password()
		req += "Proxy-Authorization: Basic " + base64.StdEncoding.EncodeToString([]byte(u.Username()+":"+pw)) + "\r\n"
	}
	if _, err := conn.Write([]byte(req + "\r\n")); err != nil {
		return fmt.Errorf("proxy %s: %w", proxy.Redacted(), err)
	}
	// One byte at a time up to the end of the answer: what follows it is
	// the server's, and must not be left in a buffer here.
	resp, err := http.ReadResponse(bufio.NewReaderSize(oneByteReader{conn}, 16), &http.Request{Method: http.MethodConnect})
	if err != nil {
		return fmt.Errorf("proxy %s: %w", proxy.Redacted(), err)
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("proxy %s answered CONNECT %s with %s", proxy.Redacted(), addr, resp.Status)
	}
	return nil
}

// oneByteReader reads at most one byte at a time.
type oneByteReader struct{ c net.Conn }

func (r oneByteReader) Read(p []byte) (int, error) { return r.c.Read(p[:min(len(p), 1)]) }

// tapConn is the net.Conn gorilla reads a client connection through. It
// passes the HTTP answer through up to the end of the 101 response, then
// hands gorilla one frame at a time, checking each frame's header first:
//
//   - RSV1 on a continuation or control frame fails the connection with
//     1002 (RFC 7692 §6.1); gorilla accepts it once compression is on.
//   - A close with 1014 (bad gateway) is valid (RFC 6455 §7.4.2's registry),
//     but gorilla fails the connection with 1002 "bad close code". The tap
//     shows gorilla closeStandIn instead and remembers it; closeCode gives
//     the real code back.
//
// Writes go straight to the connection.
type tapConn struct {
	net.Conn
	frames  frameReader
	framing bool // past the 101 response

	// The HTTP answer, read a line at a time.
	line       []byte // the current line's first bytes
	firstLine  bool   // the next line starts a response
	switching  bool   // the current response is 101
	badGateway atomic.Bool
}

// newTapConn wraps conn.
func newTapConn(conn net.Conn) *tapConn {
	t := &tapConn{Conn: conn, firstLine: true}
	t.frames.in = bufio.NewReaderSize(conn, tapInputBuffer)
	t.frames.check = t.checkFrame
	return t
}

// Read hands out the HTTP answer line by line, then one frame at a time.
func (t *tapConn) Read(p []byte) (int, error) {
	if t.framing {
		return t.frames.Read(p)
	}
	return t.readHeader(p)
}

// readHeader hands out at most one line of the HTTP answer, and switches
// to frames after the blank line that ends a 101 response.
func (t *tapConn) readHeader(p []byte) (int, error) {
	in := t.frames.in
	if _, err := in.Peek(1); err != nil {
		return 0, err
	}
	buf, _ := in.Peek(in.Buffered())
	n := len(buf)
	if i := bytes.IndexByte(buf, '\n'); i >= 0 {
		n = i + 1
	}
	n = copy(p, buf[:n])
	in.Discard(n)
	if len(t.line) < len("HTTP/1.1 101") {
		t.line = append(t.line, p[:min(n, len("HTTP/1.1 101")-len(t.line))]...)
	}
	if p[n-1] != '\n' {
		return n, nil // the line goes on
	}
	switch line := string(t.line); {
	case t.firstLine:
		t.switching = line == "HTTP/1.1 101" || line == "HTTP/1.0 101"
		t.firstLine = false
	case line == "\r\n" || line == "\n":
		t.framing = t.switching
		t.firstLine = true
	}
	t.line = t.line[:0]
	return n, nil
}

// checkFrame is the frame reader's check: see tapConn.
func (t *tapConn) checkFrame(h frameHeader) error {
	if err := checkRSV1(h); err != nil {
		return err
	}
	if h.op() != websocket.CloseMessage || h.length < 2 || h.size != 2 {
		return nil // not a close with a code, or masked: gorilla refuses that
	}
	b, err := t.frames.in.Peek(h.size + 2)
	if err != nil {
		return err
	}
	if binary.BigEndian.Uint16(b[h.size:]) == closeBadGateway {
		binary.BigEndian.PutUint16(b[h.size:], closeStandIn)
		t.badGateway.Store(true)
	}
	return nil
}

// closeCode is the close code the server really sent, given the one
// gorilla reports.
func (t *tapConn) closeCode(code int) int {
	if code == closeStandIn && t.badGateway.Load() {
		return closeBadGateway
	}
	return code
}

// detach hands over the connection below the tap and the bytes the tap
// has read but not handed out, for a client that reads its frames itself
// once the handshake is done (wsx bench). The tap must not be read again.
func (t *tapConn) detach() (conn net.Conn, buffered []byte) {
	b, _ := t.frames.in.Peek(t.frames.in.Buffered())
	return t.Conn, bytes.Clone(b)
}
