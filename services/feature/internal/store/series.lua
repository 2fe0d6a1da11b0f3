-- series.lua: apply one event to a series' feature hash, at most once, and
-- give a redelivered event the state of its first application.
--
-- KEYS[1] series hash   stockcast:f:{sku|location}
-- KEYS[2] dedup marker  stockcast:f:{sku|location}:seen:<event_id> (written
--         only with ARGV[15] = '1' or without a position, always read)
-- KEYS[3] state guard   stockcast:state:feature (live), or the rebuild lock
-- KEYS[4] undo log      stockcast:f:{sku|location}:undo
-- ARGV    1 dedup ttl (s)   2 kind   3 day number   4 occurred_at (ms)   5 event_id
--         6 hour (UTC)      7 quantity (milli-units) or price   8 promotion id
--         9 promotion start (ms)   10 promotion end (ms)
--         11 '' (live: the guard must exist) or the rebuild lock's token
--         12 the event's offset in demand.v1, or '' (no undo log: rebuild)
--         13 its partition   14 the offset of the partition's first record in
--            the batch being handled (where the consumer restarted: the
--            committed position)
--         15 '1': write a dedup marker per event (-kafka.transactions=false,
--            where upstream may publish an event twice at other offsets)
-- Returns {applied (0/1), note, HGETALL of the series after the event,
-- events rolled back}; note is '' or why the day's bucket was not changed
-- ('outside_ring', 'day_overflow').
--
-- Undo log (README.md "Redeliveries"): a list, one entry per event applied
-- since the partition's batch start, oldest first, each holding only what the
-- event changed (old field values, old day slots, old bitmap bytes, the old
-- hour slot). Before an event at offset O, entries at offsets >= O are
-- undone (newest first) and their markers deleted: they are being delivered
-- again, from the committed position, so the event is applied to exactly the
-- state it met the first time and the later events are applied again after
-- it. Entries older than the batch start were committed: dropped. An event
-- older than the start of the batch that logged the entries (offsets reset,
-- a commit lost without transactions) finds that batch committed: it was
-- applied before (or skipped) and changes nothing.
--
-- Offset watermark: the log's newest entry is the series' last applied
-- offset of its partition, so at a later batch's first event the entries of
-- older batches are trimmed to that one entry, never dropped: an event at or
-- below it that is not in the log was handled before. No per-event marker is
-- needed for redeliveries (README.md, "Exactly once without markers"). A log
-- of another partition (demand.v1's partition count changed) is dropped: the
-- event is applied and starts a new watermark.
--
-- Layout (see README.md): 'days' is a ring of 400 little-endian int32 day
-- totals in milli-units, slot = day mod 400, ending at day 'end', stored
-- compact: only the days from the oldest one with a non-zero total to 'end',
-- oldest first (4 bytes a day; '' without any), or the whole 1600-byte slot
-- ring when its oldest day is non-zero (and as the code before wrote it:
-- both read). The script works on the 1600-byte ring; 'outdays'
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

-- Field codes of the undo entries (position in this table).
local FIELDS = {'since', 'first', 'last', 'total', 'events', 'price', 'price_at', 'out', 'out_at',
  'promo', 'promo_from', 'promo_to', 'promo_at', 'latest_at', 'event', 'event_at', 'end', 'hours'}
local CODE = {}
for i, f in ipairs(FIELDS) do CODE[f] = i end

local undo = KEYS[4]
local off = tonumber(ARGV[12])
local part = ARGV[13]
local start = tonumber(ARGV[14])
local rolled = 0
local handled = false -- at or below the watermark, not in the log
local new_batch = false -- the log holds no entry of this batch yet

-- splice replaces the bytes of s from position p (1-based) by b.
local function splice(s, p, b) return string.sub(s, 1, p - 1) .. b .. string.sub(s, p + #b) end

local FULL = RING * 4
-- expand returns the 1600-byte slot ring of a stored 'days' value s (nil:
-- none) whose last day is e.
local function expand(s, e)
  if not s then return string.rep('\0', FULL) end
  if #s == FULL then return s end
  local n = #s / 4
  local first = (e - n + 1) % RING -- slot of the oldest stored day
  if first + n <= RING then
    return string.rep('\0', first * 4) .. s .. string.rep('\0', (RING - first - n) * 4)
  end
  local k = RING - first -- stored days in slots first..399
  return string.sub(s, k * 4 + 1) .. string.rep('\0', (RING - n) * 4) .. string.sub(s, 1, k * 4)
end

-- compact returns the stored form of the slot ring r ending at day e: the
-- days from the oldest non-zero one to e, oldest first, or r itself when
-- the ring's oldest day (e - 399) is non-zero. Days before lo are known to
-- be zero (nil: every day is); the scan for the oldest non-zero day starts
-- at lo, so it is short (a byte-wise scan of a whole ring of zeros cost
-- more than the rest of the script).
local function compact(r, e, lo)
  if not lo then return '' end
  if lo < e - RING + 1 then lo = e - RING + 1 end
  if lo > e then return '' end
  local s0, n = lo % RING, e - lo + 1
  local lin
  if s0 + n <= RING then
    lin = string.sub(r, s0 * 4 + 1, (s0 + n) * 4)
  else
    lin = string.sub(r, s0 * 4 + 1) .. string.sub(r, 1, (s0 + n - RING) * 4)
  end
  local p = string.find(lin, '[^%z]')
  if not p then return '' end
  local skip = math.floor((p - 1) / 4)
  if skip == 0 and n == RING then return r end
  return string.sub(lin, skip * 4 + 1)
end

if off then
  -- Undo the entries at offsets >= off, newest first, into local copies;
  -- restore[field] is the value before the oldest undone event (false:
  -- the field did not exist).
  local restore, days_r, bits_r, hours_r, gone = {}, nil, nil, nil, false
  local tail -- the newest entry left
  while true do
    local raw = redis.call('LINDEX', undo, -1)
    if not raw then break end
    local e = cmsgpack.unpack(raw)
    if e[2] ~= part then
      -- The series moved to another partition: offsets do not compare.
      redis.call('DEL', undo)
      break
    end
    if off < e[3] then
      -- Older than the start of the logged batch (offsets reset, a commit
      -- lost without transactions): that batch was committed, so this event
      -- was handled before it.
      handled = true
      break
    end
    if e[1] < off then
      tail = e
      break
    end
    redis.call('RPOP', undo)
    redis.call('DEL', series .. ':seen:' .. e[4])
    rolled = rolled + 1
    if e[5] == 1 then
      gone = true -- the series did not exist before this event
    else
      local fl, ring, bd = e[6], e[7], e[8]
      for k = 1, #fl, 2 do restore[FIELDS[fl[k]]] = fl[k + 1] end
      if #ring > 0 then
        days_r = days_r or expand(redis.call('HGET', series, 'days'), tonumber(redis.call('HGET', series, 'end')))
        for k = #ring - 1, 1, -2 do days_r = splice(days_r, ring[k], ring[k + 1]) end
      end
      if #bd > 0 then
        bits_r = bits_r or redis.call('HGET', series, 'outdays')
        for k = #bd - 1, 1, -2 do bits_r = splice(bits_r, string.byte(bd, k), string.sub(bd, k + 1, k + 1)) end
      end
      if e[9] > 0 then
        hours_r = hours_r or redis.call('HGET', series, 'hours')
        hours_r = splice(hours_r, e[9], e[10])
      end
    end
  end
  if gone then
    redis.call('DEL', series)
  elseif rolled > 0 then
    local hset, hdel = {}, {}
    -- The stored ring is read relative to 'end': store it again whenever
    -- its bytes or 'end' go back.
    if days_r or restore['end'] ~= nil then
      local now_end = redis.call('HGET', series, 'end')
      local e = restore['end']
      if e == nil then e = now_end end
      if e then
        days_r = days_r or expand(redis.call('HGET', series, 'days'), tonumber(now_end))
        restore['days'] = compact(days_r, tonumber(e), tonumber(e) - RING + 1)
      end
    end
    if bits_r then restore['outdays'] = bits_r end
    if hours_r and restore['hours'] == nil then restore['hours'] = hours_r end
    for f, v in pairs(restore) do
      if v == false then hdel[#hdel + 1] = f else hset[#hset + 1] = f; hset[#hset + 1] = v end
    end
    if #hdel > 0 then redis.call('HDEL', series, unpack(hdel)) end
    if #hset > 0 then redis.call('HSET', series, unpack(hset)) end
  end
  -- Entries older than the batch start were committed: drop them. Every
  -- entry is at or after the start of the batch that logged the newest
  -- one, so only a tail of another batch needs a look. The newest entry
  -- stays: it is the watermark.
  if tail and tail[3] ~= start and not handled then
    new_batch = true
    if tail[1] < start then
      redis.call('LTRIM', undo, -1, -1)
    else
      local head = redis.call('LINDEX', undo, 0)
      while head and cmsgpack.unpack(head)[1] < start do
        redis.call('LPOP', undo)
        head = redis.call('LINDEX', undo, 0)
      end
    end
  end
end

if handled then
  return {0, '', redis.call('HGETALL', series), rolled}
end
if ARGV[15] == '1' or not off then
  if not redis.call('SET', KEYS[2], '1', 'NX', 'EX', ARGV[1]) then
    return {0, '', redis.call('HGETALL', series), rolled}
  end
elseif redis.call('EXISTS', KEYS[2]) == 1 then
  -- A marker a rebuild (or a run without transactions) wrote.
  return {0, '', redis.call('HGETALL', series), rolled}
end

local kind = ARGV[2]
local day = tonumber(ARGV[3])
local at = tonumber(ARGV[4])

-- Every field but the hours, read once: was[field] is its value before the
-- event (false: not set).
local SCALARS = {'first', 'last', 'total', 'events', 'price', 'price_at', 'out_at', 'promo', 'promo_from',
  'promo_to', 'promo_at', 'event', 'event_at'}
local cur = redis.call('HMGET', series, 'end', 'days', 'outdays', 'out', 'since', 'latest_at', unpack(SCALARS))
local was = {['end'] = cur[1], out = cur[4], since = cur[5], latest_at = cur[6], hours = false}
for i, f in ipairs(SCALARS) do was[f] = cur[6 + i] end
local last_day = tonumber(cur[1])
local days = expand(cur[2], last_day)
-- The oldest stored day: every day before it is zero (nil: all are).
local lo
if cur[2] and #cur[2] > 0 then lo = last_day - #cur[2] / 4 + 1 end
local bits = {string.byte(cur[3] or string.rep('\0', RING / 8), 1, -1)}
local out = cur[4] == '1'
local since = tonumber(cur[5])
local latest_at = tonumber(cur[6])
local set = {}
local note = ''
-- What this event changes, for its undo entry: old day-ring bytes
-- {position, bytes, ...} and the old hour slot.
local ring_old, hour_pos, hour_old = {}, 0, ''

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
  if off then
    local function keep(p, b)
      if b ~= string.rep('\0', #b) then ring_old[#ring_old + 1] = p; ring_old[#ring_old + 1] = b end
    end
    if from + n <= RING then
      keep(from * 4 + 1, string.sub(days, from * 4 + 1, (from + n) * 4))
    else
      keep(from * 4 + 1, string.sub(days, from * 4 + 1))
      keep(1, string.sub(days, 1, (from + n - RING) * 4))
    end
  end
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
    if off then ring_old[#ring_old + 1] = p; ring_old[#ring_old + 1] = string.sub(days, p, p + 3) end
    if not lo or day < lo then lo = day end
    days = string.sub(days, 1, p - 1) .. struct.pack('<i4', v) .. string.sub(days, p + 4)
  end
  if q > 0 then
    local hours = redis.call('HGET', series, 'hours')
    local p = tonumber(ARGV[6]) * 8 + 1
    if hours then hour_pos, hour_old = p, string.sub(hours, p, p + 7) end
    hours = hours or string.rep('\0', 24 * 8)
    local v = struct.unpack('<d', hours, p) + q
    put('hours', string.sub(hours, 1, p - 1) .. struct.pack('<d', v) .. string.sub(hours, p + 8))
    if was.first == false or day < tonumber(was.first) then put('first', day) end
    if was.last == false or day > tonumber(was.last) then put('last', day) end
  end
elseif kind == 'stockout_started' or kind == 'stockout_ended' then
  -- The latest event by occurred_at decides the current state; the event's
  -- day was (partly) out of stock either way.
  local out_at = tonumber(was.out_at)
  if out_at == nil or at >= out_at then
    if kind == 'stockout_started' then put('out', '1') else put('out', '0') end
    put('out_at', ARGV[4])
  end
  if in_ring then set_bit(day, true) end
elseif kind == 'price' then
  local price_at = tonumber(was.price_at)
  if price_at == nil or at >= price_at then
    put('price', ARGV[7])
    put('price_at', ARGV[4])
  end
elseif kind == 'promotion' then
  local promo_at = tonumber(was.promo_at)
  if promo_at == nil or at >= promo_at then
    put('promo', ARGV[8])
    put('promo_from', ARGV[9])
    put('promo_to', ARGV[10])
    put('promo_at', ARGV[4])
  end
end

if latest_at == nil or at > latest_at then put('latest_at', ARGV[4]) end
put('end', last_day)
put('event', ARGV[5])
put('event_at', ARGV[4])
local outdays = string.char(unpack(bits))

if off then
  -- The undo entry: {offset, partition, batch start, event id, 1 if the
  -- series is new (else 0), {field code, old value or false, ...}, {ring
  -- position, old bytes, ...}, old bitmap bytes as (index, byte) pairs,
  -- hour position, old hour bytes}.
  local e
  if cur[1] == false then
    e = {off, part, start, ARGV[5], 1}
  else
    -- Fields set by value (the hours only if they are new: else their
    -- slot is kept), then the two counters.
    local names, vals = {}, {}
    for k = 1, #set, 2 do
      if set[k] ~= 'hours' or hour_pos == 0 then
        names[#names + 1] = set[k]
        vals[#names] = tostring(set[k + 1])
      end
    end
    if kind == 'demand' then names[#names + 1] = 'total' end
    names[#names + 1] = 'events'
    local fl = {}
    for k, f in ipairs(names) do
      if vals[k] == nil or vals[k] ~= was[f] then
        fl[#fl + 1] = CODE[f]
        fl[#fl + 1] = was[f]
      end
    end
    local bd = {}
    local bits0 = cur[3]
    if outdays ~= bits0 then
      for k = 1, RING / 8 do
        local b = string.byte(bits0, k)
        if bits[k] ~= b then bd[#bd + 1] = string.char(k, b) end
      end
    end
    e = {off, part, start, ARGV[5], 0, fl, ring_old, table.concat(bd), hour_pos, hour_old}
  end
  if redis.call('RPUSH', undo, cmsgpack.pack(e)) == 1 or new_batch then
    -- The log (and so the watermark) lives the dedup TTL after the
    -- series' last batch.
    redis.call('EXPIRE', undo, ARGV[1])
  end
end

if kind == 'demand' then redis.call('HINCRBY', series, 'total', ARGV[7]) end
put('days', compact(days, last_day, lo))
put('outdays', outdays)
redis.call('HINCRBY', series, 'events', 1)
redis.call('HSET', series, unpack(set))
return {1, note, redis.call('HGETALL', series), rolled}
