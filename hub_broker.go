package main

// broker carries published messages to every hub that serves their room.
// The in-process broker has one hub; a backplane (such as Redis) would
// deliver to the hubs of every wsx process.
type broker interface {
	publish(m *chatMessage)
}

// localBroker delivers straight to the one hub of this process.
type localBroker struct{ h *hub }

func (b localBroker) publish(m *chatMessage) { b.h.deliver(m) }
