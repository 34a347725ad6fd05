-- write.lua: the fenced write of Refresh. If the caller still holds the
-- lock, it replaces the token hash, releases the lock and wakes the waiters;
-- otherwise it changes nothing.
--
-- KEYS[1]  the token hash
-- KEYS[2]  the lock string
-- ARGV[1]  the caller's owner token
-- ARGV[2]  the format version ("1"), stored in field v
-- ARGV[3]  the user key, stored in field k
-- ARGV[4]  the token value, stored in field t
-- ARGV[5]  ExpiresAt in Unix milliseconds ("" for none), stored in field e
-- ARGV[6]  the Unix millisecond at which Redis drops the hash (PEXPIREAT),
--          "" to keep it until it is overwritten
-- ARGV[7]  the key's wake name: the message PUBLISHed on ARGV[8], and a
--          channel of its own, on which "released" is PUBLISHed for the
--          waiters of earlier versions of the package
-- ARGV[8]  the store's wake channel (PREFIX .. "wake")
--
-- Returns 1 when it wrote, 0 when the caller no longer held the lock.
if redis.call('GET', KEYS[2]) ~= ARGV[1] then
  return 0
end
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], 'v', ARGV[2], 'k', ARGV[3], 't', ARGV[4], 'e', ARGV[5])
if ARGV[6] ~= '' then
  redis.call('PEXPIREAT', KEYS[1], ARGV[6])
end
redis.call('DEL', KEYS[2])
redis.call('PUBLISH', ARGV[8], ARGV[7])
redis.call('PUBLISH', ARGV[7], 'released')
return 1
