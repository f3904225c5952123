//go:build linux

package main

import (
	"fmt"
	"os"
	"slices"
	"sync"
	"syscall"
	"time"

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
	wakefd int             // an eventfd that stops run
	file   *os.File        // epfd, in Go's network poller
	ep     syscall.RawConn // file's descriptor, to wait on it there
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
	if err := unix.SetNonblock(epfd, true); err != nil {
		unix.Close(epfd)
		unix.Close(wakefd)
		return nil, fmt.Errorf("epoll: %w", err)
	}
	file := os.NewFile(uintptr(epfd), "epoll")
	ep, err := file.SyscallConn()
	if err == nil {
		// Only a descriptor in Go's network poller takes a deadline: one
		// that is not would have run's reads fail at once.
		err = file.SetReadDeadline(time.Time{})
	}
	if err != nil {
		file.Close()
		unix.Close(wakefd)
		return nil, fmt.Errorf("epoll descriptor in Go's network poller: %w", err)
	}
	return &poller[T]{epfd: epfd, wakefd: wakefd, file: file, ep: ep, ready: ready}, nil
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

// rewatch makes sock's registration level-triggered again, as watch
// makes it: its reader handed it back to ready.
func (p *poller[T]) rewatch(sock syscall.RawConn) error {
	return p.ctl(sock, unix.EPOLL_CTL_MOD, unix.EPOLLIN|unix.EPOLLRDHUP)
}

// hold stops watching sock for input until arm or rewatch: a goroutine of
// its own reads it meanwhile, and a level-triggered registration would
// report its input in every round. Only a hangup is still reported, once.
func (p *poller[T]) hold(sock syscall.RawConn) error {
	return p.ctl(sock, unix.EPOLL_CTL_MOD, unix.EPOLLONESHOT)
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

// run waits for readiness and calls ready until stop. The epoll
// descriptor is registered in Go's own network poller like a socket, so
// run's goroutine parks there as any reader does, and its epoll_wait never
// waits: a goroutine blocked in epoll_wait holds a thread in a system call
// the scheduler cannot see into, and it kept another thread spinning in
// its own network poll meanwhile: a quarter of wsx echo's CPU under load.
func (p *poller[T]) run() {
	events := make([]unix.EpollEvent, pollEvents)
	var n int
	var err error
	wait := func(fd uintptr) bool {
		n, err = epollWaitNow(int(fd), events)
		return n > 0 || err != nil
	}
	for {
		if rerr := p.ep.Read(wait); rerr != nil {
			return
		}
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return
		}
		for _, ev := range events[:n] {
			if ev.Fd == int32(p.wakefd) {
				p.file.Close()
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
