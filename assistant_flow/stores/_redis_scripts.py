"""The Lua scripts behind the Redis stores, each run atomically by Redis in one round trip.

Every script takes the lock key first and the record key second (both in one Cluster slot, see
:mod:`assistant_flow.stores.redis`), and every one is idempotent: redis-py may run a command
again after its connection dropped, and the second run reports the same success.
"""

from __future__ import annotations

__all__ = ["LOCK_AND_LOAD", "LOCK_LOST", "RENEW", "SAVED", "SAVE_AND_UNLOCK", "UNLOCK"]

# KEYS: lock, record. ARGV: owner token, lease ms.
# Returns {1, record or false} when the lock is ours (taken now, or by an earlier run of this
# same call that redis-py retried), {0, lock's remaining ms} otherwise.
# A free lock is taken with one SET NX (the common case: two calls in all).
LOCK_AND_LOAD = """
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then
  return {1, redis.call('GET', KEYS[2])}
end
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return {1, redis.call('GET', KEYS[2])}
end
return {0, redis.call('PTTL', KEYS[1])}
"""

# KEYS: lock, record. ARGV: owner token ('' when no lock is held), expected version,
# record JSON, ttl ms (0: none). Returns {status, version found (-1: unreadable)} with status
# 1 saved, 0 refused (another version), 2 refused (the lock is not the caller's any more).
# A record already equal to ARGV[3] was saved by an earlier run of this call: success again.
# Versions are compared below 2^53, where Lua's doubles hold integers exactly.
# The stored version is read without decoding the whole document when the record starts the
# way ConversationRecord.to_json writes it (format, conversationId without escapes, state,
# version: no earlier value can hold that text, so the match is the top-level version);
# anything else is decoded with cjson, as before. Decoding was most of the script's time
# for a record with a full inbound window.
SAVE_AND_UNLOCK = """
local current = redis.call('GET', KEYS[2])
local ours = ARGV[1] ~= '' and redis.call('GET', KEYS[1]) == ARGV[1]
if current == ARGV[3] then
  if ours then redis.call('DEL', KEYS[1]) end
  return {1, 0}
end
if ARGV[1] ~= '' and not ours then
  return {2, 0}
end
local found = 0
if current then
  local version = string.match(current,
    '^{"format":%d+,"conversationId":"[^"\\\\]*","state":"[%w_.]*","version":(%d+)[,}]')
  if version and (version == '0' or string.sub(version, 1, 1) ~= '0') then
    version = tonumber(version)
  else
    local ok, doc = pcall(cjson.decode, current)
    version = ok and type(doc) == 'table' and doc['version']
  end
  if type(version) == 'number' and version >= 0 and version <= tonumber(ARGV[5])
     and version == math.floor(version) then
    found = version
  else
    found = -1
  end
end
local saved = 0
if found == tonumber(ARGV[2]) then
  if tonumber(ARGV[4]) > 0 then
    redis.call('SET', KEYS[2], ARGV[3], 'PX', ARGV[4])
  else
    redis.call('SET', KEYS[2], ARGV[3])
  end
  saved = 1
end
if ours then redis.call('DEL', KEYS[1]) end
return {saved, found}
"""

# KEYS: lock, record. ARGV: owner token, ttl ms (0: none). Deletes the lock if it is ours and
# restarts the record's time to live.
UNLOCK = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('DEL', KEYS[1])
  if tonumber(ARGV[2]) > 0 then
    redis.call('PEXPIRE', KEYS[2], ARGV[2])
  end
  return 1
end
return 0
"""

# KEYS: lock. ARGV: owner token, lease ms. Extends the lease if it is still ours (1), else 0.
RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"""

# The status in SAVE_AND_UNLOCK's reply (0: refused, another version is stored).
SAVED, LOCK_LOST = 1, 2
