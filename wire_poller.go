package main

import "errors"

// What every platform's poller has in common. Linux has an epoll poller
// (wire_poller_linux.go); elsewhere newPoller reports errNoPoller and every
// idle connection keeps a goroutine parked in its read instead, which costs
// a few kB of stack per connection but works the same.

var (
	// errNoFD is returned for a connection without a socket of its own (TLS).
	errNoFD = errors.New("connection has no pollable socket")

	// errNoPoller is newPoller's answer where there is no poller.
	errNoPoller = errors.New("no readiness poller on this platform")
)
