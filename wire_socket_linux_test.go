package main

import (
	"errors"
	"testing"

	"golang.org/x/sys/unix"
)

// TestSockReaderReadBudget: after noWait, reads take what the socket holds
// without waiting, at most the number given, and none after a short read
// (the socket is empty); anyReads has no limit; wait makes reads wait
// again.
func TestSockReaderReadBudget(t *testing.T) {
	client, server := tcpPair(t)
	var r sockReader
	r.init(server)
	if r.fd == nil {
		t.Skip("no non-blocking reads on this platform")
	}
	// send writes n bytes and waits until the socket holds them all.
	send := func(n int) {
		t.Helper()
		client.Write(make([]byte, n))
		buf := make([]byte, 1<<10)
		waitFor(t, func() bool {
			held := 0
			r.fd.Control(func(fd uintptr) {
				held, _, _ = unix.Recvfrom(int(fd), buf, unix.MSG_PEEK|unix.MSG_DONTWAIT)
			})
			return held >= n
		})
	}
	read := func(size int) (int, error) { return r.Read(make([]byte, size)) }

	send(100)
	r.noWait(2)
	if n, err := read(10); n != 10 || err != nil {
		t.Fatalf("first read: %d, %v; want 10 bytes", n, err)
	}
	if n, err := read(10); n != 10 || err != nil {
		t.Fatalf("second read: %d, %v; want 10 bytes", n, err)
	}
	if n, err := read(10); !errors.Is(err, errWouldBlock) {
		t.Fatalf("third read, past the budget: %d, %v; want errWouldBlock", n, err)
	}
	r.noWait(2)
	if n, err := read(1000); n != 80 || err != nil {
		t.Fatalf("short read: %d, %v; want the 80 bytes left", n, err)
	}
	send(5) // the socket has input again, but a short read ended the round
	if n, err := read(1000); !errors.Is(err, errWouldBlock) {
		t.Fatalf("read after a short one: %d, %v; want errWouldBlock", n, err)
	}
	r.noWait(anyReads)
	for range 3 {
		if n, err := read(1000); n != 5 || err != nil {
			t.Fatalf("unlimited read: %d, %v; want 5 bytes", n, err)
		}
		if n, err := read(1000); !errors.Is(err, errWouldBlock) {
			t.Fatalf("unlimited read of an empty socket: %d, %v; want errWouldBlock", n, err)
		}
		send(5)
	}
	r.wait()
	if n, err := read(1000); n != 5 || err != nil {
		t.Fatalf("waiting read: %d, %v; want 5 bytes", n, err)
	}
}
