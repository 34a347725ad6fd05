-- acquire.lua: one attempt of Refresh. It returns the stored token when that
-- token is well formed and differs from the caller's stale value (somebody
-- already refreshed: no lock is needed), and otherwise tries to take the
-- refresh lock, all in one atomic step.
--
-- KEYS[1]  the token hash (fields v, k, t, e: see format.go)
-- KEYS[2]  the lock string: the holder's owner token, set with a PX lease
-- ARGV[1]  the caller's owner token (random, unique per Refresh call)
-- ARGV[2]  the lease in milliseconds
-- ARGV[3]  stale: the token value the caller saw ("" when it saw none)
-- ARGV[4]  the format version the caller reads and writes ("1")
-- ARGV[5]  the user key, which a well-formed token hash holds in field k
-- ARGV[6]  "1" when the caller found the stored token undecodable and means
--          to replace it (skip the "fresh" answer), "0" otherwise
--
-- Returns one of
--   {"fresh", 0, v, k, t, e}  the stored fields; the lock was not touched
--   {"locked", 0}             the caller now holds the lock (it took it
--                             now, or in an earlier try of this same
--                             attempt whose reply was lost)
--   {"held", pttl}            another owner holds the lock for pttl more
--                             milliseconds (-1: the lock has no expiry)
local v, k, t, e = false, false, false, false
if redis.call('TYPE', KEYS[1]).ok == 'hash' then
  local f = redis.call('HMGET', KEYS[1], 'v', 'k', 't', 'e')
  v, k, t, e = f[1], f[2], f[3], f[4]
end
if ARGV[6] ~= '1' and v == ARGV[4] and k == ARGV[5] and t and t ~= '' and t ~= ARGV[3]
    and e and string.match(e, '^%-?%d*$') then
  return {'fresh', 0, v, k, t, e}
end
local owner = redis.call('GET', KEYS[2])
if owner == ARGV[1] then
  -- A retried attempt (the reply to the first was lost) that took the lock.
  return {'locked', 0}
end
if not owner then
  redis.call('SET', KEYS[2], ARGV[1], 'PX', ARGV[2])
  return {'locked', 0}
end
return {'held', redis.call('PTTL', KEYS[2])}
