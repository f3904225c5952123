package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/gorilla/websocket"
)

// Server plumbing shared by wsx echo and wsx serve: listening, TLS, the
// WebSocket handshake and its refusals, keepalive, limits and graceful
// shutdown. A command supplies an app that admits connections and a session
// per connection.

const (
	// readHeaderTimeout bounds how long a client may take to send its request
	// headers (slowloris).
	readHeaderTimeout = 10 * time.Second

	// handshakeTimeout bounds the WebSocket handshake response.
	handshakeTimeout = 10 * time.Second
)

// app admits or refuses an upgrade request. A refusal is an httpError,
// answered before the handshake.
type app interface {
	admit(r *http.Request) (session, *httpError)
}

// httpError is an HTTP status with a one-line explanation for the client.
type httpError struct {
	status int
	msg    string
	header http.Header // extra response headers, such as WWW-Authenticate
}

// wsServer accepts WebSocket connections for an app and owns them until
// they end: it tracks them for keepalive and shutdown. It is an
// http.Handler for the upgrade; commands mount it on their own mux.
type wsServer struct {
	cfg      serverConfig
	app      app
	log      *slog.Logger
	upgrader websocket.Upgrader
	// what names the endpoint in the 426 answer to plain HTTP requests.
	what string

	// pollIdle parks idle connections in a poller instead of a goroutine
	// each: far less memory per connection, a few µs more per message that
	// arrives on an idle connection. serve wants it; echo's round trips not.
	pollIdle bool
	poller   *poller // nil: a goroutine per connection reads

	nextID   atomic.Uint64
	active   atomic.Int64 // connections admitted and not yet ended
	tick     atomic.Int64 // keepalive ticks since start
	stopping atomic.Bool

	mu    sync.Mutex
	conns map[*wsConn]struct{}
	wg    sync.WaitGroup
}

// newWSServer returns a server for app configured by cfg.
func newWSServer(cfg serverConfig, a app, log *slog.Logger, what string) *wsServer {
	s := &wsServer{cfg: cfg, app: a, log: log, what: what, conns: make(map[*wsConn]struct{})}
	s.upgrader = websocket.Upgrader{
		HandshakeTimeout:  handshakeTimeout,
		ReadBufferSize:    gorillaReadBuffer,
		WriteBufferSize:   maxHeaderLen + maxControlPayload, // gorilla only writes control frames
		WriteBufferPool:   &sync.Pool{},
		Subprotocols:      cfg.subprotocols,
		EnableCompression: cfg.compress,
		CheckOrigin:       cfg.origins.allowed,
		Error:             s.refuse,
	}
	return s
}

// ServeHTTP upgrades the request to a WebSocket connection, or answers why not.
func (s *wsServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !websocket.IsWebSocketUpgrade(r) {
		w.Header().Set("Upgrade", "websocket")
		w.Header().Set("Connection", "Upgrade")
		http.Error(w, fmt.Sprintf("This is a WebSocket endpoint (%s): connect with a WebSocket client, e.g. wsx dial %s", s.what, wsURLOf(r)), http.StatusUpgradeRequired)
		return
	}
	if s.stopping.Load() {
		s.refuse(w, r, http.StatusServiceUnavailable, errors.New("server shutting down"))
		return
	}
	if n := s.active.Add(1); n > int64(s.cfg.maxConns) {
		s.active.Add(-1)
		s.refuse(w, r, http.StatusServiceUnavailable, fmt.Errorf("too many connections (limit %d, --max-conns)", s.cfg.maxConns))
		return
	}
	admitted := false
	defer func() {
		if !admitted {
			s.active.Add(-1)
		}
	}()
	sess, herr := s.app.admit(r)
	if herr != nil {
		for k, v := range herr.header {
			w.Header()[k] = v
		}
		s.refuse(w, r, herr.status, errors.New(herr.msg))
		return
	}
	hw := &hijackWriter{ResponseWriter: w}
	ws, err := s.upgrader.Upgrade(hw, r, nil)
	if err != nil {
		return // refuse has answered and logged it
	}
	c := s.newConn(ws, hw.out, r, sess)
	admitted = true
	s.wg.Add(1)
	// The handler returns now so net/http frees its per-connection buffers.
	go s.serveConn(c)
}

// newConn wraps an upgraded connection.
func (s *wsServer) newConn(ws *websocket.Conn, out *outConn, r *http.Request, sess session) *wsConn {
	id := s.nextID.Add(1)
	c := &wsConn{
		id:           id,
		remote:       r.RemoteAddr,
		ws:           ws,
		out:          out,
		sess:         sess,
		raw:          out.Conn,
		deflate:      s.cfg.compress && offersDeflate(r.Header),
		srv:          s,
		maxQueue:     s.cfg.sendQueue,
		socketClosed: make(chan struct{}),
	}
	c.log = s.log.With("conn", id, "remote", c.remote)
	if tcp, ok := out.Conn.(*net.TCPConn); ok {
		c.fd, _ = tcp.SyscallConn() // cannot fail on an open TCP connection
		c.nb.write = c.nb.do
	}
	c.lastSeen.Store(s.tick.Load())
	c.reading.Store(true) // serveConn reads first
	c.pending, out.handshake = out.handshake, nil
	c.exempt = len(c.pending)
	out.c = c
	ws.SetReadLimit(s.cfg.maxMessageSize)
	ws.SetPingHandler(c.onPing)
	ws.SetPongHandler(c.onPong)
	ws.SetCloseHandler(c.onClose)
	return c
}

// serveConn opens a connection's session, then reads what it sends.
func (s *wsServer) serveConn(c *wsConn) {
	s.mu.Lock()
	s.conns[c] = struct{}{}
	s.mu.Unlock()
	// c.reading is set from the start, so nothing else reads before this.
	c.polled = s.poller != nil && s.poller.add(c) == nil
	c.sess.open(c)
	c.flushNow() // the handshake response and whatever open queued
	if c.polled && s.park(c) {
		return
	}
	s.readBurst(c)
}

// wake starts a reader for c unless one runs. The poller calls it when c's
// socket is readable, and abort when c's socket was closed under it.
func (s *wsServer) wake(c *wsConn) {
	if c.reading.CompareAndSwap(false, true) {
		go s.readBurst(c)
	}
}

// park gives up reading c and hands it to the poller, and reports true; or,
// if its socket is closed, takes reading back and reports false, so the
// caller reads on to learn how it ended — unless a reader woken by abort
// already does, which also reports true.
func (s *wsServer) park(c *wsConn) bool {
	c.reading.Store(false)
	if s.poller.arm(c) == nil {
		return true
	}
	return !c.reading.CompareAndSwap(false, true)
}

// readBurst reads and handles messages while input is waiting, then parks
// the connection in the poller and returns, leaving no goroutine behind.
// Unpolled connections (TLS, or no epoll) are read until they end. At most
// one readBurst runs per connection: its caller set c.reading.
func (s *wsServer) readBurst(c *wsConn) {
	// Input is waiting (or the socket ended): bring it into the buffer.
	_, peekErr := c.out.in.Peek(1)
	for {
		for c.out.buffered() && c.out.takeControl() {
		}
		if c.polled && peekErr == nil && !c.out.buffered() && !c.out.poll() && s.park(c) {
			return
		}
		peekErr = nil
		op, data, err := c.readMessage()
		if err != nil {
			code, reason := s.readError(c, err)
			s.endConn(c, code, reason)
			return
		}
		if op == websocket.TextMessage && !utf8.Valid(data) {
			c.log.Error(fmt.Sprintf("An error has occurred: connection %d sent a text message that is not valid UTF-8; closing it (1007)", c.id), "event", evError)
			c.closeWith(websocket.CloseInvalidFramePayloadData, "invalid UTF-8 in text message", closeGrace)
			s.endConn(c, websocket.CloseInvalidFramePayloadData, "invalid UTF-8 in text message")
			return
		}
		c.sess.message(c, op, data)
	}
}

// endConn ends a connection whose read side is over: it closes the socket
// once the queued frames are written, ends the session and logs the close.
func (s *wsServer) endConn(c *wsConn, code int, reason string) {
	defer s.wg.Done()
	defer s.active.Add(-1)
	c.finish()
	c.sess.close(c, code, reason)
	<-c.socketClosed
	if s.poller != nil {
		s.poller.remove(c)
	}
	s.mu.Lock()
	delete(s.conns, c)
	s.mu.Unlock()
	c.log.Info(fmt.Sprintf("Connection %d has disconnected (%d %s)", c.id, code, reason),
		"event", evClose, "code", code, "reason", reason)
}

// readError turns the error that ended a read loop into the close code and
// reason to report, logging what was not a normal close.
func (s *wsServer) readError(c *wsConn, err error) (int, string) {
	var ce *websocket.CloseError
	switch {
	case errors.As(err, &ce):
		if ce.Code == websocket.CloseAbnormalClosure {
			if code := c.ourCloseCode(); code != 0 {
				return code, "closed by the server"
			}
			return ce.Code, "connection lost"
		}
		return ce.Code, ce.Text
	case errors.Is(err, websocket.ErrReadLimit):
		c.log.Error(fmt.Sprintf("An error has occurred: connection %d sent a message over --max-message-size (%d bytes); closing it (1009)", c.id, s.cfg.maxMessageSize), "event", evError)
		return websocket.CloseMessageTooBig, "message too big"
	}
	if code := c.ourCloseCode(); code != 0 {
		return code, "closed by the server"
	}
	var ne net.Error
	if errors.Is(err, net.ErrClosed) || errors.Is(err, io.EOF) || errors.As(err, &ne) {
		return websocket.CloseAbnormalClosure, "connection lost"
	}
	// gorilla has already sent 1002 for a protocol error.
	c.log.Error(fmt.Sprintf("An error has occurred: connection %d: %v", c.id, err), "event", evError)
	return websocket.CloseProtocolError, err.Error()
}

// refuse answers a refused upgrade with status and a one-line reason, and
// logs it. It is also gorilla's Upgrader.Error.
func (s *wsServer) refuse(w http.ResponseWriter, r *http.Request, status int, reason error) {
	s.log.Warn(fmt.Sprintf("Refused a connection from %s: %d %s", r.RemoteAddr, status, reason),
		"event", evWarn, "remote", r.RemoteAddr, "status", status)
	w.Header().Set("Sec-WebSocket-Version", "13")
	http.Error(w, reason.Error(), status)
}

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
				c.log.Warn(fmt.Sprintf("Connection %d did not answer pings for %s; dropping it", c.id, 2*interval), "event", evWarn)
				c.closeWith(websocket.CloseGoingAway, "ping timeout", 0)
				continue
			}
			if c.enqueue(ping) {
				c.flushAsync()
			}
		}
	}
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

// shutdown sends close 1001 to every connection and waits up to timeout for
// the close handshakes, then closes what is left.
func (s *wsServer) shutdown(timeout time.Duration) {
	s.stopping.Store(true)
	conns := s.snapshot()
	if len(conns) > 0 {
		s.log.Info(fmt.Sprintf("Shutting down: closing %d connections (1001)", len(conns)), "event", evStop, "connections", len(conns))
	}
	for _, c := range conns {
		c.closeWith(websocket.CloseGoingAway, "server shutting down", timeout)
	}
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(timeout):
		left := s.snapshot()
		s.log.Warn(fmt.Sprintf("%d connections did not finish the close handshake within %s; closing them", len(left), timeout), "event", evWarn)
		for _, c := range left {
			c.abort()
		}
		<-done
	}
}

// runServer listens on cfg.addr, prints the start line on stdout, serves
// handler until ctx is done, then shuts down gracefully.
func runServer(ctx context.Context, cfg serverConfig, s *wsServer, handler http.Handler, stdout io.Writer) error {
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

	httpServer := &http.Server{
		Handler:           handler,
		ReadHeaderTimeout: readHeaderTimeout,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelDebug),
	}
	serveErr := make(chan error, 1)
	go func() { serveErr <- httpServer.Serve(ln) }()
	keepaliveCtx, stopKeepalive := context.WithCancel(ctx)
	defer stopKeepalive()
	if cfg.pingInterval > 0 {
		go s.keepalive(keepaliveCtx, cfg.pingInterval)
	}

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

// startPoller starts the poller for idle connections; without epoll every
// connection keeps a reader goroutine.
func (s *wsServer) startPoller() {
	p, err := newPoller(s.wake)
	if err != nil {
		s.log.Warn("No epoll: every connection keeps a reader goroutine: "+err.Error(), "event", evWarn)
		return
	}
	s.poller = p
	go p.run()
}

// stopPoller stops the poller once every connection has ended.
func (s *wsServer) stopPoller() {
	if s.poller != nil {
		s.poller.stop()
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

// hijackWriter hands gorilla an outConn instead of the raw connection, so
// that everything gorilla writes after the handshake joins the connection's
// write queue.
type hijackWriter struct {
	http.ResponseWriter
	out *outConn
}

func (h *hijackWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	conn, brw, err := http.NewResponseController(h.ResponseWriter).Hijack()
	if err != nil {
		return nil, nil, err
	}
	h.out = newOutConn(conn)
	return h.out, brw, nil
}
