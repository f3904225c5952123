package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
)

// Server plumbing shared by wsx echo and wsx serve: listening, TLS, the
// WebSocket handshake and its refusals, keepalive, limits and graceful
// shutdown. A command supplies an app that admits connections and a session
// per connection.

const (
	// idleTimeout closes kept-alive plain HTTP connections (the page,
	// /healthz) that stay silent this long.
	idleTimeout = 2 * time.Minute

	// handshakeTimeout bounds the WebSocket handshake response.
	handshakeTimeout = 10 * time.Second
)

// wsApp admits or refuses an upgrade request. A refusal is an httpError,
// answered before the handshake.
type wsApp interface {
	admit(r *http.Request) (session, *httpError)
}

// session is what a command does with one accepted connection. Its methods
// are called from the connection's read goroutine only, one at a time.
type session interface {
	// open is called once the handshake is done.
	open(c *wsConn)
	// message is called for each complete data message. data is only valid
	// during the call.
	message(c *wsConn, op int, data []byte)
	// close is called once when the connection has ended.
	close(c *wsConn, code int, reason string)
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
	cfg      wsServerConfig
	app      wsApp
	log      *slog.Logger
	upgrader websocket.Upgrader
	// what names the endpoint in the 426 answer to plain HTTP requests.
	what string

	// pollIdle parks idle connections in a poller instead of a goroutine
	// each: far less memory per connection, and with handleInline no
	// goroutine wake-up per message either.
	pollIdle bool
	// handleInline: with pollIdle, frames are read and handled on the
	// pollers' goroutines (wsserver_inline.go), for sessions that never
	// wait.
	handleInline bool
	// loops are the pollers, each with its goroutine's state; a connection
	// belongs to loops[id % len(loops)]. None: a goroutine per connection
	// reads.
	loops []eventLoop

	nextID   atomic.Uint64
	active   atomic.Int64 // connections admitted and not yet ended
	tick     atomic.Int64 // keepalive ticks since start
	stopping atomic.Bool

	mu    sync.Mutex
	conns map[*wsConn]struct{}
	wg    sync.WaitGroup
}

// newWSServer returns a server for app configured by cfg.
func newWSServer(cfg wsServerConfig, a wsApp, log *slog.Logger, what string) *wsServer {
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
	// The wait group counts the upgrade from here, and then the connection,
	// so shutdown also waits for upgrades under way; it is entered under
	// the lock that shutdown sets stopping with, so no upgrade enters it
	// after shutdown began to wait.
	s.mu.Lock()
	stopping := s.stopping.Load()
	if !stopping {
		s.wg.Add(1)
	}
	s.mu.Unlock()
	if stopping {
		s.refuse(w, r, http.StatusServiceUnavailable, errors.New("server shutting down"))
		return
	}
	admitted := false
	defer func() {
		if !admitted {
			s.active.Add(-1)
			s.wg.Done()
		}
	}()
	if n := s.active.Add(1); n > int64(s.cfg.maxConns) {
		s.refuse(w, r, http.StatusServiceUnavailable, fmt.Errorf("too many connections (limit %d, --max-conns)", s.cfg.maxConns))
		return
	}
	sess, herr := s.app.admit(r)
	if herr != nil {
		for k, v := range herr.header {
			w.Header()[k] = v
		}
		s.refuse(w, r, herr.status, errors.New(herr.msg))
		return
	}
	deflateAnswer := s.chooseDeflate(r)
	hw := &hijackWriter{ResponseWriter: w}
	ws, err := s.upgrader.Upgrade(hw, r, nil)
	if err != nil {
		if hw.shim != nil {
			// gorilla refused after taking the connection over (the client
			// sent data before the handshake was done) and closed it.
			s.log.Warn(fmt.Sprintf("Refused a connection from %s: %v", r.RemoteAddr, err), "event", evWarn, "remote", r.RemoteAddr)
		}
		return // otherwise refuse has answered and logged it
	}
	if deflateAnswer != "" && deflateAnswer != gorillaDeflateAnswer {
		// The response is still held in the shim: answer as negotiated.
		*hw.shim.handshake = bytes.Replace(*hw.shim.handshake,
			[]byte("Sec-WebSocket-Extensions: "+gorillaDeflateAnswer+"\r\n"),
			[]byte("Sec-WebSocket-Extensions: "+deflateAnswer+"\r\n"), 1)
	}
	c := s.newConn(ws, hw.shim, r, sess)
	admitted = true
	// Registered under the lock shutdown takes its list with: a connection
	// is either in that list or sees that the server is stopping.
	s.mu.Lock()
	stopping = s.stopping.Load()
	s.conns[c] = struct{}{}
	s.mu.Unlock()
	// The handler returns now so net/http frees its per-connection buffers.
	go s.serveConn(c, stopping)
}

// chooseDeflate negotiates permessage-deflate for r with --compress: it
// returns the answer to send, and leaves in r's header only what makes
// gorilla negotiate compression (a plain "permessage-deflate") or nothing,
// so that gorilla neither accepts an offer wsx declines nor declines one
// it accepts.
func (s *wsServer) chooseDeflate(r *http.Request) string {
	if !s.cfg.compress {
		return ""
	}
	offers, err := parseExtensions(r.Header.Values("Sec-WebSocket-Extensions"))
	r.Header.Del("Sec-WebSocket-Extensions")
	if err != nil {
		s.log.Debug("Ignored the extension offers of "+r.RemoteAddr+": "+err.Error(), "event", evWarn)
		return ""
	}
	answer, ok := negotiateDeflate(offers)
	if ok {
		r.Header.Set("Sec-WebSocket-Extensions", deflateExtension)
	}
	return answer
}

// newConn wraps an upgraded connection.
func (s *wsServer) newConn(ws *websocket.Conn, out *shimConn, r *http.Request, sess session) *wsConn {
	id := s.nextID.Add(1)
	c := &wsConn{
		id:          id,
		remote:      r.RemoteAddr,
		subprotocol: ws.Subprotocol(), // gorilla's Conn is dropped: wsx reads the frames itself
		shim:        out,
		sess:        sess,
		deflate:     bytes.Contains(*out.handshake, []byte("Sec-WebSocket-Extensions: permessage-deflate")),
		srv:         s,
	}
	if out.sock.fd != nil { // one RawConn for non-blocking reads and writes; nil on TLS
		c.nb.write = c.nb.do
	}
	c.socketOpen.Add(1)
	c.lastSeen.Store(s.tick.Load())
	c.reading.Store(true) // serveConn reads first
	c.start(*out.handshake)
	out.handshake = nil
	out.c = c
	return c
}

// refuse answers a refused upgrade with status and a one-line reason, and
// logs it. It is also gorilla's Upgrader.Error.
func (s *wsServer) refuse(w http.ResponseWriter, r *http.Request, status int, reason error) {
	s.log.Warn(fmt.Sprintf("Refused a connection from %s: %d %s", r.RemoteAddr, status, reason),
		"event", evWarn, "remote", r.RemoteAddr, "status", status)
	w.Header().Set("Sec-WebSocket-Version", "13")
	http.Error(w, reason.Error(), status)
}

// hijackWriter hands gorilla a shimConn instead of the raw connection, so
// that everything gorilla writes after the handshake joins the connection's
// write queue.
type hijackWriter struct {
	http.ResponseWriter
	shim *shimConn
}

// Hijack takes the connection over from net/http and wraps it in a shimConn.
func (h *hijackWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	conn, brw, err := http.NewResponseController(h.ResponseWriter).Hijack()
	if err != nil {
		return nil, nil, err
	}
	h.shim = newShimConn(conn)
	return h.shim, brw, nil
}
