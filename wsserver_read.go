package main

import (
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"

	"github.com/gorilla/websocket"
)

// The read side of accepted connections. An idle connection of a polled
// server has no goroutine: the poller wakes a readBurst when input arrives,
// and it parks the connection again once the input is consumed.

// serveConn opens a connection's session, then reads what it sends. A
// connection that arrived as the server began to stop is closed with 1001
// at once, as the others are.
func (s *wsServer) serveConn(c *wsConn, stopping bool) {
	// c.reading is set from the start, so nothing else reads before this.
	if len(s.loops) > 0 {
		var err error
		c.pollFD, err = s.loopOf(c).p.add(c.shim.sock.fd, c)
		c.polled = err == nil
	}
	c.sess.open(c)
	c.flushNow() // the handshake response and whatever open queued
	if stopping {
		c.closeWith(websocket.CloseGoingAway, shutdownReason, s.cfg.shutdownTimeout)
	}
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
	// An idle connection holds no buffer.
	c.shim.releaseInput()
	if c.rd.op == 0 { // between messages
		c.msg = nil
	}
	c.releaseIdle()
	c.reading.Store(false)
	rearm := s.loopOf(c).p.arm
	if s.handleInline {
		rearm = s.loopOf(c).p.rewatch
	}
	if rearm(c.shim.sock.fd) == nil || !c.reading.CompareAndSwap(false, true) {
		return true
	}
	c.shim.holdInput()
	return false
}

// readBurst reads and handles messages while input is waiting, then parks
// the connection in the poller and returns, leaving no goroutine behind.
// Unpolled connections (TLS, or no epoll) are read until they end. At most
// one readBurst runs per connection: its caller set c.reading.
func (s *wsServer) readBurst(c *wsConn) {
	// Input is waiting (or the socket ended): bring it into the buffer.
	c.shim.holdInput()
	_, peekErr := c.shim.in.Peek(1)
	for {
		if c.polled && peekErr == nil && !c.shim.buffered() && !c.shim.poll() && s.park(c) {
			return
		}
		peekErr = nil
		op, data, err := c.readFrame()
		if err != nil {
			code, reason := s.readError(c, err)
			s.endConn(c, code, reason)
			return
		}
		if op == 0 {
			continue // a control frame, or part of a message
		}
		if c.ourCloseCode() != 0 {
			continue // we are closing: what it still sends goes nowhere
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
	c.socketOpen.Wait()
	if len(s.loops) > 0 {
		s.loopOf(c).p.remove(c.pollFD, c)
	}
	s.mu.Lock()
	delete(s.conns, c)
	s.mu.Unlock()
	c.log().Info(fmt.Sprintf("Connection %d has disconnected (%s)", c.id, strings.TrimSpace(strconv.Itoa(code)+" "+reason)),
		"event", evClose, "code", code, "reason", reason)
}

// readError turns the error that ended a read loop into the close code and
// reason to report, logging what was not a normal close.
func (s *wsServer) readError(c *wsConn, err error) (int, string) {
	var ce *websocket.CloseError
	var pe *protocolError
	switch {
	case errors.Is(err, errInvalidUTF8):
		c.log().Error(fmt.Sprintf("An error has occurred: connection %d sent a text message that is not valid UTF-8; closing it (1007)", c.id), "event", evError)
		c.closeWith(websocket.CloseInvalidFramePayloadData, errInvalidUTF8.Error(), closeGrace)
		return websocket.CloseInvalidFramePayloadData, errInvalidUTF8.Error()
	case errors.As(err, &pe):
		c.log().Error(fmt.Sprintf("An error has occurred: connection %d: %s; closing it (1002)", c.id, pe.reason), "event", evError)
		c.closeWith(websocket.CloseProtocolError, pe.reason, closeGrace)
		return websocket.CloseProtocolError, pe.reason
	case errors.As(err, &ce):
		if ce.Code == websocket.CloseAbnormalClosure {
			if code := c.ourCloseCode(); code != 0 {
				return code, "closed by the server"
			}
			return ce.Code, "connection lost"
		}
		return ce.Code, ce.Text
	case errors.Is(err, websocket.ErrReadLimit):
		c.log().Error(fmt.Sprintf("An error has occurred: connection %d sent a message over --max-message-size (%d bytes); closing it (1009)", c.id, s.cfg.maxMessageSize), "event", evError)
		return websocket.CloseMessageTooBig, "message too big"
	}
	var ne net.Error
	if errors.Is(err, net.ErrClosed) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.As(err, &ne) {
		if code := c.ourCloseCode(); code != 0 {
			return code, "closed by the server"
		}
		return websocket.CloseAbnormalClosure, "connection lost"
	}
	// A broken stream, such as a TLS record that does not decrypt.
	c.log().Error(fmt.Sprintf("An error has occurred: connection %d: %v", c.id, err), "event", evError)
	return websocket.CloseProtocolError, err.Error()
}
