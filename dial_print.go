package main

import (
	"bufio"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"time"
	"unicode/utf8"

	"github.com/gorilla/websocket"
)

// Output of wsx dial: received messages and, with --jsonl, every event.

const (
	// eventQueueLen is how many events may wait for the printer.
	eventQueueLen = 256

	// outputBufferSize is the stdout buffer, flushed whenever the printer
	// has nothing more to print.
	outputBufferSize = 64 << 10

	// timestampLayout is the time put before printed lines by --timestamps.
	timestampLayout = "2006-01-02T15:04:05.000Z07:00"
)

// Events of --jsonl beyond those named in log.go.
const (
	evPing = "ping"
	evPong = "pong"
)

// Who closed a connection, in close events.
const (
	byClient = "client" // wsx sent the close first
	byServer = "server" // the server sent the close first
	byNone   = "none"   // nobody: the connection was lost
)

// event is something that happened on a connection.
type event struct {
	kind string // evOpen, evMessage, evPing, evPong, evClose or evError
	time time.Time

	op   int    // evMessage: websocket.TextMessage or BinaryMessage
	data []byte // evMessage, evPing, evPong: the payload

	url         string      // evOpen
	subprotocol string      // evOpen: the one the server chose, or ""
	header      http.Header // evOpen: the response headers

	code   int    // evClose
	reason string // evClose
	by     string // evClose: byClient, byServer or byNone

	err string // evError
}

// format appends the printed form of e to b; events it does not show add
// nothing.
type format func(b []byte, e event) []byte

// printer owns the output: it is the only goroutine that writes to it, and
// others hand it events. Output is buffered and flushed whenever no event is
// waiting, so a reader of a pipe sees each message at once yet bulk output
// costs few system calls.
type printer struct {
	events chan event
	done   chan struct{}
	w      *bufio.Writer
	format format
	err    error // the first write error, read after done
}

// newPrinter starts a printer writing events to w in the given format.
func newPrinter(w io.Writer, f format) *printer {
	p := &printer{events: make(chan event, eventQueueLen), done: make(chan struct{}), w: bufio.NewWriterSize(w, outputBufferSize), format: f}
	go p.run()
	return p
}

func (p *printer) run() {
	defer close(p.done)
	var b []byte
	for e := range p.events {
		b = p.format(b[:0], e)
		if _, err := p.w.Write(b); err != nil && p.err == nil {
			p.err = err
		}
		if cap(b) > outputBufferSize {
			b = nil
		}
		if len(p.events) == 0 {
			if err := p.w.Flush(); err != nil && p.err == nil {
				p.err = err
			}
		}
	}
}

// print hands e to the printer.
func (p *printer) print(e event) { p.events <- e }

// close prints what is waiting and stops the printer. It returns the first
// write error.
func (p *printer) close() error {
	close(p.events)
	<-p.done
	if p.err != nil {
		return fmt.Errorf("write output: %w", p.err)
	}
	return nil
}

// plainFormat prints received messages for scripts: a text message as it
// is followed by a newline, a binary message as a base64 line, or as its
// raw bytes with rawBinary. Other events go to stderr, not here.
func plainFormat(rawBinary, timestamps bool) format {
	return func(b []byte, e event) []byte {
		if e.kind != evMessage {
			return b
		}
		if e.op == websocket.BinaryMessage && rawBinary {
			return append(b, e.data...)
		}
		if timestamps {
			b = append(e.time.AppendFormat(b, timestampLayout), ' ')
		}
		if e.op == websocket.BinaryMessage {
			b = base64.StdEncoding.AppendEncode(b, e.data)
		} else {
			b = append(b, e.data...)
		}
		return append(b, '\n')
	}
}

// jsonEvent is one line of --jsonl. README.md documents the schema.
type jsonEvent struct {
	Event       string      `json:"event"`
	Time        string      `json:"time"`
	URL         string      `json:"url,omitempty"`
	Subprotocol *string     `json:"subprotocol,omitempty"`
	Headers     http.Header `json:"headers,omitempty"`
	Type        string      `json:"type,omitempty"`
	Data        *string     `json:"data,omitempty"`
	Code        int         `json:"code,omitempty"`
	Reason      *string     `json:"reason,omitempty"`
	By          string      `json:"by,omitempty"`
	Error       string      `json:"error,omitempty"`
}

// jsonFormat prints every event as one JSON object per line.
func jsonFormat(b []byte, e event) []byte {
	j := jsonEvent{Event: e.kind, Time: e.time.Format(time.RFC3339Nano)}
	switch e.kind {
	case evOpen:
		j.URL, j.Subprotocol, j.Headers = e.url, &e.subprotocol, e.header
	case evMessage, evPing, evPong:
		j.Type, j.Data = encodePayload(e.op, e.data)
	case evClose:
		j.Code, j.Reason, j.By = e.code, &e.reason, e.by
	case evError:
		j.Error = e.err
	}
	line, err := json.Marshal(j)
	if err != nil { // cannot happen: every field marshals
		line = fmt.Appendf(nil, `{"event":"error","error":%q}`, err.Error())
	}
	return append(append(b, line...), '\n')
}

// encodePayload returns a payload for JSON: text as it is, binary (and a
// control payload that is not valid UTF-8) as base64.
func encodePayload(op int, data []byte) (typ string, s *string) {
	text := string(data)
	if op == websocket.BinaryMessage || (op != websocket.TextMessage && !utf8.ValidString(text)) {
		text = base64.StdEncoding.EncodeToString(data)
		return "binary", &text
	}
	return "text", &text
}

// ttyColors are the escape sequences of the terminal format; empty for none.
type ttyColors struct{ message, control, reset string }

// ttyFormat prints messages, pings and pongs for a person: "< text",
// "< [binary N bytes] hex...", "< [ping] data". Control characters are
// shown escaped, so a message cannot drive the terminal. Other events are
// logged, not printed here.
func ttyFormat(c ttyColors, timestamps bool) format {
	return func(b []byte, e event) []byte {
		color := c.message
		switch e.kind {
		case evMessage:
		case evPing, evPong:
			color = c.control
		default:
			return b
		}
		if timestamps {
			b = append(e.time.AppendFormat(b, timestampLayout), ' ')
		}
		b = append(append(b, color...), "< "...)
		switch {
		case e.kind != evMessage:
			b = appendEscaped(append(b, "["+e.kind+"] "...), e.data)
		case e.op == websocket.BinaryMessage:
			b = fmt.Appendf(b, "[binary %d bytes] %s", len(e.data), preview(websocket.BinaryMessage, e.data))
		default:
			b = appendEscaped(b, e.data)
		}
		return append(append(b, c.reset...), '\n')
	}
}

// appendEscaped appends s with control characters other than newline and
// tab, and invalid bytes, written as Go escapes.
func appendEscaped(b, s []byte) []byte {
	for len(s) > 0 {
		r, size := utf8.DecodeRune(s)
		switch {
		case r == utf8.RuneError && size == 1:
			b = fmt.Appendf(b, `\x%02x`, s[0])
		case r == '\n' || r == '\t':
			b = append(b, byte(r))
		case r < 0x20 || r == 0x7f:
			b = fmt.Appendf(b, `\x%02x`, r)
		case r >= 0x80 && r < 0xa0:
			b = fmt.Appendf(b, `\u%04x`, r)
		default:
			b = append(b, s[:size]...)
		}
		s = s[size:]
	}
	return b
}
