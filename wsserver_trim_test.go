package main

import (
	"context"
	"sync/atomic"
	"testing"
	"time"
)

// TestTrimMemoryAfterBursts: memory is given back once after a burst of
// trimAfter connects has ended, not during it, not after fewer, and not
// again while no more come.
func TestTrimMemoryAfterBursts(t *testing.T) {
	const interval = 5 * time.Millisecond
	s := &wsServer{}
	var trims atomic.Int32
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go s.trimMemory(ctx, interval, func() { trims.Add(1) })

	s.nextID.Add(trimAfter - 1) // a burst too small
	time.Sleep(10 * interval)
	if n := trims.Load(); n != 0 {
		t.Fatalf("%d trims after %d connects, want none", n, trimAfter-1)
	}
	// Connects keep coming: no trim while they do.
	for range 10 {
		s.nextID.Add(100)
		time.Sleep(interval / 2)
	}
	waitFor(t, func() bool { return trims.Load() == 1 })
	time.Sleep(10 * interval)
	if n := trims.Load(); n != 1 {
		t.Fatalf("%d trims after one burst, want 1", n)
	}
	s.nextID.Add(trimAfter)
	waitFor(t, func() bool { return trims.Load() == 2 })
}
