package main

import (
	"context"
	"fmt"
	"strconv"

	"github.com/redis/go-redis/v9"
)

// Bounds of the Redis broker's publish queue.
const (
	// maxPipeline is the most events sent to Redis in one round trip.
	maxPipeline = 256
	// maxPublishQueue is the most events waiting for Redis; past it
	// publishes are refused as if Redis were down, rather than held
	// without bound.
	maxPublishQueue = 100_000
)

// The Redis broker publishes through one queue and one goroutine: events
// (messages, joins, leaves) go to Redis in the order they were queued, as
// pipelines of up to maxPipeline scripts in one round trip. A client's
// read goroutine thus queues its message and reads the next at once,
// instead of waiting a round trip per message, and a client's events keep
// their order (join, messages, leave).

// pubRequest is one queued event, or (rebuild) a rebuild of the online
// lists, which then runs in order with the joins and leaves around it;
// done, if set, gets its outcome.
type pubRequest struct {
	m       *chatMessage
	rebuild bool
	done    chan<- pubResult
}

type pubResult struct {
	place msgPlace
	err   error
}

// publish queues m and waits for its place (the API, --stdin).
func (b *redisBroker) publish(m *chatMessage) (msgPlace, error) {
	done := make(chan pubResult, 1)
	b.enqueue(pubRequest{m: m, done: done})
	r := <-done
	return r.place, r.err
}

// send queues m; a message that Redis refuses is reported to its sender.
func (b *redisBroker) send(m *chatMessage) { b.enqueue(pubRequest{m: m}) }

// queueRebuild rebuilds the online lists from the publish loop, after the
// joins and leaves queued before it, and waits for it.
func (b *redisBroker) queueRebuild() error {
	done := make(chan pubResult, 1)
	b.enqueue(pubRequest{rebuild: true, done: done})
	return (<-done).err
}

// enqueue adds r to the queue, or fails it at once while Redis is down or
// the queue is full.
func (b *redisBroker) enqueue(r pubRequest) {
	if r.m != nil && r.m.kind == kindMessage && r.m.id == "" {
		r.m.id = b.h.nextID()
	}
	var err error
	up := b.isUp()
	b.pubMu.Lock()
	switch {
	case !up || b.pubClosed:
		err = errBackplaneDown
	case len(b.pubQueue) >= maxPublishQueue:
		err = fmt.Errorf("%w (%d events waiting for it)", errBackplaneBusy, len(b.pubQueue))
	default:
		b.pubQueue = append(b.pubQueue, r)
	}
	b.pubMu.Unlock()
	if err != nil {
		b.finish(r, msgPlace{}, err)
		return
	}
	select {
	case b.pubWake <- struct{}{}:
	default: // already signalled
	}
}

// finish reports an event's outcome: to the waiting caller, or, for a
// refused message of a client, to the client. A refused join or leave
// marks the online lists for a rebuild at the next heartbeat.
func (b *redisBroker) finish(r pubRequest, place msgPlace, err error) {
	if err != nil && (r.rebuild || r.m.kind != kindMessage) {
		b.presenceDirty.Store(true)
	}
	switch {
	case r.done != nil:
		r.done <- pubResult{place, err}
	case err != nil:
		b.h.refused(r.m, err)
	}
}

// publishLoop sends the queue to Redis until the broker closes; what is
// still queued then is refused.
func (b *redisBroker) publishLoop() {
	var batch []pubRequest
	for {
		select {
		case <-b.ctx.Done():
			b.pubMu.Lock()
			batch, b.pubQueue, b.pubClosed = b.pubQueue, nil, true
			b.pubMu.Unlock()
			for _, r := range batch {
				b.finish(r, msgPlace{}, errBackplaneDown)
			}
			return
		case <-b.pubWake:
		}
		b.pubMu.Lock()
		batch, b.pubQueue = b.pubQueue, batch[:0]
		b.pubMu.Unlock()
		for rest := batch; len(rest) > 0; {
			if rest[0].rebuild {
				b.finish(rest[0], msgPlace{}, b.rebuildPresence(b.ctx, false))
				rest = rest[1:]
				continue
			}
			n := 1
			for n < min(len(rest), maxPipeline) && !rest[n].rebuild {
				n++
			}
			b.runPipeline(rest[:n])
			rest = rest[n:]
		}
		clear(batch)
	}
}

// runPipeline sends reqs to Redis in one round trip and reports each
// outcome.
func (b *redisBroker) runPipeline(reqs []pubRequest) {
	if !b.isUp() {
		for _, r := range reqs {
			b.finish(r, msgPlace{}, errBackplaneDown)
		}
		return
	}
	ctx, cancel := context.WithTimeout(b.ctx, redisTimeout)
	defer cancel()
	cmds := b.pipeline(ctx, reqs)
	// Redis forgets the scripts when it restarts or is told to (SCRIPT
	// FLUSH), and a pipelined EVALSHA does not fall back to EVAL: load
	// them and send again what they refused, which did not run — only
	// what came after the last event that ran, so that nothing goes out
	// of order; the others are refused.
	var again []int
	for i, cmd := range cmds {
		switch {
		case redis.HasErrorPrefix(cmd.Err(), "NOSCRIPT"):
			again = append(again, i)
		case cmd.Err() == nil:
			again = again[:0]
		}
	}
	if len(again) > 0 && b.loadScripts(ctx) == nil {
		retry := make([]pubRequest, len(again))
		for j, i := range again {
			retry[j] = reqs[i]
		}
		for j, cmd := range b.pipeline(ctx, retry) {
			cmds[again[j]] = cmd
		}
	}
	for i, r := range reqs {
		place, err := b.result(r.m, cmds[i])
		if err != nil {
			err = fmt.Errorf("%w (%v)", errBackplaneDown, err)
		}
		b.finish(r, place, err)
	}
}

// pipeline sends the scripts of reqs in one round trip.
func (b *redisBroker) pipeline(ctx context.Context, reqs []pubRequest) []*redis.Cmd {
	cmds := make([]*redis.Cmd, len(reqs))
	b.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, r := range reqs {
			cmds[i] = b.eval(ctx, p, r.m)
		}
		return nil
	})
	return cmds
}

// eval queues the script of m's kind on p. The scripts are loaded when the
// broker connects (loadScripts), so EVALSHA finds them.
func (b *redisBroker) eval(ctx context.Context, p redis.Pipeliner, m *chatMessage) *redis.Cmd {
	k := roomKey(m.room)
	if m.kind != kindMessage {
		op, name := "join", m.from
		if m.kind == kindLeave {
			op = "leave"
		}
		return presenceScript.EvalSha(ctx, p, []string{k + ":meta", k + ":online", k, b.instanceConnsKey(), redisPrefix + "rooms"},
			op, m.fromConn, name, encodeRedisEvent(m), newEpoch(), m.room)
	}
	skip := ""
	if m.exclude != 0 {
		skip = strconv.FormatUint(m.exclude, 10)
	} else if m.fromConn != 0 && !b.h.cfg.includeSelf {
		skip = strconv.FormatUint(m.fromConn, 10)
	}
	return publishScript.EvalSha(ctx, p, []string{k + ":meta", k + ":history", k + ":online", k, redisPrefix + "rooms"},
		encodeRedisEvent(m), b.h.cfg.history, newEpoch(), skip, m.room)
}

// result reads the place of a published message from its script's reply.
func (b *redisBroker) result(m *chatMessage, cmd *redis.Cmd) (msgPlace, error) {
	if m.kind != kindMessage {
		return msgPlace{}, cmd.Err()
	}
	res, err := cmd.Slice()
	if err != nil {
		return msgPlace{}, err
	}
	if len(res) != 3 {
		return msgPlace{}, errBadEvent
	}
	seq, _ := res[0].(int64)
	receivers, _ := res[2].(int64)
	return msgPlace{id: m.id, seq: uint64(seq), epoch: fmt.Sprint(res[1]), receivers: int(max(receivers, 0))}, nil
}

// loadScripts loads the scripts into Redis, which forgets them when it
// restarts.
func (b *redisBroker) loadScripts(ctx context.Context) error {
	for _, s := range []*redis.Script{publishScript, presenceScript, snapshotScript, heartbeatScript} {
		if err := s.Load(ctx, b.rdb).Err(); err != nil {
			return fmt.Errorf("loading scripts: %w", err)
		}
	}
	return nil
}
