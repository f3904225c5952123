package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"unicode/utf8"

	"github.com/gorilla/websocket"
)

// Input sources of piped mode. Each runs in its own goroutine, sends what is
// to be sent on a queue in input order and closes the queue at the end.

const (
	// queueLen bounds the messages waiting for the connection: lines piped
	// or typed while it opens or reconnects. When the queue is full wsx
	// stops reading its input until there is room, so nothing is dropped.
	queueLen = 256

	// inputBufferSize is the stdin read buffer. Lines of any length are read
	// whole: it only sets how much is read per system call.
	inputBufferSize = 64 << 10
)

// outgoing is one thing to send: a data message, a ping or pong, or a close
// that ends the connection. An outgoing with err set is an input error;
// nothing follows it.
type outgoing struct {
	op   int    // websocket.TextMessage, BinaryMessage, PingMessage, PongMessage or CloseMessage
	data []byte // the payload; for a close, the reason
	code int    // the close code, for CloseMessage
	err  error
}

// errStopped is returned by an input source whose reader went away.
var errStopped = errors.New("stopped")

// send puts m on queue unless stop is closed first.
func send(queue chan<- outgoing, stop <-chan struct{}, m outgoing) error {
	select {
	case queue <- m:
		return nil
	case <-stop:
		return errStopped
	}
}

// readLines sends each line of in, without its newline, as one message of
// type op, whatever its length, and the final line even without a newline.
// Nothing else is altered: a "\r" before the newline stays. A text line that
// is not valid UTF-8 ends the input with an error naming it. queue is closed
// at the end; stop makes readLines return early.
func readLines(in io.Reader, op int, queue chan<- outgoing, stop <-chan struct{}) {
	defer close(queue)
	r := bufio.NewReaderSize(in, inputBufferSize)
	for n := 1; ; n++ {
		line, err := r.ReadBytes('\n')
		if len(line) > 0 {
			if line[len(line)-1] == '\n' {
				line = line[:len(line)-1]
			}
			m := outgoing{op: op, data: line}
			if op == websocket.TextMessage && !utf8.Valid(line) {
				m = outgoing{err: fmt.Errorf("stdin line %d is not valid UTF-8, so it and what follows were not sent\nhint: --binary sends each line as a binary message", n)}
				err = io.EOF
			}
			if send(queue, stop, m) != nil {
				return
			}
		}
		if err == io.EOF {
			return
		}
		if err != nil {
			send(queue, stop, outgoing{err: fmt.Errorf("read stdin: %w", err)})
			return
		}
	}
}

// readWhole sends all of in as one message of type op.
func readWhole(in io.Reader, op int, queue chan<- outgoing, stop <-chan struct{}) {
	defer close(queue)
	data, err := io.ReadAll(in)
	m := outgoing{op: op, data: data}
	switch {
	case err != nil:
		m = outgoing{err: fmt.Errorf("read stdin: %w", err)}
	case op == websocket.TextMessage && !utf8.Valid(data):
		m = outgoing{err: errors.New("stdin is not valid UTF-8, so it was not sent\nhint: --binary sends it as a binary message")}
	}
	send(queue, stop, m)
}

// sendMessages sends each of msgs (from -x) as one message of type op.
func sendMessages(msgs []string, op int, queue chan<- outgoing, stop <-chan struct{}) {
	defer close(queue)
	for _, s := range msgs {
		if send(queue, stop, outgoing{op: op, data: []byte(s)}) != nil {
			return
		}
	}
}
