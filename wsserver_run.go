package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"runtime"
	"runtime/debug"
	"strconv"
	"time"

	"github.com/gorilla/websocket"
)

// The server's life: listening and the start line, keepalive pings,
// memory returned after bursts of connects, and the graceful shutdown that
// closes every connection with 1001.

// After a burst of at least trimAfter connects, followed by a trimInterval
// without one, the garbage of the handshakes (each leaves about 10 kB: the
// HTTP server's buffers, the request, gorilla's upgrade) is collected and
// its memory given back to the system at once, rather than held by the
// heap until the next collection and the runtime's slow scavenger: what
// stays is what the connections hold.
const (
	trimAfter    = 1000
	trimInterval = time.Second
)

// keepalive pings every connection each interval and drops those from which
// nothing arrived for two intervals. It returns when ctx is done.
func (s *wsServer) keepalive(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	ping := encodeFrame(websocket.PingMessage, nil, false)
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		now := s.tick.Add(1)
		for _, c := range s.snapshot() {
			if now-c.lastSeen.Load() >= 2 {
				c.log().Warn(fmt.Sprintf("Connection %d did not answer pings for %s; dropping it", c.id, 2*interval), "event", evWarn)
				c.closeWith(websocket.CloseGoingAway, "ping timeout", 0)
				continue
			}
			if c.enqueue(ping) {
				c.flushAsync()
			}
		}
	}
}

// trimMemory returns memory with trim (debug.FreeOSMemory) after bursts
// of connects, looking at each tick (every trimInterval), until ctx is
// done.
func (s *wsServer) trimMemory(ctx context.Context, ticks <-chan time.Time, trim func()) {
	b := burstWatch{trimmed: s.nextID.Load(), last: s.nextID.Load()}
	for {
		select {
		case <-ctx.Done():
			return
		case <-ticks:
		}
		if b.ended(s.nextID.Load()) {
			trim()
		}
	}
}

// burstWatch follows the count of connects from tick to tick.
type burstWatch struct{ trimmed, last uint64 }

// ended takes the count at a tick and reports whether a burst of at least
// trimAfter connects since the last trim has just ended: none came since
// the last tick.
func (b *burstWatch) ended(n uint64) bool {
	ended := n == b.last && n-b.trimmed >= trimAfter
	if ended {
		b.trimmed = n
	}
	b.last = n
	return ended
}

// snapshot returns the live connections.
func (s *wsServer) snapshot() []*wsConn {
	s.mu.Lock()
	defer s.mu.Unlock()
	conns := make([]*wsConn, 0, len(s.conns))
	for c := range s.conns {
		conns = append(conns, c)
	}
	return conns
}

// shutdownReason is the reason of the close 1001 every client gets when
// the server stops.
const shutdownReason = "server shutting down"

// shutdown sends close 1001 to every connection and waits up to timeout for
// the close handshakes, then closes what is left.
func (s *wsServer) shutdown(timeout time.Duration) {
	s.mu.Lock()
	s.stopping.Store(true)
	s.mu.Unlock()
	conns := s.snapshot()
	if len(conns) > 0 {
		s.log.Info(fmt.Sprintf("Shutting down: closing %d connections (1001)", len(conns)), "event", evStop, "connections", len(conns))
	}
	for _, c := range conns {
		c.closeWith(websocket.CloseGoingAway, shutdownReason, timeout)
	}
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(timeout):
		// A connection leaves the list a moment before it is done: none
		// left means they are all finishing.
		if left := s.snapshot(); len(left) > 0 {
			s.log.Warn(fmt.Sprintf("%d connections did not finish the close handshake within %s; closing them", len(left), timeout), "event", evWarn)
			for _, c := range left {
				c.abort()
			}
		}
		<-done
	}
}

// runWSServer listens on cfg.addr, prints the start line on stdout, serves
// handler until ctx is done, then shuts down gracefully.
func runWSServer(ctx context.Context, cfg wsServerConfig, s *wsServer, handler http.Handler, stdout io.Writer) error {
	tlsConfig, fingerprint, err := cfg.tls.load()
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", cfg.addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", cfg.addr, err)
	}
	scheme := "ws"
	if tlsConfig != nil {
		ln = tls.NewListener(ln, tlsConfig)
		scheme = "wss"
	}
	url := fmt.Sprintf("%s://%s/", scheme, displayAddr(ln.Addr()))
	if fingerprint != "" {
		s.log.Info("Self-signed TLS certificate, SHA-256 fingerprint "+fingerprint, "event", evStart, "fingerprint", fingerprint)
	}
	s.log.Debug("Listening on "+url, "event", evStart, "url", url)
	fmt.Fprintf(stdout, "Server is running on %s\n", url)

	if s.pollIdle {
		s.startPoller()
		defer s.stopPoller()
	}

	guard := newConnGuard()
	httpServer := &http.Server{
		Handler:           guard.handle(handler),
		ConnContext:       guard.connContext,
		ReadHeaderTimeout: readHeaderTimeout,
		IdleTimeout:       idleTimeout,
		MaxHeaderBytes:    maxRequestHeader,
		ConnState:         guard.track,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelDebug),
	}
	serveErr := make(chan error, 1)
	go func() { serveErr <- httpServer.Serve(ln) }()
	keepaliveCtx, stopKeepalive := context.WithCancel(ctx)
	defer stopKeepalive()
	if cfg.pingInterval > 0 {
		go s.keepalive(keepaliveCtx, cfg.pingInterval)
	}
	trimTicker := time.NewTicker(trimInterval)
	defer trimTicker.Stop()
	go s.trimMemory(keepaliveCtx, trimTicker.C, debug.FreeOSMemory)
	guardDone := make(chan struct{})
	go func() { defer close(guardDone); guard.report(keepaliveCtx, s.log, guardInterval) }()
	defer func() { stopKeepalive(); <-guardDone }()

	select {
	case err := <-serveErr:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	shutdownCtx, cancel := context.WithTimeout(context.Background(), cfg.shutdownTimeout)
	defer cancel()
	go httpServer.Shutdown(shutdownCtx) // stops accepting; hijacked connections are ours
	s.shutdown(cfg.shutdownTimeout)
	s.log.Info("Server stopped", "event", evStop)
	return nil
}

// startPoller starts the pollers for idle connections: one, which only
// wakes readers, or with handleInline one for every two processors, each
// reading and answering its connections itself. A loop keeps a processor
// busy under load and leaves the other to the kernel's half of the work
// and to the clients: on two cores, two loops took 2% more CPU per echo
// round trip than one, for no more round trips. Without epoll every
// connection keeps a reader goroutine.
func (s *wsServer) startPoller() {
	n := 1
	if s.handleInline {
		n = (runtime.GOMAXPROCS(0) + 1) / 2
	}
	loops := make([]eventLoop, n)
	for i := range loops {
		l := &loops[i]
		ready := s.wake
		if s.handleInline {
			ready = func(c *wsConn) { s.readInline(l, c) }
		}
		p, err := newPoller(ready)
		switch {
		case err == nil:
			l.p = p
			continue
		case i > 0: // out of descriptors, say: fewer loops will do
			loops = loops[:i]
		case errors.Is(err, errNoPoller):
			s.log.Debug("Every connection keeps a reader goroutine: "+err.Error(), "event", evStart)
			return
		default:
			s.log.Warn("No epoll: every connection keeps a reader goroutine: "+err.Error(), "event", evWarn)
			return
		}
		break
	}
	s.loops = loops
	for _, l := range loops {
		go l.p.run()
	}
}

// stopPoller stops the pollers once every connection has ended.
func (s *wsServer) stopPoller() {
	for _, l := range s.loops {
		l.p.stop()
	}
}

// displayAddr is the address as clients reach it: a wildcard listen address
// is shown as localhost.
func displayAddr(a net.Addr) string {
	tcp, ok := a.(*net.TCPAddr)
	if !ok {
		return a.String()
	}
	host := tcp.IP.String()
	if tcp.IP == nil || tcp.IP.IsUnspecified() {
		host = "localhost"
	}
	return net.JoinHostPort(host, strconv.Itoa(tcp.Port))
}

// wsURLOf is the ws:// or wss:// URL of the request, for messages.
func wsURLOf(r *http.Request) string {
	scheme := "ws"
	if r.TLS != nil {
		scheme = "wss"
	}
	return scheme + "://" + r.Host + r.URL.RequestURI()
}
