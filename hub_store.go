package main

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
)

// store appends every relayed message to a file of JSON lines (the
// messageEvent format, with the room's epoch) and loads them back at start.
//
// Each message is written with its own write(2) before it is broadcast: once
// any client can have received it, it is in the kernel's page cache and
// survives the process being killed, even with SIGKILL.
type store struct {
	mu  sync.Mutex // messages of several rooms are appended concurrently
	f   *os.File
	buf []byte
}

// openStore opens or creates (mode 0600) the store file and returns the
// messages already in it, in file order. A line that does not parse — torn
// by a crash mid-write, or edited — is skipped with a warning naming it. A
// line written before lines carried an epoch gets legacyEpoch(path).
func openStore(path string, log *slog.Logger) (*store, []*chatMessage, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return nil, nil, fmt.Errorf("--%s: %w", flagStore, err)
	}
	msgs, endsWithNewline, err := loadStore(f, path, log)
	if err != nil {
		f.Close()
		return nil, nil, fmt.Errorf("--%s: read %s: %w", flagStore, path, err)
	}
	for _, m := range msgs {
		if m.epoch == "" {
			m.epoch = legacyEpoch(path)
		}
	}
	if !endsWithNewline {
		// A torn last line: start the next one on a line of its own.
		if _, err := f.Write([]byte("\n")); err != nil {
			f.Close()
			return nil, nil, fmt.Errorf("--%s: %w", flagStore, err)
		}
	}
	return &store{f: f}, msgs, nil
}

// loadStore reads the messages of a store file, skipping bad lines.
func loadStore(r io.Reader, path string, log *slog.Logger) (msgs []*chatMessage, endsWithNewline bool, err error) {
	br := bufio.NewReader(r)
	endsWithNewline = true
	for n := 1; ; n++ {
		line, err := br.ReadBytes('\n')
		if len(line) > 0 {
			endsWithNewline = line[len(line)-1] == '\n'
		}
		if len(bytes.TrimSpace(line)) > 0 {
			if m, perr := parseStoredLine(line); perr != nil {
				log.Warn(fmt.Sprintf("--%s %s line %d skipped: %v", flagStore, path, n, perr), "event", evWarn, "line", n)
			} else {
				msgs = append(msgs, m)
			}
		}
		if err == io.EOF {
			return msgs, endsWithNewline, nil
		}
		if err != nil {
			return nil, false, err
		}
	}
}

// storedLine is one line of the store: a message event and the epoch of
// its room's numbering.
type storedLine struct {
	messageEvent
	Epoch string `json:"epoch,omitempty"` // empty in lines of older versions
}

// parseStoredLine parses one store line.
func parseStoredLine(line []byte) (*chatMessage, error) {
	var e storedLine
	if err := json.Unmarshal(line, &e); err != nil {
		return nil, err
	}
	m, err := messageFromWire(e.messageEvent)
	if err != nil {
		return nil, err
	}
	m.epoch = e.Epoch
	return m, nil
}

// legacyEpoch is the epoch of store lines written before lines carried
// one: the same for every start with the same file, as their numbering
// goes on, and derived from the file's absolute path, so that another
// store's rooms do not seem to share it.
func legacyEpoch(path string) string {
	if abs, err := filepath.Abs(path); err == nil {
		path = abs
	}
	sum := sha256.Sum256([]byte(path))
	return "file-" + hex.EncodeToString(sum[:6])
}

// append writes m as one line with a single write.
func (s *store) append(m *chatMessage) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	b, err := json.Marshal(storedLine{m.wire(), m.epoch})
	if err != nil {
		return err
	}
	s.buf = append(append(s.buf[:0], b...), '\n')
	_, err = s.f.Write(s.buf)
	return err
}

// close closes the file.
func (s *store) close() error { return s.f.Close() }
