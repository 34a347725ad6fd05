-- swapclaim.lua: CompareAndSwapClaim. If the claim string holds the
-- caller's old value, it replaces it by the new one with a new expiry, or
-- deletes it; otherwise it changes nothing. Redis drops an expired claim
-- itself (a GET never sees it), so a late holder cannot bring one back.
--
-- KEYS[1]  the claim string
-- ARGV[1]  old: the value the caller holds
-- ARGV[2]  the new value, "" to delete the claim
-- ARGV[3]  the new time to live in milliseconds (ignored when deleting)
--
-- Returns 1 when it swapped (or deleted), 0 when the key held no live claim
-- equal to old. A key of another type than string holds no claim: pcall
-- turns GET's WRONGTYPE error into a value that is not equal to old.
if redis.pcall('GET', KEYS[1]) ~= ARGV[1] then
  return 0
end
if ARGV[2] == '' then
  redis.call('DEL', KEYS[1])
else
  redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
end
return 1
