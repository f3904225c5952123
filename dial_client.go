package main

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/gorilla/websocket"
)

// reconnectMin is the first --reconnect delay; each failed attempt doubles
// it, up to --reconnect-max. The actual wait is drawn between half of it
// and all of it, so that many clients do not retry in step.
const reconnectMin = 100 * time.Millisecond

// dialClient is one run of wsx dial once the flags are read. It connects, then
// serves one connection after another (more than one only with
// --reconnect) until the end, which decides the exit code.
type dialClient struct {
	cfg        dialConfig
	log        *slog.Logger
	queue      <-chan outgoing // what to send, in order; closed at the end of the input
	quit       <-chan struct{} // closed when the user quits at the prompt; nil in piped mode
	out        *printer        // received messages and, with --jsonl, every event
	pingsToLog bool            // -P shows pings and pongs on stderr rather than through out
	greeting   string          // logged after the first "Connected to" line

	received  int        // messages received over every connection, for --count
	carry     []outgoing // messages whose write failed, sent first after reconnecting
	inputDone bool       // the queue is closed
	deadline  time.Time  // when --timeout ends the run; zero for never
}

// newDialClient returns a client that sends what arrives on queue and prints
// through out.
func newDialClient(cfg dialConfig, log *slog.Logger, queue <-chan outgoing, out *printer) *dialClient {
	cl := &dialClient{cfg: cfg, log: log, queue: queue, out: out}
	if cfg.timeout > 0 {
		cl.deadline = time.Now().Add(cfg.timeout)
	}
	return cl
}

// run connects and serves until the end.
func (cl *dialClient) run(ctx context.Context) error {
	ws, resp, err := cl.dial(ctx)
	if err != nil {
		return err
	}
	return cl.serve(ctx, ws, resp)
}

// dial makes the first connection. A failure is reported as
// "Could not connect: ..." and returned as errReported (exit code 1).
func (cl *dialClient) dial(ctx context.Context) (*websocket.Conn, *http.Response, error) {
	ws, resp, err := cl.connect(ctx)
	if err != nil && !cl.deadline.IsZero() && !time.Now().Before(cl.deadline) {
		cl.note(slog.LevelError, evError, fmt.Sprintf("Timeout: --%s %s passed while connecting", flagTimeout, cl.cfg.timeout))
		return nil, nil, &abnormalError{errReported}
	}
	if err != nil && ctx.Err() != nil {
		cl.note(slog.LevelError, evError, "Could not connect: "+cl.cfg.url+": interrupted")
		return nil, nil, errReported
	}
	if err != nil {
		msg := "Could not connect: " + explainConnectError(cl.cfg.url, resp, err, cl.cfg.handshake)
		cl.note(slog.LevelError, evError, msg)
		cl.show(event{kind: evError, err: msg})
		return nil, nil, errReported
	}
	return ws, resp, nil
}

// connect makes one connection attempt, bounded by --connect-timeout and
// --timeout. With -v it logs the request and the response as curl -v does.
func (cl *dialClient) connect(ctx context.Context) (*websocket.Conn, *http.Response, error) {
	var onRequest func(*http.Request, *url.URL)
	verbose := cl.log.Enabled(ctx, slog.LevelDebug)
	if verbose {
		onRequest = func(r *http.Request, proxy *url.URL) {
			cl.log.Debug(formatRequest(r, proxy), "event", evOpen)
		}
	}
	if !cl.deadline.IsZero() {
		var cancel context.CancelFunc
		ctx, cancel = context.WithDeadline(ctx, cl.deadline)
		defer cancel()
	}
	d := cl.cfg.handshake.dialer(onRequest)
	defer interruptible(ctx, d)()
	ws, resp, err := d.DialContext(ctx, cl.cfg.url, cl.cfg.handshake.header)
	if verbose && resp != nil {
		cl.log.Debug(formatResponse(resp), "event", evOpen)
	}
	if err == nil {
		if err = unofferedExtension(resp.Header, cl.cfg.handshake.compress); err != nil {
			ws.Close() // not yet open: no close frame (RFC 6455 §7.1.7)
			return nil, resp, err
		}
	}
	return ws, resp, err
}

// interruptible makes d's handshake end as soon as ctx does: gorilla turns
// a context's deadline into a socket deadline but ignores its cancellation
// once the TCP connection is made, so Ctrl-C would wait for the server's
// answer. The returned function releases the watch once the handshake is
// over.
func interruptible(ctx context.Context, d *websocket.Dialer) (release func()) {
	var mu sync.Mutex
	var stops []func() bool
	watch := func(base func(context.Context, string, string) (net.Conn, error)) func(context.Context, string, string) (net.Conn, error) {
		if base == nil {
			base = (&net.Dialer{}).DialContext
		}
		return func(dctx context.Context, network, addr string) (net.Conn, error) {
			conn, err := base(dctx, network, addr)
			if err != nil {
				return nil, err
			}
			stop := context.AfterFunc(ctx, func() { conn.SetDeadline(time.Now()) })
			mu.Lock()
			stops = append(stops, stop)
			mu.Unlock()
			return conn, nil
		}
	}
	d.NetDialContext = watch(d.NetDialContext)
	if d.NetDialTLSContext != nil {
		d.NetDialTLSContext = watch(d.NetDialTLSContext)
	}
	return func() {
		mu.Lock()
		defer mu.Unlock()
		for _, stop := range stops {
			stop()
		}
	}
}

// serve serves ws, and with --reconnect the connections that replace it,
// and returns the error that decides the exit code.
func (cl *dialClient) serve(ctx context.Context, ws *websocket.Conn, resp *http.Response) error {
	for first := true; ; first = false {
		cl.opened(ws, resp, first)
		end := newDialConn(cl, ws, resp).run(ctx)
		cl.closed(end)
		if !cl.cfg.reconnect || !end.reconnectable() {
			return end.exitError()
		}
		if ws, resp = cl.redial(ctx); ws == nil {
			return end.exitError()
		}
	}
}

// redial reconnects after a lost connection, waiting before each attempt
// with exponential backoff and jitter, from reconnectMin up to
// --reconnect-max. It returns nil if ctx is done, --timeout passes or the
// user quits first.
func (cl *dialClient) redial(ctx context.Context) (*websocket.Conn, *http.Response) {
	var timeout <-chan time.Time
	if !cl.deadline.IsZero() {
		t := time.NewTimer(time.Until(cl.deadline))
		defer t.Stop()
		timeout = t.C
	}
	delay := reconnectMin
	for attempt := 1; ; attempt++ {
		wait := delay/2 + rand.N(delay/2+1)
		cl.note(slog.LevelWarn, evWarn, fmt.Sprintf("Reconnecting in %s (attempt %d)", wait.Round(time.Millisecond), attempt))
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return nil, nil
		case <-cl.quit:
			t.Stop()
			return nil, nil
		case <-timeout:
			t.Stop()
			cl.note(slog.LevelError, evError, fmt.Sprintf("Timeout: --%s %s passed while reconnecting", flagTimeout, cl.cfg.timeout))
			return nil, nil
		}
		ws, resp, err := cl.connect(ctx)
		if err == nil {
			return ws, resp
		}
		msg := fmt.Sprintf("Reconnect attempt %d failed: %s", attempt, explainConnectError(cl.cfg.url, resp, err, cl.cfg.handshake))
		cl.note(slog.LevelWarn, evWarn, msg)
		cl.show(event{kind: evError, err: msg})
		delay = min(2*delay, cl.cfg.reconnectMax)
	}
}

// opened reports a new connection.
func (cl *dialClient) opened(ws *websocket.Conn, resp *http.Response, first bool) {
	var b strings.Builder
	if first {
		b.WriteString("Connected to ")
	} else {
		b.WriteString("Reconnected to ")
	}
	b.WriteString(cl.cfg.url)
	var extras []string
	if p := ws.Subprotocol(); p != "" {
		extras = append(extras, "subprotocol "+p)
	}
	if offersDeflate(resp.Header) {
		extras = append(extras, "permessage-deflate")
	}
	if len(extras) > 0 {
		fmt.Fprintf(&b, " (%s)", strings.Join(extras, ", "))
	}
	cl.note(slog.LevelInfo, evOpen, b.String(), "url", cl.cfg.url, "subprotocol", ws.Subprotocol())
	if len(cl.cfg.handshake.subprotocols) > 0 && ws.Subprotocol() == "" {
		cl.note(slog.LevelWarn, evWarn, "The server chose none of the subprotocols offered")
	}
	if first && cl.greeting != "" {
		cl.note(slog.LevelInfo, evOpen, cl.greeting)
	}
	cl.show(event{kind: evOpen, url: cl.cfg.url, subprotocol: ws.Subprotocol(), header: resp.Header})
}

// closed reports the end of a connection: "Connection closed (CODE - REASON)".
func (cl *dialClient) closed(e ending) {
	level := slog.LevelInfo
	if e.exitError() != nil {
		level = slog.LevelError
	}
	cl.note(level, evClose, fmt.Sprintf("Connection closed (%d - %s)", e.code, e.reason), "code", e.code, "reason", e.reason, "by", e.by)
	cl.show(event{kind: evClose, code: e.code, reason: e.reason, by: e.by})
}

// note logs msg on stderr, after the time with --timestamps.
func (cl *dialClient) note(level slog.Level, ev, msg string, args ...any) {
	if cl.cfg.timestamps {
		msg = time.Now().Format(timestampLayout) + " " + msg
	}
	cl.log.Log(context.Background(), level, msg, append([]any{"event", ev}, args...)...)
}

// show prints e. With -P in piped mode pings and pongs go to stderr, since
// stdout carries messages only.
func (cl *dialClient) show(e event) {
	if e.time.IsZero() {
		e.time = time.Now()
	}
	if cl.pingsToLog && (e.kind == evPing || e.kind == evPong) {
		cl.note(slog.LevelInfo, e.kind, fmt.Sprintf("Received %s %s", e.kind, preview(websocket.TextMessage, e.data)))
		return
	}
	cl.out.print(e)
}

// ending is how a connection ended.
type ending struct {
	code    int
	reason  string
	by      string // byClient, byServer or byNone
	timeout bool   // --timeout passed
	err     error  // an input error made wsx close
}

// exitError is the error that decides the exit code: nil (0) after a close
// 1000 or 1001, whoever sent it; the input error (1); otherwise an
// abnormalError (3).
func (e ending) exitError() error {
	switch {
	case e.err != nil:
		return e.err
	case e.timeout:
		return &abnormalError{errReported}
	case e.code == websocket.CloseNormalClosure, e.code == websocket.CloseGoingAway:
		return nil
	}
	return &abnormalError{errReported}
}

// reconnectable reports whether --reconnect should reconnect: the
// connection was lost, or the server went away or asked to be retried, and
// not because wsx closed it.
func (e ending) reconnectable() bool {
	if e.by == byClient || e.timeout || e.err != nil {
		return false
	}
	switch e.code {
	case websocket.CloseGoingAway, websocket.CloseAbnormalClosure, websocket.CloseInternalServerErr,
		websocket.CloseServiceRestart, websocket.CloseTryAgainLater, 1014: // 1014: bad gateway
		return true
	}
	return false
}
