-- Copies charge points' bucket summaries into the fleet-level roll-up (`store/fleet_rollup.rs`)
-- and keeps each fleet bucket's totals in step, atomically (a script runs alone).
--
-- KEYS      fleet bucket hashes (`ocpp:{fleet}:agg:<period>:<start>`, all in one slot).
-- ARGV      n, then n x (key_index, charge_point, summary, expire_at)
--           summary = `samples|energy_wh|max_power_w` of that charge point in that bucket, as
--           the merge script (`aggregate_merge.lua`) returned it: an absolute value, so that
--           setting it twice (a retried flush) changes nothing.
--
-- The totals `/energy_wh` (sum of the members' energy) and `/charge_points` (how many charge
-- points the bucket holds) move by the difference to the summaries they replace, so a
-- fleet-wide query reads two fields per bucket whatever the fleet size. No charge point id
-- contains '/'. Per fleet bucket it costs one HMGET, one HSET and at most one HINCRBYFLOAT and
-- one HINCRBY, however many charge points the call carries.
-- Returns the number of summaries that changed.

local function energy_of(summary)
  if not summary then return 0 end
  local first = string.find(summary, '|', 1, true)
  if not first then return 0 end
  local second = string.find(summary, '|', first + 1, true) or (#summary + 1)
  return tonumber(string.sub(summary, first + 1, second - 1)) or 0
end

-- Entries grouped by key, in argument order.
local n = tonumber(ARGV[1])
local per_key, order = {}, {}
local i = 2
for _ = 1, n do
  local k = tonumber(ARGV[i])
  local g = per_key[k]
  if not g then
    g = { cps = {}, summaries = {}, expire = 0 }
    per_key[k] = g
    order[#order + 1] = k
  end
  g.cps[#g.cps + 1] = ARGV[i + 1]
  g.summaries[#g.summaries + 1] = ARGV[i + 2]
  local expire_at = tonumber(ARGV[i + 3])
  if expire_at > g.expire then g.expire = expire_at end
  i = i + 4
end

local changed = 0
for _, k in ipairs(order) do
  local key, g = KEYS[k], per_key[k]
  local stored = redis.call('HMGET', key, unpack(g.cps))
  local current = {}
  for j, cp in ipairs(g.cps) do
    if current[cp] == nil then current[cp] = stored[j] end
  end
  local set, delta, added = {}, 0, 0
  for j, cp in ipairs(g.cps) do
    local old, new = current[cp], g.summaries[j]
    if old ~= new then
      changed = changed + 1
      set[#set + 1] = cp
      set[#set + 1] = new
      delta = delta + energy_of(new) - energy_of(old)
      if not old then added = added + 1 end
      current[cp] = new
    end
  end
  if #set > 0 then redis.call('HSET', key, unpack(set)) end
  if delta ~= 0 then redis.call('HINCRBYFLOAT', key, '/energy_wh', delta) end
  if added > 0 then
    local members = redis.call('HINCRBY', key, '/charge_points', added)
    if members == added and g.expire > 0 then redis.call('EXPIREAT', key, g.expire) end
  end
end
return changed
