-- set.lua: the unconditional write of Set. It replaces the token hash
-- (whatever was stored there, of whatever type) without looking at the
-- lock.
--
-- KEYS[1]  the token hash
-- ARGV[1]  the format version ("1"), stored in field v
-- ARGV[2]  the user key, stored in field k
-- ARGV[3]  the token value, stored in field t
-- ARGV[4]  ExpiresAt in Unix milliseconds ("" for none), stored in field e
-- ARGV[5]  the Unix millisecond at which Redis drops the hash (PEXPIREAT),
--          "" to keep it until it is overwritten
--
-- Returns 1.
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], 'v', ARGV[1], 'k', ARGV[2], 't', ARGV[3], 'e', ARGV[4])
if ARGV[5] ~= '' then
  redis.call('PEXPIREAT', KEYS[1], ARGV[5])
end
return 1
