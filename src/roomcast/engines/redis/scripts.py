"""The Lua scripts of the Redis stores: each write, and each read that must see one consistent
stream, runs as one script, so Redis applies it atomically whatever other nodes do."""

from __future__ import annotations

from typing import Final

__all__ = ["ADD", "ONCE", "PRESENCE_ADD", "PRESENCE_GET", "READ", "sharded"]

# Shared prologue: ARGV[1] is "now" in seconds, or empty to use the server's clock.
_NOW: Final = """
local now = tonumber(ARGV[1])
if not now then
  local t = redis.call('TIME')
  now = tonumber(t[1]) + tonumber(t[2]) / 1000000
end
local function deadline(seconds) return string.format('%.3f', now + seconds) end
local function ms(seconds) return math.max(1, math.ceil(seconds * 1000)) end
"""

# Returns the live position {epoch, top}; a missing or expired one is replaced by a new epoch
# (ARGV[2]) at offset 0, and the stream is dropped with it (its offsets belong to the old
# epoch), and so is the last version (it belongs to the old position).
_POSITION: Final = """
local function position(meta_ttl_if_new)
  local meta = redis.call('HMGET', KEYS[2], 'epoch', 'top', 'expires')
  if meta[1] and meta[3] and tonumber(meta[3]) > now then
    return meta[1], tonumber(meta[2])
  end
  redis.call('DEL', KEYS[1])
  redis.call('HDEL', KEYS[2], 'version', 'vepoch')
  if meta_ttl_if_new then
    redis.call('HSET', KEYS[2], 'epoch', ARGV[2], 'top', 0, 'expires', deadline(meta_ttl_if_new))
    redis.call('PEXPIRE', KEYS[2], ms(meta_ttl_if_new))
  end
  return ARGV[2], 0
end
"""

# KEYS: stream, meta, the idempotency record of ARGV[8]'s key (read and written only with a
# key), and the broker's pub/sub channel to announce it on (optional).
# ARGV: now, new epoch, size, ttl, meta_ttl, payload, the add's unique ID, seconds the key's
# record is kept ("" for no key), version (0 for none), version epoch.
# Returns {epoch, offset, suppressed}: 0 added at offset; 1 the key was seen, offset and epoch
# are the first publication's; 2 the version is not newer, they are the stream's top.
ADD: Final = (
    _NOW
    + _POSITION
    + """
local size, ttl, meta_ttl = tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
local epoch, top = position(nil)
-- A retry of the add that the position already holds (the client library sent it again after
-- losing the reply) adds nothing more, and is that add's success, not a suppressed repeat.
if redis.call('HGET', KEYS[2], 'add') == ARGV[7] then return {epoch, top, 0} end
if ARGV[8] ~= '' then
  local first = redis.call('HMGET', KEYS[3], 'epoch', 'offset', 'expires')
  if first[1] and tonumber(first[3]) > now then return {first[1], tonumber(first[2]), 1} end
end
local version = tonumber(ARGV[9])
if version > 0 then
  local last = redis.call('HMGET', KEYS[2], 'version', 'vepoch')
  local last_version = tonumber(last[1]) or 0
  if last_version > 0 and (ARGV[10] == '' or ARGV[10] == last[2]) and version <= last_version then
    return {epoch, top, 2}
  end
end
top = top + 1
redis.call('HSET', KEYS[2], 'epoch', epoch, 'top', top, 'expires', deadline(meta_ttl),
           'add', ARGV[7])
if version > 0 then redis.call('HSET', KEYS[2], 'version', ARGV[9], 'vepoch', ARGV[10]) end
redis.call('PEXPIRE', KEYS[2], ms(meta_ttl))
if ARGV[8] ~= '' then
  local keep = tonumber(ARGV[8])
  redis.call('HSET', KEYS[3], 'epoch', epoch, 'offset', top, 'expires', deadline(keep))
  redis.call('PEXPIRE', KEYS[3], ms(keep))
end
if KEYS[4] then
  redis.call('PUBLISH', KEYS[4], 'P' .. top .. ':' .. epoch .. ':' .. ARGV[6])
end
if size <= 0 or ttl <= 0 then
  redis.call('DEL', KEYS[1])
  return {epoch, top, 0}
end
-- Expiries never decrease along the stream, so expiry only ever trims a prefix (no gaps).
local expires = now + ttl
local last = redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', 1)[1]
if last then expires = math.max(expires, tonumber(last[2][2])) end
redis.call('XADD', KEYS[1], 'MAXLEN', size, top .. '-0',
           'e', string.format('%.3f', expires), 'd', ARGV[6])
redis.call('PEXPIRE', KEYS[1], ms(expires - now))
return {epoch, top, 0}
"""
)

# The broker's publish of a channel without history under an idempotency key.
# KEYS: the key's record, the channel's pub/sub channel. ARGV: payload, milliseconds the
# record is kept. Returns 1 published, 0 the key was seen.
ONCE: Final = """
if redis.call('SET', KEYS[1], '1', 'NX', 'PX', ARGV[2]) then
  redis.call('PUBLISH', KEYS[2], ARGV[1])
  return 1
end
return 0
"""

# KEYS: stream, meta. ARGV: now, new epoch, meta_ttl for a new position, since epoch or
# empty, 1 when since is given, 1 for reverse, first ID, last ID, limit (-1 for all).
# Returns {epoch, top, first kept offset, entries in the requested range}.
READ: Final = (
    _NOW
    + _POSITION
    + """
local epoch, top = position(tonumber(ARGV[3]))
local first_kept = top + 1
local cursor = '-'
while true do
  local batch = redis.call('XRANGE', KEYS[1], cursor, '+', 'COUNT', 64)
  local found = false
  for _, entry in ipairs(batch) do
    if tonumber(entry[2][2]) > now then
      first_kept = tonumber((string.match(entry[1], '^%d+')))
      found = true
      break
    end
  end
  if found or #batch < 64 then break end
  cursor = '(' .. batch[#batch][1]
end
redis.call('XTRIM', KEYS[1], 'MINID', first_kept)
local entries = {}
local limit = tonumber(ARGV[9])
if limit ~= 0 and (ARGV[5] ~= '1' or ARGV[4] == epoch) then
  local args
  if ARGV[6] == '1' then
    args = {'XREVRANGE', KEYS[1], ARGV[8], ARGV[7]}
  else
    args = {'XRANGE', KEYS[1], ARGV[7], ARGV[8]}
  end
  if limit > 0 then
    table.insert(args, 'COUNT')
    table.insert(args, limit)
  end
  entries = redis.call(unpack(args))
end
return {epoch, top, first_kept, entries}
"""
)

# KEYS: infos, expiries. ARGV: now, ttl, client, payload.
PRESENCE_ADD: Final = (
    _NOW
    + """
local ttl = tonumber(ARGV[2])
redis.call('HSET', KEYS[1], ARGV[3], ARGV[4])
redis.call('ZADD', KEYS[2], deadline(ttl), ARGV[3])
for _, key in ipairs(KEYS) do
  if redis.call('PTTL', key) < ms(ttl) then redis.call('PEXPIRE', key, ms(ttl)) end
end
"""
)

# KEYS: infos, expiries. ARGV: now. Drops the expired entries, returns HGETALL of the rest.
PRESENCE_GET: Final = (
    _NOW
    + """
local expired = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now)
for i = 1, #expired, 500 do
  redis.call('HDEL', KEYS[1], unpack(expired, i, math.min(i + 499, #expired)))
end
if #expired > 0 then redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now) end
return redis.call('HGETALL', KEYS[1])
"""
)


def sharded(source: str) -> str:
    """``source`` for a Redis Cluster: its publish is ``SPUBLISH``, to the sharded pub/sub
    channel in the slot of the script's keys, which only that slot's shard delivers."""
    return source.replace("redis.call('PUBLISH',", "redis.call('SPUBLISH',")
