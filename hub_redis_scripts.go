package main

import "github.com/redis/go-redis/v9"

// The Redis broker's keys, all under one prefix:
//
//	wsx:room:ROOM            the room's channel: its events, in pos order
//	wsx:room:ROOM:meta       hash: epoch, seq (last message), pos (last event)
//	wsx:room:ROOM:history    list: the last --history events, as published
//	wsx:room:ROOM:online     hash: connection id → name, every process's clients
//	wsx:rooms                set: the rooms that ever had a client or a message
//	wsx:instances            sorted set: process number → last heartbeat (ms)
//	wsx:instance:N:conns     hash: connection id → room, the clients of process N
//	wsx:instance-seq         counter: process numbers
//	wsx:probe:N              process N's probe channel
//
// An event is published as "POS SEQ EPOCH HEADER\nDATA" (hub_redis_wire.go):
// the scripts number it, so that a room's order is Redis's, the same in
// every process. Each script runs atomically: numbering, history, online
// list and publish cannot be seen half done.
const redisPrefix = "wsx:"

// Lua shared by the scripts: the room's epoch, made from ARGV's if the room
// is new or Redis lost it (then its numbering starts again).
const luaEpoch = `
local function epoch(meta, new)
  local e = redis.call('HGET', meta, 'epoch')
  if not e then
    e = new
    redis.call('HSET', meta, 'epoch', e, 'seq', 0, 'pos', 0)
  end
  return e
end
`

// publishScript numbers a message, keeps it in the history and publishes
// it. KEYS: meta, history, online, channel, rooms set. ARGV: header and
// data, history length, new epoch, connection the message skips (or ""),
// room. Returns seq, epoch and the number of clients it goes to.
var publishScript = redis.NewScript(luaEpoch + `
local e = epoch(KEYS[1], ARGV[3])
local seq = redis.call('HINCRBY', KEYS[1], 'seq', 1)
local pos = redis.call('HINCRBY', KEYS[1], 'pos', 1)
local ev = pos .. ' ' .. seq .. ' ' .. e .. ' ' .. ARGV[1]
local n = tonumber(ARGV[2])
if n > 0 then
  redis.call('RPUSH', KEYS[2], ev)
  redis.call('LTRIM', KEYS[2], -n, -1)
end
redis.call('SADD', KEYS[5], ARGV[5])
redis.call('PUBLISH', KEYS[4], ev)
local receivers = redis.call('HLEN', KEYS[3])
if ARGV[4] ~= '' and redis.call('HEXISTS', KEYS[3], ARGV[4]) == 1 then
  receivers = receivers - 1
end
return {seq, e, receivers}
`)

// presenceScript adds a client to a room's online list or removes it, and
// publishes the join or leave only if that changed the list: a leave made
// twice (by the process and by a reaper) is told once. KEYS: meta, online,
// channel, the process's clients, rooms set. ARGV: "join" or "leave",
// connection id, name, header, new epoch, room. Returns 1 if the list
// changed.
var presenceScript = redis.NewScript(luaEpoch + `
local changed
if ARGV[1] == 'join' then
  changed = redis.call('HSET', KEYS[2], ARGV[2], ARGV[3])
  redis.call('HSET', KEYS[4], ARGV[2], ARGV[6])
  redis.call('SADD', KEYS[5], ARGV[6])
else
  changed = redis.call('HDEL', KEYS[2], ARGV[2])
  redis.call('HDEL', KEYS[4], ARGV[2])
end
if changed == 1 then
  local e = epoch(KEYS[1], ARGV[5])
  local pos = redis.call('HINCRBY', KEYS[1], 'pos', 1)
  redis.call('PUBLISH', KEYS[3], pos .. ' 0 ' .. e .. ' ' .. ARGV[4])
end
return changed
`)

// snapshotScript returns a room's epoch, seq, pos, history and online list
// at one moment. KEYS: meta, history, online. ARGV: new epoch, "1" to make
// the room if it is new (a follower) or "" not to (a view).
var snapshotScript = redis.NewScript(luaEpoch + `
local e
if ARGV[2] == '1' then
  e = epoch(KEYS[1], ARGV[1])
else
  e = redis.call('HGET', KEYS[1], 'epoch') or ''
end
local sp = redis.call('HMGET', KEYS[1], 'seq', 'pos')
return {e, sp[1] or '0', sp[2] or '0', redis.call('LRANGE', KEYS[2], 0, -1), redis.call('HGETALL', KEYS[3])}
`)

// heartbeatScript records that a process is alive, and makes the clients
// of processes silent for longer than the TTL leave: one script, so that
// exactly one survivor reaps a dead process and each of its clients gets
// exactly one leave. Time is Redis's, not the processes' clocks. KEYS: the
// instances set. ARGV: process number, TTL in ms, key prefix, new epoch.
// Returns 1 if the process was not in the set (reaped, or Redis lost it:
// it must add its clients again) and the number of clients reaped.
var heartbeatScript = redis.NewScript(luaEpoch + `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local fresh = redis.call('ZADD', KEYS[1], now, ARGV[1])
local dead = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now - tonumber(ARGV[2]))
local left = 0
for _, inst in ipairs(dead) do
  redis.call('ZREM', KEYS[1], inst)
  local ck = ARGV[3] .. 'instance:' .. inst .. ':conns'
  local conns = redis.call('HGETALL', ck)
  for i = 1, #conns, 2 do
    local conn, room = conns[i], conns[i + 1]
    local rk = ARGV[3] .. 'room:' .. room
    local name = redis.call('HGET', rk .. ':online', conn)
    if name then
      redis.call('HDEL', rk .. ':online', conn)
      local e = epoch(rk .. ':meta', ARGV[4])
      local pos = redis.call('HINCRBY', rk .. ':meta', 'pos', 1)
      local hdr = cjson.encode({k = 2, r = room, f = name, c = tonumber(conn), t = now})
      redis.call('PUBLISH', rk, pos .. ' 0 ' .. e .. ' ' .. hdr .. '\n')
      left = left + 1
    end
  end
  redis.call('DEL', ck)
end
return {fresh, left}
`)
