//go:build windows

package main

import "time"

// resizePollInterval is how often the console's size is read: Windows has
// no SIGWINCH.
const resizePollInterval = 500 * time.Millisecond

// watchResize calls resize every resizePollInterval, so the line editor
// follows a console window that was resized. resize only changes anything
// when the size did. The returned function stops it.
func watchResize(resize func()) (stop func()) {
	t := time.NewTicker(resizePollInterval)
	done := make(chan struct{})
	go func() {
		for {
			select {
			case <-t.C:
				resize()
			case <-done:
				return
			}
		}
	}()
	return func() {
		t.Stop()
		close(done)
	}
}
