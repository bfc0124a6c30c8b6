//! Read-at-scrape metrics: the server already keeps its counters in atomics (ingest, writer,
//! roll-ups, webhook, live stream), so a collector reads them when Prometheus scrapes instead of
//! counting everything twice.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use actors::aggregator::AggregatorStats;
use actors::charge_point::ChargePointActor;
use actors::counters::IngestCounters;
use actors::fleet::FleetCounters;
use actors::redis_pool::ClusterCounters;
use actors::registry::Registry;
use actors::store::read_cache::ReadCacheStats;
use actors::store::tracked_reads::TrackedStats;
use actors::wal::WalStats;
use actors::writer::WriterStats;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;

use crate::api::event_hub::EventHubCounters;
use crate::mqtt::MqttStats;
use crate::notify::webhook::WebhookStats;

/// The atomics a scrape reads; each is shared with the part of the server that updates it.
#[derive(Clone)]
pub struct Sources {
    /// Connected charge points.
    pub registry: Registry<ChargePointActor>,
    /// What charge points sent.
    pub counters: Arc<IngestCounters>,
    /// Raw sample writes.
    pub writer: Arc<WriterStats>,
    /// Roll-up writes.
    pub aggregator: Arc<AggregatorStats>,
    /// Charge points whose roll-up batches are not yet in Redis.
    pub rollup_backlog: Arc<actors::backlog::Backlog>,
    /// Charge points whose raw samples, handed to the writer, are not yet in Redis.
    pub unwritten: Arc<actors::backlog::Backlog>,
    /// SSE clients of `GET /api/v1/events`.
    pub event_hub: Arc<EventHubCounters>,
    /// Alert webhook deliveries, when a webhook is configured.
    pub webhook: Option<Arc<WebhookStats>>,
    /// The write-ahead log, when enabled.
    pub wal: Option<Arc<WalStats>>,
    /// The Redis Cluster pool's counters, in cluster mode.
    pub cluster: Option<Arc<ClusterCounters>>,
    /// This instance's id in the fleet and the fleet counters (routed calls, takeovers,
    /// fleet-wide events).
    pub fleet: (String, Arc<FleetCounters>),
    /// The API's read cache.
    pub read_cache: Arc<ReadCacheStats>,
    /// The large reads answered from memory under Redis's client tracking.
    pub tracked: Arc<TrackedStats>,
    /// MQTT publication, when `[mqtt] url` is set.
    pub mqtt: Option<Arc<MqttStats>>,
}

impl std::fmt::Debug for Sources {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sources")
            .field("connected", &self.registry.len())
            .finish_non_exhaustive()
    }
}

/// The collector registered with the metrics registry.
#[derive(Debug)]
pub struct StatsCollector(pub Sources);

/// Writes one unlabelled counter.
fn counter(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    value: u64,
) -> std::fmt::Result {
    let metric = ConstCounter::new(value);
    metric.encode(encoder.encode_descriptor(name, help, None, metric.metric_type())?)
}

/// Writes one counter family with a single label.
fn labelled_counter(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    label: &str,
    series: &[(&str, u64)],
) -> std::fmt::Result {
    let mut family =
        encoder.encode_descriptor(name, help, None, ConstCounter::new(0u64).metric_type())?;
    for (value, count) in series {
        let labels = [(label, *value)];
        ConstCounter::new(*count).encode(family.encode_family(&labels)?)?;
    }
    Ok(())
}

/// Writes one unlabelled gauge.
fn gauge(encoder: &mut DescriptorEncoder, name: &str, help: &str, value: u64) -> std::fmt::Result {
    let metric = ConstGauge::new(i64::try_from(value).unwrap_or(i64::MAX));
    metric.encode(encoder.encode_descriptor(name, help, None, metric.metric_type())?)
}

impl Collector for StatsCollector {
    fn encode(&self, mut e: DescriptorEncoder) -> std::fmt::Result {
        let s = &self.0;
        let load = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
        gauge(
            &mut e,
            "ocpp_connected_charge_points",
            "Charge points with an open WebSocket session",
            s.registry.len() as u64,
        )?;
        counter(
            &mut e,
            "samples_ingested",
            "Samples accepted from MeterValues and transaction messages, after de-duplication",
            load(&s.counters.samples_received),
        )?;
        counter(
            &mut e,
            "samples_repeated",
            "Readings dropped as repeats of recent ones (a retried MeterValues)",
            load(&s.counters.samples_repeated),
        )?;
        counter(
            &mut e,
            "sampled_values_rejected",
            "Sampled values skipped because they could not be read",
            load(&s.counters.values_rejected),
        )?;
        counter(
            &mut e,
            "charge_point_auth_failures",
            "WebSocket upgrades refused with 401: wrong, missing or unknown charge point credentials",
            load(&s.counters.auth_failures),
        )?;
        counter(
            &mut e,
            "charge_point_auth_rate_limited",
            "WebSocket upgrades refused with 429 because their address failed too often",
            load(&s.counters.auth_rate_limited),
        )?;
        counter(
            &mut e,
            "samples_stored",
            "Samples confirmed written to Redis",
            load(&s.writer.samples_stored),
        )?;
        labelled_counter(
            &mut e,
            "samples_dropped",
            "Samples lost because a bounded queue was full: the raw writer's or the roll-up aggregator's",
            "stage",
            &[
                ("writer", load(&s.writer.samples_dropped)),
                ("rollup", load(&s.aggregator.samples_dropped)),
            ],
        )?;
        counter(
            &mut e,
            "samples_rolled_up",
            "Numeric samples added to the hourly and daily roll-ups",
            load(&s.aggregator.samples),
        )?;
        gauge(
            &mut e,
            "buffered_samples",
            "Samples held in charge point buffers, not yet handed to the writer",
            s.counters.buffered_samples.load(Ordering::Relaxed) as u64,
        )?;
        gauge(
            &mut e,
            "writer_pending_samples",
            "Samples queued in the Redis writer, not yet confirmed written",
            load(&s.writer.samples_pending),
        )?;
        gauge(
            &mut e,
            "writer_pending_charge_points",
            "Charge points with samples handed to the Redis writer and not yet confirmed written; a raw read of any other is answered without asking the writer",
            s.unwritten.charge_points() as u64,
        )?;
        gauge(
            &mut e,
            "rollup_pending_charge_points",
            "Charge points with readings sent to the roll-up aggregator and not yet in Redis; a roll-up read of any other is answered without asking the aggregator",
            s.rollup_backlog.charge_points() as u64,
        )?;
        gauge(
            &mut e,
            "writer_latest_pending_charge_points",
            "Charge points whose latest-values hash in Redis is behind their raw samples (written coalesced, at most every buffer.latest_interval_secs)",
            load(&s.writer.latest_pending),
        )?;
        gauge(
            &mut e,
            "redis_up",
            "1 when the last Redis write pipeline succeeded",
            u64::from(s.writer.redis_up.load(Ordering::Relaxed)),
        )?;
        labelled_counter(
            &mut e,
            "redis_errors",
            "Failed Redis writes (each is retried with backoff), by writer",
            "component",
            &[
                ("writer", load(&s.writer.pipelines_failed)),
                ("rollup", load(&s.aggregator.flushes_failed)),
            ],
        )?;
        counter(
            &mut e,
            "redis_commands",
            "Redis commands sent in successful raw-sample pipelines",
            load(&s.writer.commands_sent),
        )?;
        gauge(
            &mut e,
            "sse_clients",
            "Clients connected to the live event stream",
            s.event_hub.clients.load(Ordering::Relaxed) as u64,
        )?;
        counter(
            &mut e,
            "sse_clients_dropped",
            "Live event stream clients dropped for falling behind",
            load(&s.event_hub.dropped_slow),
        )?;
        if let Some(wal) = &s.wal {
            encode_wal(&mut e, wal)?;
        }
        if let Some(cluster) = &s.cluster {
            counter(
                &mut e,
                "redis_cluster_split_pipelines",
                "Pipelines that spanned several cluster slots and were sent as one part per slot",
                load(&cluster.split_pipelines),
            )?;
            counter(
                &mut e,
                "redis_cluster_pipeline_parts",
                "Per-slot parts sent for split pipelines",
                load(&cluster.pipeline_parts),
            )?;
            counter(
                &mut e,
                "redis_cluster_errors",
                "Commands or pipelines that failed with a cluster error (MOVED/ASK past the retries, TRYAGAIN, CLUSTERDOWN, node unreachable or timed out)",
                load(&cluster.cluster_errors),
            )?;
            counter(
                &mut e,
                "redis_cluster_unreplicated_writes",
                "Write pipeline parts whose WAIT saw fewer than redis.wait_replicas replicas in time",
                load(&cluster.unreplicated_writes),
            )?;
        }
        encode_fleet(&mut e, &s.fleet.0, &s.fleet.1)?;
        let cache = &s.read_cache;
        labelled_counter(
            &mut e,
            "ocpp_read_cache_lookups",
            "Read cache lookups of the meter-values and aggregates reads: hit (still valid in Redis, at most a new tail fetched) or miss (read and decoded in full)",
            "result",
            &[("hit", load(&cache.hits)), ("miss", load(&cache.misses))],
        )?;
        labelled_counter(
            &mut e,
            "ocpp_read_cache_dropped",
            "Read cache entries dropped: invalidated (Redis showed them out of date) or evicted (the reads.cache_bytes bound)",
            "reason",
            &[
                ("invalidated", load(&cache.invalidated)),
                ("evicted", load(&cache.evicted)),
            ],
        )?;
        gauge(
            &mut e,
            "ocpp_read_cache_bytes",
            "Estimated bytes held by the read cache (bounded by reads.cache_bytes)",
            load(&cache.bytes),
        )?;
        gauge(
            &mut e,
            "ocpp_read_cache_entries",
            "Entries held by the read cache",
            load(&cache.entries),
        )?;
        let tracked = &s.tracked;
        counter(
            &mut e,
            "ocpp_read_tracked_answers",
            "Large reads answered from memory, without Redis, because Redis's client tracking reported no change since it confirmed them (reads.tracked_secs)",
            load(&tracked.answered),
        )?;
        counter(
            &mut e,
            "ocpp_read_tracked_confirmations",
            "Large reads confirmed by Redis over a tracked connection, and kept to answer the next ones",
            load(&tracked.confirmed),
        )?;
        counter(
            &mut e,
            "ocpp_read_tracked_invalidated_keys",
            "Keys Redis reported changed to the tracked read connections (each forgets its charge point's kept reads)",
            load(&tracked.invalidated_keys),
        )?;
        counter(
            &mut e,
            "ocpp_read_tracked_lost_connections",
            "Tracked read connections lost or failed (each forgets every kept read)",
            load(&tracked.lost_connections),
        )?;
        if let Some((allocated, resident)) = crate::memory::allocator_bytes() {
            gauge(
                &mut e,
                "ocpp_memory_allocated_bytes",
                "Bytes in live heap allocations (jemalloc's stats.allocated)",
                allocated,
            )?;
            gauge(
                &mut e,
                "ocpp_memory_resident_bytes",
                "Bytes of physical memory the allocator holds (jemalloc's stats.resident): its part of the RSS",
                resident,
            )?;
        }
        if let Some(webhook) = &s.webhook {
            counter(
                &mut e,
                "webhook_deliveries",
                "Alert notifications the webhook receiver accepted",
                load(&webhook.delivered),
            )?;
            counter(
                &mut e,
                "webhook_failed_attempts",
                "Webhook attempts that failed (error, timeout or non-2xx), each retried",
                load(&webhook.failed_attempts),
            )?;
            counter(
                &mut e,
                "webhook_dropped",
                "Alert notifications dropped because the webhook queue was full",
                load(&webhook.dropped),
            )?;
        }
        if let Some(mqtt) = &s.mqtt {
            encode_mqtt(&mut e, mqtt)?;
        }
        Ok(())
    }
}

/// MQTT publication: whether the broker takes what ingest produces.
fn encode_mqtt(e: &mut DescriptorEncoder, mqtt: &MqttStats) -> std::fmt::Result {
    let load = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
    counter(
        e,
        "ocpp_mqtt_published",
        "MQTT messages (meter, alert, discovery) the broker acknowledged",
        load(&mqtt.published),
    )?;
    counter(
        e,
        "ocpp_mqtt_dropped",
        "MQTT messages given up: the oldest of a full queue (mqtt.max_queue) while the broker was down or slow, or too large",
        load(&mqtt.dropped),
    )?;
    counter(
        e,
        "ocpp_mqtt_errors",
        "MQTT connection attempts that failed and connections lost",
        load(&mqtt.errors),
    )?;
    gauge(
        e,
        "ocpp_mqtt_connected",
        "1 while connected to the MQTT broker, else 0",
        load(&mqtt.connected),
    )?;
    gauge(
        e,
        "ocpp_mqtt_queued",
        "MQTT messages waiting for the broker or not yet acknowledged",
        load(&mqtt.queued),
    )
}

/// The write-ahead log's counters and gauges.
fn encode_wal(e: &mut DescriptorEncoder, wal: &WalStats) -> std::fmt::Result {
    let load = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
    counter(
        e,
        "wal_records",
        "Records appended to the write-ahead log (one per MeterValues, StartTransaction, StopTransaction)",
        load(&wal.records),
    )?;
    counter(
        e,
        "wal_bytes_written",
        "Bytes written to write-ahead log segments",
        load(&wal.bytes_written),
    )?;
    counter(
        e,
        "wal_commits",
        "Group commits of the write-ahead log (one write each)",
        load(&wal.commits),
    )?;
    counter(
        e,
        "wal_fsyncs",
        "fdatasync calls of the write-ahead log",
        load(&wal.fsyncs),
    )?;
    counter(
        e,
        "wal_commit_microseconds",
        "Time spent writing and syncing write-ahead log commits, summed (divide by wal_commits)",
        load(&wal.commit_micros),
    )?;
    counter(
        e,
        "wal_append_failures",
        "Requests answered with an error because the write-ahead log was full or could not be written",
        load(&wal.appends_failed),
    )?;
    gauge(
        e,
        "wal_segments",
        "Write-ahead log segment files on disk",
        load(&wal.segments),
    )?;
    gauge(
        e,
        "wal_disk_bytes",
        "Bytes of write-ahead log segments on disk",
        load(&wal.disk_bytes),
    )?;
    counter(
        e,
        "wal_segments_retired",
        "Write-ahead log segments deleted because Redis held everything in them",
        load(&wal.segments_retired),
    )?;
    gauge(
        e,
        "wal_records_replayed",
        "Records replayed from the write-ahead log at start",
        load(&wal.records_replayed),
    )?;
    counter(
        e,
        "wal_tails_truncated",
        "Torn or corrupt segment tails cut off at start",
        load(&wal.tails_truncated),
    )
}

/// The fleet metrics: which instance this is (a gauge of 1 labelled with its id, the usual
/// Prometheus "info" idiom, so the other series need no extra label to be told apart once
/// each instance is scraped as its own target), routed calls, takeovers, fleet-wide events.
fn encode_fleet(
    e: &mut DescriptorEncoder,
    instance: &str,
    fleet: &FleetCounters,
) -> std::fmt::Result {
    let load = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
    {
        let metric = ConstGauge::new(1i64);
        let mut family = e.encode_descriptor(
            "ocpp_meter_instance_info",
            "This instance's id in the fleet (server.instance_id); always 1",
            None,
            metric.metric_type(),
        )?;
        metric.encode(family.encode_family(&[("instance", instance)])?)?;
    }
    gauge(
        e,
        "fleet_peers",
        "Other ocpp-meter instances whose lease in Redis is alive",
        fleet.peers.load(Ordering::Relaxed) as u64,
    )?;
    labelled_counter(
        e,
        "fleet_remote_calls",
        "Server-initiated calls routed between instances: sent (to the instance holding the charge point), timeout (it did not answer), served (run here for another instance)",
        "result",
        &[
            ("sent", load(&fleet.remote_calls)),
            ("timeout", load(&fleet.remote_call_timeouts)),
            ("served", load(&fleet.remote_calls_served)),
        ],
    )?;
    labelled_counter(
        e,
        "fleet_takeovers",
        "Sessions moved between instances: taken (from another instance) or handed (to another instance, after flushing)",
        "direction",
        &[
            ("taken", load(&fleet.takeovers)),
            ("handed", load(&fleet.handovers)),
        ],
    )?;
    labelled_counter(
        e,
        "fleet_events",
        "Live events on the fleet's pub/sub channel: published, dropped (queue full or Redis refused), received (from other instances)",
        "result",
        &[
            ("published", load(&fleet.events_published)),
            ("dropped", load(&fleet.events_dropped)),
            ("received", load(&fleet.events_received)),
        ],
    )?;
    counter(
        e,
        "fleet_subscriptions",
        "Times the pub/sub connection to Redis was (re)established",
        load(&fleet.subscriptions),
    )
}
