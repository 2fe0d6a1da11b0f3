-- Applies one event to a series' inventory position, exactly once, and
-- decides whether the position crossed below the reorder point.
--
-- KEYS[1]  stockcast:r:{sku|location}                 state hash
-- KEYS[2]  stockcast:r:{sku|location}:seen:<event_id> applied-event marker (hash)
-- ARGV[1]  marker TTL in seconds
-- ARGV[2]  change kind (see planning.ChangeKind)
-- ARGV[3]  quantity: demand (signed), return, snapshot on hand, adjustment delta, PO or receipt qty
-- ARGV[4]  snapshot reserved
-- ARGV[5]  purchase order id
-- ARGV[6]  purchase order expected day
-- ARGV[7]  reorder point, or "" when the forecast gave none
-- ARGV[8]  policy of the decision (opaque, recorded when crossed)
-- ARGV[9]  event id
-- ARGV[10] order-up-to level, or "" with no reorder point
-- ARGV[11] revise threshold: relative move of the order-up-to level that
--          revises an open proposal (0: never)
-- ARGV[12] event time, ns since the epoch, or "" when unknown
-- ARGV[13] purchase order supplier id
-- ARGV[14] journal window in ns: how late a snapshot may arrive and still
--          be reconciled at its event time
-- ARGV[15] learned lead time of the decision, "n mean variance" or "" (recorded when crossed)
-- ARGV[16] item category ("" = unchanged)
-- ARGV[17] decision rule: "" continuous review (crossings), "periodic" (R, S)
-- ARGV[18] (R, S): the latest review day on or before the event's day, or ""
-- ARGV[19] revise min units: smallest absolute move of the order-up-to
--          level that revises an open proposal for a new forecast
-- ARGV[20] revise interval in ns: a revision for a new forecast comes at
--          least this much event time after the series' last decision
-- ARGV[21] decision time: the event time, else the forecast's as_of, ns
--          since the epoch, or "" when unknown
-- ARGV[22] (R, S): "1" when ARGV[18] is the event's own day
-- KEYS[3]  stockcast:r:{sku|location}:journal   on-hand movements by event time (zset)
-- KEYS[4]  stockcast:r:{sku|location}:stockouts closed stockout periods, newest first (list)
-- ARGV[23] the event's offset in forecasts.v1, or "": with it no marker is
--          written; the series' applied log (KEYS[5]) recognises redeliveries
-- ARGV[24] its partition
-- ARGV[25] the offset of the partition's first record in the batch being
--          handled (the committed position under Kafka transactions)
-- KEYS[5]  stockcast:r:{sku|location}:applied  applied log (list), see below
-- KEYS[6]  optional state guard, which must exist: stockcast:state:replenishment
--          (live), or the rebuild lock (a rebuild) (pkg/recovery)
--
-- Returns {replayed (0|1), field1, value1, ...}: the outcome's fields. A
-- redelivered event returns the outcome as its first delivery recorded it,
-- so the caller rebuilds the identical decision.
--
-- Exactly once: an event without a position (ARGV[23] = "") is recorded in
-- a marker (KEYS[2], the outcome, for the dedup TTL). An event with one is
-- recorded in the applied log instead, one entry per event
-- {offset, partition, batch start, on_hand, on_order, backorders,
-- decision_seq, crossed, stockout_signal, reorder_point, policy, reason,
-- lead_time}: the entries of the series' last batch, whose newest is the
-- series' offset watermark. At a later batch's first event of the series the
-- entries before the batch start (committed) are dropped, in the script
-- that pushes that event's entry (the new watermark). An
-- event at or below the watermark returns its entry's outcome; without one
-- (older than the logged batch: committed and published before) it changes
-- nothing and decides nothing. A log of another partition (forecasts.v1's
-- partition count changed) is dropped. Markers are read in both cases.

-- Redis lost the state (restart without persistence, FLUSHALL): apply
-- nothing until it is rebuilt.
if KEYS[6] and redis.call('EXISTS', KEYS[6]) == 0 then
  return redis.error_reply('STATELOST replenishment state is not complete (' .. KEYS[6] .. ')')
end

local marker = redis.call('HGETALL', KEYS[2])
if #marker > 0 then
  return {1, unpack(marker)}
end

-- The outcome's fields in the script's reply order, from an applied log entry.
local function recorded(e)
  local r = {1, 'on_hand', e[4], 'on_order', e[5], 'backorders', e[6], 'decision_seq', e[7], 'crossed', e[8]}
  if e[9] ~= '' then
    table.insert(r, 'stockout_signal'); table.insert(r, e[9])
  end
  if e[8] == '1' then
    for i, f in ipairs({'reorder_point', 'policy', 'reason', 'lead_time'}) do
      table.insert(r, f); table.insert(r, e[9 + i])
    end
  end
  return r
end

local off = tonumber(ARGV[23])
local part, start = ARGV[24], tonumber(ARGV[25])
local new_batch = false
if off then
  local raw = redis.call('LINDEX', KEYS[5], -1)
  if raw then
    local newest = cmsgpack.unpack(raw)
    if newest[2] ~= part then
      -- The series moved to another partition: offsets do not compare.
      redis.call('DEL', KEYS[5])
      new_batch = true
    elseif off <= newest[1] then
      -- Applied before: in the log (the last batch, redelivered), or older
      -- than it (committed, its decisions published): nothing to do again.
      local n = redis.call('LLEN', KEYS[5])
      for i = n - 1, 0, -1 do
        local e = cmsgpack.unpack(redis.call('LINDEX', KEYS[5], i))
        if e[1] == off then return recorded(e) end
        if e[1] < off then break end
      end
      local cur = redis.call('HMGET', KEYS[1], 'on_hand', 'on_order', 'backorders', 'decision_seq')
      return {1, 'on_hand', cur[1] or '0', 'on_order', cur[2] or '0', 'backorders', cur[3] or '0',
        'decision_seq', cur[4] or '0', 'crossed', '0'}
    elseif newest[3] ~= start then
      -- The first event of a later batch: the entries before its start were
      -- committed. This event's entry becomes the watermark below.
      new_batch = true
      local head = redis.call('LINDEX', KEYS[5], 0)
      while head and cmsgpack.unpack(head)[1] < start do
        redis.call('LPOP', KEYS[5])
        head = redis.call('LINDEX', KEYS[5], 0)
      end
    end
  else
    new_batch = true
  end
end

-- Numbers round-trip exactly: the shortest of %.15g / %.17g that parses back.
local function num(x)
  if x == 0 then x = 0 end -- no "-0"
  local s = string.format('%.15g', x)
  if tonumber(s) ~= x then s = string.format('%.17g', x) end
  return s
end

local raw = redis.call('HMGET', KEYS[1], 'on_hand', 'on_order', 'backorders', 'below', 'decision_seq',
  'snap_at', 'open_order_up_to', 'stockout_since', 'review_day', 'stockout', 'stockout_own', 'decided_at')
local on_hand = tonumber(raw[1]) or 0
local on_order = tonumber(raw[2]) or 0
local backorders = tonumber(raw[3]) or 0
local below = raw[4] == '1'
local seq = tonumber(raw[5]) or 0
local snap_at = tonumber(raw[6])
local open_out = tonumber(raw[7])
local stockout_since = raw[8]
local had_since, had_open_out = raw[8] ~= false and raw[8] ~= nil, raw[7] ~= false and raw[7] ~= nil
local t = tonumber(ARGV[12])
local window = tonumber(ARGV[14]) or 0
local prev_on_hand, prev_back = on_hand, backorders
-- A movement before the latest applied count is in that count already; one
-- at the count's very time is not (the count is taken as that time begins).
local counted = t ~= nil and snap_at ~= nil and t < snap_at

-- Purchase order field: "<open qty> <expected day> <placed ns> <supplier>".
local function read_po(v)
  local open, day, placed, supplier = string.match(v, '^(%S+) (%S*) ?(%S*) ?(.*)$')
  if not open then open = string.match(v, '^(%S+)') end
  return tonumber(open) or 0, day or '', placed or '', supplier or ''
end

-- Online mean and variance (Welford) of lead times in the field "n mean m2".
local function learn(field, days)
  local v = redis.call('HGET', KEYS[1], field)
  local n, mean, m2 = 0, 0, 0
  if v then
    local a, b, c = string.match(v, '^(%S+) (%S+) (%S+)$')
    n, mean, m2 = tonumber(a) or 0, tonumber(b) or 0, tonumber(c) or 0
  end
  n = n + 1
  local delta = days - mean
  mean = mean + delta / n
  m2 = m2 + delta * (days - mean)
  redis.call('HSET', KEYS[1], field, tostring(n) .. ' ' .. num(mean) .. ' ' .. num(m2))
end

local kind = ARGV[2]
-- The service's own stockout events (below) come back through ingest: they
-- change nothing here.
if (kind == 'stockout_started' or kind == 'stockout_ended') and string.find(ARGV[9], '^replenishment%-stockout:') then
  kind = 'none'
end
-- A stockout period this service detected and published ("started" / "ended").
local signal = ''
local qty = tonumber(ARGV[3]) or 0
local po_field = 'po:' .. ARGV[5]

if kind == 'demand' and not counted then
  if qty > 0 then
    on_hand = on_hand - qty
    if on_hand < 0 then
      backorders = backorders - on_hand
      on_hand = 0
    end
  elseif qty < 0 then
    local back = -qty
    local cleared = math.min(backorders, back)
    backorders = backorders - cleared
    on_hand = on_hand + back - cleared
  end
elseif kind == 'return' and not counted then
  on_hand = on_hand + math.abs(qty)
elseif kind == 'snapshot' then
  if t ~= nil and snap_at ~= nil and t < snap_at then
    -- An older count than the one applied: it reconciles nothing.
  else
    -- The count is the stock at its event time: movements with a later
    -- event time that were applied before it arrived are added back.
    local d_on, d_back = 0, 0
    if t ~= nil then
      local later = redis.call('ZRANGEBYSCORE', KEYS[3], ARGV[12], '+inf')
      for _, m in ipairs(later) do
        local a, b = string.match(m, '^(%S+) (%S+)')
        d_on, d_back = d_on + (tonumber(a) or 0), d_back + (tonumber(b) or 0)
      end
      redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', '(' .. ARGV[12])
      snap_at = t
    end
    on_hand = qty + d_on
    backorders = (tonumber(ARGV[4]) or 0) + d_back
    if on_hand < 0 then
      backorders = backorders - on_hand
      on_hand = 0
    end
    if backorders < 0 then backorders = 0 end
  end
elseif kind == 'adjustment' and not counted then
  on_hand = math.max(0, on_hand + qty)
elseif kind == 'purchase_order' then
  -- The same PO placed again (amended) replaces its open quantity; 0 closes it.
  local v = redis.call('HGET', KEYS[1], po_field)
  local placed = ARGV[12]
  if v then
    local open, _, was_placed = read_po(v)
    on_order = math.max(0, on_order - open)
    if was_placed ~= '' then placed = was_placed end
  end
  if qty > 0 then
    on_order = on_order + qty
    redis.call('HSET', KEYS[1], po_field, num(qty) .. ' ' .. ARGV[6] .. ' ' .. placed .. ' ' .. ARGV[13])
  else
    redis.call('HDEL', KEYS[1], po_field)
  end
elseif kind == 'receipt' then
  if not counted then
    -- Goods received ship to the waiting (backordered) customers first.
    local filled = math.min(backorders, math.max(qty, 0))
    backorders = backorders - filled
    on_hand = on_hand + qty - filled
  end
  -- A receipt takes its quantity off its PO's open quantity; the PO closes
  -- when nothing is left open. Goods for an unknown PO were never on order.
  local v = redis.call('HGET', KEYS[1], po_field)
  if v then
    local open, day, placed, supplier = read_po(v)
    local got = math.min(open, math.max(qty, 0))
    on_order = math.max(0, on_order - got)
    if open - got <= 1e-9 then
      redis.call('HDEL', KEYS[1], po_field)
    else
      redis.call('HSET', KEYS[1], po_field, num(open - got) .. ' ' .. day .. ' ' .. placed .. ' ' .. supplier)
    end
    -- Each receipt is a lead-time sample: placed -> received, in days.
    local p = tonumber(placed)
    if p ~= nil and t ~= nil and t >= p then
      local days = (t - p) / 86400e9
      learn('lt', days)
      if supplier ~= '' then learn('lt:' .. supplier, days) end
    end
  end
elseif kind == 'item' then
  if ARGV[16] ~= '' then redis.call('HSET', KEYS[1], 'category', ARGV[16]) end
elseif kind == 'stockout_started' then
  -- The platform reports the stockout: it will report its end too.
  redis.call('HSET', KEYS[1], 'stockout', '1')
  redis.call('HDEL', KEYS[1], 'stockout_own')
  if not stockout_since then stockout_since = ARGV[12] end
elseif kind == 'stockout_ended' then
  redis.call('HSET', KEYS[1], 'stockout', '0')
  redis.call('HDEL', KEYS[1], 'stockout_own')
  if stockout_since then
    redis.call('LPUSH', KEYS[4], stockout_since .. ' ' .. ARGV[12])
    redis.call('LTRIM', KEYS[4], 0, 99)
    stockout_since = nil
  end
end

-- Journal the on-hand movement at its event time, for a later snapshot.
local d_on, d_back = on_hand - prev_on_hand, backorders - prev_back
if kind ~= 'snapshot' and t ~= nil and (d_on ~= 0 or d_back ~= 0) then
  redis.call('ZADD', KEYS[3], t, num(d_on) .. ' ' .. num(d_back) .. ' ' .. ARGV[9])
  redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', '(' .. string.format('%.0f', t - window))
end

-- Stockout periods: from on hand reaching 0 with demand waiting or taken
-- to 0 (or a stockout_started event) until stock is back.
if kind ~= 'stockout_started' and kind ~= 'stockout_ended' then
  -- A period the platform did not report (its stockout flag is not set)
  -- is published as stockout_started / stockout_ended for forecasting.
  if on_hand <= 0 and prev_on_hand > 0 and not stockout_since then
    stockout_since = ARGV[12]
    if raw[10] ~= '1' then
      signal = 'started'
      redis.call('HSET', KEYS[1], 'stockout_own', '1')
    end
  elseif on_hand > 0 and stockout_since then
    redis.call('LPUSH', KEYS[4], stockout_since .. ' ' .. ARGV[12])
    redis.call('LTRIM', KEYS[4], 0, 99)
    stockout_since = nil
    if raw[11] == '1' then
      signal = 'ended'
      redis.call('HDEL', KEYS[1], 'stockout_own')
    end
  end
end
if stockout_since then
  if stockout_since ~= raw[8] then redis.call('HSET', KEYS[1], 'stockout_since', stockout_since) end
elseif had_since then
  redis.call('HDEL', KEYS[1], 'stockout_since')
end
if snap_at ~= nil then
  redis.call('HSET', KEYS[1], 'snap_at', string.format('%.0f', snap_at))
end

-- One decision per crossing: fire when the position falls below the reorder
-- point while armed; re-arm once it is back at or above it. While below
-- (an open proposal), a new forecast revises the proposal when its
-- order-up-to level moved by more than the threshold share AND by at least
-- the min units, and the interval has passed (in event time) since the
-- series' last decision; a policy change revises at the threshold alone.
local position = on_hand + on_order - backorders
local crossed = false
local reason = ''
if ARGV[17] == 'periodic' then
  -- Periodic review (R, S): the series' first event on or after each
  -- review point decides (a review day without events is reviewed at the
  -- next event), when the position is below S (ARGV[7] = S); no crossing
  -- state. A series' first review point is taken only on its own day.
  if ARGV[7] ~= '' and ARGV[18] ~= '' and ARGV[18] ~= raw[9] then
    redis.call('HSET', KEYS[1], 'review_day', ARGV[18])
    if (raw[9] or ARGV[22] == '1') and position < tonumber(ARGV[7]) then
      seq = seq + 1
      crossed = true
      reason = (kind == 'policy') and 'policy_changed' or 'periodic_review'
    end
  end
  below = false
  if had_open_out then redis.call('HDEL', KEYS[1], 'open_order_up_to') end
elseif ARGV[7] ~= '' then
  local rop = tonumber(ARGV[7])
  local out = tonumber(ARGV[10]) or rop
  local thr = tonumber(ARGV[11]) or 0
  if position < rop then
    if not below then
      below = true
      seq = seq + 1
      crossed = true
      if kind == 'snapshot' or kind == 'adjustment' then
        reason = 'stock_corrected'
      elseif kind == 'policy' then
        reason = 'policy_changed'
      else
        reason = 'crossed'
      end
      open_out = out
    elseif thr > 0 and open_out ~= nil and math.abs(out - open_out) > thr * math.max(open_out, 1) then
      local revise = kind == 'policy'
      if not revise then
        local now, last = tonumber(ARGV[21]), tonumber(raw[12])
        local due = now == nil or last == nil or now >= last + (tonumber(ARGV[20]) or 0)
        revise = due and math.abs(out - open_out) >= (tonumber(ARGV[19]) or 0)
      end
      if revise then
        seq = seq + 1
        crossed = true
        reason = (kind == 'policy') and 'policy_changed' or 'forecast_changed'
        open_out = out
      end
    end
  else
    below = false
    open_out = nil
  end
  if crossed and ARGV[21] ~= '' then redis.call('HSET', KEYS[1], 'decided_at', ARGV[21]) end
  if open_out ~= nil then
    if crossed then redis.call('HSET', KEYS[1], 'open_order_up_to', num(open_out)) end
  elseif had_open_out then
    redis.call('HDEL', KEYS[1], 'open_order_up_to')
  end
end

local below_flag = below and '1' or '0'
if ARGV[7] ~= '' then redis.call('HSET', KEYS[1], 'reorder_point', ARGV[7]) end
redis.call('HSET', KEYS[1],
  'on_hand', num(on_hand), 'on_order', num(on_order), 'backorders', num(backorders),
  'below', below_flag, 'decision_seq', tostring(seq), 'last_event_id', ARGV[9])

local out = {
  'on_hand', num(on_hand), 'on_order', num(on_order), 'backorders', num(backorders),
  'decision_seq', tostring(seq), 'crossed', crossed and '1' or '0',
}
if signal ~= '' then
  table.insert(out, 'stockout_signal'); table.insert(out, signal)
end
if crossed then
  table.insert(out, 'reorder_point'); table.insert(out, ARGV[7])
  table.insert(out, 'policy'); table.insert(out, ARGV[8])
  table.insert(out, 'reason'); table.insert(out, reason)
  table.insert(out, 'lead_time'); table.insert(out, ARGV[15])
end
if off then
  local e = {off, part, start, num(on_hand), num(on_order), num(backorders), tostring(seq), crossed and '1' or '0', signal}
  if crossed then
    e[10], e[11], e[12], e[13] = ARGV[7], ARGV[8], reason, ARGV[15]
  end
  redis.call('RPUSH', KEYS[5], cmsgpack.pack(e))
  -- The log (and so the watermark) lives the dedup TTL after the series'
  -- last batch.
  if new_batch then redis.call('EXPIRE', KEYS[5], tonumber(ARGV[1])) end
else
  redis.call('HSET', KEYS[2], unpack(out))
  redis.call('EXPIRE', KEYS[2], tonumber(ARGV[1]))
end
return {0, unpack(out)}
