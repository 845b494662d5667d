"""The Lua scripts (Redis 7.0 ``EVALSHA``): each does in one round trip, atomically,
what would otherwise be many commands or a read-then-write race.

``APPEND`` writes one flush of the log writer — the events of many streams, their
metadata when new, their expiry — as *one* command. Measured against a pipeline of one
``XADD`` per event (``python -m bench redis_log``), it costs the instance a fraction of
the CPU per event (redis-py packs and parses one command instead of thousands) and
Redis about the same. An ``XADD`` whose id is not above the stream's top (an append
retried after a failure that had in fact been applied) fails alone (``pcall``) and is
skipped: appends are idempotent.

``END`` appends a final event to a stream whose owner died, unless it has ended.
``LEASED`` counts the live leases other instances hold on a stream.
"""

from __future__ import annotations

__all__ = ["APPEND", "END", "LEASED"]

# KEYS[1]: the instance's set of running streams; then, per stream, its log and its meta.
# ARGV: maxlen, running ttl, ended ttl, then per stream:
#   stream id, flags ("n": new, "r": refresh the expiry, "e": ended), field count,
#   fields..., event count, then per event: entry id, payload, "1" if it ends the stream.
APPEND = """
local maxlen, running_ttl, ended_ttl = ARGV[1], ARGV[2], ARGV[3]
local a, added = 4, 0
for k = 2, #KEYS, 2 do
  local log, meta = KEYS[k], KEYS[k + 1]
  local id, flags, nfields = ARGV[a], ARGV[a + 1], tonumber(ARGV[a + 2])
  a = a + 3
  if nfields > 0 then
    redis.call('HSET', meta, unpack(ARGV, a, a + nfields - 1))
    a = a + nfields
  end
  local count = tonumber(ARGV[a])
  a = a + 1
  for j = 1, count do
    local r
    if ARGV[a + 2] == '1' then
      r = redis.pcall('XADD', log, 'MAXLEN', '~', maxlen, ARGV[a], 'e', ARGV[a + 1], 'end', '1')
    else
      r = redis.pcall('XADD', log, 'MAXLEN', '~', maxlen, ARGV[a], 'e', ARGV[a + 1])
    end
    if type(r) ~= 'table' then added = added + 1 end
    a = a + 3
  end
  if string.find(flags, 'e', 1, true) then
    redis.call('EXPIRE', log, ended_ttl)
    redis.call('EXPIRE', meta, ended_ttl)
    redis.call('SREM', KEYS[1], id)
  elseif string.find(flags, 'n', 1, true) or string.find(flags, 'r', 1, true) then
    redis.call('EXPIRE', log, running_ttl)
    redis.call('EXPIRE', meta, running_ttl)
    redis.call('SADD', KEYS[1], id)
  end
end
return added
"""

# KEYS: log, meta, the owner's set of running streams.
# ARGV: payload, ttl, stream id, a boot nonce to spare ("": none).
# Returns the seq of the appended event; -1: no log to end; -2: it had already ended;
# -3: spared (it belongs to the run named by the nonce).
END = """
if ARGV[4] ~= '' and redis.call('HGET', KEYS[2], 'boot') == ARGV[4] then return -3 end
local top = redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', 1)
redis.call('SREM', KEYS[3], ARGV[3])
if #top == 0 then return -1 end
local fields = top[1][2]
for i = 1, #fields, 2 do
  if fields[i] == 'end' then return -2 end
end
local seq = tonumber(string.match(top[1][1], '%-(%d+)$')) + 1
redis.call('XADD', KEYS[1], '1-' .. seq, 'e', ARGV[1], 'end', '1')
redis.call('EXPIRE', KEYS[1], ARGV[2])
redis.call('EXPIRE', KEYS[2], ARGV[2])
return seq
"""

# KEYS[1]: the stream's leasers. ARGV[1]: the prefix of its lease keys.
# Returns how many instances hold a live lease (and forgets those whose lease expired).
LEASED = """
local held = 0
for _, who in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  if redis.call('EXISTS', ARGV[1] .. who) == 1 then
    held = held + 1
  else
    redis.call('SREM', KEYS[1], who)
  end
end
return held
"""
