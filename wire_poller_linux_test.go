package main

import (
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// TestPollerWatchIsLevelTriggered: a socket registered with watch stays
// armed: ready is called again in each round while input remains, here
// one byte read per call, and afterRound after every round.
func TestPollerWatchIsLevelTriggered(t *testing.T) {
	client, server := tcpPair(t)
	sock := rawSocket(server)

	const input = "abcde"
	got := make(chan byte, len(input))
	var rounds atomic.Int64
	p, err := newPoller(func(sock syscall.RawConn) {
		var b [1]byte
		sock.Read(func(fd uintptr) bool {
			if n, _ := readNow(fd, b[:]); n == 1 {
				got <- b[0]
			}
			return true
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	p.afterRound = func() { rounds.Add(1) }
	done := make(chan struct{})
	go func() { p.run(); close(done) }()
	defer func() { p.stop(); <-done }()
	if _, err := p.watch(sock, sock); err != nil {
		t.Fatal(err)
	}
	if _, err := client.Write([]byte(input)); err != nil {
		t.Fatal(err)
	}
	var read []byte
	for range len(input) {
		select {
		case b := <-got:
			read = append(read, b)
		case <-time.After(testTimeout):
			t.Fatalf("read %q, then ready was not called again", read)
		}
	}
	if string(read) != input {
		t.Errorf("read %q, want %q", read, input)
	}
	// Each byte came in a round of its own; the last round ends just
	// after its ready call.
	waitFor(t, func() bool { return rounds.Load() >= int64(len(input)) })
}
