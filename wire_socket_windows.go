//go:build windows

package main

import "syscall"

// nonBlockingIO: Windows sockets are used through overlapped I/O, not raw
// non-blocking calls, so rawSocket is nil and readNow and writeNow are
// never called.
const nonBlockingIO = false

func readNow(uintptr, []byte) (int, error) { return 0, syscall.EWINDOWS }
func writeNow(uintptr, []byte) int         { return -1 }
