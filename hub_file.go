package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"unicode"
)

// File announcements (README: "Files"): a JSON client names the file it is
// about to send with a text message that is exactly a JSON object with
// "event":"file", before the binary message that carries the file's bytes.
// The announcement is a control frame: never relayed nor stored; the next
// binary message of that client carries its name and mime in its message
// events and in --store. Raw clients still get exactly the bytes.

const (
	// maxAnnouncement is the longest text read as an announcement, in
	// bytes; longer texts are messages. A name of maxFileName bytes fits
	// even written all in \u escapes. It bounds the parsing a client can
	// cause with messages that are never relayed.
	maxAnnouncement = 4096

	// maxFileName is the longest announced file name, in bytes.
	maxFileName = 255

	// maxMime is the longest announced MIME type, in bytes.
	maxMime = 255
)

// fileMeta is what an announcement says of the next binary message.
type fileMeta struct {
	name string // file name, without control characters; may be empty
	mime string // type/subtype; may be empty
}

// parseFileAnnouncement reports whether data is a file announcement (ok),
// and if so returns what it announces, or why it is malformed (err).
func parseFileAnnouncement(data []byte) (meta fileMeta, ok bool, err error) {
	trimmed := bytes.TrimLeft(data, " \t\r\n")
	if len(data) > maxAnnouncement || len(trimmed) == 0 || trimmed[0] != '{' || !bytes.Contains(data, []byte(`"file"`)) {
		return fileMeta{}, false, nil
	}
	var a struct {
		Event any `json:"event"`
		Name  any `json:"name"`
		Mime  any `json:"mime"`
	}
	if json.Unmarshal(data, &a) != nil || a.Event != "file" {
		return fileMeta{}, false, nil // not JSON, or another object: a message
	}
	name, okName := a.Name.(string)
	mime, okMime := a.Mime.(string)
	switch {
	case (a.Name != nil && !okName) || (a.Mime != nil && !okMime):
		return fileMeta{}, true, fmt.Errorf("file announcement: name and mime must be strings")
	case len(name) > maxFileName:
		return fileMeta{}, true, fmt.Errorf("file announcement: the name is %d bytes, at most %d", len(name), maxFileName)
	case !printable(name):
		return fileMeta{}, true, fmt.Errorf("file announcement: the name has a control character")
	case mime != "" && !validMime(mime):
		return fileMeta{}, true, fmt.Errorf("file announcement: mime %q is not type/subtype", mime)
	}
	return fileMeta{name: name, mime: mime}, true, nil
}

// printable reports whether s has no control characters, counting the
// bidirectional controls that can make "gpj.exe" look like "exe.jpg".
func printable(s string) bool {
	for _, r := range s {
		if unicode.IsControl(r) || unicode.Is(unicode.Bidi_Control, r) {
			return false
		}
	}
	return true
}

// validMime reports whether s is type/subtype, both HTTP tokens, with no
// parameters.
func validMime(s string) bool {
	typ, sub, ok := strings.Cut(s, "/")
	return ok && len(s) <= maxMime && isToken(typ) && isToken(sub)
}

// announce records an announcement for the next binary message, or tells
// the client why it was dropped.
func (c *member) announce(meta fileMeta, err error) {
	if err != nil {
		c.file = nil
		c.sendError("bad-request", err.Error()+": announcement dropped")
		return
	}
	c.file = &meta
}
