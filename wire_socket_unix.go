//go:build !windows && !linux

package main

import "golang.org/x/sys/unix"

// nonBlockingIO: Go's sockets are non-blocking on Unix, so a raw read(2) or
// write(2) on them returns at once.
const nonBlockingIO = true

// readNow is one read(2): errWouldBlock if nothing is there, and n is
// never negative.
func readNow(fd uintptr, p []byte) (int, error) {
	n, err := unix.Read(int(fd), p)
	if err == unix.EAGAIN {
		return 0, errWouldBlock
	}
	return max(n, 0), err
}

// writeNow is one write(2): how much the socket took, or -1 on an error.
func writeNow(fd uintptr, p []byte) int {
	n, err := unix.Write(int(fd), p)
	if err != nil && n <= 0 {
		return -1
	}
	return n
}
