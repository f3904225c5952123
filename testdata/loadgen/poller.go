package main

import (
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

// pollTimeout is how long one epoll_wait blocks, so a stop is noticed.
const pollTimeout = 100 * time.Millisecond

// poller reads the sockets of a set of subscribers from one goroutine: it
// waits on epoll (level-triggered) and reads each ready socket once per
// round. One system call thus fetches everything that arrived on a socket
// since the last round, and the generator never needs more than one core per
// poller. With interval > 0, a round that took less than interval sleeps for
// the rest, so that more arrives per read at the cost of up to interval of
// extra measured latency.
type poller struct {
	epfd     int
	interval time.Duration
	subs     map[int32]*subscriber // by socket
	stop     atomic.Bool
	done     sync.WaitGroup
}

func newPoller(interval time.Duration) (*poller, error) {
	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("epoll_create1: %w", err)
	}
	return &poller{epfd: epfd, interval: interval, subs: make(map[int32]*subscriber)}, nil
}

// add registers s; it must be called before start.
func (p *poller) add(s *subscriber) error {
	fd := int32(s.conn.fd)
	ev := unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLRDHUP, Fd: fd}
	if err := unix.EpollCtl(p.epfd, unix.EPOLL_CTL_ADD, int(fd), &ev); err != nil {
		return fmt.Errorf("epoll_ctl: %w", err)
	}
	p.subs[fd] = s
	return nil
}

// start runs the poll loop in a goroutine until close.
func (p *poller) start() {
	p.done.Add(1)
	go p.loop()
}

func (p *poller) loop() {
	defer p.done.Done()
	events := make([]unix.EpollEvent, 256)
	for !p.stop.Load() {
		start := time.Now()
		n, err := unix.EpollWait(p.epfd, events, int(pollTimeout/time.Millisecond))
		if err != nil {
			continue // EINTR
		}
		for _, ev := range events[:n] {
			s := p.subs[ev.Fd]
			if s == nil {
				continue
			}
			if err := s.readOnce(); err != nil {
				// A failed socket stays readable; stop watching it.
				unix.EpollCtl(p.epfd, unix.EPOLL_CTL_DEL, int(ev.Fd), nil)
				delete(p.subs, ev.Fd)
				s.fail()
			}
		}
		if d := p.interval - time.Since(start); n > 0 && d > 0 {
			time.Sleep(d)
		}
	}
}

// close stops the loop, waits for it, and closes the epoll set.
func (p *poller) close() {
	p.stop.Store(true)
	p.done.Wait()
	unix.Close(p.epfd)
}
