//! The store on a Redis Cluster (`redis.mode = "cluster"`): a private six-node cluster (three
//! masters, three replicas) per test, charge points sending readings as fast as they are
//! answered, and Redis read back key by key: every answered reading stored once, roll-ups
//! exact, through a master's SIGKILL and failover and through a slot migrated mid-load.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use actors::redis_pool::{build_pool, Pool, PoolSettings, RedisTarget};
use chrono::DateTime;
use common::cluster::{cluster_config, migrate_slot, RedisCluster};
use common::stored::{acked_total, assert_stored, base, reading, writer_drained, Acked};
use common::{connect_with, eventually, get, metric_value, spawn_request, start_server};
use ocpp_meter::RunningServer;
use serde_json::{json, Value};

/// One charge point sending readings until `stop`; a CALLERROR is retried after a pause, as a
/// charge point keeps a transaction-related message until it is answered.
async fn load(url: String, id: String, acked: Acked, stop: Arc<AtomicBool>, max_steps: u32) {
    let mut cp = connect_with(&format!("{url}/ocpp/{id}"), Some("ocpp1.6"))
        .await
        .expect("connected");
    let boot = json!({"chargePointVendor": "TestVendor", "chargePointModel": "TM-1"});
    cp.try_call_frame("BootNotification", boot)
        .await
        .expect("boot answered");
    let mut step = 0u32;
    while !stop.load(Ordering::Relaxed) && step < max_steps {
        let Some(answer) = cp
            .try_call_frame("MeterValues", reading(base(), step))
            .await
        else {
            break;
        };
        if answer[0] == json!(3) {
            acked
                .lock()
                .unwrap()
                .entry(id.clone())
                .or_default()
                .insert(step);
            step += 1;
        } else {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

fn start_loads(
    server: &RunningServer,
    ids: &[String],
    acked: &Acked,
    stop: &Arc<AtomicBool>,
    max_steps: u32,
) -> Vec<tokio::task::JoinHandle<()>> {
    let url = format!("ws://{}", server.ws_addr);
    ids.iter()
        .map(|id| {
            tokio::spawn(load(
                url.clone(),
                id.clone(),
                acked.clone(),
                stop.clone(),
                max_steps,
            ))
        })
        .collect()
}

fn pool(cluster: &RedisCluster) -> Pool {
    build_pool(&PoolSettings {
        target: RedisTarget::Cluster(cluster.urls()),
        pool_size: 2,
        connect_timeout: Duration::from_secs(2),
        response_timeout: Duration::from_secs(5),
        wait_replicas: 0,
        wait_timeout: Duration::from_secs(1),
    })
    .unwrap()
}

fn ids(prefix: &str, count: usize) -> Vec<String> {
    (0..count).map(|i| format!("{prefix}-{i}")).collect()
}

/// Charge points whose keys hash to different masters are written through one writer:
/// everything answered is stored once, rolled up exactly, readable through the API, and every
/// key of one charge point sits in its own slot (the split pipelines prove the flushes mixed
/// slots and were sent per slot). `/ready` reports the cluster.
#[actix_web::test]
async fn readings_from_many_charge_points_are_stored_once_across_the_masters() {
    let cluster = RedisCluster::start();
    let mut config = cluster_config(&cluster);
    config.buffer.max_samples = 20;
    config.buffer.max_age_secs = 1;
    config.buffer.rollup_interval_secs = 1;
    let server = start_server(config).await;
    let (code, ready) = get(&server, "/ready").await;
    assert_eq!(code, 200, "{ready}");
    assert_eq!(ready["redis_mode"], "cluster");
    assert_eq!(ready["cluster"]["state"], "ok");
    assert_eq!(ready["cluster"]["size"], 3);

    let ids = ids("CL", 8);
    let masters: BTreeSet<u16> = ids
        .iter()
        .map(|id| {
            cluster
                .master_of(cluster.slot_of(&format!("ocpp:{{{id}}}:raw:1")))
                .1
        })
        .collect();
    assert!(masters.len() >= 2, "the ids should spread over the masters");

    let acked: Acked = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    for load in start_loads(&server, &ids, &acked, &stop, 150) {
        load.await.unwrap();
    }
    assert_eq!(acked_total(&acked), 8 * 150);
    assert!(
        writer_drained(&server, Duration::from_secs(60)).await,
        "the writer did not drain: {:?}, {} samples and {} batches pending, {} buffered, /ready {}",
        server.writer_stats.last_error(),
        server.writer_stats.samples_pending.load(Ordering::SeqCst),
        server.writer_stats.batches_pending.load(Ordering::SeqCst),
        server.counters.buffered_samples.load(Ordering::SeqCst),
        get(&server, "/ready").await.1
    );
    tokio::time::sleep(Duration::from_millis(1500)).await; // one roll-up interval
    let pool = pool(&cluster);
    let (stored, _) = assert_stored(&server, &pool, &acked, true, true).await;
    assert_eq!(stored, 2 * 8 * 150);

    // Every key of one charge point is in one slot, on one master.
    for id in &ids {
        let slot = cluster.slot_of(&format!("ocpp:{{{id}}}:raw:1"));
        for suffix in ["info", "latest", "agg:state", "stats"] {
            assert_eq!(
                cluster.slot_of(&format!("ocpp:{{{id}}}:{suffix}")),
                slot,
                "{id}:{suffix}"
            );
        }
    }
    let (code, latest) = get(
        &server,
        &format!("/api/v1/charge-points/{}/meter-values/latest", ids[0]),
    )
    .await;
    assert_eq!(code, 200, "{latest}");
    assert!(metric_value(&server, "redis_cluster_split_pipelines_total").await > 0.0);

    // The fleet queries work on the cluster: the fleet roll-up (its own slot) holds every charge
    // point's energy (149 readings 10 Wh apart each) and samples, fleet-wide and for a group.
    let hour = base().timestamp().div_euclid(3600) * 3600;
    let range = |from: i64| {
        let at = |s: i64| {
            DateTime::from_timestamp(s, 0)
                .unwrap()
                .format("%Y-%m-%dT%H:%M:%SZ")
                .to_string()
        };
        format!("from={}&to={}", at(from), at(from + 3 * 3600))
    };
    let fleet_energy = |query: String| {
        let server = &server;
        async move {
            let (code, body) = get(server, &format!("/api/v1/fleet/energy?{query}")).await;
            assert_eq!(code, 200, "{body}");
            body["buckets"]
                .as_array()
                .unwrap()
                .iter()
                .map(|b| b["energy_wh"].as_f64().unwrap())
                .sum::<f64>()
        }
    };
    let total = fleet_energy(range(hour)).await;
    assert!((total - 8.0 * 1490.0).abs() < 1e-6, "fleet energy {total}");
    let group = json!({"name": "three", "charge_points": ids[..3]});
    let (code, body) = spawn_request(server.http_addr, "PUT", "/api/v1/groups/three", Some(group))
        .await
        .unwrap();
    assert_eq!(code, 201, "{body}");
    let three = fleet_energy(format!("{}&group=three", range(hour))).await;
    assert!((three - 3.0 * 1490.0).abs() < 1e-6, "group energy {three}");
    let (code, top) = get(
        &server,
        &format!("/api/v1/fleet/top?metric=samples&limit=8&{}", range(hour)),
    )
    .await;
    assert_eq!(code, 200, "{top}");
    let items = top["items"].as_array().unwrap();
    assert_eq!(items.len(), 8, "{top}");
    assert!(items.iter().all(|i| i["value"] == 300), "{top}");
    server.shutdown().await;
}

/// A master SIGKILLed while charge points send readings: its replica is promoted (about two
/// node timeouts), the writer's retry carries the writes over the gap, the readings keep being
/// answered from the write-ahead log; then the killed node restarts and rejoins as a replica; and with `redis.wait_replicas = 1` every answered reading
/// is in the cluster afterwards, rolled up once. (`WAITR=0` runs it without the `WAIT`, to
/// measure what Redis's asynchronous replication can lose: the README's failover figures.)
#[actix_web::test]
async fn a_master_killed_mid_load_loses_no_answered_reading() {
    let mut cluster = RedisCluster::start();
    let mut config = cluster_config(&cluster);
    config.buffer.max_samples = 20;
    config.buffer.max_age_secs = 1;
    config.buffer.rollup_interval_secs = 1;
    config.redis.wait_replicas = std::env::var("WAITR")
        .map(|v| v.parse().unwrap())
        .unwrap_or(1);
    let server = start_server(config).await;
    let ids = ids("FO", 6);
    let acked: Acked = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let loads = start_loads(&server, &ids, &acked, &stop, 100_000);
    assert!(
        eventually(Duration::from_secs(20), || async {
            acked_total(&acked) >= 300
        })
        .await
    );
    let slot = cluster.slot_of(&format!("ocpp:{{{}}}:raw:1", ids[0]));
    let (_, port) = cluster.master_of(slot);
    cluster.kill(port);
    let at_kill = acked_total(&acked);
    // The replica takes over; answers go on meanwhile.
    assert!(
        eventually(Duration::from_secs(20), || async {
            cluster.try_master_of(slot).is_some_and(|m| m.1 != port)
        })
        .await,
        "no replica was promoted"
    );
    cluster.wait_ok(Duration::from_secs(20));
    let promoted = cluster.master_of(slot).1;
    assert!(
        eventually(Duration::from_secs(20), || async {
            acked_total(&acked) >= at_kill + 300
        })
        .await,
        "readings stopped being answered after the failover"
    );
    // The killed node comes back (a node restart): it rejoins as the new master's replica,
    // empty, and syncs while the load goes on.
    cluster.restart(port);
    cluster.wait_ok(Duration::from_secs(20));
    cluster.wait_replicas_synced(Duration::from_secs(30));
    let at_restart = acked_total(&acked);
    assert!(
        eventually(Duration::from_secs(20), || async {
            acked_total(&acked) >= at_restart + 300
        })
        .await,
        "readings stopped being answered after the node restart"
    );
    assert_eq!(
        cluster.master_of(slot).1,
        promoted,
        "the restarted node took its slots back"
    );
    stop.store(true, Ordering::Relaxed);
    for load in loads {
        load.await.unwrap();
    }
    assert!(
        writer_drained(&server, Duration::from_secs(60)).await,
        "the writer did not drain: {:?}, {} samples and {} batches pending, {} buffered, /ready {}",
        server.writer_stats.last_error(),
        server.writer_stats.samples_pending.load(Ordering::SeqCst),
        server.writer_stats.batches_pending.load(Ordering::SeqCst),
        server.counters.buffered_samples.load(Ordering::SeqCst),
        get(&server, "/ready").await.1
    );
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(
        eventually(Duration::from_secs(20), || async {
            get(&server, "/ready").await.0 == 200
        })
        .await,
        "/ready did not recover: {}",
        get(&server, "/ready").await.1
    );
    let pool = pool(&cluster);
    let (stored, repeats) = assert_stored(&server, &pool, &acked, false, true).await;
    eprintln!(
        "master on {port} killed at {at_kill} answered readings, {promoted} promoted; {} answered, {stored} samples stored, {repeats} raw repeats (de-duplicated on read)",
        acked_total(&acked)
    );
    server.shutdown().await;
}

/// The slot of one charge point moved to another master while it sends readings (ASK during
/// the move, MOVED after): nothing answered is lost or stored twice.
#[actix_web::test]
async fn a_slot_migrated_mid_load_loses_nothing() {
    let cluster = RedisCluster::start();
    let mut config = cluster_config(&cluster);
    config.buffer.max_samples = 10;
    config.buffer.max_age_secs = 1;
    config.buffer.rollup_interval_secs = 1;
    let server = start_server(config).await;
    let ids = ids("MG", 4);
    let acked: Acked = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let loads = start_loads(&server, &ids, &acked, &stop, 100_000);
    assert!(
        eventually(Duration::from_secs(20), || async {
            acked_total(&acked) >= 200
        })
        .await
    );
    let slot = cluster.slot_of(&format!("ocpp:{{{}}}:raw:1", ids[0]));
    let from = cluster.master_of(slot);
    let to = cluster
        .masters()
        .into_iter()
        .find(|m| m.1 != from.1)
        .unwrap();
    let masters: Vec<u16> = cluster.masters().into_iter().map(|m| m.1).collect();
    tokio::task::spawn_blocking(move || {
        migrate_slot(&masters, slot, (&from.0, from.1), (&to.0, to.1))
    })
    .await
    .unwrap();
    assert_eq!(cluster.master_of(slot).1, to.1, "the slot did not move");
    let after_move = acked_total(&acked);
    assert!(
        eventually(Duration::from_secs(20), || async {
            acked_total(&acked) >= after_move + 200
        })
        .await
    );
    stop.store(true, Ordering::Relaxed);
    for load in loads {
        load.await.unwrap();
    }
    assert!(
        writer_drained(&server, Duration::from_secs(60)).await,
        "the writer did not drain: {:?}, {} samples and {} batches pending, {} buffered, /ready {}",
        server.writer_stats.last_error(),
        server.writer_stats.samples_pending.load(Ordering::SeqCst),
        server.writer_stats.batches_pending.load(Ordering::SeqCst),
        server.counters.buffered_samples.load(Ordering::SeqCst),
        get(&server, "/ready").await.1
    );
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let pool = pool(&cluster);
    assert_stored(&server, &pool, &acked, true, true).await;
    server.shutdown().await;
}

/// The fleet features on the cluster (tests/instances.rs proves them on one Redis): two
/// instances whose keys, leases and owner records spread over the masters and whose pub/sub
/// connections sit on different seed nodes. A TriggerMessage asked of B is answered by the
/// charge point on A, an event of A's charge point reaches B's live stream (PUBLISH crosses
/// nodes), and a reconnect to B takes over only once A has flushed: acked == stored.
#[actix_web::test]
async fn two_instances_share_the_fleet_on_the_cluster() {
    let cluster = RedisCluster::start();
    let wals = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let config = |name: &str, wal: &tempfile::TempDir, seeds: Vec<String>| {
        let mut config = cluster_config(&cluster);
        config.redis.urls = seeds;
        config.server.instance_id = name.into();
        config.server.instance_lease_secs = 3;
        config.wal.dir = wal.path().display().to_string();
        config.ocpp.call_timeout_secs = 2;
        config.buffer.max_age_secs = 3600;
        config.validate().unwrap();
        config
    };
    let mut seeds = cluster.urls();
    let a = start_server(config("clu-a", &wals.0, seeds.clone())).await;
    seeds.rotate_left(3);
    let b = start_server(config("clu-b", &wals.1, seeds)).await;
    let peers = |s: &RunningServer| s.fleet.counters().peers.load(Ordering::Relaxed);
    assert!(
        eventually(Duration::from_secs(10), || async {
            peers(&a) == 1 && peers(&b) == 1
        })
        .await,
        "each instance sees the other's lease"
    );

    // B's live stream, before anything happens.
    let url = format!("http://{}/api/v1/events?charge_point=CL-T", b.http_addr);
    let response = awc::Client::builder()
        .disable_timeout()
        .finish()
        .get(&url)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    let mut events = Box::pin(response);
    assert!(
        eventually(Duration::from_secs(5), || async { a.fleet.publishing() }).await,
        "A hears that B has a stream client"
    );

    let mut old = connect_with(&format!("ws://{}/ocpp/CL-T", a.ws_addr), Some("ocpp1.6"))
        .await
        .unwrap();
    old.boot().await;
    for step in 0..5 {
        assert_eq!(
            old.call("MeterValues", reading(base(), step)).await,
            json!({})
        );
    }
    assert_eq!(a.writer_stats.samples_stored.load(Ordering::Relaxed), 0);

    // B's stream carries A's samples.
    let mut text = String::new();
    let seen = tokio::time::timeout(Duration::from_secs(10), async {
        use futures_util::StreamExt;
        while let Some(Ok(chunk)) = events.next().await {
            text.push_str(&String::from_utf8_lossy(&chunk));
            if text.matches("event: sample").count() >= 5 {
                return true;
            }
        }
        false
    })
    .await;
    assert_eq!(seen, Ok(true), "B's stream: {text}");

    // A call asked of B reaches the charge point on A.
    let trigger = {
        let url = format!("http://{}/api/v1/charge-points/CL-T/trigger", b.http_addr);
        actix_web::rt::spawn(async move {
            let mut response = awc::Client::default()
                .post(&url)
                .send_json(&json!({"message": "Heartbeat"}))
                .await
                .unwrap();
            let body: Value = response.json().await.unwrap();
            (response.status().as_u16(), body)
        })
    };
    let frame = old.recv().await;
    assert_eq!(frame[2], json!("TriggerMessage"), "{frame}");
    old.send_text(&json!([3, frame[1], {"status": "Accepted"}]).to_string())
        .await;
    assert_eq!(trigger.await.unwrap(), (200, json!({"status": "Accepted"})));

    // The reconnect to B completes once A closed and flushed.
    let _new = connect_with(&format!("ws://{}/ocpp/CL-T", b.ws_addr), Some("ocpp1.6"))
        .await
        .unwrap();
    assert_eq!(
        a.writer_stats.samples_stored.load(Ordering::Relaxed),
        10,
        "acked == stored before the new session starts"
    );
    assert_eq!(old.close_code().await, Some(1008));
    let (code, doc) = get(&a, "/api/v1/charge-points/CL-T").await;
    assert_eq!(code, 200);
    assert_eq!(doc["instance"], json!("clu-b"), "{doc}");
    b.shutdown().await;
    a.shutdown().await;
}
