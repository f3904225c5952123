//go:build !linux

package main

import "syscall"

// poller is a stand-in where there is no epoll: newPoller always fails, so
// no method is ever called and every connection keeps a reader goroutine.
type poller[T comparable] struct{ afterRound func() }

// newPoller reports errNoPoller.
func newPoller[T comparable](func(T)) (*poller[T], error) { return nil, errNoPoller }

func (p *poller[T]) add(syscall.RawConn, T) (int32, error)   { return 0, errNoPoller }
func (p *poller[T]) watch(syscall.RawConn, T) (int32, error) { return 0, errNoPoller }
func (p *poller[T]) arm(syscall.RawConn) error               { return errNoPoller }
func (p *poller[T]) rewatch(syscall.RawConn) error           { return errNoPoller }
func (p *poller[T]) hold(syscall.RawConn) error              { return errNoPoller }
func (p *poller[T]) remove(int32, T)                         {}
func (p *poller[T]) run()                                    {}
func (p *poller[T]) stop()                                   {}
