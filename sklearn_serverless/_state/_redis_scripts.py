"""The Lua scripts of the Redis state store (see :mod:`._redis`): each runs
atomically on the server, in one round trip."""

#: Claims a worker's slot for a generation, while the fit runs (a call that
#: starts after the fit ended writes nothing). KEYS: alive, claim. ARGV:
#: token, key TTL (s). Returns 1 when the token owns the slot.
_CLAIM = """
if redis.call('exists', KEYS[1]) == 0 then return 0 end
redis.call('set', KEYS[2], ARGV[1], 'NX', 'EX', ARGV[2])
return redis.call('get', KEYS[2]) == ARGV[1] and 1 or 0
"""
#: Renews a worker's lease while the fit runs. KEYS: alive, lease. ARGV:
#: "generation:pid", lease (ms).
_BEAT = """
if redis.call('exists', KEYS[1]) == 1 then
  redis.call('set', KEYS[2], ARGV[1], 'PX', ARGV[2])
end
"""
#: Takes the lock (or finds it handed over) and reads the accumulator, or
#: queues this worker as a waiter (once: a retry after a 1 s wait re-queues).
#: The first partial result of a round (no accumulator yet, nobody waiting)
#: is written as the accumulator at once, with its arrival, and the lock is
#: left free: adding to nothing needs no second round trip.
#: KEYS: lock, accumulator, waiters, this worker's grant list, arrivals.
#: ARGV: token, expiry (ms), waiter entry, key TTL (s), this worker's partial
#: as a first accumulator ('' : no such shortcut), its arrival ('': none).
_ACQUIRE = """
local holder = redis.call('get', KEYS[1])
redis.call('lrem', KEYS[3], 0, ARGV[3])
if holder == ARGV[1] or not holder then
  redis.call('del', KEYS[4])
  if ARGV[5] ~= '' and redis.call('exists', KEYS[2]) == 0
      and redis.call('llen', KEYS[3]) == 0 then
    redis.call('set', KEYS[2], ARGV[5], 'EX', ARGV[4])
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
#: Pushes a round's note to every follower's inbox. KEYS: the inboxes.
#: ARGV: the note, key TTL (s).
_DELIVER = """
for i = 1, #KEYS do
  redis.call('rpush', KEYS[i], ARGV[1])
  redis.call('expire', KEYS[i], ARGV[2])
end
"""
#: A follower's lock-free partial, the field of its worker in the round's
#: hash; the contribution that completes the hash (the first time it does)
#: wakes the coordinator. KEYS: the round's slots, the arrivals list.
#: ARGV: partial, key TTL (s), worker, followers, the round's arrival.
_ARRIVE = """
local added = redis.call('hset', KEYS[1], ARGV[3], ARGV[1])
redis.call('expire', KEYS[1], ARGV[2])
if added == 1 and redis.call('hlen', KEYS[1]) == tonumber(ARGV[4]) then
  redis.call('rpush', KEYS[2], ARGV[5])
  redis.call('expire', KEYS[2], ARGV[2])
end
"""
#: Adds a worker to the started set while the fit is running (its 'alive'
#: key exists); a worker that starts after the fit has ended adds nothing.
#: KEYS: alive, started. ARGV: worker, key TTL (s).
_CHECK_IN = """
if redis.call('exists', KEYS[1]) == 0 then return 0 end
redis.call('sadd', KEYS[2], ARGV[1])
redis.call('expire', KEYS[2], ARGV[2])
return 1
"""
#: Releases the lock if this worker still owns it: to the first waiter, with
#: the accumulator pushed to its grant list, else by deleting it. KEYS: lock,
#: waiters, every worker's grant list. ARGV: token, expiry (ms), accumulator,
#: key TTL (s).
_RELEASE = """
if redis.call('get', KEYS[1]) ~= ARGV[1] then return 0 end
local entry = redis.call('lpop', KEYS[2])
if not entry then return redis.call('del', KEYS[1]) end
local at = string.find(entry, ' ', 1, true)
redis.call('set', KEYS[1], string.sub(entry, at + 1), 'PX', ARGV[2])
local grant = KEYS[3 + tonumber(string.sub(entry, 1, at - 1))]
redis.call('rpush', grant, ARGV[3])
redis.call('expire', grant, ARGV[4])
return 1
"""
