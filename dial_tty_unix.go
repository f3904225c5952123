//go:build !windows

package main

import (
	"os"
	"os/signal"
	"syscall"
)

// watchResize calls resize whenever the terminal's size changes, which
// Unix announces with SIGWINCH. The returned function stops it.
func watchResize(resize func()) (stop func()) {
	winch := make(chan os.Signal, 1)
	signal.Notify(winch, syscall.SIGWINCH)
	done := make(chan struct{})
	go func() {
		for {
			select {
			case <-winch:
				resize()
			case <-done:
				return
			}
		}
	}()
	return func() {
		signal.Stop(winch)
		close(done)
	}
}
