-- series.lua: apply a series' events of one batch, in order, each at most
-- once, and give a redelivered event the state of its first application.
-- One call per series and batch (README.md "One script call per series and
-- batch"): the hash is read once, the events are applied to a copy in Lua
-- and the hash is written once; the undo log and the markers are kept per
-- event as before, so the result is that of one call per event.
--
-- KEYS[1] series hash   stockcast:f:{sku|location}
-- KEYS[2] state guard   stockcast:state:feature (live), or the rebuild lock
-- KEYS[3] undo log      stockcast:f:{sku|location}:undo
-- KEYS[3+i] dedup marker of event i  stockcast:f:{sku|location}:seen:<event_id>
--         (written only with ARGV[3] = '1' or without a position, always read)
-- ARGV    1 dedup ttl (s)   2 '' (live: the guard must exist) or the rebuild
--         lock's token   3 '1': write a dedup marker per event
--         (-kafka.transactions=false, where upstream may publish an event
--         twice at other offsets)
--         then 12 per event i, from ARGV[3 + 12(i-1) + 1]: kind, day number,
--         occurred_at (ms), event_id, hour (UTC), quantity (milli-units) or
--         price, promotion id, promotion start (ms), promotion end (ms), the
--         event's offset in demand.v1 or '' (no undo log: rebuild), its
--         partition, the offset of the partition's first record in the batch
--         being handled (where the consumer restarted: the committed position)
-- Returns {HGETALL of the series before the first event, then per event
-- {applied (0/1), note, events rolled back, changes}}: changes are the
-- fields the event (with what it undid) changed, as field, new value or
-- false (deleted), in order, so the caller has the hash after each event
-- without reading it; note is '' or why the day's bucket was not changed
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
local series, undo = KEYS[1], KEYS[3]
local ttl, markers = ARGV[1], ARGV[3] == '1'

-- Redis lost the state (restart without persistence, FLUSHALL): write
-- nothing until it is rebuilt (pkg/recovery).
local guard = redis.call('GET', KEYS[2])
if not guard or (ARGV[2] ~= '' and guard ~= ARGV[2]) then
  return redis.error_reply('STATELOST feature state is not complete (' .. KEYS[2] .. ')')
end

-- Field codes of the undo entries (position in this table).
local FIELDS = {'since', 'first', 'last', 'total', 'events', 'price', 'price_at', 'out', 'out_at',
  'promo', 'promo_from', 'promo_to', 'promo_at', 'latest_at', 'event', 'event_at', 'end', 'hours'}
local CODE = {}
for i, f in ipairs(FIELDS) do CODE[f] = i end
local SCALARS = {'first', 'last', 'total', 'events', 'price', 'price_at', 'out_at', 'promo', 'promo_from',
  'promo_to', 'promo_at', 'event', 'event_at'}

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

-- num is an integer as Redis stores it.
local function num(n) return string.format('%d', n) end

-- h is the series hash as the events leave it (orig: as read); it is
-- written back once, at the end.
local flat = redis.call('HGETALL', series)
local h, orig = {}, {}
for i = 1, #flat, 2 do h[flat[i]] = flat[i + 1]; orig[flat[i]] = flat[i + 1] end
local reset = false -- the series was deleted (an undone first event) on the way
local delta -- the current event's changes: field, value or false

local function setf(f, v)
  if v == false then h[f] = nil else h[f] = v end
  delta[#delta + 1] = f
  delta[#delta + 1] = v
end

-- The 1600-byte slot ring of h.days ending at h['end'] (to undo events:
-- the undo entries hold slot positions).
local function ring_of() return expand(h.days, tonumber(h['end'])) end

-- zeros returns n zero bytes (n a multiple of 4). Redis' Lua hashes every
-- byte of every string it makes and string.rep adds one piece at a time:
-- applying an event works on the days as stored (4 bytes a day that has
-- any), not on the 1600-byte ring.
local function zeros(n) return string.rep('\0\0\0\0', n / 4) end

-- linear returns the days of a stored 'days' value s ending at day e as
-- 4 bytes a day, oldest first: the compact form as it is, the slot ring
-- turned to start at its oldest day (e - 399).
local function linear(s, e)
  if not s then return '' end
  if #s ~= FULL then return s end
  local f = (e + 1) % RING -- slot of the oldest day
  if f == 0 then return s end
  return string.sub(s, f * 4 + 1) .. string.sub(s, 1, f * 4)
end

-- stored returns the stored form of the linear days lin ending at day e
-- (as compact returns it for the slot ring): from the oldest non-zero
-- day on, or the slot ring when all 400 days are there and the oldest is
-- non-zero.
local function stored(lin, e)
  local p = string.find(lin, '[^%z]')
  if not p then return '' end
  local skip = math.floor((p - 1) / 4)
  if skip > 0 then return string.sub(lin, skip * 4 + 1) end
  if #lin < FULL then return lin end
  local f = (e + 1) % RING
  if f == 0 then return lin end
  return string.sub(lin, (RING - f) * 4 + 1) .. string.sub(lin, 1, (RING - f) * 4)
end

-- The linear days of h.days as the last event left them (the events of a
-- call share them, with any zero days they had in front).
local lin_days, lin_end, lin_cached

-- The log's newest entry when this call pushed it (saves reading it back).
local tail_known

-- apply_one applies the event whose arguments start at ARGV[b + 1] and
-- whose marker is KEYS[k]; it returns {applied, note, rolled, changes}.
local function apply_one(b, k)
  delta = {}
  local kind, day, at = ARGV[b + 1], tonumber(ARGV[b + 2]), tonumber(ARGV[b + 3])
  local at_s, id, hour, number = ARGV[b + 3], ARGV[b + 4], ARGV[b + 5], ARGV[b + 6]
  local off, part, start = tonumber(ARGV[b + 10]), ARGV[b + 11], tonumber(ARGV[b + 12])
  local rolled = 0
  local handled = false -- at or below the watermark, not in the log
  local new_batch = false -- the log holds no entry of this batch yet

  if off then
    -- Undo the entries at offsets >= off, newest first, into local copies;
    -- restore[field] is the value before the oldest undone event (false:
    -- the field did not exist).
    local restore, days_r, bits_r, hours_r, gone = {}, nil, nil, nil, false
    local tail -- the newest entry left
    while true do
      local e = tail_known
      if not e then
        local raw = redis.call('LINDEX', undo, -1)
        if not raw then break end
        e = cmsgpack.unpack(raw)
      end
      if e[2] ~= part then
        -- The series moved to another partition: offsets do not compare.
        redis.call('DEL', undo)
        tail_known = nil
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
      tail_known = nil
      redis.call('DEL', series .. ':seen:' .. e[4])
      rolled = rolled + 1
      if e[5] == 1 then
        gone = true -- the series did not exist before this event
      else
        local fl, ring, bd = e[6], e[7], e[8]
        for j = 1, #fl, 2 do restore[FIELDS[fl[j]]] = fl[j + 1] end
        if #ring > 0 then
          days_r = days_r or ring_of()
          for j = #ring - 1, 1, -2 do days_r = splice(days_r, ring[j], ring[j + 1]) end
        end
        if #bd > 0 then
          bits_r = bits_r or h.outdays
          for j = #bd - 1, 1, -2 do bits_r = splice(bits_r, string.byte(bd, j), string.sub(bd, j + 1, j + 1)) end
        end
        if e[9] > 0 then
          hours_r = hours_r or h.hours
          hours_r = splice(hours_r, e[9], e[10])
        end
      end
    end
    if gone then
      for f in pairs(h) do setf(f, false) end
      reset = true
    elseif rolled > 0 then
      -- The stored ring is read relative to 'end': store it again whenever
      -- its bytes or 'end' go back.
      if days_r or restore['end'] ~= nil then
        local e = restore['end']
        if e == nil then e = h['end'] end
        if e then
          days_r = days_r or ring_of()
          restore['days'] = compact(days_r, tonumber(e), tonumber(e) - RING + 1)
        end
      end
      if bits_r then restore['outdays'] = bits_r end
      if hours_r and restore['hours'] == nil then restore['hours'] = hours_r end
      for f, v in pairs(restore) do setf(f, v) end
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

  if handled then return {0, '', rolled, delta} end
  if markers or not off then
    if not redis.call('SET', KEYS[k], '1', 'NX', 'EX', ttl) then return {0, '', rolled, delta} end
  elseif redis.call('EXISTS', KEYS[k]) == 1 then
    -- A marker a rebuild (or a run without transactions) wrote.
    return {0, '', rolled, delta}
  end

  -- was[field] is every field's value before the event (false: not set).
  local was = {['end'] = h['end'] or false, out = h.out or false, since = h.since or false,
    latest_at = h.latest_at or false, hours = false}
  for _, f in ipairs(SCALARS) do was[f] = h[f] or false end
  local last_day = tonumber(h['end'])
  -- lin: the days from lfirst to last_day, 4 bytes each, oldest first;
  -- every day before lfirst is zero.
  local lin
  if lin_cached and h.days == lin_days and h['end'] == lin_end then
    lin = lin_cached
  else
    lin = linear(h.days, last_day)
  end
  local bits0 = h.outdays
  local bits -- the bitmap as bytes, once a bit is set
  local out = h.out == '1'
  local since = tonumber(h.since)
  local latest_at = tonumber(h.latest_at)
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
    bits = bits or {string.byte(bits0 or string.rep('\0', RING / 8), 1, -1)}
    local s = slot(d)
    local i = math.floor(s / 8) + 1
    local m = bit.lshift(1, s % 8)
    if on then bits[i] = bit.bor(bits[i], m) else bits[i] = bit.band(bits[i], bit.bnot(m)) end
  end

  -- move_to moves the days forward to day (newer than last_day): the n
  -- oldest days of the ring leave it (their slots take the new days). The
  -- undo entry keeps their bytes by slot position, as the slot ring has them.
  local function move_to(day, n)
    local lfirst = last_day - #lin / 4 + 1
    if off then
      local d0 = last_day - RING + 1 -- the oldest day of the ring
      local z = math.min(math.max(lfirst - d0, 0), n) -- of the n, days before lin
      local old = zeros(z * 4)
      if z < n then old = old .. string.sub(lin, (d0 + z - lfirst) * 4 + 1, (d0 + n - lfirst) * 4) end
      local function keep(p, b)
        if string.find(b, '[^%z]') then ring_old[#ring_old + 1] = p; ring_old[#ring_old + 1] = b end
      end
      local from = slot(d0)
      if from + n <= RING then
        keep(from * 4 + 1, old)
      else
        keep(from * 4 + 1, string.sub(old, 1, (RING - from) * 4))
        keep(1, string.sub(old, (RING - from) * 4 + 1))
      end
    end
    if day - last_day >= RING then
      lin = ''
    else
      lin = lin .. zeros((day - last_day) * 4)
      if #lin > FULL then lin = string.sub(lin, -FULL) end
    end
  end

  -- Move the ring forward to a newer day: the slots of the new days held days
  -- 400 days older. While a stockout lasts, every new day is a stockout day.
  local in_ring = true
  if last_day == nil then
    last_day = day
  elseif day > last_day then
    local n = math.min(day - last_day, RING)
    move_to(day, n)
    for d = day - n + 1, day do set_bit(d, out) end
    last_day = day
  elseif day <= last_day - RING then
    in_ring = false
    note = 'outside_ring'
  end
  if since == nil or day < since then put('since', num(day)) end

  if kind == 'demand' then
    local q = tonumber(number)
    if in_ring then
      local lfirst = last_day - #lin / 4 + 1
      local p = (day - lfirst) * 4 + 1 -- in lin
      local v0 = 0
      if day >= lfirst then v0 = struct.unpack('<i4', lin, p) end
      local v = v0 + q
      if v > INT32_MAX or v < INT32_MIN then
        v = math.max(INT32_MIN, math.min(INT32_MAX, v))
        note = 'day_overflow'
      end
      if off then ring_old[#ring_old + 1] = slot(day) * 4 + 1; ring_old[#ring_old + 1] = struct.pack('<i4', v0) end
      if day >= lfirst then
        lin = string.sub(lin, 1, p - 1) .. struct.pack('<i4', v) .. string.sub(lin, p + 4)
      else
        lin = struct.pack('<i4', v) .. zeros((lfirst - day - 1) * 4) .. lin
      end
    end
    if q > 0 then
      local hours = h.hours
      local p = tonumber(hour) * 8 + 1
      if hours then hour_pos, hour_old = p, string.sub(hours, p, p + 7) end
      hours = hours or string.rep('\0', 24 * 8)
      local v = struct.unpack('<d', hours, p) + q
      put('hours', string.sub(hours, 1, p - 1) .. struct.pack('<d', v) .. string.sub(hours, p + 8))
      if was.first == false or day < tonumber(was.first) then put('first', num(day)) end
      if was.last == false or day > tonumber(was.last) then put('last', num(day)) end
    end
  elseif kind == 'stockout_started' or kind == 'stockout_ended' then
    -- The latest event by occurred_at decides the current state; the event's
    -- day was (partly) out of stock either way.
    local out_at = tonumber(was.out_at)
    if out_at == nil or at >= out_at then
      if kind == 'stockout_started' then put('out', '1') else put('out', '0') end
      put('out_at', at_s)
    end
    if in_ring then set_bit(day, true) end
  elseif kind == 'price' then
    local price_at = tonumber(was.price_at)
    if price_at == nil or at >= price_at then
      put('price', number)
      put('price_at', at_s)
    end
  elseif kind == 'promotion' then
    local promo_at = tonumber(was.promo_at)
    if promo_at == nil or at >= promo_at then
      put('promo', ARGV[b + 7])
      put('promo_from', ARGV[b + 8])
      put('promo_to', ARGV[b + 9])
      put('promo_at', at_s)
    end
  end

  if latest_at == nil or at > latest_at then put('latest_at', at_s) end
  put('end', num(last_day))
  put('event', id)
  put('event_at', at_s)
  local outdays = bits0 or string.rep('\0', RING / 8)
  if bits then outdays = string.char(unpack(bits)) end

  if off then
    -- The undo entry: {offset, partition, batch start, event id, 1 if the
    -- series is new (else 0), {field code, old value or false, ...}, {ring
    -- position, old bytes, ...}, old bitmap bytes as (index, byte) pairs,
    -- hour position, old hour bytes}.
    local e
    if was['end'] == false then
      e = {off, part, start, id, 1}
    else
      -- Fields set by value (the hours only if they are new: else their
      -- slot is kept), then the two counters.
      local names, vals = {}, {}
      for j = 1, #set, 2 do
        if set[j] ~= 'hours' or hour_pos == 0 then
          names[#names + 1] = set[j]
          vals[#names] = set[j + 1]
        end
      end
      if kind == 'demand' then names[#names + 1] = 'total' end
      names[#names + 1] = 'events'
      local fl = {}
      for j, f in ipairs(names) do
        if vals[j] == nil or vals[j] ~= was[f] then
          fl[#fl + 1] = CODE[f]
          fl[#fl + 1] = was[f]
        end
      end
      local bd = {}
      if outdays ~= bits0 then
        for j = 1, RING / 8 do
          local c = string.byte(bits0, j)
          if bits[j] ~= c then bd[#bd + 1] = string.char(j, c) end
        end
      end
      e = {off, part, start, id, 0, fl, ring_old, table.concat(bd), hour_pos, hour_old}
    end
    if redis.call('RPUSH', undo, cmsgpack.pack(e)) == 1 or new_batch then
      -- The log (and so the watermark) lives the dedup TTL after the
      -- series' last batch.
      redis.call('EXPIRE', undo, ttl)
    end
    tail_known = e
  end

  if kind == 'demand' then put('total', num((tonumber(h.total) or 0) + tonumber(number))) end
  put('events', num((tonumber(h.events) or 0) + 1))
  for j = 1, #set, 2 do setf(set[j], set[j + 1]) end
  local days = stored(lin, last_day)
  if days ~= h.days then setf('days', days) end
  if outdays ~= h.outdays then setf('outdays', outdays) end
  lin_days, lin_end, lin_cached = h.days, h['end'], lin
  return {1, note, rolled, delta}
end

local reply = {flat}
for i = 1, (#ARGV - 3) / 12 do
  reply[i + 1] = apply_one(3 + 12 * (i - 1), 3 + i)
end

-- Write the hash back: the fields that changed, or all of it after the
-- series was deleted on the way.
if reset then redis.call('DEL', series) end
local hset, hdel = {}, {}
for f, v in pairs(h) do
  if reset or orig[f] ~= v then hset[#hset + 1] = f; hset[#hset + 1] = v end
end
if not reset then
  for f in pairs(orig) do
    if h[f] == nil then hdel[#hdel + 1] = f end
  end
end
if #hdel > 0 then redis.call('HDEL', series, unpack(hdel)) end
if #hset > 0 then redis.call('HSET', series, unpack(hset)) end
return reply
