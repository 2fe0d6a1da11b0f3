-- item.lua: set the attributes of a SKU, at most once per event.
--
-- KEYS[1] item hash     stockcast:item:{sku}
-- KEYS[2] dedup marker  stockcast:f:{sku}:seen:<event_id>
-- ARGV    1 dedup ttl (s)   2 occurred_at (ms)   3 category   4 department
-- Returns {applied (0/1), category, department}. The latest event by
-- occurred_at wins, so a late event does not undo a newer one.
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
