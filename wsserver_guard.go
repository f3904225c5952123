package main

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"
)

// Connections that never become anything: port scanners, slowloris clients
// that open a socket and send nothing, clients that send half a request.
// net/http frees them by readHeaderTimeout; this guard counts them and
// logs one summary line per interval instead of a line each, so a flood of
// them cannot flood the log either.

const (
	// maxRequestHeader bounds a request's headers; more is answered 431.
	// A WebSocket handshake needs about 500 bytes.
	maxRequestHeader = 64 << 10

	// defaultGuardInterval is how often the guard sums up.
	defaultGuardInterval = 10 * time.Second
)

// Timeouts that tests shorten; nothing else changes them.
var (
	// readHeaderTimeout bounds how long a client may take to send its request
	// headers (slowloris), and a TLS client its handshake.
	readHeaderTimeout = 10 * time.Second

	// guardInterval is how often abandoned connections are summed up in the log.
	guardInterval = defaultGuardInterval
)

// connGuard tracks every TCP connection the HTTP server has not handed
// over (hijacked) to the WebSocket side. It is http.Server's ConnState.
type connGuard struct {
	mu      sync.Mutex
	state   map[net.Conn]http.ConnState
	silent  int // closed without sending a byte
	partial int // closed before a request was read whole (or answered 431)
}

func newConnGuard() *connGuard {
	return &connGuard{state: make(map[net.Conn]http.ConnState)}
}

// track is the http.Server's ConnState hook.
func (g *connGuard) track(c net.Conn, st http.ConnState) {
	g.mu.Lock()
	defer g.mu.Unlock()
	switch st {
	case http.StateHijacked:
		delete(g.state, c)
	case http.StateClosed:
		switch g.state[c] {
		case http.StateNew:
			g.silent++
		case http.StateActive:
			g.partial++
		}
		delete(g.state, c)
	default:
		g.state[c] = st
	}
}

// guardConnKey is the request context key of the connection it came on.
type guardConnKey struct{}

// connContext is the http.Server's ConnContext: it lets handle see the
// connection.
func (g *connGuard) connContext(ctx context.Context, c net.Conn) context.Context {
	return context.WithValue(ctx, guardConnKey{}, c)
}

// handle wraps the server's handler: a connection whose request reached it
// is not abandoned, even if it closes right after the answer (Connection:
// close), without going idle first.
func (g *connGuard) handle(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if c, ok := r.Context().Value(guardConnKey{}).(net.Conn); ok {
			g.mu.Lock()
			if _, tracked := g.state[c]; tracked {
				g.state[c] = http.StateIdle
			}
			g.mu.Unlock()
		}
		h.ServeHTTP(w, r)
	})
}

// take returns and resets the counts.
func (g *connGuard) take() (silent, partial int) {
	g.mu.Lock()
	defer g.mu.Unlock()
	silent, partial = g.silent, g.partial
	g.silent, g.partial = 0, 0
	return silent, partial
}

// report logs the counts every interval, when there is something to say,
// until ctx is done.
func (g *connGuard) report(ctx context.Context, log *slog.Logger, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if silent, partial := g.take(); silent+partial > 0 {
			log.Warn(fmt.Sprintf("%d connections closed without sending a request and %d in the middle of one, in the last %s (timeout %s)",
				silent, partial, interval, readHeaderTimeout), "event", evWarn, "silent", silent, "partial", partial)
		}
	}
}
