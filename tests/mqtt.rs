//! MQTT publication (`[mqtt] url`) over real sockets: a private mosquitto broker per test on a
//! free loopback port (never the machine's broker on 1883), the real server and a private
//! redis-server, charge points speaking OCPP-J over a WebSocket, and rumqttc subscribers. Meter
//! documents, alert raises and clears and Home Assistant discovery arrive retained with QoS 1;
//! a broker that dies leaves ingest alone, is counted in `/metrics`, and publication resumes
//! when it is back.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed step should stop the test loudly

mod common;

use std::collections::BTreeMap;
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use common::reference::Clock;
use common::stored::{self, Acked};
use common::*;
use ocpp_meter::{Config, RunningServer};
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, Publish, QoS};
use serde_json::{json, Value};
use tokio::sync::mpsc;

/// A private mosquitto listening on one loopback port, anonymous, without persistence.
struct Mosquitto {
    /// Holds its configuration file.
    dir: tempfile::TempDir,
    /// Its port, kept across a stop and a start.
    port: u16,
    /// The running broker.
    child: Option<Child>,
}

/// A port below the kernel's ephemeral range (32768 and up by default), where no outgoing
/// connection takes its local port between this check and the broker's start; apart from the
/// Redis Cluster tests' ports (20000-22699, bus 30000-32699, see `common::cluster`).
///
/// Each call in this process takes the next candidate of a walk that starts at a place given
/// by the process id, so two tests running at once never pick the same port: with the same
/// port, one test's broker answered the other's readiness check while its own exited, and the
/// test that then stopped "its" broker cut the other's subscriber off (a CI failure).
fn free_port() -> u16 {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let seed = u64::from(std::process::id()).wrapping_mul(5_761);
    for _ in 0..6_000 {
        let step = NEXT.fetch_add(1, Ordering::Relaxed);
        let port = 23_000 + ((seed + step * 7_919) % 6_000) as u16;
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free port for mosquitto in 23000-28999");
}

impl Mosquitto {
    /// Starts a broker on a free port; another port is tried when that one was taken meanwhile.
    fn start() -> Mosquitto {
        for _ in 0..5 {
            let mut broker = Mosquitto {
                dir: tempfile::tempdir().unwrap(),
                port: free_port(),
                child: None,
            };
            if broker.spawn() {
                return broker;
            }
        }
        panic!("mosquitto did not start on any of 5 ports");
    }

    fn binary() -> PathBuf {
        let on_path = std::env::var_os("PATH").and_then(|path| {
            std::env::split_paths(&path)
                .map(|dir| dir.join("mosquitto"))
                .find(|candidate| candidate.is_file())
        });
        // Debian installs it in /usr/sbin, which is not on every user's PATH.
        on_path.unwrap_or_else(|| PathBuf::from("/usr/sbin/mosquitto"))
    }

    /// Runs mosquitto on `self.port` and waits until it accepts connections; false when it
    /// exited instead (the port was taken).
    fn spawn(&mut self) -> bool {
        let conf = self.dir.path().join("mosquitto.conf");
        std::fs::write(
            &conf,
            format!(
                "listener {} 127.0.0.1\nallow_anonymous true\npersistence false\n",
                self.port
            ),
        )
        .unwrap();
        let child = Command::new(Self::binary())
            .arg("-c")
            .arg(conf)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("mosquitto must be installed (apt-get install mosquitto)");
        let child = self.child.insert(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if child.try_wait().ok().flatten().is_some() {
                self.child = None;
                return false;
            }
            if TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                // Another process's listener on the port would answer too, while this broker
                // exits on its failed bind: it must still be running a moment later.
                std::thread::sleep(Duration::from_millis(100));
                if child.try_wait().ok().flatten().is_some() {
                    self.child = None;
                    return false;
                }
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        self.stop();
        false
    }

    /// Starts it again on the same port after [`Mosquitto::stop`].
    fn start_again(&mut self) {
        assert!(
            self.spawn(),
            "mosquitto did not start again on {}",
            self.port
        );
    }

    fn url(&self) -> String {
        format!("mqtt://127.0.0.1:{}", self.port)
    }

    /// Kills it (SIGKILL: no goodbye to the clients); retained messages are lost with it.
    fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Mosquitto {
    fn drop(&mut self) {
        self.stop();
    }
}

/// An MQTT subscriber: every message it receives, kept in order, so a test can look for one
/// message without losing others that came first (an alert and the meter message that raised
/// it arrive in either order).
struct Subscriber {
    /// Keeps the connection (dropping it ends the event loop's task).
    _client: AsyncClient,
    /// Messages as they arrive.
    rx: mpsc::UnboundedReceiver<Publish>,
    /// Every message received so far.
    seen: Vec<Publish>,
}

impl Subscriber {
    /// Connects to `broker`, subscribes to `filters` with QoS 1 and waits for the SUBACKs, so
    /// everything published afterwards (and everything retained) arrives. A connection that
    /// fails before its SUBACKs is tried again on a new client, up to five times; the errors
    /// are in the panic message when none succeeds.
    async fn connect(broker: &Mosquitto, filters: &[&str]) -> Subscriber {
        let mut errors = Vec::new();
        for _ in 0..5 {
            match Self::try_connect(broker, filters).await {
                Ok(subscriber) => return subscriber,
                Err(error) => errors.push(error),
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        panic!("the subscriber never got its SUBACKs: {errors:?}");
    }

    /// One client: polls its event loop here until every filter is acknowledged (messages
    /// that come first are kept), then hands the loop to a task that forwards what arrives.
    async fn try_connect(broker: &Mosquitto, filters: &[&str]) -> Result<Subscriber, String> {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let mut options = MqttOptions::new(format!("test-sub-{n}"), "127.0.0.1", broker.port);
        options.set_max_packet_size(1 << 20, 1 << 20);
        let (client, mut eventloop) = AsyncClient::new(options, 16);
        for filter in filters {
            client
                .subscribe(*filter, QoS::AtLeastOnce)
                .await
                .map_err(|e| format!("subscribe {filter}: {e}"))?;
        }
        let (tx, rx) = mpsc::unbounded_channel();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        let mut acknowledged = 0;
        while acknowledged < filters.len() {
            match tokio::time::timeout_at(deadline, eventloop.poll()).await {
                Err(_) => return Err("no SUBACK within 10 s".to_owned()),
                Ok(Err(e)) => return Err(format!("before the SUBACKs: {e:?}")),
                Ok(Ok(Event::Incoming(Packet::SubAck(_)))) => acknowledged += 1,
                Ok(Ok(Event::Incoming(Packet::Publish(publish)))) => {
                    let _ = tx.send(publish);
                }
                Ok(Ok(_)) => {}
            }
        }
        actix_web::rt::spawn(async move {
            loop {
                match eventloop.poll().await {
                    Ok(Event::Incoming(Packet::Publish(publish))) => {
                        if tx.send(publish).is_err() {
                            return;
                        }
                    }
                    Ok(_) => {}
                    Err(_) => return,
                }
            }
        });
        Ok(Subscriber {
            _client: client,
            rx,
            seen: Vec::new(),
        })
    }

    /// The first message on `topic`, waiting up to 10 s for it.
    async fn first_on(&mut self, topic: &str) -> Publish {
        self.first_where(topic, |_| true).await
    }

    /// The first message on `topic` whose JSON payload satisfies `check`, waiting up to 10 s.
    async fn first_where(&mut self, topic: &str, check: impl Fn(&Value) -> bool) -> Publish {
        let matches = |p: &Publish| p.topic == topic && check(&json_of(p));
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(found) = self.seen.iter().find(|p| matches(p)) {
                return found.clone();
            }
            match tokio::time::timeout_at(deadline, self.rx.recv()).await {
                Ok(Some(publish)) => self.seen.push(publish),
                Ok(None) => panic!("the subscriber lost its connection"),
                Err(_) => panic!(
                    "no matching message on {topic} within 10 s; received {:?}",
                    self.seen
                        .iter()
                        .map(|p| (p.topic.clone(), String::from_utf8_lossy(&p.payload)))
                        .collect::<Vec<_>>()
                ),
            }
        }
    }
}

fn json_of(publish: &Publish) -> Value {
    serde_json::from_slice(&publish.payload).expect("JSON payload")
}

/// The test configuration with `[mqtt]` pointing at `broker`; reconnects quickly, and buffers
/// flush within a second so stored readings can be checked.
fn config(redis: &RedisServer, broker: &Mosquitto, max_queue: usize) -> Config {
    let mut config = test_config(redis);
    config.mqtt.url = broker.url();
    config.mqtt.max_queue = max_queue;
    config.mqtt.reconnect_max_secs = 1;
    config.buffer.max_age_secs = 1;
    config.validate().unwrap();
    config
}

/// `/metrics` as name (with labels) -> value.
async fn metrics(server: &RunningServer) -> BTreeMap<String, f64> {
    let url = format!("http://{}/metrics", server.http_addr);
    let client = awc::Client::builder()
        .timeout(Duration::from_secs(10))
        .finish();
    let mut response = client.get(&url).send().await.expect("http request");
    assert_eq!(response.status().as_u16(), 200);
    let body = response.body().limit(16 << 20).await.expect("body");
    std::str::from_utf8(&body)
        .unwrap()
        .lines()
        .filter(|line| !line.starts_with('#'))
        .filter_map(|line| {
            let (name, value) = line.rsplit_once(' ')?;
            Some((name.to_owned(), value.parse().ok()?))
        })
        .collect()
}

/// One metric's value, 0 when absent.
async fn metric(server: &RunningServer, name: &str) -> f64 {
    metrics(server).await.get(name).copied().unwrap_or(0.0)
}

/// Waits until `name` satisfies `check`.
async fn metric_until(server: &RunningServer, name: &str, check: impl Fn(f64) -> bool) {
    let reached = eventually(Duration::from_secs(15), || async {
        check(metric(server, name).await)
    })
    .await;
    assert!(
        reached,
        "{name} never reached the expected value; last {}",
        metric(server, name).await
    );
}

#[actix_web::test]
async fn samples_alerts_and_discovery_are_published_retained_with_qos_1() {
    let redis = RedisServer::start();
    let broker = Mosquitto::start();
    let mut live = Subscriber::connect(&broker, &["ocpp-meter/#", "homeassistant/#"]).await;
    let server = start_server(config(&redis, &broker, 10_000)).await;
    let mut cp = ChargePoint::connect(&server, "CP-MQ1").await;
    cp.boot().await;
    let mut clock = Clock::new();

    // One MeterValues in kW, kWh and Fahrenheit: published normalised to W, Wh and Celsius.
    let first = clock.next();
    let payload = meter_values(
        1,
        None,
        &first,
        json!([
            {"value": "7.4", "measurand": "Power.Active.Import", "unit": "kW"},
            {"value": "12.5", "measurand": "Energy.Active.Import.Register", "unit": "kWh"},
            {"value": "86", "measurand": "Temperature", "unit": "Fahrenheit", "location": "Body"},
        ]),
    );
    assert_eq!(cp.call("MeterValues", payload).await, json!({}));

    // Home Assistant discovery, once for the charge point: power, energy, temperature.
    for (key, measurand, unit, device_class, state_class) in [
        ("power", "Power.Active.Import", "W", "power", "measurement"),
        (
            "energy",
            "Energy.Active.Import.Register",
            "Wh",
            "energy",
            "total_increasing",
        ),
        (
            "temperature",
            "Temperature",
            "°C",
            "temperature",
            "measurement",
        ),
    ] {
        let topic = format!("homeassistant/sensor/ocpp-meter_CP-MQ1_{key}/config");
        let message = live.first_on(&topic).await;
        assert_eq!(message.qos, QoS::AtLeastOnce, "{topic}");
        let config = json_of(&message);
        assert_eq!(config["state_topic"], "ocpp-meter/CP-MQ1/meter", "{config}");
        assert_eq!(
            config["value_template"],
            format!("{{{{ value_json['values']['{measurand}'] }}}}")
        );
        assert_eq!(config["unit_of_measurement"], unit);
        assert_eq!(config["device_class"], device_class);
        assert_eq!(config["state_class"], state_class);
        assert_eq!(config["unique_id"], format!("ocpp-meter_CP-MQ1_{key}"));
        assert_eq!(
            config["device"]["identifiers"],
            json!(["ocpp-meter_CP-MQ1"])
        );
        assert_eq!(config["device"]["name"], "CP-MQ1");
    }

    let message = live.first_on("ocpp-meter/CP-MQ1/meter").await;
    assert_eq!(message.qos, QoS::AtLeastOnce);
    let meter = json_of(&message);
    assert_eq!(meter["charge_point_id"], "CP-MQ1");
    let samples = meter["samples"].as_array().unwrap();
    assert_eq!(samples.len(), 3, "{meter}");
    let by_measurand = |name: &str| {
        samples
            .iter()
            .find(|s| s["measurand"] == name)
            .cloned()
            .unwrap_or_else(|| panic!("no {name} in {meter}"))
    };
    let power = by_measurand("Power.Active.Import");
    assert_eq!(power["unit"], "W");
    assert_eq!(power["value"], json!(7400.0));
    assert_eq!(power["connector_id"], 1);
    assert_eq!(power["transaction_id"], Value::Null);
    assert_eq!(power["phase"], Value::Null);
    assert_eq!(power["location"], "Outlet");
    assert_eq!(power["context"], "Sample.Periodic");
    let at: DateTime<Utc> = power["timestamp"].as_str().unwrap().parse().unwrap();
    assert_eq!(at.format("%Y-%m-%dT%H:%M:%SZ").to_string(), first);
    let energy = by_measurand("Energy.Active.Import.Register");
    assert_eq!(
        (energy["unit"].clone(), energy["value"].clone()),
        (json!("Wh"), json!(12500.0))
    );
    let temperature = by_measurand("Temperature");
    assert_eq!(temperature["unit"], "Celsius");
    assert_eq!(temperature["value"], json!(30.0));
    assert_eq!(temperature["location"], "Body");
    assert_eq!(
        meter["values"],
        json!({"Power.Active.Import": 7400.0, "Energy.Active.Import.Register": 12500.0, "Temperature": 30.0})
    );

    // A reading above power_max_w (50 kW) raises high_power, one back below clears it.
    let power_reading = |value: &str, at: &str| {
        meter_values(
            1,
            None,
            at,
            json!([{"value": value, "measurand": "Power.Active.Import", "unit": "kW"}]),
        )
    };
    let payload = power_reading("51", &clock.next());
    assert_eq!(cp.call("MeterValues", payload).await, json!({}));
    let raised = json_of(
        &live
            .first_where("ocpp-meter/CP-MQ1/alert", |a| a["state"] == "active")
            .await,
    );
    assert_eq!(raised["rule"], "high_power", "{raised}");
    assert_eq!(raised["charge_point_id"], "CP-MQ1");
    assert_eq!(raised["value"], json!(51000.0));
    assert_eq!(raised["threshold"], json!(50000.0));
    assert_eq!(raised["unit"], "W");
    let listed = eventually(Duration::from_secs(10), || async {
        let (status, listed) = get(&server, "/api/v1/alerts?charge_point=CP-MQ1&state=all").await;
        status == 200
            && listed["alerts"]
                .as_array()
                .is_some_and(|a| a.contains(&raised))
    })
    .await;
    assert!(
        listed,
        "the API lists the alert document published: {raised}"
    );

    // The meter document keeps the energy and temperature a power-only MeterValues lacks.
    let meter = json_of(
        &live
            .first_where("ocpp-meter/CP-MQ1/meter", |m| {
                m["values"]["Power.Active.Import"] == json!(51000.0)
            })
            .await,
    );
    assert_eq!(meter["samples"].as_array().unwrap().len(), 1);
    assert_eq!(
        meter["values"]["Energy.Active.Import.Register"],
        json!(12500.0)
    );
    assert_eq!(meter["values"]["Temperature"], json!(30.0));

    let payload = power_reading("40", &clock.next());
    assert_eq!(cp.call("MeterValues", payload).await, json!({}));
    let cleared = json_of(
        &live
            .first_where("ocpp-meter/CP-MQ1/alert", |a| a["state"] == "cleared")
            .await,
    );
    assert_eq!(cleared["id"], raised["id"]);
    assert_eq!(cleared["value"], json!(40000.0));
    assert!(cleared["cleared_at"].is_string(), "{cleared}");
    live.first_where("ocpp-meter/CP-MQ1/meter", |m| {
        m["values"]["Power.Active.Import"] == json!(40000.0)
    })
    .await;

    // A subscriber that comes later gets the latest meter and alert documents at once, flagged
    // retained, and the discovery configuration too.
    let mut late = Subscriber::connect(
        &broker,
        &["ocpp-meter/CP-MQ1/+", "homeassistant/sensor/+/config"],
    )
    .await;
    let retained = late.first_on("ocpp-meter/CP-MQ1/meter").await;
    assert!(retained.retain, "the meter message is retained");
    assert_eq!(retained.qos, QoS::AtLeastOnce);
    assert_eq!(
        json_of(&retained)["values"]["Power.Active.Import"],
        json!(40000.0)
    );
    let retained = late.first_on("ocpp-meter/CP-MQ1/alert").await;
    assert!(retained.retain, "the alert message is retained");
    assert_eq!(json_of(&retained)["state"], "cleared");
    let retained = late
        .first_on("homeassistant/sensor/ocpp-meter_CP-MQ1_energy/config")
        .await;
    assert!(retained.retain, "discovery is retained");

    // Every message so far was acknowledged: 3 discovery, 3 meter, 2 alerts.
    metric_until(&server, "ocpp_mqtt_published_total", |n| n >= 8.0).await;
    let scraped = metrics(&server).await;
    assert_eq!(scraped.get("ocpp_mqtt_connected"), Some(&1.0));
    assert_eq!(scraped.get("ocpp_mqtt_dropped_total"), Some(&0.0));
    assert_eq!(scraped.get("ocpp_mqtt_errors_total"), Some(&0.0));
    server.shutdown().await;
}

#[actix_web::test]
async fn a_dead_broker_leaves_ingest_alone_and_publication_resumes() {
    let redis = RedisServer::start();
    let mut broker = Mosquitto::start();
    // A queue of 5 messages: the outage below produces more than that.
    let server = start_server(config(&redis, &broker, 5)).await;
    metric_until(&server, "ocpp_mqtt_connected", |v| v == 1.0).await;
    let mut cp = ChargePoint::connect(&server, "CP-MQ2").await;
    cp.boot().await;

    broker.stop();
    metric_until(&server, "ocpp_mqtt_connected", |v| v == 0.0).await;
    let errors_before = metric(&server, "ocpp_mqtt_errors_total").await;
    assert!(errors_before >= 1.0, "the lost connection is counted");

    // Twenty readings while the broker is down: every one answered at once and stored.
    let acked: Acked = Arc::new(Mutex::new(BTreeMap::new()));
    let base = stored::base();
    for step in 0..20 {
        // `call` gives up after 10 s: a publisher that blocked ingest would fail here.
        assert_eq!(
            cp.call("MeterValues", stored::reading(base, step)).await,
            json!({})
        );
        acked
            .lock()
            .unwrap()
            .entry("CP-MQ2".to_owned())
            .or_default()
            .insert(step);
    }
    assert!(stored::writer_drained(&server, Duration::from_secs(10)).await);
    let pool = actors::redis_pool::build_pool(&actors::redis_pool::PoolSettings {
        target: actors::redis_pool::RedisTarget::Standalone(redis.url()),
        pool_size: 1,
        connect_timeout: Duration::from_secs(2),
        response_timeout: Duration::from_secs(5),
        wait_replicas: 0,
        wait_timeout: Duration::from_secs(1),
    })
    .unwrap();
    let (stored_samples, _) = stored::assert_stored(&server, &pool, &acked, true, false).await;
    assert_eq!(
        stored_samples, 40,
        "two samples per reading, each stored once"
    );

    // 3 discovery + 20 meter messages through a queue of 5: at least 18 dropped, oldest first;
    // reconnect attempts keep failing and are counted.
    metric_until(&server, "ocpp_mqtt_dropped_total", |n| n >= 18.0).await;
    metric_until(&server, "ocpp_mqtt_errors_total", |n| n > errors_before).await;
    assert_eq!(metric(&server, "ocpp_mqtt_connected").await, 0.0);
    assert_eq!(metric(&server, "ocpp_mqtt_queued").await, 5.0);

    // The broker is back (empty: it kept nothing): the queued newest readings arrive, the
    // last one retained.
    broker.start_again();
    let mut sub = Subscriber::connect(&broker, &["ocpp-meter/CP-MQ2/meter"]).await;
    let last_power = 7000.0 + 19.0;
    sub.first_where("ocpp-meter/CP-MQ2/meter", |m| {
        m["values"]["Power.Active.Import"] == json!(last_power)
    })
    .await;
    metric_until(&server, "ocpp_mqtt_connected", |v| v == 1.0).await;
    metric_until(&server, "ocpp_mqtt_queued", |v| v == 0.0).await;

    // New readings flow again, and the charge point is announced to Home Assistant again (the
    // broker lost its retained discovery).
    let mut discovery = Subscriber::connect(
        &broker,
        &["homeassistant/sensor/ocpp-meter_CP-MQ2_power/config"],
    )
    .await;
    assert_eq!(
        cp.call("MeterValues", stored::reading(base, 20)).await,
        json!({})
    );
    let message = sub
        .first_where("ocpp-meter/CP-MQ2/meter", |m| {
            m["values"]["Energy.Active.Import.Register"] == json!(stored::register(20))
        })
        .await;
    assert_eq!(message.qos, QoS::AtLeastOnce);
    discovery
        .first_on("homeassistant/sensor/ocpp-meter_CP-MQ2_power/config")
        .await;
    let mut late = Subscriber::connect(&broker, &["ocpp-meter/CP-MQ2/meter"]).await;
    let retained = late.first_on("ocpp-meter/CP-MQ2/meter").await;
    assert!(retained.retain);
    assert_eq!(
        json_of(&retained)["values"]["Power.Active.Import"],
        json!(7000.0 + 20.0)
    );
    server.shutdown().await;
}
