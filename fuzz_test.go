package main

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/gorilla/websocket"
)

// Fuzz targets for every parser of untrusted input. Their seeds (f.Add and
// testdata/fuzz/FuzzX) run in every go test; fuzz one with
//
//	go test -run '^$' -fuzz '^FuzzFrameReader$' -fuzztime 5m
//
// and commit what it finds under testdata/fuzz.

// FuzzFrameReader: the server reads whatever a client sends through a
// frameReader. It must hand out exactly the input, never a byte of the next
// frame in the same Read, and never panic, whatever the headers say.
func FuzzFrameReader(f *testing.F) {
	f.Add(maskedFrame(websocket.TextMessage, []byte("hello")), 7)
	f.Add(append(maskedFrame(websocket.PingMessage, nil), maskedFrame(websocket.BinaryMessage, make([]byte, 300))...), 64)
	f.Add([]byte{0x81, 0xff, 0x80, 0, 0, 0, 0, 0, 0, 1}, 3)          // 64-bit length, top bit set
	f.Add([]byte{0x81, 0xfe, 0, 200, 1, 2, 3, 4, 'a'}, 1)            // truncated
	f.Add([]byte{0xc0 | websocket.PingMessage, 0x80, 1, 2, 3, 4}, 2) // RSV1 on a ping
	f.Fuzz(func(t *testing.T, input []byte, chunk int) {
		chunk = 1 + abs(chunk)%512
		fr := frameReader{in: bufio.NewReaderSize(bytes.NewReader(input), 16), check: checkRSV1}
		var out []byte
		buf := make([]byte, chunk)
		for {
			h, _ := fr.peekHeader()
			startLeft := fr.left
			n, err := fr.Read(buf)
			if startLeft == 0 && err == nil && int64(n) > int64(h.size)+h.length {
				t.Fatalf("read %d bytes of a %d-byte frame", n, int64(h.size)+h.length)
			}
			out = append(out, buf[:n]...)
			if err != nil {
				break
			}
		}
		if !bytes.HasPrefix(input, out) {
			t.Fatalf("handed out bytes that are not the input's")
		}
	})
}

// FuzzFrameHeader: parseFrameHeader agrees with a straightforward reading
// of RFC 6455 §5.2.
func FuzzFrameHeader(f *testing.F) {
	f.Add([]byte{0x81, 0x05})
	f.Add([]byte{0x82, 0xfe, 0x01, 0x00, 1, 2, 3, 4})
	f.Add([]byte{0x82, 0x7f, 0, 0, 0, 0, 0, 1, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		h, need, ok := parseFrameHeader(b)
		if !ok {
			if need <= len(b) {
				t.Fatalf("incomplete with %d bytes, but needs only %d", len(b), need)
			}
			return
		}
		want := 2
		switch b[1] & 0x7f {
		case 126:
			want += 2
		case 127:
			want += 8
		}
		if b[1]&0x80 != 0 {
			want += 4
		}
		if h.size != want || (h.length < 0) != (b[1]&0x7f == 127 && b[2]&0x80 != 0) {
			t.Fatalf("size %d length %d, want size %d", h.size, h.length, want)
		}
		if b[1]&0x7f == 126 && h.length != int64(binary.BigEndian.Uint16(b[2:])) {
			t.Fatalf("16-bit length %d", h.length)
		}
	})
}

// FuzzUTF8Stream: checking a text message as it arrives, in any pieces,
// gives the same verdict as checking it whole.
func FuzzUTF8Stream(f *testing.F) {
	f.Add([]byte("h€llo"), uint8(2))
	f.Add([]byte("ok \xc3\x28"), uint8(1))
	f.Add([]byte("\xf4\x90\x80\x80"), uint8(1))
	f.Add([]byte("\xe2\x82"), uint8(1))
	f.Fuzz(func(t *testing.T, msg []byte, step uint8) {
		s := int(step%8) + 1
		var u utf8Stream
		ok := true
		for end := s; ok; end += s {
			if end >= len(msg) {
				ok = u.done(msg)
				break
			}
			ok = u.check(msg[:end])
		}
		if ok != utf8.Valid(msg) {
			t.Fatalf("streamed verdict %v, whole verdict %v", ok, utf8.Valid(msg))
		}
	})
}

// FuzzExtensions: any Sec-WebSocket-Extensions header parses or is
// refused without panicking, and an accepted offer is answered with an
// answer that parses back to permessage-deflate.
func FuzzExtensions(f *testing.F) {
	f.Add("permessage-deflate; client_max_window_bits")
	f.Add(`permessage-deflate; server_max_window_bits="15", x-foo; a=b`)
	f.Add("permessage-deflate; server_no_context_takeover; server_no_context_takeover")
	f.Add(`a; b="\"`)
	f.Fuzz(func(t *testing.T, header string) {
		offers, err := parseExtensions([]string{header})
		if err != nil {
			return
		}
		answer, ok := negotiateDeflate(offers)
		if !ok {
			return
		}
		back, err := parseExtensions([]string{answer})
		if err != nil || len(back) != 1 || back[0].name != deflateExtension {
			t.Fatalf("answer %q to %q does not parse back: %v", answer, header, err)
		}
	})
}

// FuzzTapConn: what a server sends dial passes through the tap unchanged,
// but for a 1014 close code shown to gorilla as its stand-in.
func FuzzTapConn(f *testing.F) {
	resp := "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n"
	f.Add([]byte(resp+"\x81\x02hi"), 5)
	f.Add([]byte("HTTP/1.1 200 OK\r\n\r\n"+resp+"\x88\x02\x03\xf6"), 1)
	f.Add([]byte(resp+"\xc9\x00"), 64)
	f.Fuzz(func(t *testing.T, input []byte, chunk int) {
		chunk = 1 + abs(chunk)%256
		client, server := net.Pipe()
		go func() { server.Write(input); server.Close() }()
		tap := newTapConn(client)
		defer tap.Close()
		var out []byte
		buf := make([]byte, chunk)
		for {
			n, err := tap.Read(buf)
			out = append(out, buf[:n]...)
			if err != nil {
				break
			}
		}
		if !tap.badGateway.Load() && !bytes.HasPrefix(input, out) {
			t.Fatalf("the tap changed the input")
		}
		if len(out) > len(input) {
			t.Fatalf("the tap handed out %d bytes of %d", len(out), len(input))
		}
	})
}

// FuzzUserLine: a users-file line parses or is refused with an error.
func FuzzUserLine(f *testing.F) {
	f.Add("alice:s3cret:rw")
	f.Add("bob:t:ro:lobby,team-a")
	f.Add("x::rw")
	f.Add("a:b:c:d:e")
	f.Fuzz(func(t *testing.T, line string) {
		u, err := parseUserLine(line)
		if err == nil && (!validName.MatchString(u.name) || (u.role != roleReadWrite && u.role != roleReadOnly)) {
			t.Fatalf("accepted %q as name %q role %q", line, u.name, u.role)
		}
	})
}

// FuzzHeaders: -H lines parse or are refused; what parses is a valid
// header a request can carry.
func FuzzHeaders(f *testing.F) {
	f.Add("X-Token: a, b")
	f.Add("Host: example.com")
	f.Add("bad header")
	f.Add("X: \r\nInjected: yes")
	f.Fuzz(func(t *testing.T, line string) {
		h, err := parseHeaders([]string{line})
		if err != nil {
			return
		}
		for k, vs := range h {
			for _, v := range vs {
				if strings.ContainsAny(k+v, "\r\n") {
					t.Fatalf("%q gave header %q: %q", line, k, v)
				}
			}
		}
	})
}

// FuzzURL: any URL argument normalises to ws:// or wss:// or is refused.
func FuzzURL(f *testing.F) {
	f.Add("localhost:8080")
	f.Add("https://user:pw@example.com/chat?x=1")
	f.Add("ftp://x")
	f.Add("ws://[::1]:80/")
	f.Fuzz(func(t *testing.T, s string) {
		u, _, err := normalizeURL(s)
		if err == nil && !strings.HasPrefix(u, "ws://") && !strings.HasPrefix(u, "wss://") {
			t.Fatalf("normalizeURL(%q) = %q", s, u)
		}
	})
}

// FuzzRoomAndName: any request path gives a room that is valid or
// refused, and names are checked.
func FuzzRoomAndName(f *testing.F) {
	f.Add("/team-a", "alice")
	f.Add("/", "")
	f.Add("/a/b\x00", "x y")
	f.Fuzz(func(t *testing.T, path, name string) {
		if room := roomOf(path); validRoom(room) && (room == "" || strings.ContainsAny(room, "\x00\n\r")) {
			t.Fatalf("room %q of %q accepted", room, path)
		}
		if validName.MatchString(name) && (len(name) > 32 || strings.ContainsAny(name, " :\n")) {
			t.Fatalf("name %q accepted", name)
		}
	})
}

// FuzzSlashCommand: anything typed at dial's prompt is a message, a
// command, or an explanation; never a panic or an unsendable frame.
func FuzzSlashCommand(f *testing.F) {
	for _, s := range []string{"hello", "//x", "/ping data", "/close 4000 bye", "/close 1005", "/binary 48 69", "/base64 aGk=", "/quit", "/nope"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, line string) {
		m, ok, reply := parseInput(line)
		if ok && reply != "" {
			t.Fatalf("%q: both a message and a reply %q", line, reply)
		}
		if ok && (m.op == websocket.PingMessage || m.op == websocket.PongMessage) && len(m.data) > maxControlPayload {
			t.Fatalf("%q: a control frame of %d bytes", line, len(m.data))
		}
		if ok && m.op == websocket.CloseMessage && m.code != 0 && !sendableCloseCode(m.code) {
			t.Fatalf("%q: close code %d", line, m.code)
		}
	})
}

// FuzzStoredLine: a --store line loads as a message or is skipped.
func FuzzStoredLine(f *testing.F) {
	f.Add([]byte(`{"event":"message","id":"a-1","seq":1,"room":"lobby","from":"x","conn":1,"time":"2026-01-01T00:00:00Z","type":"text","data":"hi"}`))
	f.Add([]byte(`{"event":"message","seq":2,"room":"r","type":"binary","data":"!!"}`))
	f.Add([]byte(`{"event":"mess`))
	f.Fuzz(func(t *testing.T, line []byte) {
		m, err := parseStoredLine(line)
		if err == nil && (m.room == "" || m.seq == 0 || (m.op != websocket.TextMessage && m.op != websocket.BinaryMessage)) {
			t.Fatalf("loaded %q as room %q seq %d op %d", line, m.room, m.seq, m.op)
		}
	})
}

// FuzzFileAnnouncement: any text of a JSON client is a message, a good
// announcement within the limits, or a refused one; never a panic.
func FuzzFileAnnouncement(f *testing.F) {
	f.Add([]byte(`{"event":"file","name":"cat.png","mime":"image/png"}`))
	f.Add([]byte(`{"event":"file","name":"a\u202eb","mime":"x"}`))
	f.Add([]byte(`hello`))
	f.Fuzz(func(t *testing.T, data []byte) {
		meta, ok, err := parseFileAnnouncement(data)
		if !ok && (err != nil || meta != fileMeta{}) {
			t.Fatalf("%q: not an announcement, yet %+v %v", data, meta, err)
		}
		if ok && err == nil && (len(meta.name) > maxFileName || !printable(meta.name) || (meta.mime != "" && !validMime(meta.mime))) {
			t.Fatalf("%q: accepted %+v", data, meta)
		}
	})
}

// FuzzResume: any query is no resume point, a whole number and an epoch,
// or a 400.
func FuzzResume(f *testing.F) {
	f.Add("since=7&epoch=m1x2-ab12cd34")
	f.Add("since=-1&epoch=e")
	f.Add("epoch=e")
	f.Fuzz(func(t *testing.T, query string) {
		q, err := url.ParseQuery(query)
		if err != nil {
			return
		}
		p, herr := parseResume(q)
		if herr != nil && (p != nil || herr.status != 400) {
			t.Fatalf("%q: %+v and %+v", query, p, herr)
		}
		if p != nil && !validEpoch.MatchString(p.epoch) {
			t.Fatalf("%q: epoch %q accepted", query, p.epoch)
		}
	})
}

func abs(n int) int {
	if n < 0 {
		return -n
	}
	return n
}

// FuzzServerFrames: whatever a client sends, the server's frame reader
// returns only complete messages within --max-message-size, text only as
// valid UTF-8, fails everything else with an error, and never panics.
func FuzzServerFrames(f *testing.F) {
	f.Add(maskedFrame(websocket.TextMessage, []byte("hello")), false)
	f.Add(append(clientFrame(opText, []byte("he")), clientFrame(fin|opContinuation, []byte("llo"))...), false)
	f.Add(append(clientFrame(opText, []byte("\xe2")), append(clientFrame(fin|opPing, []byte("p")), clientFrame(fin|opContinuation, []byte("\x82\xac"))...)...), false)
	f.Add(clientFrame(fin|websocket.CloseMessage, []byte{0x03, 0xe8, 'b', 'y', 'e'}), false)
	f.Add(clientFrame(fin|rsv1|opText, []byte{0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00}), true) // "Hello", compressed
	f.Add([]byte{0x81, 0xff, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 1, 2, 3, 4}, false)
	f.Fuzz(func(t *testing.T, input []byte, deflate bool) {
		const limit = 1 << 12
		c := readerOf(t, input, deflate, limit)
		for range 1000 {
			op, data, err := c.readFrame()
			if err != nil {
				return
			}
			if op == 0 {
				continue
			}
			if len(data) > limit {
				t.Fatalf("a message of %d bytes passed a limit of %d", len(data), limit)
			}
			if op == websocket.TextMessage && !utf8.Valid(data) {
				t.Fatalf("text message %q is not UTF-8", data)
			}
			if op != websocket.TextMessage && op != websocket.BinaryMessage {
				t.Fatalf("message with opcode %d", op)
			}
		}
	})
}

// FuzzAPIParams: the HTTP API's query parameters (a close code and
// reason, a sender name) are accepted only when valid, or refused with
// 400, whatever the query string.
func FuzzAPIParams(f *testing.F) {
	f.Add("code=4000&reason=bye")
	f.Add("code=1005")
	f.Add("reason=%ff&from=x")
	f.Add("from=api&code=&x=1")
	f.Fuzz(func(t *testing.T, rawQuery string) {
		q, err := url.ParseQuery(rawQuery)
		if err != nil {
			return
		}
		if code, reason, herr := closeParams(q); herr == nil {
			if (code != websocket.CloseNormalClosure && (code < 3000 || code > 4999)) || len(reason) > maxCloseReason || !utf8.ValidString(reason) {
				t.Fatalf("%q: accepted close %d %q", rawQuery, code, reason)
			}
		} else if herr.status != http.StatusBadRequest {
			t.Fatalf("%q: refused with %d", rawQuery, herr.status)
		}
		if from, herr := fromParam(q); herr == nil && from != apiName && !validName.MatchString(from) {
			t.Fatalf("%q: accepted sender %q", rawQuery, from)
		}
	})
}
