package main

import (
	"errors"
	"io"
	"net"
	"syscall"
)

// Non-blocking socket I/O beside Go's blocking net.Conn: a reader that can
// take just what a socket holds now, and a writer that writes what the
// socket takes now. Both bind their callback once, so they allocate
// nothing per call. Where the platform has none (Windows), rawSocket is
// nil and callers fall back to blocking I/O.

// errWouldBlock is what a non-blocking read returns when nothing waits.
var errWouldBlock = errors.New("no input waiting")

// rawSocket is conn's socket for non-blocking reads and writes, or nil: on
// TLS connections, and where the platform offers none.
func rawSocket(conn net.Conn) syscall.RawConn {
	tcp, ok := conn.(*net.TCPConn)
	if !ok || !nonBlockingIO {
		return nil
	}
	sock, _ := tcp.SyscallConn() // cannot fail on an open TCP connection
	return sock
}

// sockReader reads the socket for a buffered reader, blocking or, between
// noWait and wait, not.
type sockReader struct {
	conn        net.Conn
	fd          syscall.RawConn // nil on TLS
	nonBlocking bool
	reads       int // with nonBlocking: how many more reads may try the socket; anyReads: no limit

	// The state of read, bound once so a read allocates nothing.
	buf  []byte
	n    int
	err  error
	read func(fd uintptr) bool
}

// anyReads is noWait's argument for no limit on the number of reads.
const anyReads = -1

// noWait makes the next reads take what the socket holds now, at most
// reads of them, and none after one that emptied it; then Read reports
// errWouldBlock without trying, as it does when nothing is there. Plain
// TCP only.
func (r *sockReader) noWait(reads int) { r.nonBlocking, r.reads = true, reads }

// wait makes reads wait for input again.
func (r *sockReader) wait() { r.nonBlocking = false }

// Read reads from the socket: blocking, or after noWait, what is there now.
func (r *sockReader) Read(p []byte) (int, error) {
	if !r.nonBlocking || r.fd == nil {
		return r.conn.Read(p)
	}
	switch {
	case r.reads == 0:
		return 0, errWouldBlock
	case r.reads > 0:
		r.reads--
	}
	r.buf, r.n, r.err = p, 0, nil
	if err := r.fd.Read(r.read); err != nil {
		return 0, err
	}
	r.buf = nil
	if r.n < len(p) && r.reads > 0 {
		// A short read emptied the socket: another would find nothing.
		r.reads = 0
	}
	switch {
	case r.err != nil:
		return 0, r.err
	case r.n == 0:
		return 0, io.EOF
	}
	return r.n, nil
}

// readOnce is the callback of RawConn.Read: one read(2), never waiting.
func (r *sockReader) readOnce(fd uintptr) bool {
	r.n, r.err = readNow(fd, r.buf)
	return true // never wait: the caller parks the connection instead
}

// init makes r read conn.
func (r *sockReader) init(conn net.Conn) {
	r.conn = conn
	if r.fd = rawSocket(conn); r.fd != nil {
		r.read = r.readOnce
	}
}

// nonBlockingWrite is the state of writeNonBlocking's callback, kept in
// the connection with the callback bound once, so a write allocates
// nothing.
type nonBlockingWrite struct {
	buf   []byte
	n     int
	write func(fd uintptr) bool // bound to do once per connection
}

// do is the callback of RawConn.Write: one write(2), never waiting.
func (w *nonBlockingWrite) do(fd uintptr) bool {
	w.n = writeNow(fd, w.buf)
	return true // never wait for the socket: the caller falls back instead
}
