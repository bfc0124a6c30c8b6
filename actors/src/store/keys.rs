//! Redis key names: the one place that spells them.
//!
//! Every per-charge-point key carries the Redis Cluster hash tag `{<charge point id>}`, so all
//! of one charge point's keys live in the same slot: a flush can pipeline (or `MULTI`) its
//! `APPEND`, `EXPIRE` and `HSET` to one node, and a charge point's data moves as a unit when
//! slots are rebalanced. Charge point ids are validated before they get here (no braces), and
//! the functions `debug_assert!` that, because a brace inside the id would change the tag.

use crate::sample::Sample;

/// Milliseconds in one raw chunk: chunks are per UTC hour so that a time-range read touches
/// few keys and whole hours expire together.
pub const HOUR_MS: i64 = 3_600_000;

/// Global set of known charge point ids; lets the admin API list charge points without `SCAN`.
pub const CHARGE_POINTS: &str = "ocpp:charge-points";

/// String counter (`INCR`) handing out transaction ids: OCPP 1.6 makes the central system
/// choose them, and they must be unique across the whole fleet.
pub const TRANSACTION_SEQ: &str = "ocpp:txn:seq";

fn check_id(charge_point: &str) {
    debug_assert!(
        !charge_point.contains(['{', '}']),
        "charge point id {charge_point:?} would break the Redis Cluster hash tag"
    );
}

/// Raw sample chunk (string of appended blocks, see [`super::chunk`]) for one charge point and
/// one UTC hour (`hour` = unix seconds / 3600), e.g. `ocpp:{CP42}:raw:482000`.
pub fn raw_chunk(charge_point: &str, hour: i64) -> String {
    check_id(charge_point);
    format!("ocpp:{{{charge_point}}}:raw:{hour}")
}

/// Hash of a charge point's BootNotification data and connection state (vendor, model,
/// firmware, last seen); one hash so the admin API reads it with one `HGETALL`.
pub fn info(charge_point: &str) -> String {
    check_id(charge_point);
    format!("ocpp:{{{charge_point}}}:info")
}

/// Hash of connector id -> latest StatusNotification (JSON); connector 0 is the charge point.
pub fn connectors(charge_point: &str) -> String {
    check_id(charge_point);
    format!("ocpp:{{{charge_point}}}:connectors")
}

/// Hash of series ([`latest_field`]) -> latest sample ([`super::chunk::encode_sample_value`]);
/// dashboards read current values here instead of decoding the hour's chunk.
pub fn latest(charge_point: &str) -> String {
    check_id(charge_point);
    format!("ocpp:{{{charge_point}}}:latest")
}

/// String holding the charge point's real-time statistics snapshot (JSON,
/// [`crate::stats::StoredStats`]), `SET … EX retention.stats_hours` at most every few seconds
/// and on disconnect; read by the admin API when the charge point is not connected.
pub fn stats(charge_point: &str) -> String {
    check_id(charge_point);
    format!("ocpp:{{{charge_point}}}:stats")
}

/// String holding the charge point's configuration as it last reported it with
/// GetConfiguration at boot (JSON list of `{key, readonly, value}`, with `read_at`).
pub fn configuration(charge_point: &str) -> String {
    check_id(charge_point);
    format!("ocpp:{{{charge_point}}}:configuration")
}

/// String holding the charge point's metering profile override (JSON), set by
/// `PUT /api/v1/charge-points/{id}/metering`.
pub fn metering(charge_point: &str) -> String {
    check_id(charge_point);
    format!("ocpp:{{{charge_point}}}:metering")
}

/// Hash of configuration key -> refusal (JSON `{value, status}`) of metering keys the charge
/// point refused, so they are not asked again at every boot unless the wanted value changes.
pub fn metering_refused(charge_point: &str) -> String {
    check_id(charge_point);
    format!("ocpp:{{{charge_point}}}:metering:refused")
}

/// String holding the argon2 PHC hash of the charge point's HTTP Basic password (OCPP 1.6
/// security profiles 1 and 2), e.g. `ocpp:{CP42}:password`; never the password itself.
pub fn password(charge_point: &str) -> String {
    check_id(charge_point);
    format!("ocpp:{{{charge_point}}}:password")
}

/// Sorted set of the charge point's transaction ids scored by start time (unix ms), so that
/// "transactions of CP42 last week" is one `ZRANGE … BYSCORE`.
pub fn transactions(charge_point: &str) -> String {
    check_id(charge_point);
    format!("ocpp:{{{charge_point}}}:txns")
}

/// Hash mapping the ids a charge point gives its own transactions (OCPP 2.0.1 `transactionId`,
/// a string) to the server-assigned integer ids the records use, e.g. `ocpp:{CP42}:station-txns`
/// `{"a1b2-..." -> "4711"}`. Written with the transaction's start record; read when a
/// session first meets a station id, so a retried, late or offline event on any instance maps
/// onto the same record.
pub fn station_transactions(charge_point: &str) -> String {
    check_id(charge_point);
    format!("ocpp:{{{charge_point}}}:station-txns")
}

/// Sorted set of every transaction id of the fleet scored by start time (unix ms), so that
/// `GET /api/v1/transactions` pages the whole fleet by start time without visiting every charge
/// point. One fleet-wide key, like [`ALERTS`]: in Redis Cluster it lives in one slot, which
/// is fine for one `ZADD` per StartTransaction. Written by the writer next to the per-charge-point
/// [`transactions`] index; transactions started before it existed are copied in once
/// ([`FLEET_TRANSACTIONS_BACKFILLED`]).
pub const FLEET_TRANSACTIONS: &str = "ocpp:txns";

/// String set once the per-charge-point indexes of a deployment that predates
/// [`FLEET_TRANSACTIONS`] and [`id_tag_transactions`] have been copied into them (see
/// `store::transactions::ensure_fleet_index`); its absence makes the next listing run the copy.
pub const FLEET_TRANSACTIONS_BACKFILLED: &str = "ocpp:txns:backfilled";

/// Sorted set of the transaction ids one idTag started, scored by start time (unix ms), e.g.
/// `ocpp:id-tag:rfid%7b1%7d:txns` for `RFID{1}`: "energy of this card last month" reads it
/// instead of every transaction.
///
/// An idTag is an OCPP CiString20: any printable ASCII, compared without regard to case. So
/// the tag is ASCII-lowercased (one key per tag as OCPP compares them) and `%`, `{`, `}`, and
/// every byte outside printable ASCII are written `%XX`. With no brace left, Redis Cluster
/// hashes the whole key name: a tag cannot pick (or break) a hash tag, and the tags of a fleet
/// spread over the slots. The escape is injective because `%` itself is escaped.
pub fn id_tag_transactions(id_tag: &str) -> String {
    let mut key = String::with_capacity(20 + id_tag.len());
    key.push_str("ocpp:id-tag:");
    for byte in id_tag.bytes() {
        let byte = byte.to_ascii_lowercase();
        if byte == b'%' || byte == b'{' || byte == b'}' || !(0x21..0x7f).contains(&byte) {
            key.push_str(&format!("%{byte:02x}"));
        } else {
            key.push(char::from(byte));
        }
    }
    key.push_str(":txns");
    key
}

/// Hash holding one transaction record. It has no charge point hash tag because
/// StartTransaction/StopTransaction and billing look transactions up by id alone; keep it out
/// of multi-key commands with the per-charge-point keys in Redis Cluster.
pub fn transaction(id: i32) -> String {
    format!("ocpp:txn:{id}")
}

/// String holding one alert document (JSON), kept `retention.alerts_days` after its last
/// change. No hash tag: alerts are looked up by id alone (acknowledge).
pub fn alert(id: &str) -> String {
    format!("ocpp:alert:{id}")
}

/// Sorted set of every alert id scored by `raised_at` (unix ms): the history, newest first
/// with `ZREVRANGEBYSCORE`, trimmed to `retention.alerts_days` on every alert write.
pub const ALERTS: &str = "ocpp:alerts";

/// Set of the ids of active alerts, read at start so an incident is not raised twice across a
/// restart.
pub const ACTIVE_ALERTS: &str = "ocpp:alerts:active";

/// Sorted set of one charge point's alert ids scored by `raised_at` (unix ms), so the
/// `?charge_point=` filter does not walk the whole fleet's history.
pub fn charge_point_alerts(charge_point: &str) -> String {
    check_id(charge_point);
    format!("ocpp:{{{charge_point}}}:alerts")
}

/// String holding the global thresholds document (JSON) set by `PUT /api/v1/thresholds`; wins
/// over `config.toml`.
pub const THRESHOLDS: &str = "ocpp:thresholds";

/// Hash of charge point id -> thresholds document (JSON) overriding the global one; one hash so
/// the alert supervisor loads every override with one `HGETALL` at start.
pub const THRESHOLD_OVERRIDES: &str = "ocpp:thresholds:charge-points";

/// String holding the charge point's presence record ([`crate::fleet::Owner`] as JSON:
/// instance, incarnation, session, since, connected), e.g. `ocpp:{CP42}:owner`. Claimed with
/// `SET … GET` by a new session (newest connection wins), so the previous holder is known in
/// the same step. While connected it has no TTL of its own: it counts as long as the lease of
/// the instance run it names is alive (one renewal per instance, not one per charge point);
/// when the session ends it becomes a "left" record expiring after `server.instance_lease_secs`.
pub fn owner(charge_point: &str) -> String {
    check_id(charge_point);
    format!("ocpp:{{{charge_point}}}:owner")
}

/// String holding one instance's lease (JSON: id, incarnation, listener addresses, last
/// renewal) with a
/// `PX` of `server.instance_lease_secs`, e.g. `ocpp:instance:host-a:8080`. Fleet-wide single
/// key per instance: instances are not charge points and have no hash tag.
pub fn instance(instance_id: &str) -> String {
    format!("ocpp:instance:{instance_id}")
}

/// Sorted set of live instance runs (`<id>@<incarnation>`) scored by their lease's expiry
/// (unix ms): each renewal trims the expired and reads the rest, which decide whose owner
/// records count. One fleet-wide key, touched once per lease renewal per instance.
pub const INSTANCES: &str = "ocpp:instances";

/// Pub/sub channel of one instance (`ocpp:instance:<id>:control`): takeover and routed-call
/// requests for it, answers to its own requests. Channels are not keys; in Redis Cluster a
/// `PUBLISH` reaches the subscribers on every node.
pub fn instance_control(instance_id: &str) -> String {
    format!("ocpp:instance:{instance_id}:control")
}

/// Pub/sub channel carrying every instance's live events (samples, session events, alerts) to
/// the other instances' event streams.
pub const EVENTS_CHANNEL: &str = "ocpp:events";

/// Prefix of a charge point's roll-up bucket hashes of one period (`hour` or `day`): the bucket
/// key is this prefix followed by the bucket start in unix seconds. The merge script builds the
/// keys of buckets that receive only split-off energy from it, so it must equal
/// [`aggregate_bucket`] minus the start.
pub fn aggregate_bucket_prefix(charge_point: &str, period: &str) -> String {
    check_id(charge_point);
    format!("ocpp:{{{charge_point}}}:agg:{period}:")
}

/// Hash of one roll-up bucket: series field -> statistics (see `store::aggregates`), e.g.
/// `ocpp:{CP42}:agg:hour:1700000000`; expires `retention.hourly_days` / `daily_days` after the
/// bucket's end.
pub fn aggregate_bucket(charge_point: &str, period: &str, start_secs: i64) -> String {
    format!(
        "{}{start_secs}",
        aggregate_bucket_prefix(charge_point, period)
    )
}

/// Hash of group id -> group document (JSON `{name, charge_points}`, [`super::groups`]): the
/// sites and customers the fleet queries filter by. One fleet-wide key: groups are few and
/// read whole.
pub const GROUPS: &str = "ocpp:groups";

/// Hash tag shared by every fleet-level roll-up key. One slot on purpose: a flush updates the
/// fleet buckets of up to 32 charge points with one script call, which Redis Cluster allows only
/// within one slot. The cost is that this slot's node takes every fleet write (one script per
/// 32 charge point flushes; see `docs/storage.md`).
pub const FLEET_TAG: &str = "{fleet}";

/// Hash of one fleet-level roll-up bucket: charge point id -> that charge point's summary of
/// the bucket (`samples|energy_wh|max_power_w`, [`super::fleet_rollup`]), plus the running
/// totals `/energy_wh` and `/charge_points` so that a fleet-wide query reads two fields per
/// bucket whatever the fleet size, e.g. `ocpp:{fleet}:agg:hour:1700000000`. Expires like the
/// charge points' buckets of the same period.
pub fn fleet_bucket(period: &str, start_secs: i64) -> String {
    format!("ocpp:{FLEET_TAG}:agg:{period}:{start_secs}")
}

/// Hash of charge point id -> highest write-ahead log sequence number whose samples are in the
/// raw chunks, one hash per log (`wal_id`, [`crate::wal::Wal::id`]). The writer adds one `HSET`
/// at the end of each pipeline that carries logged samples (Redis runs a connection's pipeline
/// in order, so the mark never runs ahead of the `APPEND`s before it); a replay reads it to
/// skip samples already stored. Fleet-wide by design: one command per pipeline, not per charge
/// point.
pub fn wal_raw_marks(wal_id: &str) -> String {
    format!("ocpp:wal:{wal_id}:raw")
}

/// Field of the [`aggregate_state`] hash holding the highest write-ahead log sequence number of
/// log `wal_id` whose samples the roll-ups hold; set by the merge script atomically with them.
pub fn wal_rollup_mark_field(wal_id: &str) -> String {
    format!("wal:{wal_id}")
}

/// Hash of a charge point's roll-up state: the energy baseline of each register series and, per
/// server instance, the last flush it applied; in Redis so restarts and several instances agree.
pub fn aggregate_state(charge_point: &str) -> String {
    check_id(charge_point);
    format!("ocpp:{{{charge_point}}}:agg:state")
}

/// Field of the [`latest`] hash for a sample's series, e.g. `1:Voltage:L1:Outlet` (phase `-`
/// when absent). Context and transaction are left out so a new transaction or a
/// Transaction.End reading overwrites, rather than adds to, the series' current value.
pub fn latest_field(sample: &Sample) -> String {
    format!(
        "{}:{}:{}:{}",
        sample.connector_id,
        sample.measurand,
        sample.phase.map_or("-", |p| p.as_str()),
        sample.location
    )
}

/// Hour index (unix seconds / 3600, floored) of the raw chunk a sample timestamp belongs to.
pub fn hour_of_ms(timestamp_ms: i64) -> i64 {
    timestamp_ms.div_euclid(HOUR_MS)
}

/// Unix time (seconds) at which a raw chunk should expire: retention counts from the end of the
/// chunk's hour, so every sample is kept at least `raw_days` days. Meant for `EXPIREAT`, which
/// (unlike `EXPIRE` with a TTL computed from "now") gives the same answer on every retry.
pub fn raw_chunk_expires_at(hour: i64, raw_days: u32) -> i64 {
    hour.saturating_add(1)
        .saturating_mul(3600)
        .saturating_add(i64::from(raw_days) * 86_400)
}

/// Hour indexes of every raw chunk that may hold samples in the half-open range
/// `[from_ms, to_ms)`, oldest first; empty when `to_ms <= from_ms`. Readers use it to know
/// which chunk keys to fetch without `SCAN`.
pub fn hours_covering(from_ms: i64, to_ms: i64) -> impl Iterator<Item = i64> {
    if to_ms <= from_ms {
        return 0..0;
    }
    // `to_ms > from_ms >= i64::MIN`, so `to_ms - 1` cannot overflow; neither can `last + 1`
    // since an hour index is far below i64::MAX.
    let first = hour_of_ms(from_ms);
    let last = hour_of_ms(to_ms - 1);
    first..last + 1
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sample::{Location, Measurand, Phase, ReadingContext, SampleValue, Unit};
    use chrono::DateTime;

    /// The part of a key Redis Cluster hashes: between the first `{` and the next `}`.
    fn hash_tag(key: &str) -> Option<&str> {
        let open = key.find('{')?;
        let close = key[open + 1..].find('}')? + open + 1;
        Some(&key[open + 1..close])
    }

    #[test]
    fn per_charge_point_keys_share_the_hash_tag() {
        let keys = [
            raw_chunk("CP42", 482_000),
            info("CP42"),
            connectors("CP42"),
            latest("CP42"),
            transactions("CP42"),
            stats("CP42"),
            password("CP42"),
            aggregate_bucket("CP42", "hour", 3600),
            aggregate_state("CP42"),
            owner("CP42"),
        ];
        for key in &keys {
            assert!(key.starts_with("ocpp:{CP42}:"), "{key}");
            assert_eq!(hash_tag(key), Some("CP42"));
        }
        assert_eq!(raw_chunk("CP42", 482_000), "ocpp:{CP42}:raw:482000");
        assert_eq!(
            aggregate_bucket("CP42", "day", 86_400),
            aggregate_bucket_prefix("CP42", "day") + "86400"
        );
        assert_eq!(raw_chunk("CP-1", -1), "ocpp:{CP-1}:raw:-1");
        assert_eq!(transaction(17), "ocpp:txn:17");
        assert_eq!(CHARGE_POINTS, "ocpp:charge-points");
        assert_eq!(TRANSACTION_SEQ, "ocpp:txn:seq");
        assert_eq!(fleet_bucket("hour", 3600), "ocpp:{fleet}:agg:hour:3600");
        assert_eq!(hash_tag(&fleet_bucket("day", 0)), Some("fleet"));
    }

    #[test]
    fn id_tag_keys_have_no_hash_tag_and_fold_case() {
        assert_eq!(id_tag_transactions("ABC123"), "ocpp:id-tag:abc123:txns");
        assert_eq!(id_tag_transactions("abc123"), id_tag_transactions("ABC123"));
        let odd = id_tag_transactions("R{1}% x");
        assert_eq!(odd, "ocpp:id-tag:r%7b1%7d%25%20x:txns");
        assert_eq!(hash_tag(&odd), None);
        // `%` is escaped, so a tag spelling an escape cannot collide with the escaped tag.
        assert_ne!(id_tag_transactions("%7b"), id_tag_transactions("{"));
        assert_eq!(FLEET_TRANSACTIONS, "ocpp:txns");
    }

    #[test]
    #[should_panic(expected = "hash tag")]
    #[cfg(debug_assertions)]
    fn braces_in_ids_are_caught_in_debug_builds() {
        let _ = info("CP{1}");
    }

    #[test]
    fn latest_field_names_the_series() {
        let sample = Sample {
            timestamp: DateTime::from_timestamp(0, 0).unwrap_or_default(),
            connector_id: 1,
            transaction_id: Some(5),
            measurand: Measurand::Voltage,
            phase: Some(Phase::L1N),
            location: Location::Outlet,
            context: ReadingContext::SamplePeriodic,
            unit: Unit::V,
            value: SampleValue::Number(230.0),
        };
        assert_eq!(latest_field(&sample), "1:Voltage:L1-N:Outlet");
        let no_phase = Sample {
            phase: None,
            ..sample
        };
        assert_eq!(latest_field(&no_phase), "1:Voltage:-:Outlet");
    }

    #[test]
    fn hours_covering_is_half_open() {
        let h = HOUR_MS;
        let hours = |from, to| hours_covering(from, to).collect::<Vec<_>>();
        assert_eq!(hours(0, h), [0]);
        assert_eq!(hours(0, h + 1), [0, 1]);
        assert_eq!(hours(h - 1, h), [0]);
        assert_eq!(hours(h, h), Vec::<i64>::new());
        assert_eq!(hours(5, 3), Vec::<i64>::new());
        assert_eq!(hours(10 * h + 5, 13 * h), [10, 11, 12]);
        assert_eq!(hours(-1, 1), [-1, 0]);
        assert_eq!(hours(i64::MIN, i64::MIN + 1).len(), 1);
        assert_eq!(hours(i64::MAX - 1, i64::MAX).len(), 1);
        assert!(hours_covering(i64::MIN, i64::MAX).size_hint().0 > 1);
    }

    #[test]
    fn chunks_expire_counting_from_the_hour_end() {
        let hour = hour_of_ms(1_700_000_000_000);
        assert_eq!(hour, 472_222);
        assert_eq!(
            raw_chunk_expires_at(hour, 7),
            (hour + 1) * 3600 + 7 * 86_400
        );
        assert_eq!(raw_chunk_expires_at(i64::MAX, 7), i64::MAX);
    }
}
