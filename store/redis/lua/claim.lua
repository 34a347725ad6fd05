-- claim.lua: Claim on a server that refuses SET with both NX and GET (Redis
-- before 7.0), the same atomic step in a script: create the claim if the
-- key holds none, and return what the key holds after the call.
--
-- KEYS[1]  the claim string (its value, with a PX expiry)
-- ARGV[1]  the caller's claim value
-- ARGV[2]  its time to live in milliseconds
--
-- Returns the live claim's value when the key held one (nothing written),
-- otherwise ARGV[1], which it stored with PX ARGV[2].
local cur = redis.call('GET', KEYS[1])
if cur then
  return cur
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return ARGV[1]
