-- item.lua: set the attributes of a SKU, at most once per event.
--
-- KEYS[1] item hash     stockcast:item:{sku}
-- KEYS[2] dedup marker  stockcast:f:{sku}:seen:<event_id>
-- KEYS[3] state guard   stockcast:state:feature (live), or the rebuild lock
-- ARGV    1 dedup ttl (s)   2 occurred_at (ms)   3 category   4 department
--         5 '' (live: the guard must exist) or the rebuild lock's token
-- Returns {applied (0/1), category, department}. The latest event by
-- occurred_at wins, so a late event does not undo a newer one.
local guard = redis.call('GET', KEYS[3])
if not guard or (ARGV[5] ~= '' and guard ~= ARGV[5]) then
  return redis.error_reply('STATELOST feature state is not complete (' .. KEYS[3] .. ')')
end
if redis.call('SET', KEYS[2], '1', 'NX', 'EX', ARGV[1]) then
  local at = tonumber(ARGV[2])
  local cur = tonumber(redis.call('HGET', KEYS[1], 'at'))
  if cur == nil or at >= cur then
    redis.call('HSET', KEYS[1], 'category', ARGV[3], 'department', ARGV[4], 'at', ARGV[2])
  end
  local item = redis.call('HMGET', KEYS[1], 'category', 'department')
  return {1, item[1] or '', item[2] or ''}
end
local item = redis.call('HMGET', KEYS[1], 'category', 'department')
return {0, item[1] or '', item[2] or ''}
