package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// promptHistoryMax is how many lines the prompt history keeps.
const promptHistoryMax = 1000

// promptHistory is the prompt's line promptHistory, kept in a file across runs. It is
// a term.History, which the terminal calls from the goroutine reading lines.
// Each line is appended to the file as it is entered, so runs side by side
// lose nothing; the file is cut back to historyMax lines when it is opened.
type promptHistory struct {
	entries []string // oldest first
	file    *os.File // nil when history is not kept
}

// promptHistoryPath is where the history is kept: $XDG_STATE_HOME/wsx/history, or
// ~/.local/state/wsx/history. It is "" when neither place is known.
func promptHistoryPath() string {
	if dir := os.Getenv("XDG_STATE_HOME"); filepath.IsAbs(dir) {
		return filepath.Join(dir, "wsx", "history")
	}
	if home, err := os.UserHomeDir(); err == nil {
		return filepath.Join(home, ".local", "state", "wsx", "history")
	}
	return ""
}

// openPromptHistory loads the history at path and opens it for appending. On
// error the history still works, for this run only.
func openPromptHistory(path string) (*promptHistory, error) {
	h := &promptHistory{}
	if path == "" {
		return h, nil
	}
	if data, err := os.ReadFile(path); err == nil {
		h.entries = strings.Split(strings.TrimSuffix(string(data), "\n"), "\n")
		if len(h.entries) == 1 && h.entries[0] == "" {
			h.entries = nil
		}
	}
	if len(h.entries) > promptHistoryMax {
		h.entries = h.entries[len(h.entries)-promptHistoryMax:]
		if err := rewritePromptHistory(path, h.entries); err != nil {
			return h, err
		}
	}
	// The history may hold secrets typed at the prompt: private to the user.
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return h, err
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return h, err
	}
	h.file = f
	return h, nil
}

// rewritePromptHistory replaces the file at path with entries, atomically.
func rewritePromptHistory(path string, entries []string) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(strings.Join(entries, "\n")+"\n"), 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// Add records a line entered at the prompt, unless it is empty or repeats
// the line before it.
func (h *promptHistory) Add(line string) {
	if line == "" || (len(h.entries) > 0 && h.entries[len(h.entries)-1] == line) {
		return
	}
	h.entries = append(h.entries, line)
	if len(h.entries) > promptHistoryMax {
		h.entries = h.entries[1:]
	}
	if h.file != nil {
		if _, err := fmt.Fprintln(h.file, line); err != nil {
			h.file.Close()
			h.file = nil // keep going without the file
		}
	}
}

// Len is the number of lines in the history.
func (h *promptHistory) Len() int { return len(h.entries) }

// At returns a line: 0 is the most recent.
func (h *promptHistory) At(i int) string { return h.entries[len(h.entries)-1-i] }

// close closes the file.
func (h *promptHistory) close() {
	if h.file != nil {
		h.file.Close()
	}
}
