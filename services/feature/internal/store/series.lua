-- series.lua: apply one event to a series' feature hash, at most once.
--
-- KEYS[1] series hash   stockcast:f:{sku|location}
-- KEYS[2] dedup marker  stockcast:f:{sku|location}:seen:<event_id>
-- KEYS[3] state guard   stockcast:state:feature (live), or the rebuild lock
-- ARGV    1 dedup ttl (s)   2 kind   3 day number   4 occurred_at (ms)   5 event_id
--         6 hour (UTC)      7 quantity (milli-units) or price   8 promotion id
--         9 promotion start (ms)   10 promotion end (ms)
--         11 '' (live: the guard must exist) or the rebuild lock's token
-- Returns {applied (0/1), note, HGETALL of the series after the event}; note
-- is '' or why the day's bucket was not changed ('outside_ring', 'day_overflow').
--
-- Layout (see README.md): 'days' is a ring of 400 little-endian int32 day
-- totals in milli-units, slot = day mod 400, ending at day 'end'; 'outdays'
-- is a 400-bit stockout bitmap over the same slots; 'hours' holds 24
-- little-endian doubles (placed milli-units per UTC hour, all time).
local RING = 400
local INT32_MAX, INT32_MIN = 2147483647, -2147483648
local series = KEYS[1]

-- Redis lost the state (restart without persistence, FLUSHALL): write
-- nothing until it is rebuilt (pkg/recovery).
local guard = redis.call('GET', KEYS[3])
if not guard or (ARGV[11] ~= '' and guard ~= ARGV[11]) then
  return redis.error_reply('STATELOST feature state is not complete (' .. KEYS[3] .. ')')
end

if not redis.call('SET', KEYS[2], '1', 'NX', 'EX', ARGV[1]) then
  return {0, '', redis.call('HGETALL', series)}
end

local kind = ARGV[2]
local day = tonumber(ARGV[3])
local at = tonumber(ARGV[4])

local cur = redis.call('HMGET', series, 'end', 'days', 'outdays', 'out', 'since', 'latest_at')
local last_day = tonumber(cur[1])
local days = cur[2] or string.rep('\0', RING * 4)
local bits = {string.byte(cur[3] or string.rep('\0', RING / 8), 1, -1)}
local out = cur[4] == '1'
local since = tonumber(cur[5])
local latest_at = tonumber(cur[6])
local set = {}
local note = ''

local function put(field, value)
  set[#set + 1] = field
  set[#set + 1] = value
end

local function slot(d) return d % RING end

local function set_bit(d, on)
  local s = slot(d)
  local i = math.floor(s / 8) + 1
  local m = bit.lshift(1, s % 8)
  if on then bits[i] = bit.bor(bits[i], m) else bits[i] = bit.band(bits[i], bit.bnot(m)) end
end

-- zero_slots clears n slots of the day ring from slot 'from' on, wrapping.
local function zero_slots(from, n)
  if from + n <= RING then
    days = string.sub(days, 1, from * 4) .. string.rep('\0', n * 4) .. string.sub(days, (from + n) * 4 + 1)
  else
    local wrap = from + n - RING
    days = string.rep('\0', wrap * 4) .. string.sub(days, wrap * 4 + 1, from * 4) .. string.rep('\0', (RING - from) * 4)
  end
end

-- Move the ring forward to a newer day: the slots of the new days held days
-- 400 days older. While a stockout lasts, every new day is a stockout day.
local in_ring = true
if last_day == nil then
  last_day = day
elseif day > last_day then
  local n = math.min(day - last_day, RING)
  zero_slots(slot(last_day + 1), n)
  for d = day - n + 1, day do set_bit(d, out) end
  last_day = day
elseif day <= last_day - RING then
  in_ring = false
  note = 'outside_ring'
end
if since == nil or day < since then put('since', day) end

if kind == 'demand' then
  local q = tonumber(ARGV[7])
  if in_ring then
    local p = slot(day) * 4 + 1
    local v = struct.unpack('<i4', days, p) + q
    if v > INT32_MAX or v < INT32_MIN then
      v = math.max(INT32_MIN, math.min(INT32_MAX, v))
      note = 'day_overflow'
    end
    days = string.sub(days, 1, p - 1) .. struct.pack('<i4', v) .. string.sub(days, p + 4)
  end
  if q > 0 then
    local hours = redis.call('HGET', series, 'hours') or string.rep('\0', 24 * 8)
    local p = tonumber(ARGV[6]) * 8 + 1
    local v = struct.unpack('<d', hours, p) + q
    put('hours', string.sub(hours, 1, p - 1) .. struct.pack('<d', v) .. string.sub(hours, p + 8))
    local sale = redis.call('HMGET', series, 'first', 'last')
    if sale[1] == false or day < tonumber(sale[1]) then put('first', day) end
    if sale[2] == false or day > tonumber(sale[2]) then put('last', day) end
  end
  redis.call('HINCRBY', series, 'total', ARGV[7])
elseif kind == 'stockout_started' or kind == 'stockout_ended' then
  -- The latest event by occurred_at decides the current state; the event's
  -- day was (partly) out of stock either way.
  local out_at = tonumber(redis.call('HGET', series, 'out_at'))
  if out_at == nil or at >= out_at then
    if kind == 'stockout_started' then put('out', '1') else put('out', '0') end
    put('out_at', ARGV[4])
  end
  if in_ring then set_bit(day, true) end
elseif kind == 'price' then
  local price_at = tonumber(redis.call('HGET', series, 'price_at'))
  if price_at == nil or at >= price_at then
    put('price', ARGV[7])
    put('price_at', ARGV[4])
  end
elseif kind == 'promotion' then
  local promo_at = tonumber(redis.call('HGET', series, 'promo_at'))
  if promo_at == nil or at >= promo_at then
    put('promo', ARGV[8])
    put('promo_from', ARGV[9])
    put('promo_to', ARGV[10])
    put('promo_at', ARGV[4])
  end
end

if latest_at == nil or at > latest_at then put('latest_at', ARGV[4]) end
put('end', last_day)
put('days', days)
put('outdays', string.char(unpack(bits)))
put('event', ARGV[5])
put('event_at', ARGV[4])
redis.call('HINCRBY', series, 'events', 1)
redis.call('HSET', series, unpack(set))
return {1, note, redis.call('HGETALL', series)}
