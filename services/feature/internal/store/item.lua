-- item.lua: set the attributes of a SKU, at most once per event, and give a
-- redelivered event the attributes of its first application.
--
-- KEYS[1] item hash     stockcast:item:{sku}
-- KEYS[2] dedup marker  stockcast:f:{sku}:seen:<event_id>
-- KEYS[3] state guard   stockcast:state:feature (live), or the rebuild lock
-- KEYS[4] undo log      stockcast:item:{sku}:undo
-- ARGV    1 dedup ttl (s)   2 occurred_at (ms)   3 category   4 department
--         5 '' (live: the guard must exist) or the rebuild lock's token
--         6 the event's offset in demand.v1, or '' (no undo log: rebuild)
--         7 its partition   8 the offset of the partition's first record in
--           the batch (the committed position)   9 event_id
--         10 'rollback': only undo the entries at offsets >= ARGV[6] of
--            this partition (before a series event of this SKU reads the
--            attributes, so it reads them as its first application did)
--         11 '1': write a dedup marker per event (as in series.lua; without a
--            position too); else markers are only read
-- Returns {applied (0/1), category, department, events rolled back}. The
-- latest event by occurred_at wins, so a late event does not undo a newer
-- one. The undo log works as in series.lua: an entry per applied event,
-- {offset, partition, batch start, event id, old category, department, at
-- (false: the hash did not exist)}. Its newest entry is the SKU's offset
-- watermark (series.lua): kept when older batches are dropped.
local guard = redis.call('GET', KEYS[3])
if not guard or (ARGV[5] ~= '' and guard ~= ARGV[5]) then
  return redis.error_reply('STATELOST feature state is not complete (' .. KEYS[3] .. ')')
end
local undo = KEYS[4]
local off = tonumber(ARGV[6])
local part = ARGV[7]
local start = tonumber(ARGV[8])
local rolled = 0
local handled = false -- at or below the watermark, not in the log
-- The marker of an event of this SKU: KEYS[2] holds this event's.
local seen = string.sub(KEYS[2], 1, #KEYS[2] - #ARGV[9])
if off then
  while true do
    local raw = redis.call('LINDEX', undo, -1)
    if not raw then break end
    local e = cmsgpack.unpack(raw)
    if e[2] ~= part then
      -- Another partition: offsets do not compare. For an item event the
      -- SKU moved to this partition: an old log. A series event (rollback)
      -- leaves it.
      if ARGV[10] ~= 'rollback' then redis.call('DEL', undo) end
      break
    end
    if off < e[3] then
      -- Older than the start of the logged batch, which was committed:
      -- handled before.
      handled = true
      break
    end
    if e[1] < off then break end
    redis.call('RPOP', undo)
    redis.call('DEL', seen .. e[4])
    rolled = rolled + 1
    if e[5] == false then
      redis.call('DEL', KEYS[1])
    else
      redis.call('HSET', KEYS[1], 'category', e[5], 'department', e[6], 'at', e[7])
    end
  end
  if ARGV[10] == 'rollback' then return {0, '', '', rolled} end
  -- Entries older than the batch start were committed: drop them, but the
  -- newest (the watermark).
  local n = redis.call('LLEN', undo)
  local head = redis.call('LINDEX', undo, 0)
  while n > 1 and head and cmsgpack.unpack(head)[1] < start do
    redis.call('LPOP', undo)
    n = n - 1
    head = redis.call('LINDEX', undo, 0)
  end
end
if ARGV[10] == 'rollback' then return {0, '', '', rolled} end
local fresh
if handled then
  fresh = false
elseif ARGV[11] == '1' or not off then
  fresh = redis.call('SET', KEYS[2], '1', 'NX', 'EX', ARGV[1])
else
  fresh = redis.call('EXISTS', KEYS[2]) == 0
end
if fresh then
  local at = tonumber(ARGV[2])
  local was = redis.call('HMGET', KEYS[1], 'category', 'department', 'at')
  local cur = tonumber(was[3])
  if off then
    redis.call('RPUSH', undo, cmsgpack.pack({off, part, start, ARGV[9], was[1], was[2], was[3]}))
    redis.call('EXPIRE', undo, ARGV[1])
  end
  if cur == nil or at >= cur then
    redis.call('HSET', KEYS[1], 'category', ARGV[3], 'department', ARGV[4], 'at', ARGV[2])
  end
  local item = redis.call('HMGET', KEYS[1], 'category', 'department')
  return {1, item[1] or '', item[2] or '', rolled}
end
local item = redis.call('HMGET', KEYS[1], 'category', 'department')
return {0, item[1] or '', item[2] or '', rolled}
