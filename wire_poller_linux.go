//go:build linux

package main

import (
	"errors"
	"fmt"
	"slices"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"
)

// pollEvents is how many readiness events one epoll_wait returns at most.
const pollEvents = 256

// poller watches the sockets of idle connections with one epoll instance,
// so an idle connection has no goroutine parked on it (a parked reader
// costs a few kB of stack per connection). When a socket becomes readable,
// ready is called, once: the registration is one-shot and level-triggered,
// so it must be re-armed after reading, and input that arrived meanwhile
// fires at once. T is what a socket is registered with and handed back as.
// A socket registered with watch instead is level-triggered and stays
// armed: ready is called in every round while it has input.
type poller[T comparable] struct {
	epfd   int
	wakefd int // an eventfd that stops run
	ready  func(T)
	// afterRound, if set before run, is called on run's goroutine after
	// each round of readiness events: a reader can pace its rounds there.
	afterRound func()

	mu sync.Mutex
	// conns holds what each descriptor is registered for, indexed by the
	// descriptor: the kernel hands out the lowest free ones, so the slice
	// stays dense and costs 8 bytes a connection where a map costs 30.
	conns []T
}

// newPoller makes the epoll instance.
func newPoller[T comparable](ready func(T)) (*poller[T], error) {
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
	return &poller[T]{epfd: epfd, wakefd: wakefd, ready: ready}, nil
}

// add registers the socket sock for v, disarmed (arm starts watching it),
// and returns the descriptor that remove needs.
func (p *poller[T]) add(sock syscall.RawConn, v T) (int32, error) {
	return p.register(sock, v, unix.EPOLLONESHOT)
}

// watch registers the socket sock for v, armed and level-triggered: ready
// is called in every round in which sock has input, without arm, until
// remove and the socket's close. It suits a reader that takes what it can
// per call and leaves the rest for the next round, with no system call to
// re-arm. It returns the descriptor that remove needs.
func (p *poller[T]) watch(sock syscall.RawConn, v T) (int32, error) {
	return p.register(sock, v, unix.EPOLLIN|unix.EPOLLRDHUP)
}

func (p *poller[T]) register(sock syscall.RawConn, v T, events uint32) (int32, error) {
	if sock == nil {
		return 0, errNoFD
	}
	var fd int32
	if err := sock.Control(func(s uintptr) { fd = int32(s) }); err != nil {
		return 0, err
	}
	p.mu.Lock()
	if int(fd) >= len(p.conns) {
		p.conns = slices.Grow(p.conns, int(fd)+1-len(p.conns))[:int(fd)+1]
	}
	p.conns[fd] = v
	p.mu.Unlock()
	return fd, p.ctl(sock, unix.EPOLL_CTL_ADD, events)
}

// arm watches sock until it is readable, once: its reader has drained the
// input.
func (p *poller[T]) arm(sock syscall.RawConn) error {
	return p.ctl(sock, unix.EPOLL_CTL_MOD, unix.EPOLLIN|unix.EPOLLRDHUP|unix.EPOLLONESHOT)
}

// ctl registers or re-arms sock. It goes through Control, which holds the
// descriptor open for the call, so it can never touch a descriptor that
// was closed and reused by another connection.
func (p *poller[T]) ctl(sock syscall.RawConn, op int, events uint32) error {
	var err error
	cerr := sock.Control(func(s uintptr) {
		ev := unix.EpollEvent{Events: events, Fd: int32(s)}
		err = unix.EpollCtl(p.epfd, op, int(s), &ev)
	})
	if cerr != nil {
		return cerr
	}
	return err
}

// remove forgets v, registered as fd; its socket is closed, which ends the
// registration.
func (p *poller[T]) remove(fd int32, v T) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if int(fd) < len(p.conns) && p.conns[fd] == v {
		var zero T
		p.conns[fd] = zero
	}
}

// run waits for readiness and calls ready until stop.
func (p *poller[T]) run() {
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
			var v T
			p.mu.Lock()
			if int(ev.Fd) < len(p.conns) {
				v = p.conns[ev.Fd]
			}
			p.mu.Unlock()
			if v != zeroOf[T]() {
				p.ready(v)
			}
		}
		if p.afterRound != nil {
			p.afterRound()
		}
	}
}

// stop ends run.
func (p *poller[T]) stop() {
	one := [8]byte{1}
	unix.Write(p.wakefd, one[:])
}

// zeroOf is T's zero value: a descriptor with nothing registered.
func zeroOf[T comparable]() (zero T) { return zero }
