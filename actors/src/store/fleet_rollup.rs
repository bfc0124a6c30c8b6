//! The fleet-level roll-up: per hour and per day, every charge point's energy, largest power
//! and sample count in one hash per bucket, with the fleet's total energy beside them.
//!
//! Why a roll-up of its own: "how much did the fleet (or site X) deliver per hour over the last
//! 30 days" would otherwise read 720 buckets of every charge point, 14 million hashes for a
//! 20,000-charge-point fleet. Here it reads 720 hashes, two fields each (fleet-wide), or the
//! group's members' fields of them (`HMGET`).
//!
//! How it is written: the merge script (`aggregate_merge.lua`) keeps in each charge point
//! bucket a summary field (`/fleet`) up to date with the partials it merges, and returns the
//! summaries of the buckets it wrote. The aggregator copies them, per pipeline of charge points,
//! into the fleet buckets with [`FLEET_SCRIPT`]. The summary is an absolute value, so a retried
//! flush sets the same value again; and a retried merge (already applied) still returns its
//! summaries, so a crash between the two scripts is repaired by the retry or the write-ahead
//! log replay. The fleet keys share the hash tag `{fleet}` (one Redis Cluster slot) so one
//! script updates them all.
//!
//! A charge point's energy in a bucket is its connectors' phase-less
//! `Energy.Active.Import.Register` energy (split at bucket boundaries exactly as the charge
//! point's own roll-up splits it), or connector 0's when no other connector metered it: a charge
//! point reporting both would otherwise count its energy twice. Its power is the largest
//! phase-less `Power.Active.Import` reading, its samples all its numeric samples.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use deadpool_redis::redis;

use crate::redis_pool::Pool;
use crate::store::aggregates::Period;
use crate::store::keys;
use crate::store::reads::ReadError;

/// The script that copies summaries into the fleet buckets (arguments: its header).
pub const FLEET_SCRIPT: &str = include_str!("fleet_merge.lua");

/// Field of a fleet bucket holding the sum of its charge points' energy (Wh).
pub const TOTAL_ENERGY_FIELD: &str = "/energy_wh";
/// Field of a fleet bucket holding how many charge points it holds.
pub const TOTAL_CHARGE_POINTS_FIELD: &str = "/charge_points";

/// One charge point's figures in one bucket.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Summary {
    /// Numeric samples rolled up.
    pub samples: u64,
    /// Energy imported (Wh), see the module doc for which registers count.
    pub energy_wh: f64,
    /// Largest phase-less active import power (W), if any was reported.
    pub max_power_w: Option<f64>,
}

impl Summary {
    /// Parses `samples|energy_wh|max_power_w` as the scripts store it; `None` if malformed.
    pub fn decode(text: &str) -> Option<Summary> {
        let mut parts = text.split('|');
        let samples = parts.next()?.parse().ok()?;
        let energy_wh = parts.next()?.parse().ok()?;
        let max_power_w = match parts.next()? {
            "" => None,
            p => Some(p.parse().ok()?),
        };
        Some(Summary {
            samples,
            energy_wh,
            max_power_w,
        })
    }
}

/// The period and start (ms) of a charge point bucket key (`ocpp:{cp}:agg:<period>:<start>`,
/// as the merge script returns it); `None` for anything else.
pub fn bucket_of(charge_point_bucket: &str) -> Option<(Period, i64)> {
    let mut parts = charge_point_bucket.rsplitn(3, ':');
    let start_s: i64 = parts.next()?.parse().ok()?;
    let period = Period::parse(parts.next()?)?;
    Some((period, start_s.checked_mul(1000)?))
}

/// The fleet bucket a charge point bucket key feeds, with the bucket's period and start (ms);
/// `None` for anything else.
pub fn fleet_key_of(charge_point_bucket: &str) -> Option<(String, Period, i64)> {
    let (period, start_ms) = bucket_of(charge_point_bucket)?;
    Some((
        keys::fleet_bucket(period.as_str(), start_ms / 1000),
        period,
        start_ms,
    ))
}

/// One bucket of a fleet energy query.
#[derive(Debug, Clone, PartialEq)]
pub struct EnergyBucket {
    /// Bucket start.
    pub start: DateTime<Utc>,
    /// Energy of the fleet (or group) in the bucket (Wh).
    pub energy_wh: f64,
    /// Charge points (of the group) with roll-up data in the bucket.
    pub charge_points: u64,
}

/// Energy per bucket of the whole fleet (`members` = `None`: two fields per bucket) or of a
/// group's members (their fields of each bucket, with `HMGET`), in one pipelined round trip.
/// Every bucket of the range is answered, empty ones with zeros.
pub async fn energy(
    pool: &Pool,
    period: Period,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    members: Option<&[String]>,
) -> Result<Vec<EnergyBucket>, ReadError> {
    let starts = period.starts_in(from, to);
    if starts.is_empty() {
        return Ok(Vec::new());
    }
    let mut conn = pool.get().await?;
    let mut pipe = redis::pipe();
    for start in &starts {
        let key = keys::fleet_bucket(period.as_str(), start / 1000);
        match members {
            None => pipe
                .cmd("HMGET")
                .arg(key)
                .arg(TOTAL_ENERGY_FIELD)
                .arg(TOTAL_CHARGE_POINTS_FIELD),
            // HMGET needs at least one field; an empty group reads nothing.
            Some([]) => pipe.cmd("HMGET").arg(key).arg(TOTAL_ENERGY_FIELD).arg("/"),
            Some(members) => pipe.cmd("HMGET").arg(key).arg(members),
        };
    }
    let replies: Vec<Vec<Option<String>>> = pipe.query_async(&mut conn).await?;
    Ok(starts
        .iter()
        .zip(replies)
        .map(|(start, fields)| {
            let (energy_wh, charge_points) = match members {
                None => (
                    fields
                        .first()
                        .and_then(|f| f.as_deref()?.parse::<f64>().ok())
                        .unwrap_or(0.0),
                    fields
                        .get(1)
                        .and_then(|f| f.as_deref()?.parse::<u64>().ok())
                        .unwrap_or(0),
                ),
                Some([]) => (0.0, 0),
                Some(_) => fields
                    .iter()
                    .filter_map(|f| Summary::decode(f.as_deref()?))
                    .fold((0.0, 0), |(e, n), s| (e + s.energy_wh, n + 1)),
            };
            EnergyBucket {
                start: DateTime::from_timestamp_millis(*start).unwrap_or_default(),
                // The running total can drift to a tiny negative number by rounding.
                energy_wh: if energy_wh.abs() < 1e-6 {
                    0.0
                } else {
                    energy_wh
                },
                charge_points,
            }
        })
        .collect())
}

/// One fleet script call being assembled: the fleet bucket keys it names and its entries
/// (arguments: the header of `fleet_merge.lua`). Shared by the aggregator's flushes and the
/// start-up [`repair`], so both write the fleet roll-up the same way.
#[derive(Debug, Default)]
pub struct FleetUpdate {
    /// Fleet bucket keys, in first-use order (`KEYS`).
    keys: Vec<String>,
    /// `(key index, charge point, fleet value, expire_at)`.
    entries: Vec<(usize, String, String, i64)>,
}

impl FleetUpdate {
    /// Adds the fleet value (`samples|energy_wh|max_power_w`) of `charge_point` for the bucket
    /// of `period` starting at `start_ms`; `retention` is (hourly, daily) days, for its expiry.
    pub fn add(
        &mut self,
        charge_point: &str,
        period: Period,
        start_ms: i64,
        value: String,
        retention: (u32, u32),
    ) {
        let key = keys::fleet_bucket(period.as_str(), start_ms / 1000);
        let index = match self.keys.iter().position(|k| *k == key) {
            Some(i) => i,
            None => {
                self.keys.push(key);
                self.keys.len() - 1
            }
        };
        let keep = match period {
            Period::Hour => retention.0,
            Period::Day => retention.1,
        };
        self.entries.push((
            index,
            charge_point.to_owned(),
            value,
            period.expires_at(start_ms, keep),
        ));
    }

    /// The script call (`EVALSHA` of `sha`, or `EVAL` of the script when `None`); `None` when
    /// nothing was added.
    pub fn command(self, sha: Option<&str>) -> Option<redis::Cmd> {
        if self.entries.is_empty() {
            return None;
        }
        let mut cmd = match sha {
            Some(sha) => {
                let mut cmd = redis::cmd("EVALSHA");
                cmd.arg(sha);
                cmd
            }
            None => {
                let mut cmd = redis::cmd("EVAL");
                cmd.arg(FLEET_SCRIPT);
                cmd
            }
        };
        cmd.arg(self.keys.len())
            .arg(&self.keys)
            .arg(self.entries.len());
        for (index, cp, value, expire_at) in self.entries {
            cmd.arg(index + 1).arg(cp).arg(value).arg(expire_at);
        }
        Some(cmd)
    }
}

/// Copies the summaries of the given charge point buckets (`(charge point, period, start ms)`)
/// into the fleet roll-up again, from what the buckets hold now.
///
/// Why: the merge script and the fleet update are two steps (two slots on a cluster). A crash
/// between them leaves the fleet roll-up behind the charge point's buckets; the write-ahead log
/// still holds those readings (the log retires them only once the whole flush succeeded), but
/// the replay sends them to no merge (Redis says the roll-ups hold them), so no summary would
/// come back. The start-up replay calls this for them before any new flush can run; the values
/// are absolute, so repairing what was not broken changes nothing. Returns how many fleet
/// fields changed.
pub async fn repair(
    pool: &Pool,
    buckets: &[(String, Period, i64)],
    retention: (u32, u32),
) -> Result<u64, ReadError> {
    let mut conn = pool.get().await?;
    let mut changed = 0;
    for chunk in buckets.chunks(256) {
        let mut pipe = redis::pipe();
        for (cp, period, start_ms) in chunk {
            pipe.hget(
                keys::aggregate_bucket(cp, period.as_str(), start_ms / 1000),
                SUMMARY_FIELD,
            );
        }
        let summaries: Vec<Option<String>> = pipe.query_async(&mut conn).await?;
        let mut update = FleetUpdate::default();
        for ((cp, period, start_ms), summary) in chunk.iter().zip(summaries) {
            if let Some(value) = summary.as_deref().and_then(fleet_value) {
                update.add(cp, *period, *start_ms, value, retention);
            }
        }
        let Some(cmd) = update.command(None) else {
            continue;
        };
        changed += cmd.query_async::<u64>(&mut conn).await?;
    }
    Ok(changed)
}

/// Field of a charge point bucket holding its fleet summary (see `aggregate_merge.lua`).
pub const SUMMARY_FIELD: &str = "/fleet";

/// What the fleet bucket holds for a charge point bucket's summary
/// (`samples|e_cp|e_out|has_out|max_power` -> `samples|energy_wh|max_power_w`), as the merge
/// script's `summary_reply` makes it; `None` if malformed.
pub fn fleet_value(summary: &str) -> Option<String> {
    let parts: Vec<&str> = summary.split('|').collect();
    let [samples, e_cp, e_out, has_out, max_power] = parts[..] else {
        return None;
    };
    samples.parse::<u64>().ok()?;
    e_cp.parse::<f64>().ok()?;
    e_out.parse::<f64>().ok()?;
    let energy = if has_out == "1" { e_out } else { e_cp };
    Some(format!("{samples}|{energy}|{max_power}"))
}

/// Every charge point's figures over `[from, to)`, summed (energy, samples) or maximised
/// (power) over the buckets: whole UTC days from daily buckets, the hours at either end from
/// hourly ones, so a month reads ~30 hashes rather than 720. `from` and `to` are whole hours
/// (the API rounds them). `members` restricts to a group.
///
/// A fleet-wide answer reads every field of those hashes (20,000 charge points: ~0.5 MB per
/// hash), so the replies are folded straight from the protocol values, without a `String` per
/// field; one bucket per round trip keeps Redis's share of the work in small slices between
/// other clients' commands.
pub async fn per_charge_point(
    pool: &Pool,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    members: Option<&[String]>,
) -> Result<HashMap<String, Summary>, ReadError> {
    let keys = covering_keys(from.timestamp_millis(), to.timestamp_millis());
    let mut totals: HashMap<String, Summary> = HashMap::new();
    if keys.is_empty() {
        return Ok(totals);
    }
    let mut conn = pool.get().await?;
    match members {
        None => {
            for key in &keys {
                let reply: redis::Value = redis::cmd("HGETALL")
                    .arg(key)
                    .query_async(&mut conn)
                    .await?;
                fold_hash(&mut totals, reply);
            }
        }
        Some([]) => {}
        Some(members) => {
            let mut pipe = redis::pipe();
            for key in &keys {
                pipe.cmd("HMGET").arg(key).arg(members);
            }
            let lists: Vec<Vec<Option<String>>> = pipe.query_async(&mut conn).await?;
            for values in lists {
                for (cp, value) in members.iter().zip(values) {
                    if let Some(s) = value.as_deref().and_then(Summary::decode) {
                        add(&mut totals, cp, s);
                    }
                }
            }
        }
    }
    Ok(totals)
}

/// Adds one bucket's summary of `cp` to its total; allocates only for a charge point not seen
/// in an earlier bucket.
fn add(totals: &mut HashMap<String, Summary>, cp: &str, s: Summary) {
    let total = match totals.get_mut(cp) {
        Some(total) => total,
        None => totals.entry(cp.to_owned()).or_default(),
    };
    total.samples += s.samples;
    total.energy_wh += s.energy_wh;
    total.max_power_w = match (total.max_power_w, s.max_power_w) {
        (Some(a), Some(b)) => Some(a.max(b)),
        (a, b) => a.or(b),
    };
}

/// Folds an `HGETALL` reply (a flat array in RESP2, a map in RESP3) into `totals`, skipping the
/// bucket's own `/` fields and anything unreadable.
fn fold_hash(totals: &mut HashMap<String, Summary>, reply: redis::Value) {
    let mut pair = |field: &redis::Value, value: &redis::Value| {
        let (redis::Value::BulkString(field), redis::Value::BulkString(value)) = (field, value)
        else {
            return;
        };
        let (Ok(cp), Ok(value)) = (std::str::from_utf8(field), std::str::from_utf8(value)) else {
            return;
        };
        if cp.starts_with('/') {
            return;
        }
        if let Some(s) = Summary::decode(value) {
            add(totals, cp, s);
        }
    };
    match &reply {
        redis::Value::Array(items) => {
            for kv in items.chunks_exact(2) {
                pair(&kv[0], &kv[1]);
            }
        }
        redis::Value::Map(entries) => {
            for (k, v) in entries {
                pair(k, v);
            }
        }
        _ => {}
    }
}

/// The fleet bucket keys that exactly tile `[from_ms, to_ms)` (both whole hours): daily
/// buckets for the whole UTC days inside, hourly ones for the hours at the ends.
fn covering_keys(from_ms: i64, to_ms: i64) -> Vec<String> {
    let (hour, day) = (Period::Hour.length_ms(), Period::Day.length_ms());
    let mut keys = Vec::new();
    let mut t = from_ms;
    while t < to_ms {
        if t % day == 0 && t + day <= to_ms {
            keys.push(keys::fleet_bucket(Period::Day.as_str(), t / 1000));
            t += day;
        } else {
            keys.push(keys::fleet_bucket(Period::Hour.as_str(), t / 1000));
            t += hour;
        }
    }
    keys
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summaries_parse_as_the_scripts_write_them() {
        assert_eq!(
            Summary::decode("12|3500.5|7200"),
            Some(Summary {
                samples: 12,
                energy_wh: 3500.5,
                max_power_w: Some(7200.0)
            })
        );
        assert_eq!(
            Summary::decode("3|0|"),
            Some(Summary {
                samples: 3,
                energy_wh: 0.0,
                max_power_w: None
            })
        );
        assert_eq!(Summary::decode("x|0|"), None);
        assert_eq!(Summary::decode("1"), None);
    }

    #[test]
    fn fleet_values_take_the_connectors_energy_when_any_connector_metered() {
        assert_eq!(fleet_value("12|5|7|1|7400").as_deref(), Some("12|7|7400"));
        assert_eq!(fleet_value("12|5|0|0|").as_deref(), Some("12|5|"));
        assert_eq!(fleet_value("12|5|0"), None);
        assert_eq!(fleet_value("x|5|0|0|"), None);
    }

    #[test]
    fn charge_point_bucket_keys_name_their_fleet_bucket() {
        assert_eq!(
            fleet_key_of("ocpp:{CP:1}:agg:hour:3600"),
            Some((
                "ocpp:{fleet}:agg:hour:3600".to_owned(),
                Period::Hour,
                3_600_000
            ))
        );
        assert_eq!(
            fleet_key_of(&keys::aggregate_bucket("CP1", "day", 86_400)),
            Some((
                "ocpp:{fleet}:agg:day:86400".to_owned(),
                Period::Day,
                86_400_000
            ))
        );
        assert_eq!(fleet_key_of("ocpp:{CP1}:agg:week:0"), None);
    }

    #[test]
    fn ranges_are_tiled_by_days_inside_and_hours_at_the_ends() {
        let h = 3_600_000;
        let d = 24 * h;
        let keys = covering_keys(d - 2 * h, 2 * d + 3 * h);
        assert_eq!(
            keys,
            [
                keys::fleet_bucket("hour", (d - 2 * h) / 1000),
                keys::fleet_bucket("hour", (d - h) / 1000),
                keys::fleet_bucket("day", d / 1000),
                keys::fleet_bucket("hour", 2 * d / 1000),
                keys::fleet_bucket("hour", (2 * d + h) / 1000),
                keys::fleet_bucket("hour", (2 * d + 2 * h) / 1000),
            ]
        );
        assert!(covering_keys(h, h).is_empty());
    }
}
