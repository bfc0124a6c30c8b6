-- Merges one flush of one charge point's roll-ups into Redis, atomically (a script runs alone),
-- so flushes, restarts and several server instances can add to the same buckets.
--
-- KEYS[1]   the charge point's roll-up state hash: `e:<series>` -> "t_ms|value" (energy
--           baseline), `applied:<instance>` -> sequence number of the last applied flush.
-- KEYS[2..] bucket hashes named by the statistics entries below.
-- ARGV: applied_field, seq, hour_prefix, day_prefix, hourly_keep_s, daily_keep_s, now_s,
--       max_power_w, state_expire_at (0: leave), n_stats,
--       n_stats x (key_index, expire_at (0: leave), field, count, sum, min, max,
--                  first, first_at, last, last_at),
--       n_series, n_series x (field, n, n x (t_ms, value)),  -- register readings, arrival order
--       wal_field, wal_lsn,  -- write-ahead log mark to record ('' and 0: none)
--       closed_margin_ms     -- a bucket ending before now + this counts as closed (below)
--
-- Read cache (`store/read_cache.rs`): the state field `rv` is the charge point's roll-up
-- version. It moves (to max(old + 1, now in ms), so it never comes back to an old value even
-- after Redis lost the hash) whenever this script writes a bucket that ends before
-- now + closed_margin_ms, and is created when missing. Readers cache only buckets that ended
-- closed_margin_ms before their own clock, tagged with the version read before them: a late
-- write into a closed bucket moves the version and so drops every cached bucket of the
-- charge point.
--
-- Returns { 1, key, summary, key, summary, ... } when applied, { 0, key, summary, ... } when
-- this instance already applied `seq` (a retried flush): the fleet summary
-- (`samples|energy_wh|max_power_w`) of every bucket written (of every declared bucket when
-- already applied), for the caller to copy into the fleet roll-up (`store/fleet_rollup.rs`).
-- Energy rules (mirrored by `register_energy` in aggregates.rs): a reading not newer than the
-- baseline contributes nothing; otherwise the difference is spread linearly over the time since
-- the baseline and split at bucket boundaries, unless it is negative (reset) or implies more
-- than max_power_w (replaced meter); the reading becomes the baseline.

local state = KEYS[1]
local applied_field = ARGV[1]
local seq = tonumber(ARGV[2])
local prefixes = { ARGV[3], ARGV[4] }
local keeps = { tonumber(ARGV[5]), tonumber(ARGV[6]) }
local lengths = { 3600000, 86400000 }
local now = tonumber(ARGV[7])
local max_power = tonumber(ARGV[8])
local state_expire = tonumber(ARGV[9])

local function num(v)
  return string.format('%.17g', v)
end

-- Fleet summary (`store/fleet_rollup.rs`): each bucket hash keeps, in the field `/fleet` (no
-- series field starts with '/'), `samples|e_cp|e_out|has_out|max_power`: its sample count, the
-- import register energy of connector 0 and of the other connectors (phase-less, Wh), whether
-- any connector other than 0 had such a register, and the largest phase-less active import
-- power (W). Kept up to date from the partials this script merges; rebuilt from the whole hash
-- when missing (a bucket written before the field existed, or a new one).
local SUMMARY_FIELD = '/fleet'
local ENERGY_SUFFIX = ':Energy.Active.Import.Register:-:Wh'
local POWER_SUFFIX = ':Power.Active.Import:-:W'

local function ends_with(text, suffix)
  return #text >= #suffix and string.sub(text, -#suffix) == suffix
end

local function parse_summary(text)
  local p = {}
  for part in string.gmatch(text .. '|', '([^|]*)|') do p[#p + 1] = part end
  return {
    samples = tonumber(p[1]) or 0, e_cp = tonumber(p[2]) or 0, e_out = tonumber(p[3]) or 0,
    has_out = p[4] == '1', pmax = tonumber(p[5] or ''),
  }
end

local function encode_summary(m)
  local pmax = ''
  if m.pmax then pmax = num(m.pmax) end
  local has_out = '0'
  if m.has_out then has_out = '1' end
  return string.format('%d', m.samples) .. '|' .. num(m.e_cp) .. '|' .. num(m.e_out) .. '|'
    .. has_out .. '|' .. pmax
end

-- Adds one series' statistics (count, energy, max) to a summary.
local function add_to_summary(m, field, count, energy, max)
  m.samples = m.samples + count
  if ends_with(field, ENERGY_SUFFIX) then
    if string.sub(field, 1, 2) == '0:' then
      m.e_cp = m.e_cp + energy
    else
      m.e_out = m.e_out + energy
      m.has_out = true
    end
  elseif ends_with(field, POWER_SUFFIX) and max and (not m.pmax or max > m.pmax) then
    m.pmax = max
  end
end

-- What the caller puts in the fleet bucket: `samples|energy_wh|max_power_w`, the energy being
-- the connectors' when any connector other than 0 metered it, else connector 0's (never both:
-- a charge point that reports both would count its energy twice).
local function summary_reply(text)
  local m = parse_summary(text)
  local energy = m.e_cp
  if m.has_out then energy = m.e_out end
  local pmax = ''
  if m.pmax then pmax = num(m.pmax) end
  return string.format('%d', m.samples) .. '|' .. num(energy) .. '|' .. pmax
end

local i = 10
local n_stats = tonumber(ARGV[i]); i = i + 1
local stats = {}
for s = 1, n_stats do
  local function opt(v) if v == '' then return nil end return tonumber(v) end
  stats[s] = {
    key = KEYS[tonumber(ARGV[i])], expire = tonumber(ARGV[i + 1]), field = ARGV[i + 2],
    rec = {
      count = tonumber(ARGV[i + 3]), sum = tonumber(ARGV[i + 4]),
      min = opt(ARGV[i + 5]), max = opt(ARGV[i + 6]),
      first = opt(ARGV[i + 7]), first_at = opt(ARGV[i + 8]),
      last = opt(ARGV[i + 9]), last_at = opt(ARGV[i + 10]), energy = 0,
    },
  }
  i = i + 11
end
local n_series = tonumber(ARGV[i]); i = i + 1
local series = {}
local state_fields = { applied_field }
for s = 1, n_series do
  local field = ARGV[i]
  local n = tonumber(ARGV[i + 1]); i = i + 2
  local readings = {}
  for r = 1, n do
    readings[r] = { tonumber(ARGV[i]), tonumber(ARGV[i + 1]) }
    i = i + 2
  end
  series[s] = { field = field, readings = readings }
  state_fields[#state_fields + 1] = 'e:' .. field
end

local wal_field = ARGV[i]
local wal_lsn = tonumber(ARGV[i + 1] or '0') or 0
local closed_before_ms = now * 1000 + (tonumber(ARGV[i + 2] or '0') or 0)
local version_index = #state_fields + 1
state_fields[version_index] = 'rv'

local current = redis.call('HMGET', state, unpack(state_fields))
if current[1] and tonumber(current[1]) >= seq then
  -- Already applied: still report the summaries of the declared buckets, so that a retry
  -- repairs the fleet roll-up if the previous attempt died between this script and its
  -- (separate, other-slot) fleet update.
  local reply = { 0 }
  for k = 2, #KEYS do
    local summary = redis.call('HGET', KEYS[k], SUMMARY_FIELD)
    if summary then
      reply[#reply + 1] = KEYS[k]
      reply[#reply + 1] = summary_reply(summary)
    end
  end
  return reply
end

-- Updates per key and field, keys in first-touch order.
local updates, order, expiries = {}, {}, {}
local function rec(key, field)
  local u = updates[key]
  if not u then
    u = { fields = {}, list = {} }
    updates[key] = u
    order[#order + 1] = key
  end
  local r = u.fields[field]
  if not r then
    r = { count = 0, sum = 0, energy = 0 }
    u.fields[field] = r
    u.list[#u.list + 1] = field
  end
  return r
end

local function merge(a, b)
  a.count = a.count + b.count
  a.sum = a.sum + b.sum
  if b.min and (not a.min or b.min < a.min) then a.min = b.min end
  if b.max and (not a.max or b.max > a.max) then a.max = b.max end
  if b.first_at and (not a.first_at or b.first_at < a.first_at) then
    a.first, a.first_at = b.first, b.first_at
  end
  if b.last_at and (not a.last_at or b.last_at >= a.last_at) then
    a.last, a.last_at = b.last, b.last_at
  end
  a.energy = a.energy + b.energy
end

for _, s in ipairs(stats) do
  merge(rec(s.key, s.field), s.rec)
  if s.expire > 0 then expiries[s.key] = s.expire end
end

local declared = {}
for k = 2, #KEYS do declared[KEYS[k]] = true end

local function split(field, t0, t1, d)
  for p = 1, 2 do
    local len = lengths[p]
    local b = math.floor(t0 / len) * len
    while b < t1 do
      local s = math.max(b, t0)
      local e = math.min(b + len, t1)
      local expire_at = math.floor((b + len) / 1000) + keeps[p]
      if expire_at > now then
        local key = prefixes[p] .. string.format('%d', b / 1000)
        local r = rec(key, field)
        r.energy = r.energy + d * (e - s) / (t1 - t0)
        if not declared[key] then expiries[key] = expire_at end
      end
      b = b + len
    end
  end
end

local new_state = { applied_field, seq }
if wal_field and wal_field ~= '' and wal_lsn > 0 then
  -- Flushes of a charge point carry increasing numbers: the replay skips up to this one.
  new_state[#new_state + 1] = wal_field
  new_state[#new_state + 1] = string.format('%d', wal_lsn)
end
for s, ser in ipairs(series) do
  local bt, bv
  local base = current[s + 1]
  if base then
    local sep = string.find(base, '|', 1, true)
    bt = tonumber(string.sub(base, 1, sep - 1))
    bv = tonumber(string.sub(base, sep + 1))
  end
  local changed = false
  for _, r in ipairs(ser.readings) do
    local t, v = r[1], r[2]
    if not bt then
      bt, bv, changed = t, v, true
    elseif t > bt then
      local d = v - bv
      if d > 0 and d * 3600000 <= max_power * (t - bt) then
        split(ser.field, bt, t, d)
      end
      bt, bv, changed = t, v, true
    end
  end
  if changed then
    new_state[#new_state + 1] = 'e:' .. ser.field
    new_state[#new_state + 1] = string.format('%d', bt) .. '|' .. num(bv)
  end
end

local function parse(text)
  local parts, pos = {}, 1
  while true do
    local sep = string.find(text, '|', pos, true)
    if not sep then
      parts[#parts + 1] = string.sub(text, pos)
      break
    end
    parts[#parts + 1] = string.sub(text, pos, sep - 1)
    pos = sep + 1
  end
  local function opt(v) if v == nil or v == '' then return nil end return tonumber(v) end
  return {
    count = tonumber(parts[1]) or 0, sum = tonumber(parts[2]) or 0,
    min = opt(parts[3]), max = opt(parts[4]),
    first = opt(parts[5]), first_at = opt(parts[6]),
    last = opt(parts[7]), last_at = opt(parts[8]),
    energy = tonumber(parts[9]) or 0,
  }
end

local function encode(r)
  local function o(v) if v == nil then return '' end return num(v) end
  local function t(v) if v == nil then return '' end return string.format('%d', v) end
  return string.format('%d', r.count) .. '|' .. num(r.sum) .. '|' .. o(r.min) .. '|' .. o(r.max)
    .. '|' .. o(r.first) .. '|' .. t(r.first_at) .. '|' .. o(r.last) .. '|' .. t(r.last_at)
    .. '|' .. num(r.energy)
end

-- The end (unix ms) of the bucket a key names: prefix, then its start in seconds.
local function bucket_end_ms(key)
  for p = 1, 2 do
    local prefix = prefixes[p]
    if string.sub(key, 1, #prefix) == prefix then
      return tonumber(string.sub(key, #prefix + 1)) * 1000 + lengths[p]
    end
  end
  return 0
end

local closed_written = false
local reply = { 1 }
for _, key in ipairs(order) do
  if bucket_end_ms(key) <= closed_before_ms then closed_written = true end
  local u = updates[key]
  -- The series' statistics and the bucket's summary in one read.
  u.list[#u.list + 1] = SUMMARY_FIELD
  local stored = redis.call('HMGET', key, unpack(u.list))
  u.list[#u.list] = nil
  local summary_text = stored[#stored]
  local summary = summary_text and parse_summary(summary_text)
  local args = {}
  for f, field in ipairs(u.list) do
    local r = u.fields[field]
    if summary then add_to_summary(summary, field, r.count, r.energy, r.max) end
    if stored[f] then
      local merged = parse(stored[f])
      merge(merged, r)
      r = merged
    end
    args[#args + 1] = field
    args[#args + 1] = encode(r)
  end
  local encoded
  if summary then
    -- The summary rides in the same HSET as the statistics.
    encoded = encode_summary(summary)
    args[#args + 1] = SUMMARY_FIELD
    args[#args + 1] = encoded
    redis.call('HSET', key, unpack(args))
  else
    redis.call('HSET', key, unpack(args))
    summary = { samples = 0, e_cp = 0, e_out = 0, has_out = false }
    local all = redis.call('HGETALL', key)
    for f = 1, #all, 2 do
      local field = all[f]
      if string.sub(field, 1, 1) ~= '/' then
        local r = parse(all[f + 1])
        add_to_summary(summary, field, r.count, r.energy, r.max)
      end
    end
    encoded = encode_summary(summary)
    redis.call('HSET', key, SUMMARY_FIELD, encoded)
  end
  reply[#reply + 1] = key
  reply[#reply + 1] = summary_reply(encoded)
  if expiries[key] then redis.call('EXPIREAT', key, expiries[key]) end
end

local version = tonumber(current[version_index])
if closed_written or not version then
  local moved = now * 1000
  if version and version + 1 > moved then moved = version + 1 end
  new_state[#new_state + 1] = 'rv'
  new_state[#new_state + 1] = string.format('%d', moved)
end
redis.call('HSET', state, unpack(new_state))
if state_expire > 0 then redis.call('EXPIREAT', state, state_expire) end
return reply
