"""The Lua scripts of the Redis state store (see :mod:`._redis`): each runs
atomically on the server, in one round trip. A script that writes what a
worker of a replaced generation must not write first compares the fit's
generation key with the writer's (no key: generation 0)."""

#: Lua: the writer's generation (its argument ``n``) is the current one.
_CURRENT = "(redis.call('get', KEYS[{key}]) or '0') == ARGV[{arg}]"

#: Claims a worker's slot for a generation, while the fit runs (a call that
#: starts after the fit ended writes nothing). KEYS: alive, claim. ARGV:
#: token, key TTL (s). Returns 1 when the token owns the slot.
_CLAIM = """
if redis.call('exists', KEYS[1]) == 0 then return 0 end
redis.call('set', KEYS[2], ARGV[1], 'NX', 'EX', ARGV[2])
return redis.call('get', KEYS[2]) == ARGV[1] and 1 or 0
"""
#: Renews a worker's lease while the fit runs and its generation is the
#: current one. KEYS: alive, lease, generation. ARGV: pid, lease (ms),
#: generation. Returns 1 when renewed.
_BEAT = """
if redis.call('exists', KEYS[1]) == 1 and """ + _CURRENT.format(key=3, arg=3) + """ then
  redis.call('set', KEYS[2], ARGV[1], 'PX', ARGV[2])
  return 1
end
return 0
"""
#: Takes the lock (or finds it handed over) and reads the accumulator, or
#: queues this worker as a waiter (once: a retry after a 1 s wait re-queues).
#: The first partial result of a round (no accumulator yet, nobody waiting)
#: is written as the accumulator at once, with its arrival, and the lock is
#: left free: adding to nothing needs no second round trip. A worker whose
#: partial is in the accumulator already (a member of the round) adds
#: nothing: each worker's partial counts once per round.
#: KEYS: lock, accumulator, waiters, this worker's grant list, arrivals,
#: the round's members, generation. ARGV: token, expiry (ms), waiter entry,
#: key TTL (s), this worker's partial as a first accumulator ('' : no such
#: shortcut), its arrival ('': none), worker, generation.
#: Returns {-1}: a replaced generation; {3}: already counted; {2}: written
#: as the first partial; {1, accumulator}: the lock is taken; {0}: queued.
_ACQUIRE = """
if not (""" + _CURRENT.format(key=7, arg=8) + """) then return {-1} end
redis.call('lrem', KEYS[3], 0, ARGV[3])
if redis.call('sismember', KEYS[6], ARGV[7]) == 1 then return {3} end
local holder = redis.call('get', KEYS[1])
if holder == ARGV[1] or not holder then
  redis.call('del', KEYS[4])
  if ARGV[5] ~= '' and redis.call('exists', KEYS[2]) == 0
      and redis.call('llen', KEYS[3]) == 0 then
    redis.call('set', KEYS[2], ARGV[5], 'EX', ARGV[4])
    redis.call('sadd', KEYS[6], ARGV[7])
    redis.call('expire', KEYS[6], ARGV[4])
    if ARGV[6] ~= '' then
      redis.call('rpush', KEYS[5], ARGV[6])
      redis.call('expire', KEYS[5], ARGV[4])
    end
    if holder then redis.call('del', KEYS[1]) end
    return {2}
  end
  redis.call('set', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return {1, redis.call('get', KEYS[2])}
end
redis.call('rpush', KEYS[3], ARGV[3])
redis.call('expire', KEYS[3], ARGV[4])
return {0}
"""
#: Publishes a round while the publisher's generation is the current one:
#: its message (kept for replacement workers), the previous round's record,
#: the setup copy, the round number; deletes finished rounds' keys; pushes
#: the round's note to every follower's inbox. One script: 2 x (W-1)
#: pipelined commands cost the coordinator 1.2 ms of CPU at 64 workers.
#: KEYS: generation, message, records, setup, round, then ARGV[10] keys to
#: delete, then the inboxes. ARGV: generation, message, record, '1' when
#: there is a record, its field, '1' for a setup message, the round, the
#: note, key TTL (s), how many keys to delete.
#: Returns 1, or 0 for a replaced generation (nothing written).
_PUBLISH = """
if not (""" + _CURRENT.format(key=1, arg=1) + """) then return 0 end
local ttl = ARGV[9]
redis.call('set', KEYS[2], ARGV[2], 'EX', ttl)
if ARGV[4] == '1' then
  redis.call('hset', KEYS[3], ARGV[5], ARGV[3])
  redis.call('expire', KEYS[3], ttl)
end
if ARGV[6] == '1' then
  redis.call('hset', KEYS[4], ARGV[7], ARGV[2])
  redis.call('expire', KEYS[4], ttl)
end
local stale = tonumber(ARGV[10])
for i = 6, 5 + stale do redis.call('del', KEYS[i]) end
for i = 6 + stale, #KEYS do
  redis.call('rpush', KEYS[i], ARGV[8])
  redis.call('expire', KEYS[i], ttl)
end
redis.call('set', KEYS[5], ARGV[7], 'EX', ttl)
return 1
"""
#: A follower's lock-free partial, the field of its worker in the round's
#: hash; the contribution that completes the hash (the first time it does)
#: wakes the coordinator. KEYS: the round's slots, the arrivals list,
#: generation. ARGV: partial, key TTL (s), worker, followers, the round's
#: arrival, generation. Returns 0 for a replaced generation.
_ARRIVE = """
if not (""" + _CURRENT.format(key=3, arg=6) + """) then return 0 end
local added = redis.call('hset', KEYS[1], ARGV[3], ARGV[1])
redis.call('expire', KEYS[1], ARGV[2])
if added == 1 and redis.call('hlen', KEYS[1]) == tonumber(ARGV[4]) then
  redis.call('rpush', KEYS[2], ARGV[5])
  redis.call('expire', KEYS[2], ARGV[2])
end
return 1
"""
#: Adds a worker to the started set while the fit is running (its 'alive'
#: key exists) and its generation is the current one; a worker that starts
#: after the fit has ended adds nothing. KEYS: alive, started, generation.
#: ARGV: worker, key TTL (s), generation. Returns 0: the fit is over,
#: -1: a replaced generation, 1: checked in.
_CHECK_IN = """
if redis.call('exists', KEYS[1]) == 0 then return 0 end
if not (""" + _CURRENT.format(key=3, arg=3) + """) then return -1 end
redis.call('sadd', KEYS[2], ARGV[1])
redis.call('expire', KEYS[2], ARGV[2])
return 1
"""
#: Releases the lock if this worker still owns it: to the first waiter whose
#: partial is not in the accumulator yet, with the accumulator pushed to its
#: grant list, else by deleting it; a waiter already counted gets COUNTED.
#: KEYS: lock, waiters, the round's members, every worker's grant list.
#: ARGV: token, expiry (ms), accumulator, key TTL (s).
_RELEASE = """
if redis.call('get', KEYS[1]) ~= ARGV[1] then return 0 end
while true do
  local entry = redis.call('lpop', KEYS[2])
  if not entry then return redis.call('del', KEYS[1]) end
  local at = string.find(entry, ' ', 1, true)
  local worker = string.sub(entry, 1, at - 1)
  local grant = KEYS[4 + tonumber(worker)]
  if redis.call('sismember', KEYS[3], worker) == 1 then
    redis.call('rpush', grant, '""" + "counted" + """')
    redis.call('expire', grant, ARGV[4])
  else
    redis.call('set', KEYS[1], string.sub(entry, at + 1), 'PX', ARGV[2])
    redis.call('rpush', grant, ARGV[3])
    redis.call('expire', grant, ARGV[4])
    return 1
  end
end
"""
