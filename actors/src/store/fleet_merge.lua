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
-- points the bucket holds) move by the difference to the summary they replace, so a fleet-wide
-- query reads two fields per bucket whatever the fleet size. No charge point id contains '/'.
-- Returns the number of summaries that changed.

local function energy_of(summary)
  if not summary then return 0 end
  local first = string.find(summary, '|', 1, true)
  if not first then return 0 end
  local second = string.find(summary, '|', first + 1, true) or (#summary + 1)
  return tonumber(string.sub(summary, first + 1, second - 1)) or 0
end

local n = tonumber(ARGV[1])
local changed = 0
local i = 2
for _ = 1, n do
  local key = KEYS[tonumber(ARGV[i])]
  local cp, summary, expire_at = ARGV[i + 1], ARGV[i + 2], tonumber(ARGV[i + 3])
  i = i + 4
  local old = redis.call('HGET', key, cp)
  if old ~= summary then
    changed = changed + 1
    redis.call('HSET', key, cp, summary)
    local delta = energy_of(summary) - energy_of(old)
    if delta ~= 0 then redis.call('HINCRBYFLOAT', key, '/energy_wh', delta) end
    if not old then
      if redis.call('HINCRBY', key, '/charge_points', 1) == 1 and expire_at > 0 then
        redis.call('EXPIREAT', key, expire_at)
      end
    end
  end
end
return changed
