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
--
-- Returns {replayed (0|1), field1, value1, ...}: the marker's fields. A
-- redelivered event returns the marker as the first delivery wrote it, so
-- the caller rebuilds the identical decision.

local marker = redis.call('HGETALL', KEYS[2])
if #marker > 0 then
  return {1, unpack(marker)}
end

-- Numbers round-trip exactly: the shortest of %.15g / %.17g that parses back.
local function num(x)
  if x == 0 then x = 0 end -- no "-0"
  local s = string.format('%.15g', x)
  if tonumber(s) ~= x then s = string.format('%.17g', x) end
  return s
end

local raw = redis.call('HMGET', KEYS[1], 'on_hand', 'on_order', 'backorders', 'below', 'decision_seq')
local on_hand = tonumber(raw[1]) or 0
local on_order = tonumber(raw[2]) or 0
local backorders = tonumber(raw[3]) or 0
local below = raw[4] == '1'
local seq = tonumber(raw[5]) or 0

local kind = ARGV[2]
local qty = tonumber(ARGV[3]) or 0
local po_field = 'po:' .. ARGV[5]

if kind == 'demand' then
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
elseif kind == 'return' then
  on_hand = on_hand + math.abs(qty)
elseif kind == 'snapshot' then
  -- A count reconciles whatever drift the event stream accumulated.
  on_hand = qty
  backorders = tonumber(ARGV[4]) or 0
elseif kind == 'adjustment' then
  on_hand = math.max(0, on_hand + qty)
elseif kind == 'purchase_order' then
  -- The same PO placed again (amended) replaces its open quantity.
  local open = redis.call('HGET', KEYS[1], po_field)
  if open then
    on_order = math.max(0, on_order - (tonumber(string.match(open, '^(%S+)')) or 0))
  end
  on_order = on_order + qty
  redis.call('HSET', KEYS[1], po_field, num(qty) .. ' ' .. ARGV[6])
elseif kind == 'receipt' then
  on_hand = on_hand + qty
  -- Closing the PO removes its open quantity; goods for an unknown PO were
  -- never on order.
  local open = redis.call('HGET', KEYS[1], po_field)
  if open then
    on_order = math.max(0, on_order - (tonumber(string.match(open, '^(%S+)')) or 0))
    redis.call('HDEL', KEYS[1], po_field)
  end
elseif kind == 'stockout_started' then
  redis.call('HSET', KEYS[1], 'stockout', '1')
elseif kind == 'stockout_ended' then
  redis.call('HSET', KEYS[1], 'stockout', '0')
end

-- One decision per crossing: fire when the position falls below the reorder
-- point while armed; re-arm once it is back at or above it.
local position = on_hand + on_order - backorders
local crossed = false
if ARGV[7] ~= '' then
  local rop = tonumber(ARGV[7])
  if position < rop then
    if not below then
      below = true
      seq = seq + 1
      crossed = true
    end
  else
    below = false
  end
  redis.call('HSET', KEYS[1], 'reorder_point', ARGV[7])
end

local below_flag = below and '1' or '0'
redis.call('HSET', KEYS[1],
  'on_hand', num(on_hand), 'on_order', num(on_order), 'backorders', num(backorders),
  'below', below_flag, 'decision_seq', tostring(seq), 'last_event_id', ARGV[9])

local out = {
  'on_hand', num(on_hand), 'on_order', num(on_order), 'backorders', num(backorders),
  'decision_seq', tostring(seq), 'crossed', crossed and '1' or '0',
}
if crossed then
  table.insert(out, 'reorder_point'); table.insert(out, ARGV[7])
  table.insert(out, 'policy'); table.insert(out, ARGV[8])
end
redis.call('HSET', KEYS[2], unpack(out))
redis.call('EXPIRE', KEYS[2], tonumber(ARGV[1]))
return {0, unpack(out)}
