package main

import "testing"

// TestTrimAfterBursts: memory is given back once after a burst of
// trimAfter connects has ended, not during it, not after fewer, and not
// again while no more come.
func TestTrimAfterBursts(t *testing.T) {
	b := burstWatch{}
	n := uint64(0)
	look := func(connects uint64, want bool, what string) {
		t.Helper()
		n += connects
		if got := b.ended(n); got != want {
			t.Fatalf("%s (%d connects in all): trim %v, want %v", what, n, got, want)
		}
	}
	look(trimAfter-1, false, "a burst too small")
	look(0, false, "after a burst too small")
	for range 5 {
		look(300, false, "connects keep coming")
	}
	look(0, true, "the burst is over")
	look(0, false, "no connects since")
	look(0, false, "no connects since")
	look(trimAfter, false, "a second burst")
	look(0, true, "the second burst is over")
	look(1, false, "one connect")
	look(0, false, "after one connect")
}
