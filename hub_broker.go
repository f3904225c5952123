package main

import "errors"

// broker carries published messages to every hub that serves their room.
// The in-process broker has one hub; a backplane (such as Redis) would
// deliver to the hubs of every wsx process.
type broker interface {
	// publish gives m its place in its room's order and hands it to every
	// hub, returning that place; or it returns an error and nobody gets
	// m. Joins and leaves have no place.
	publish(m *chatMessage) (msgPlace, error)
}

// msgPlace is where a published message landed.
type msgPlace struct {
	id        string // the message's unique id
	seq       uint64 // its number in the room
	epoch     string // the room's numbering that seq belongs to
	receivers int    // the room's clients it was sent to
}

// errNotStored is returned for a message that --store could not write,
// which is therefore not relayed.
var errNotStored = errors.New("the message could not be written to --store")

// localBroker delivers straight to the one hub of this process.
type localBroker struct{ h *hub }

func (b localBroker) publish(m *chatMessage) (msgPlace, error) { return b.h.deliver(m) }
