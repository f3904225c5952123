package main

import (
	"container/list"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"net/http"
	"sync"
	"time"
)

// Idempotency-Key: a backend that retries a publish after a timeout must
// not publish twice. The first answer to a key is remembered, with a
// fingerprint of the request, and a retry with the same key and request
// gets that answer again; the same key with another request is a 409.

const (
	// idempotencyTTL is how long a key's first answer is remembered.
	idempotencyTTL = 5 * time.Minute

	// idempotencyMaxKeys bounds the keys remembered; past it the oldest
	// key is forgotten first, so a flood of keys cannot grow memory.
	idempotencyMaxKeys = 10000

	// maxIdempotencyKey is the longest key accepted, in bytes.
	maxIdempotencyKey = 255
)

// idempotencyCache remembers the first answer to each key for ttl, at most
// max keys. Keys expire in the order they came, so one list ordered by
// arrival serves both the expiry and the eviction of the oldest.
type idempotencyCache struct {
	ttl time.Duration
	max int
	now func() time.Time // time.Now; tests move it

	mu     sync.Mutex
	byKey  map[string]*list.Element // of *idemEntry
	oldest list.List                // of *idemEntry, oldest first
}

// idemEntry is one key: the request it was first used for and, once done
// is closed, the answer.
type idemEntry struct {
	key         string
	fingerprint [sha256.Size]byte
	created     time.Time
	done        chan struct{} // closed when status and body are set
	status      int
	body        []byte
}

// newIdempotencyCache returns an empty cache.
func newIdempotencyCache(ttl time.Duration, maxKeys int) *idempotencyCache {
	return &idempotencyCache{ttl: ttl, max: maxKeys, now: time.Now, byKey: make(map[string]*list.Element)}
}

// begin returns the entry of key. If the key is new (or expired), the
// entry is new and the caller owns it: it must call finish. Otherwise the
// caller waits on the entry's done, unless its fingerprint differs.
func (c *idempotencyCache) begin(key string, fp [sha256.Size]byte) (e *idemEntry, owner bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.now()
	for f := c.oldest.Front(); f != nil && now.Sub(f.Value.(*idemEntry).created) >= c.ttl; f = c.oldest.Front() {
		c.removeLocked(f)
	}
	if el, ok := c.byKey[key]; ok {
		return el.Value.(*idemEntry), false
	}
	for c.oldest.Len() >= c.max {
		c.removeLocked(c.oldest.Front())
	}
	e = &idemEntry{key: key, fingerprint: fp, created: now, done: make(chan struct{})}
	c.byKey[key] = c.oldest.PushBack(e)
	return e, true
}

// finish records the answer of an entry begun by its owner. Only
// successes are remembered: after a failure the key is forgotten, so a
// retry tries again.
func (c *idempotencyCache) finish(e *idemEntry, status int, body []byte) {
	c.mu.Lock()
	e.status, e.body = status, body
	if status/100 != 2 {
		if el, ok := c.byKey[e.key]; ok && el.Value.(*idemEntry) == e {
			c.removeLocked(el)
		}
	}
	c.mu.Unlock()
	close(e.done)
}

// len is the number of keys remembered.
func (c *idempotencyCache) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.oldest.Len()
}

// removeLocked forgets an entry. The caller holds mu.
func (c *idempotencyCache) removeLocked(el *list.Element) {
	delete(c.byKey, el.Value.(*idemEntry).key)
	c.oldest.Remove(el)
}

// requestFingerprint identifies a publish request: its target, sender, excluded
// connection, type and body.
func requestFingerprint(target, from string, exclude uint64, op int, body []byte) [sha256.Size]byte {
	h := sha256.New()
	for _, s := range []string{target, from} {
		binary.Write(h, binary.BigEndian, uint64(len(s)))
		h.Write([]byte(s))
	}
	binary.Write(h, binary.BigEndian, exclude)
	binary.Write(h, binary.BigEndian, int64(op))
	h.Write(body)
	var fp [sha256.Size]byte
	h.Sum(fp[:0])
	return fp
}

// once answers a publish. Without an Idempotency-Key it runs do and
// answers its result. With one, only the first request of the key runs
// do; a retry with the same request gets the same answer (and the header
// Idempotent-Replayed: true), waiting for it if the first is still running;
// the same key with another request is refused 409.
func (a *api) once(w http.ResponseWriter, r *http.Request, fp [sha256.Size]byte, do func() (int, any)) {
	key := r.Header.Get("Idempotency-Key")
	if key == "" {
		status, v := do()
		writeJSON(w, status, v)
		return
	}
	if len(key) > maxIdempotencyKey || !printableASCII(key) {
		writeError(w, http.StatusBadRequest, "invalid Idempotency-Key: 1-%d printable ASCII characters", maxIdempotencyKey)
		return
	}
	for {
		e, owner := a.idem.begin(key, fp)
		if owner {
			status, v := do()
			body, err := json.Marshal(v)
			if err != nil {
				status, body = http.StatusInternalServerError, []byte(`{"error":"encoding the answer failed"}`)
			}
			a.idem.finish(e, status, body)
			writeJSONBytes(w, status, body)
			return
		}
		if e.fingerprint != fp {
			writeError(w, http.StatusConflict, "Idempotency-Key %q was used for a different request (another target or body) in the last %s", key, fmt.Sprint(a.idem.ttl))
			return
		}
		select {
		case <-e.done:
		case <-r.Context().Done():
			return
		}
		if e.status/100 == 2 {
			a.metrics.apiReplays.Inc()
			w.Header().Set("Idempotent-Replayed", "true")
			writeJSONBytes(w, e.status, e.body)
			return
		}
		// The first request failed and its key was forgotten: try anew.
	}
}

// printableASCII reports whether s is printable ASCII, spaces included.
func printableASCII(s string) bool {
	for i := range len(s) {
		if s[i] < ' ' || s[i] > '~' {
			return false
		}
	}
	return true
}
