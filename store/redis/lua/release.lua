-- release.lua: releases the refresh lock if the caller still holds it, and
-- then wakes the waiters; a lock that expired or was taken over is left
-- alone.
--
-- KEYS[1]  the lock string
-- ARGV[1]  the caller's owner token
-- ARGV[2]  the key's wake name: the message PUBLISHed on ARGV[3], and a
--          channel of its own, on which "released" is PUBLISHed for the
--          waiters of earlier versions of the package
-- ARGV[3]  the store's wake channel (PREFIX .. "wake")
--
-- Returns 1 when it released the lock, 0 when the caller did not hold it.
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('DEL', KEYS[1])
  redis.call('PUBLISH', ARGV[3], ARGV[2])
  redis.call('PUBLISH', ARGV[2], 'released')
  return 1
end
return 0
