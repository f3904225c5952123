package main

import (
	"bufio"
	"context"
	"crypto/rand"
	"crypto/sha1"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"time"

	"golang.org/x/sys/unix"
)

// A subscriber reads with this small client instead of gorilla's Conn. Its
// socket is not read by a goroutine of its own: a poller (poller.go) reads the
// ready sockets of many subscribers with epoll, each into one large buffer,
// and every complete frame in what arrived is parsed in place. A delivery so
// costs no call into gorilla's frame reader, no allocation, no goroutine
// wake-up and no clock reading of its own. With 1,000 subscribers on 2 cores
// the generator's CPU is taken from the server under test, so this is what
// keeps the generator from being the bottleneck.

// websocketGUID is the RFC 6455 constant hashed into Sec-WebSocket-Accept.
const websocketGUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

// Opcodes of RFC 6455 section 5.2.
const (
	opContinuation = 0x0
	opText         = 0x1
	opBinary       = 0x2
	opClose        = 0x8
	opPing         = 0x9
	opPong         = 0xA
)

var (
	errClosed     = errors.New("server sent a close frame")
	errWouldBlock = errors.New("no data waiting")
)

// rawConn is a client WebSocket connection after its handshake, held as a
// bare non-blocking socket. Only the poller that owns it reads it, and pongs
// are written from that poller, so it has one reader and one writer.
type rawConn struct {
	fd     int
	buf    []byte // socket bytes; buf[:n] holds at most one partial frame between reads
	n      int
	frag   []byte // payload of a fragmented message so far
	fragOp byte   // opcode of the fragmented message, 0 if none
}

// dialRaw opens a WebSocket connection to a ws:// URL and completes the
// opening handshake. readBuffer is the size of each socket read.
func dialRaw(ctx context.Context, rawURL string, readBuffer int) (*rawConn, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, err
	}
	if u.Scheme != "ws" {
		return nil, fmt.Errorf("subscribers support ws:// only, got %q", u.Scheme)
	}
	host := u.Host
	if u.Port() == "" {
		host = net.JoinHostPort(u.Hostname(), "80")
	}
	ctx, cancel := context.WithTimeout(ctx, handshakeTimeout)
	defer cancel()
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", host)
	if err != nil {
		return nil, err
	}
	// net.Conn.Close deregisters the socket from Go's netpoller; the
	// duplicate taken below keeps it open for the poller.
	defer c.Close()
	if dl, ok := ctx.Deadline(); ok {
		c.SetDeadline(dl)
	}
	br, err := handshake(c, u)
	if err != nil {
		return nil, err
	}
	rc := &rawConn{buf: make([]byte, max(readBuffer, br.Buffered()))}
	// Frames that arrived with the handshake response are parsed first.
	rc.n, _ = br.Read(rc.buf[:br.Buffered()])
	if rc.fd, err = dupSocket(c); err != nil {
		return nil, err
	}
	return rc, nil
}

// dupSocket returns a duplicate of c's socket; it shares c's non-blocking mode.
func dupSocket(c net.Conn) (int, error) {
	sc, err := c.(*net.TCPConn).SyscallConn()
	if err != nil {
		return -1, err
	}
	fd := -1
	ctlErr := sc.Control(func(s uintptr) { fd, err = unix.Dup(int(s)) })
	if ctlErr != nil {
		return -1, ctlErr
	}
	return fd, err
}

// close closes the socket, which also removes it from its poller's epoll set.
func (rc *rawConn) close() { unix.Close(rc.fd) }

// handshake sends the upgrade request and checks the 101 response.
func handshake(c net.Conn, u *url.URL) (*bufio.Reader, error) {
	var nonce [16]byte
	rand.Read(nonce[:])
	key := base64.StdEncoding.EncodeToString(nonce[:])
	req := "GET " + u.RequestURI() + " HTTP/1.1\r\nHost: " + u.Host +
		"\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: " + key +
		"\r\nSec-WebSocket-Version: 13\r\n\r\n"
	if _, err := io.WriteString(c, req); err != nil {
		return nil, err
	}
	br := bufio.NewReaderSize(c, 4096)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		return nil, err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusSwitchingProtocols {
		return nil, fmt.Errorf("handshake: HTTP %s", resp.Status)
	}
	sum := sha1.Sum([]byte(key + websocketGUID))
	if resp.Header.Get("Sec-WebSocket-Accept") != base64.StdEncoding.EncodeToString(sum[:]) {
		return nil, errors.New("handshake: bad Sec-WebSocket-Accept")
	}
	return br, nil
}

// fill reads the socket once, appending to what is left of the last read,
// and returns the time of the read since base. It returns errWouldBlock if
// nothing was waiting and io.EOF when the peer closed the socket.
func (rc *rawConn) fill(base time.Time) (time.Duration, error) {
	if rc.n == len(rc.buf) { // one frame larger than the buffer
		rc.buf = append(rc.buf, make([]byte, len(rc.buf))...)
	}
	m, err := unix.Read(rc.fd, rc.buf[rc.n:])
	switch {
	case err == unix.EAGAIN || err == unix.EINTR:
		return 0, errWouldBlock
	case err != nil:
		return 0, err
	case m == 0:
		return 0, io.EOF
	}
	rc.n += m
	return time.Since(base), nil
}

// parse calls onMessage for every complete data message read so far, keeps
// a trailing partial frame for the next fill, answers pings and returns
// errClosed on a close frame. The payload passed to onMessage is valid only
// during the call.
func (rc *rawConn) parse(onMessage func(op byte, payload []byte)) error {
	data := rc.buf[:rc.n]
	for {
		frame, rest, ok, err := nextFrame(data)
		if err != nil {
			return err
		}
		if !ok {
			break
		}
		data = rest
		if err := rc.handle(frame, onMessage); err != nil {
			return err
		}
	}
	rc.n = copy(rc.buf, data)
	return nil
}

// nextFrame splits the first complete frame off data. ok is false when data
// holds only part of a frame.
func nextFrame(data []byte) (frame, rest []byte, ok bool, err error) {
	if len(data) < 2 {
		return nil, data, false, nil
	}
	if data[1]&0x80 != 0 {
		return nil, nil, false, errors.New("server sent a masked frame")
	}
	hdr, size := 2, uint64(data[1]&0x7f)
	switch size {
	case 126:
		if len(data) < 4 {
			return nil, data, false, nil
		}
		hdr, size = 4, uint64(binary.BigEndian.Uint16(data[2:4]))
	case 127:
		if len(data) < 10 {
			return nil, data, false, nil
		}
		hdr, size = 10, binary.BigEndian.Uint64(data[2:10])
	}
	if size > 1<<30 {
		return nil, nil, false, fmt.Errorf("frame of %d bytes", size)
	}
	end := hdr + int(size)
	if len(data) < end {
		return nil, data, false, nil
	}
	return data[:end], data[end:], true, nil
}

// handle acts on one frame: data messages go to onMessage (fragments are
// joined first), pings are answered, a close ends the connection.
func (rc *rawConn) handle(frame []byte, onMessage func(byte, []byte)) error {
	fin, op := frame[0]&0x80 != 0, frame[0]&0x0f
	payload := frame[len(frame)-frameLen(frame):]
	switch op {
	case opText, opBinary:
		if fin {
			onMessage(op, payload)
			return nil
		}
		rc.fragOp, rc.frag = op, append(rc.frag[:0], payload...)
	case opContinuation:
		if rc.fragOp == 0 {
			return errors.New("continuation frame without a message")
		}
		rc.frag = append(rc.frag, payload...)
		if fin {
			onMessage(rc.fragOp, rc.frag)
			rc.fragOp = 0
		}
	case opPing:
		return rc.writeControl(opPong, payload)
	case opClose:
		return errClosed
	}
	return nil
}

// frameLen is the payload length of a complete frame.
func frameLen(frame []byte) int {
	switch frame[1] & 0x7f {
	case 126:
		return len(frame) - 4
	case 127:
		return len(frame) - 10
	}
	return len(frame) - 2
}

// writeControl writes a masked control frame (payload at most 125 bytes).
// The socket is non-blocking; a full send buffer is retried for up to
// handshakeTimeout, which a server that is reading never causes.
func (rc *rawConn) writeControl(op byte, payload []byte) error {
	f := make([]byte, 0, 6+len(payload))
	f = append(f, 0x80|op, 0x80|byte(len(payload)))
	var mask [4]byte
	rand.Read(mask[:])
	f = append(f, mask[:]...)
	for i, b := range payload {
		f = append(f, b^mask[i%4])
	}
	deadline := time.Now().Add(handshakeTimeout)
	for len(f) > 0 {
		n, err := unix.Write(rc.fd, f)
		if err == unix.EAGAIN || err == unix.EINTR {
			if time.Now().After(deadline) {
				return fmt.Errorf("write control frame: %w", err)
			}
			time.Sleep(time.Millisecond)
			continue
		}
		if err != nil {
			return err
		}
		f = f[n:]
	}
	return nil
}
