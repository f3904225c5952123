package main

import (
	"errors"
	"fmt"
	"sync"

	"golang.org/x/sys/unix"
)

// pollEvents is how many readiness events one epoll_wait returns at most.
const pollEvents = 256

// poller watches the sockets of idle connections with one epoll instance,
// so an idle connection has no goroutine parked on it (a parked reader
// costs a few kB of stack per connection). When a socket becomes readable,
// ready is called, once: the registration is one-shot and level-triggered,
// so it must be re-armed after reading, and input that arrived meanwhile
// fires at once.
type poller struct {
	epfd   int
	wakefd int // an eventfd that stops run
	ready  func(*wsConn)

	mu    sync.Mutex
	conns map[int32]*wsConn // by file descriptor
}

// newPoller makes the epoll instance.
func newPoller(ready func(*wsConn)) (*poller, error) {
	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("epoll_create1: %w", err)
	}
	wakefd, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		unix.Close(epfd)
		return nil, fmt.Errorf("eventfd: %w", err)
	}
	ev := unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(wakefd)}
	if err := unix.EpollCtl(epfd, unix.EPOLL_CTL_ADD, wakefd, &ev); err != nil {
		unix.Close(epfd)
		unix.Close(wakefd)
		return nil, fmt.Errorf("epoll_ctl: %w", err)
	}
	return &poller{epfd: epfd, wakefd: wakefd, ready: ready, conns: make(map[int32]*wsConn)}, nil
}

// errNoFD is returned for a connection without a socket of its own (TLS).
var errNoFD = errors.New("connection has no pollable socket")

// add registers c, disarmed: arm starts watching it.
func (p *poller) add(c *wsConn) error {
	if c.fd == nil {
		return errNoFD
	}
	var fd int32
	if err := c.fd.Control(func(s uintptr) { fd = int32(s) }); err != nil {
		return err
	}
	c.pollFD = fd
	p.mu.Lock()
	p.conns[fd] = c
	p.mu.Unlock()
	return p.ctl(c, unix.EPOLL_CTL_ADD, unix.EPOLLONESHOT)
}

// arm watches c until its socket is readable, once: its reader has
// drained the input.
func (p *poller) arm(c *wsConn) error {
	return p.ctl(c, unix.EPOLL_CTL_MOD, unix.EPOLLIN|unix.EPOLLRDHUP|unix.EPOLLONESHOT)
}

// ctl registers or re-arms c's socket. It goes through Control, which holds
// the descriptor open for the call, so it can never touch a descriptor that
// was closed and reused by another connection.
func (p *poller) ctl(c *wsConn, op int, events uint32) error {
	var err error
	cerr := c.fd.Control(func(s uintptr) {
		ev := unix.EpollEvent{Events: events, Fd: int32(s)}
		err = unix.EpollCtl(p.epfd, op, int(s), &ev)
	})
	if cerr != nil {
		return cerr
	}
	return err
}

// remove forgets c; its socket is closed, which ends the registration.
func (p *poller) remove(c *wsConn) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.conns[c.pollFD] == c {
		delete(p.conns, c.pollFD)
	}
}

// run waits for readiness and calls ready until stop.
func (p *poller) run() {
	events := make([]unix.EpollEvent, pollEvents)
	for {
		n, err := unix.EpollWait(p.epfd, events, -1)
		if err != nil {
			if errors.Is(err, unix.EINTR) {
				continue
			}
			return
		}
		for _, ev := range events[:n] {
			if ev.Fd == int32(p.wakefd) {
				unix.Close(p.epfd)
				unix.Close(p.wakefd)
				return
			}
			p.mu.Lock()
			c := p.conns[ev.Fd]
			p.mu.Unlock()
			if c != nil {
				p.ready(c)
			}
		}
	}
}

// stop ends run.
func (p *poller) stop() {
	one := [8]byte{1}
	unix.Write(p.wakefd, one[:])
}
