package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
)

// Timing of the Redis broker. heartbeatInterval and instanceTTL bound how
// long a crashed process's clients stay online: a survivor reaps it at
// most instanceTTL+heartbeatInterval after its last heartbeat.
const (
	redisTimeout      = 3 * time.Second // connect, read and write timeout of each command
	heartbeatInterval = 2 * time.Second
	instanceTTL       = 9 * time.Second
	// probeBeats heartbeats, a probe goes through this process's own
	// channel; one that has not come back by the next means the
	// subscription silently stopped receiving (it happens after
	// failovers), and it is made again.
	probeBeats     = 3
	backoffMin     = 100 * time.Millisecond
	backoffMax     = 3 * time.Second
	connIDsPerProc = 1_000_000_000 // connection ids of process N start at N×this
)

// redisBroker makes several wsx processes one chat through Redis. Redis
// numbers each room's events (hub_redis_scripts.go), keeps the history
// and the online list, and publishes every event on the room's channel;
// each process subscribes to the channels of the rooms it has members in
// and applies their events, in order, to its copies (hub_remote.go).
//
// While Redis cannot be reached nothing is relayed: publish refuses, new
// clients are refused, /readyz answers 503. The broker reconnects with
// backoff and jitter, subscribes again, syncs every room (members get the
// messages they missed that the history still holds) and adds its clients
// to the online lists again.
//
// Locks: followed.mu (one room's follow, unfollow, sync and resubscribe,
// held across network I/O) → the hub's locks; b.mu is a leaf, never held
// across I/O. Every change to a room's subscription or copy holds its
// followed.mu, so that a room is subscribed and has a copy exactly while
// it has members.
type redisBroker struct {
	h    *hub
	log  *slog.Logger
	rdb  *redis.Client
	addr string
	inst uint64 // this process's number

	ctx  context.Context // the broker's life
	stop context.CancelFunc
	done chan struct{}

	mu        sync.Mutex
	follows   map[string]*followed // by room
	ps        *redis.PubSub        // the subscription; nil while down
	waiters   map[string][]chan struct{}
	up        bool
	everUp    bool
	upCh      chan struct{} // closed when first up
	downErr   string
	downSince time.Time

	probeSent, probeGot atomic.Uint64

	// The publish queue (hub_redis_publish.go); pubMu is a leaf.
	pubMu     sync.Mutex
	pubQueue  []pubRequest
	pubClosed bool // the loop has ended: nothing more is queued
	pubWake   chan struct{}
	pubDone   chan struct{} // closed when the loop has ended

	// presenceDirty: a join or leave was refused, so the online lists
	// are rebuilt at the next heartbeat.
	presenceDirty atomic.Bool
}

// followed is a room this process has members in.
type followed struct {
	mu   sync.Mutex // serializes the room's follow and unfollow
	refs int        // members joined or joining
}

// startRedisBroker connects to Redis at url and makes it h's broker. It
// fails, naming the address, if Redis cannot be reached.
func startRedisBroker(h *hub, url string, log *slog.Logger) (*redisBroker, error) {
	opt, err := redis.ParseURL(url)
	if err != nil {
		return nil, usagef("invalid value for flag --%s: %v", flagRedis, err)
	}
	opt.DialTimeout, opt.ReadTimeout, opt.WriteTimeout = redisTimeout, redisTimeout, redisTimeout
	opt.MaxRetries = -1 // a retried publish could be relayed twice
	opt.ClientName = "wsx"
	quietRedis.Do(func() { redis.SetLogger(quietRedisLog{}) })
	b := &redisBroker{h: h, log: log, rdb: redis.NewClient(opt), addr: opt.Addr, follows: make(map[string]*followed),
		waiters: make(map[string][]chan struct{}), upCh: make(chan struct{}), done: make(chan struct{}), pubWake: make(chan struct{}, 1),
		pubDone: make(chan struct{})}
	b.ctx, b.stop = context.WithCancel(context.Background())
	ctx, cancel := context.WithTimeout(b.ctx, redisTimeout)
	defer cancel()
	n, err := b.rdb.Incr(ctx, redisPrefix+"instance-seq").Uint64()
	if err != nil {
		b.rdb.Close()
		return nil, fmt.Errorf("--%s: cannot reach Redis at %s: %w", flagRedis, b.addr, err)
	}
	b.inst = n
	h.broker, h.remote = b, true
	h.idBase += strconv.FormatUint(n, 36) + "-"
	go b.run()
	select {
	case <-b.upCh:
	case <-time.After(2 * redisTimeout):
		b.close()
		return nil, fmt.Errorf("--%s: cannot subscribe at Redis at %s: %s", flagRedis, b.addr, b.health().err)
	}
	log.Info(fmt.Sprintf("Relaying through Redis at %s as process %d", b.addr, n), "event", evBackplane)
	return b, nil
}

// checkRedisURL checks a --redis URL without connecting.
func checkRedisURL(url string) error {
	_, err := redis.ParseURL(url)
	return err
}

// connIDBase is where this process's connection ids start, so that ids
// are unique across processes.
func (b *redisBroker) connIDBase() uint64 { return b.inst * connIDsPerProc }

// close leaves Redis: the clients have left by now, and whatever of their
// leaves did not reach Redis is made here, one leave each, before the
// process leaves the instances set (after which nobody would reap them).
func (b *redisBroker) close() {
	b.stop()
	b.mu.Lock()
	if b.ps != nil {
		b.ps.Close()
	}
	b.mu.Unlock()
	<-b.done
	<-b.pubDone
	ctx, cancel := context.WithTimeout(context.Background(), redisTimeout)
	defer cancel()
	if err := b.rebuildPresence(context.Background(), true); err != nil {
		b.log.Warn("Redis: the online lists could not be updated on the way out: "+err.Error(), "event", evWarn)
	}
	b.rdb.ZRem(ctx, redisPrefix+"instances", b.inst)
	b.rdb.Del(ctx, b.instanceConnsKey())
	b.rdb.Close()
}

func (b *redisBroker) instanceConnsKey() string {
	return redisPrefix + "instance:" + strconv.FormatUint(b.inst, 10) + ":conns"
}

func (b *redisBroker) probeChannel() string {
	return redisPrefix + "probe:" + strconv.FormatUint(b.inst, 10)
}

func roomKey(room string) string { return redisPrefix + "room:" + room }

// health says whether the broker can deliver now.
func (b *redisBroker) health() brokerHealth {
	b.mu.Lock()
	defer b.mu.Unlock()
	return brokerHealth{kind: "redis", up: b.up, err: b.downErr}
}

func (b *redisBroker) isUp() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.up
}

// run keeps a subscription to Redis until the broker closes: it connects,
// restores what a new subscription needs, receives until an error, and
// tries again with backoff and jitter.
func (b *redisBroker) run() {
	defer close(b.done)
	go b.beat()
	go func() {
		defer close(b.pubDone)
		b.publishLoop()
	}()
	backoff := backoffMin
	for b.ctx.Err() == nil {
		ctx, cancel := context.WithTimeout(b.ctx, redisTimeout)
		err := b.rdb.Ping(ctx).Err()
		cancel()
		if err == nil {
			ps := b.rdb.Subscribe(b.ctx)
			b.mu.Lock()
			b.ps = ps
			b.mu.Unlock()
			restored := make(chan struct{})
			go func() { defer close(restored); b.restore(ps) }()
			err = b.receive(ps)
			b.mu.Lock()
			b.ps = nil
			b.mu.Unlock()
			ps.Close()
			<-restored
			if b.ctx.Err() != nil {
				return
			}
			backoff = backoffMin
		}
		b.setDown(err)
		// Full jitter, so that many processes do not come back at once.
		select {
		case <-b.ctx.Done():
			return
		case <-time.After(backoffMin/2 + rand.N(backoff)):
		}
		backoff = min(2*backoff, backoffMax)
	}
}

// restore makes a new subscription whole: this process's probe channel
// and every followed room's channel, each room synced again, the clients
// added to the online lists again. Then the broker is up. If anything
// fails, the subscription is closed and run tries again.
func (b *redisBroker) restore(ps *redis.PubSub) {
	b.mu.Lock()
	rooms := make([]string, 0, len(b.follows))
	for name := range b.follows {
		rooms = append(rooms, name)
	}
	b.mu.Unlock()
	ctx, cancel := context.WithTimeout(b.ctx, redisTimeout)
	defer cancel()
	err := b.loadScripts(ctx)
	if err == nil {
		err = b.subscribe(ps, b.probeChannel())
	}
	for _, room := range rooms {
		if err == nil {
			err = b.refollow(ps, room)
		}
	}
	if err == nil {
		err = b.heartbeat(true)
	}
	if err != nil {
		ps.Close()
		return
	}
	b.probeGot.Store(b.probeSent.Load())
	b.setUp(len(rooms))
}

// refollow subscribes a new subscription to a followed room's channel and
// syncs the room's copy; a room nobody follows any more is left alone.
func (b *redisBroker) refollow(ps *redis.PubSub, room string) error {
	f := b.lockFollowed(room)
	defer f.mu.Unlock()
	if f.refs == 0 {
		b.forget(room, f)
		return nil
	}
	b.h.awaitRoom(room)
	if err := b.subscribe(ps, roomKey(room)); err != nil {
		return err
	}
	return b.sync(room)
}

// receive applies the events of ps until it fails.
func (b *redisBroker) receive(ps *redis.PubSub) error {
	probe := b.probeChannel()
	for {
		msg, err := ps.Receive(b.ctx)
		if err != nil {
			return err
		}
		switch msg := msg.(type) {
		case *redis.Subscription:
			if msg.Kind == "subscribe" {
				b.confirmed(msg.Channel)
			}
		case *redis.Message:
			if msg.Channel == probe {
				n, _ := strconv.ParseUint(msg.Payload, 10, 64)
				b.probeGot.Store(n)
				continue
			}
			m, err := decodeRedisEvent(msg.Payload)
			if err != nil {
				b.log.Warn(fmt.Sprintf("Redis: %s: %v: ignored", msg.Channel, err), "event", evWarn)
				continue
			}
			if b.h.deliverRemote(m) {
				go b.resync(m.room)
			}
		}
	}
}

// subscribe subscribes ps to channel and waits until Redis confirms it, so
// that an event published after the return is received.
func (b *redisBroker) subscribe(ps *redis.PubSub, channel string) error {
	ch := make(chan struct{})
	b.mu.Lock()
	b.waiters[channel] = append(b.waiters[channel], ch)
	b.mu.Unlock()
	if err := ps.Subscribe(b.ctx, channel); err != nil {
		return err
	}
	select {
	case <-ch:
		return nil
	case <-time.After(redisTimeout):
		return fmt.Errorf("no confirmation of SUBSCRIBE %s within %s", channel, redisTimeout)
	case <-b.ctx.Done():
		return b.ctx.Err()
	}
}

// confirmed wakes those waiting for channel's subscription.
func (b *redisBroker) confirmed(channel string) {
	b.mu.Lock()
	list := b.waiters[channel]
	delete(b.waiters, channel)
	b.mu.Unlock()
	for _, ch := range list {
		close(ch)
	}
}

// follow subscribes to room's channel for its first member and syncs the
// hub's copy; later members only count.
func (b *redisBroker) follow(room string) error {
	f := b.lockFollowed(room)
	defer f.mu.Unlock()
	if f.refs == 0 {
		b.mu.Lock()
		ps, up := b.ps, b.up
		b.mu.Unlock()
		if !up || ps == nil {
			b.forget(room, f)
			return errBackplaneDown
		}
		b.h.awaitRoom(room)
		err := b.subscribe(ps, roomKey(room))
		if err == nil {
			err = b.sync(room)
		}
		if err != nil {
			b.h.dropRoom(room)
			b.forget(room, f)
			return fmt.Errorf("%w (%v)", errBackplaneDown, err)
		}
	}
	f.refs++
	return nil
}

// unfollow undoes a follow; the last one unsubscribes and drops the copy.
func (b *redisBroker) unfollow(room string) {
	f := b.lockFollowed(room)
	defer f.mu.Unlock()
	if f.refs--; f.refs > 0 {
		return
	}
	// Unsubscribe while the entry stands: a follow that comes meanwhile
	// waits for f.mu, and its SUBSCRIBE then follows this UNSUBSCRIBE on
	// the connection.
	b.mu.Lock()
	ps := b.ps
	b.mu.Unlock()
	if ps != nil {
		ps.Unsubscribe(b.ctx, roomKey(room))
	}
	b.h.dropRoom(room)
	b.forget(room, f)
}

// lockFollowed returns room's entry, made if need be, locked; never one
// that forget has just removed.
func (b *redisBroker) lockFollowed(room string) *followed {
	for {
		b.mu.Lock()
		f := b.follows[room]
		if f == nil {
			f = &followed{}
			b.follows[room] = f
		}
		b.mu.Unlock()
		f.mu.Lock()
		b.mu.Lock()
		current := b.follows[room] == f
		b.mu.Unlock()
		if current {
			return f
		}
		f.mu.Unlock()
	}
}

// forget removes room's entry; the caller holds f.mu and f has no refs.
func (b *redisBroker) forget(room string, f *followed) {
	b.mu.Lock()
	if b.follows[room] == f {
		delete(b.follows, room)
	}
	b.mu.Unlock()
}

// sync brings the hub's copy of room up to date from a snapshot, again
// while the events held show a gap.
func (b *redisBroker) sync(room string) error {
	for range 3 {
		snap, err := b.snapshot(room, true)
		if err != nil {
			return err
		}
		if b.h.syncRoom(room, snap) {
			return nil
		}
	}
	return fmt.Errorf("room %s: events keep arriving out of order", room)
}

// resync syncs a room whose copy missed events; if Redis cannot answer,
// the outage's restore does it.
func (b *redisBroker) resync(room string) {
	f := b.lockFollowed(room)
	defer f.mu.Unlock()
	if f.refs == 0 {
		b.forget(room, f) // dropped meanwhile
		return
	}
	if err := b.sync(room); err != nil {
		b.log.Warn(fmt.Sprintf("Redis: room %s missed events and could not be synced: %v", room, err), "event", evWarn)
	}
}

// snapshot reads room's state from Redis; make creates the room's numbering
// if it has none.
func (b *redisBroker) snapshot(room string, make bool) (roomSnapshot, error) {
	k := roomKey(room)
	flag := ""
	if make {
		flag = "1"
	}
	ctx, cancel := context.WithTimeout(b.ctx, redisTimeout)
	defer cancel()
	res, err := snapshotScript.Run(ctx, b.rdb, []string{k + ":meta", k + ":history", k + ":online"}, newEpoch(), flag).Slice()
	if err != nil {
		return roomSnapshot{}, err
	}
	if len(res) != 5 {
		return roomSnapshot{}, fmt.Errorf("room %s: snapshot: %w", room, errBadEvent)
	}
	snap := roomSnapshot{epoch: fmt.Sprint(res[0])}
	snap.seq, _ = strconv.ParseUint(fmt.Sprint(res[1]), 10, 64)
	snap.pos, _ = strconv.ParseUint(fmt.Sprint(res[2]), 10, 64)
	history, _ := res[3].([]any)
	for _, e := range history {
		m, err := decodeRedisEvent(fmt.Sprint(e))
		if err != nil || m.kind != kindMessage {
			continue
		}
		snap.history = append(snap.history, m)
	}
	online, _ := res[4].([]any)
	for i := 0; i+1 < len(online); i += 2 {
		id, err := strconv.ParseUint(fmt.Sprint(online[i]), 10, 64)
		if err == nil {
			snap.online = append(snap.online, onlineUser{Conn: id, Name: fmt.Sprint(online[i+1])})
		}
	}
	return snap, nil
}

// view is a room's state for the API, read from Redis.
func (b *redisBroker) view(room string) (roomSnapshot, error) {
	if !b.isUp() {
		return roomSnapshot{}, errBackplaneDown
	}
	snap, err := b.snapshot(room, false)
	if err != nil {
		return snap, fmt.Errorf("%w (%v)", errBackplaneDown, err)
	}
	if snap.online == nil {
		snap.online = []onlineUser{}
	}
	return snap, nil
}

// rooms lists the rooms that have clients on any process or messages, as
// Redis has them: one pipelined round trip for all.
func (b *redisBroker) rooms() ([]roomStat, error) {
	if !b.isUp() {
		return nil, errBackplaneDown
	}
	ctx, cancel := context.WithTimeout(b.ctx, redisTimeout)
	defer cancel()
	names, err := b.rdb.SMembers(ctx, redisPrefix+"rooms").Result()
	if err != nil {
		return nil, fmt.Errorf("%w (%v)", errBackplaneDown, err)
	}
	clients := make([]*redis.IntCmd, len(names))
	metas := make([]*redis.SliceCmd, len(names))
	_, err = b.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, name := range names {
			clients[i] = p.HLen(ctx, roomKey(name)+":online")
			metas[i] = p.HMGet(ctx, roomKey(name)+":meta", "seq", "epoch")
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("%w (%v)", errBackplaneDown, err)
	}
	stats := make([]roomStat, 0, len(names))
	for i, name := range names {
		st := roomStat{name: name, clients: int(clients[i].Val())}
		if meta := metas[i].Val(); len(meta) == 2 && meta[0] != nil {
			st.seq, _ = strconv.ParseUint(fmt.Sprint(meta[0]), 10, 64)
			st.epoch = fmt.Sprint(meta[1])
		}
		if st.clients > 0 || st.seq > 0 {
			stats = append(stats, st)
		}
	}
	return stats, nil
}

// presence runs the join or leave of a client, within redisTimeout.
func (b *redisBroker) presence(ctx context.Context, kind int, room string, conn uint64, name, event string) error {
	ctx, cancel := context.WithTimeout(ctx, redisTimeout)
	defer cancel()
	k := roomKey(room)
	op := "join"
	if kind == kindLeave {
		op = "leave"
	}
	err := presenceScript.Run(ctx, b.rdb, []string{k + ":meta", k + ":online", k, b.instanceConnsKey(), redisPrefix + "rooms"},
		op, conn, name, event, newEpoch(), room).Err()
	if err != nil {
		return fmt.Errorf("%w (%v)", errBackplaneDown, err)
	}
	return nil
}

// beat sends heartbeats and probes until the broker closes.
func (b *redisBroker) beat() {
	t := time.NewTicker(heartbeatInterval)
	defer t.Stop()
	for n := 1; ; n++ {
		select {
		case <-b.ctx.Done():
			return
		case <-t.C:
		}
		if !b.isUp() {
			continue
		}
		err := b.heartbeat(false)
		if err == nil && n%probeBeats == 0 {
			err = b.probe()
		}
		if err != nil {
			b.mu.Lock()
			if b.ps != nil {
				b.ps.Close() // run notices, and connects again
			}
			b.mu.Unlock()
		}
	}
}

// heartbeat tells Redis this process is alive and reaps those that are
// not. If this process was reaped (or Redis lost it), or after a new
// subscription (always), its clients are added to the online lists again.
func (b *redisBroker) heartbeat(always bool) error {
	ctx, cancel := context.WithTimeout(b.ctx, redisTimeout)
	defer cancel()
	res, err := heartbeatScript.Run(ctx, b.rdb, []string{redisPrefix + "instances"},
		b.inst, instanceTTL.Milliseconds(), redisPrefix, newEpoch()).Int64Slice()
	if err != nil {
		return fmt.Errorf("heartbeat: %w", err)
	}
	if len(res) == 2 && res[1] > 0 {
		b.log.Info(fmt.Sprintf("Redis: %d client%s of stopped processes left their rooms", res[1], plural(res[1])), "event", evBackplane)
	}
	dirty := b.presenceDirty.Swap(false)
	switch {
	case always:
		// A new subscription: the publish loop refuses everything until the
		// broker is up, so the rebuild runs here.
		err = b.rebuildPresence(b.ctx, false)
	case dirty || (len(res) == 2 && res[0] == 1):
		err = b.queueRebuild()
	}
	if err != nil {
		// Not a reason to drop the subscription: the next heartbeat tries
		// again.
		b.presenceDirty.Store(true)
		b.log.Warn("Redis: the online lists could not be rebuilt yet: "+err.Error(), "event", evWarn)
	}
	return nil
}

// rebuildPresence makes the online lists say what this process has: its
// clients that left while Redis could not be told leave now, and those
// missing join; with everyoneLeaves (the process is stopping), every
// client listed leaves. The clients present are taken after Redis's list,
// so that a client that joins or leaves meanwhile is seen as it is now
// (joins and leaves are idempotent). Each call to Redis has its own
// timeout, so that a long rebuild is not cut short.
func (b *redisBroker) rebuildPresence(parent context.Context, everyoneLeaves bool) error {
	ctx, cancel := context.WithTimeout(parent, redisTimeout)
	listed, err := b.rdb.HGetAll(ctx, b.instanceConnsKey()).Result()
	cancel()
	if err != nil {
		return fmt.Errorf("online lists: %w", err)
	}
	var present []*member
	if !everyoneLeaves {
		present = b.h.presentMembers()
	}
	local := make(map[string]*member)
	for _, c := range present {
		local[strconv.FormatUint(c.conn.id, 10)] = c
	}
	for id, room := range listed {
		if c := local[id]; c == nil || c.room != room {
			conn, _ := strconv.ParseUint(id, 10, 64)
			ev := encodeRedisEvent(&chatMessage{kind: kindLeave, room: room, fromConn: conn, time: time.Now()})
			if err := b.presence(parent, kindLeave, room, conn, "", ev); err != nil {
				return err
			}
		}
	}
	for id, c := range local {
		if listed[id] == c.room {
			continue
		}
		ev := encodeRedisEvent(&chatMessage{kind: kindJoin, room: c.room, from: c.name, fromConn: c.conn.id, time: c.joined})
		if err := b.presence(parent, kindJoin, c.room, c.conn.id, c.name, ev); err != nil {
			return err
		}
	}
	return nil
}

// probe checks that the last probe came back through the subscription,
// and sends the next.
func (b *redisBroker) probe() error {
	sent := b.probeSent.Load()
	if got := b.probeGot.Load(); got != sent {
		b.log.Warn(fmt.Sprintf("Redis: the subscription stopped receiving (probe %d not back): subscribing again", sent), "event", evWarn)
		return errors.New("probe lost")
	}
	ctx, cancel := context.WithTimeout(b.ctx, redisTimeout)
	defer cancel()
	n := sent + 1
	b.probeSent.Store(n)
	return b.rdb.Publish(ctx, b.probeChannel(), n).Err()
}

// setDown marks the broker down and logs the outage once.
func (b *redisBroker) setDown(err error) {
	if b.ctx.Err() != nil {
		return
	}
	msg := "no answer"
	if err != nil {
		msg = err.Error()
	}
	b.mu.Lock()
	first := b.downSince.IsZero()
	b.up, b.downErr = false, fmt.Sprintf("Redis at %s is unreachable: %s", b.addr, msg)
	if first {
		b.downSince = time.Now()
	}
	b.mu.Unlock()
	if first {
		b.log.Error(fmt.Sprintf("An error has occurred: Redis at %s is unreachable: %s; relaying nothing until it is back (reconnecting)", b.addr, msg), "event", evError)
	}
}

// setUp marks the broker up, and logs the end of an outage.
func (b *redisBroker) setUp(rooms int) {
	b.mu.Lock()
	since := b.downSince
	first := !b.everUp
	b.up, b.everUp, b.downErr, b.downSince = true, true, "", time.Time{}
	b.mu.Unlock()
	if first {
		close(b.upCh)
	}
	if !since.IsZero() {
		b.log.Info(fmt.Sprintf("Redis at %s is back after %s: %d room%s synced again", b.addr, time.Since(since).Round(time.Millisecond), rooms, plural(int64(rooms))), "event", evBackplane)
	}
}

// quietRedisLog drops go-redis's own log lines: the broker logs outages
// once, in wsx's format. It is set once, as go-redis's logger is global.
type quietRedisLog struct{}

var quietRedis sync.Once

func (quietRedisLog) Printf(context.Context, string, ...any) {}
