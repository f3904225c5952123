package main

import "errors"

// broker carries published events to every hub that serves their room and
// owns what wsx processes must share: each room's order (seq and epoch),
// its history and its online list. The local broker is the hub itself; the
// Redis broker (hub_redis.go) makes several wsx processes one chat.
//
// What crosses a broker is plain values: a message names its sender by
// connection id (unique across processes), and each hub resolves that id
// to its own member, if it has it.
type broker interface {
	// publish gives a message its place in its room's order and hands it
	// to every hub that follows the room, returning that place; or it
	// returns an error and nobody gets it. A join or leave adds to or
	// removes from the room's online list and has no place.
	publish(m *chatMessage) (msgPlace, error)
	// send publishes without waiting: if m is refused, the hub tells its
	// sender (hub.refused). Events sent keep their order.
	send(m *chatMessage)
	// follow makes sure the hub's copy of a room — order, history, online
	// list — is current and kept so until as many unfollows: it is called
	// before a member joins, with no lock held, and may wait on the network.
	follow(room string) error
	unfollow(room string)
	// view returns a room's order, history and online list, for rooms the
	// hub may not follow (the HTTP API).
	view(room string) (roomSnapshot, error)
	// rooms lists every room with clients or messages, for the API.
	rooms() ([]roomStat, error)
	// health reports whether the broker can deliver now, and why not.
	health() brokerHealth
}

// msgPlace is where a published message landed.
type msgPlace struct {
	id        string // the message's unique id
	seq       uint64 // its number in the room
	epoch     string // the room's numbering that seq belongs to
	receivers int    // the room's clients it was sent to
}

// roomSnapshot is a room's shared state at one moment.
type roomSnapshot struct {
	epoch   string
	seq     uint64 // number of the last message
	pos     uint64 // number of the last event (messages, joins, leaves); Redis only
	history []*chatMessage
	online  []onlineUser
}

// brokerHealth is what /healthz and /readyz say of the broker.
type brokerHealth struct {
	kind string // "local" or "redis"
	up   bool
	err  string // why it is down
}

// Errors of publish.
var (
	// errNotStored is returned for a message that --store could not
	// write, which is therefore not relayed.
	errNotStored = errors.New("the message could not be written to --store")
	// errBackplaneDown is returned while Redis cannot be reached: nothing
	// is relayed rather than relayed to part of the room.
	errBackplaneDown = errors.New("the backplane (Redis) is unreachable: message not relayed")
	// errBackplaneBusy is returned while more events wait for Redis than
	// it is given to hold (maxPublishQueue).
	errBackplaneBusy = errors.New("the backplane (Redis) cannot keep up: message not relayed")
)

// backplaneUnavailable reports whether err says the backplane could not
// take a message now, so that a later try may succeed.
func backplaneUnavailable(err error) bool {
	return errors.Is(err, errBackplaneDown) || errors.Is(err, errBackplaneBusy)
}

// localBroker delivers straight to the one hub of this process.
type localBroker struct{ h *hub }

func (b localBroker) publish(m *chatMessage) (msgPlace, error) { return b.h.deliver(m) }
func (b localBroker) send(m *chatMessage) {
	if _, err := b.h.deliver(m); err != nil {
		b.h.refused(m, err)
	}
}
func (localBroker) follow(string) error                      { return nil }
func (localBroker) unfollow(string)                          {}
func (b localBroker) view(room string) (roomSnapshot, error) { return b.h.snapshot(room), nil }
func (b localBroker) rooms() ([]roomStat, error)             { return b.h.roomStats(), nil }
func (localBroker) health() brokerHealth                     { return brokerHealth{kind: "local", up: true} }
