//! A private Redis Cluster for tests: six `redis-server --cluster-enabled yes` on free loopback
//! ports (three masters, three replicas, joined by `redis-cli --cluster create`), in a
//! temporary directory, stopped when dropped. Never the machine's Redis on 6379.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// One node of the cluster.
pub struct Node {
    /// Its client port (the cluster bus is this + 10000).
    pub port: u16,
    child: Option<Child>,
}

/// A running six-node cluster.
pub struct RedisCluster {
    dir: tempfile::TempDir,
    /// Its nodes, masters first as created.
    pub nodes: Vec<Node>,
}

/// A port whose cluster bus port (+10000) is free too, both below the kernel's ephemeral range
/// (32768 and up by default): a load generator's thousands of outgoing connections take their
/// local ports from that range, and one could take a node's port between this check and the
/// node's start (seen when a benchmark fleet ran beside the tests).
fn free_port_pair(taken: &[u16]) -> u16 {
    // Spread over the range by process and time, so concurrent test binaries rarely collide.
    let seed = std::process::id() as u64
        ^ std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos() as u64);
    for attempt in 0..2_000u64 {
        let port = 20_000 + ((seed.wrapping_mul(2_654_435_761) + attempt * 7_919) % 2_700) as u16;
        if taken.contains(&port) {
            continue;
        }
        if TcpListener::bind(("127.0.0.1", port + 10_000)).is_ok()
            && TcpListener::bind(("127.0.0.1", port)).is_ok()
        {
            return port;
        }
    }
    panic!("no free port pair in 20000-22700 (and +10000)");
}

impl RedisCluster {
    /// Starts six nodes, creates the cluster with one replica per master and waits until every
    /// node reports `cluster_state:ok`.
    pub fn start() -> RedisCluster {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut cluster = RedisCluster {
            dir,
            nodes: Vec::new(),
        };
        let mut taken = Vec::new();
        for _ in 0..6 {
            // A port taken between the check and the start: the node exits, and another
            // port is tried.
            let node = (0..5)
                .find_map(|_| {
                    let port = free_port_pair(&taken);
                    taken.push(port);
                    let mut node = Node { port, child: None };
                    cluster.try_spawn(&mut node).then_some(node)
                })
                .expect("no redis-server node started on 5 ports");
            cluster.nodes.push(node);
        }
        let addresses: Vec<String> = cluster
            .nodes
            .iter()
            .map(|n| format!("127.0.0.1:{}", n.port))
            .collect();
        let output = Command::new("redis-cli")
            .arg("--cluster")
            .arg("create")
            .args(&addresses)
            .args(["--cluster-replicas", "1", "--cluster-yes"])
            .output()
            .expect("redis-cli");
        assert!(
            output.status.success(),
            "redis-cli --cluster create failed: {}",
            String::from_utf8_lossy(&output.stdout)
        );
        cluster.wait_ok(Duration::from_secs(30));
        cluster.wait_replicas_synced(Duration::from_secs(30));
        cluster
    }

    /// Waits until every running replica's link to its master is up: a replica that never
    /// synced refuses to be promoted ("disconnected from master for longer than allowed").
    pub fn wait_replicas_synced(&self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        loop {
            let synced = self.nodes.iter().filter(|n| n.child.is_some()).all(|n| {
                cli_at(n.port, &["INFO", "replication"]).is_some_and(|info| {
                    info.contains("role:master") || info.contains("master_link_status:up")
                })
            });
            if synced {
                return;
            }
            assert!(Instant::now() < deadline, "the replicas did not sync");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn node_dir(&self, port: u16) -> PathBuf {
        self.dir.path().join(port.to_string())
    }

    /// Starts `node`; panics if it does not answer (a restart must get its own port back).
    fn spawn(&self, node: &mut Node) {
        assert!(
            self.try_spawn(node),
            "redis-server on {} did not start",
            node.port
        );
    }

    /// Starts `node` and waits up to 10 s for its PING; false (the process stopped) if not.
    fn try_spawn(&self, node: &mut Node) -> bool {
        let dir = self.node_dir(node.port);
        std::fs::create_dir_all(&dir).expect("node dir");
        let child = Command::new("redis-server")
            .args(["--bind", "127.0.0.1", "--port"])
            .arg(node.port.to_string())
            .args([
                "--cluster-enabled",
                "yes",
                "--cluster-config-file",
                "nodes.conf",
            ])
            .args(["--cluster-node-timeout", "1000"])
            // Replicas sync at once (the default waits 5 s for more replicas to share a
            // transfer), so a failover test starts with replicas that can be promoted.
            .args(["--repl-diskless-sync-delay", "0"])
            .args(["--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(&dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server must be on PATH (apt-get install redis-server)");
        let mut child = child;
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            // Ours, not another server that already had the port.
            let ours = format!("process_id:{}", child.id());
            if cli_at(node.port, &["INFO", "server"]).is_some_and(|info| info.contains(&ours)) {
                node.child = Some(child);
                return true;
            }
            if child.try_wait().is_ok_and(|status| status.is_some()) {
                return false;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        let _ = child.wait();
        false
    }

    /// Waits until every running node says `cluster_state:ok` and knows the same masters.
    pub fn wait_ok(&self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        loop {
            let ok = self.nodes.iter().filter(|n| n.child.is_some()).all(|n| {
                cli_at(n.port, &["CLUSTER", "INFO"])
                    .is_some_and(|info| info.contains("cluster_state:ok"))
            });
            if ok {
                return;
            }
            assert!(Instant::now() < deadline, "the cluster did not become ok");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Seed node URLs for `redis.urls`.
    pub fn urls(&self) -> Vec<String> {
        self.nodes
            .iter()
            .map(|n| format!("redis://127.0.0.1:{}", n.port))
            .collect()
    }

    /// Runs redis-cli against a running node with cluster redirections followed (`-c`).
    pub fn cli(&self, args: &[&str]) -> String {
        let node = self
            .nodes
            .iter()
            .find(|n| n.child.is_some())
            .expect("a running node");
        let output = Command::new("redis-cli")
            .args(["-c", "-p"])
            .arg(node.port.to_string())
            .args(args)
            .output()
            .expect("redis-cli");
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    /// The slot of a key, as the cluster computes it.
    pub fn slot_of(&self, key: &str) -> u16 {
        self.cli(&["CLUSTER", "KEYSLOT", key])
            .trim()
            .parse()
            .expect("slot")
    }

    /// `(node id, port)` of the master serving `slot`, from a running node's view.
    pub fn master_of(&self, slot: u16) -> (String, u16) {
        self.try_master_of(slot)
            .unwrap_or_else(|| panic!("no master serves slot {slot}"))
    }

    /// `(node id, port)` of the master serving `slot`; `None` while none does (a failover).
    pub fn try_master_of(&self, slot: u16) -> Option<(String, u16)> {
        for line in self.cli(&["CLUSTER", "NODES"]).lines() {
            let fields: Vec<&str> = line.split_whitespace().collect();
            if fields.len() < 9 || !fields[2].contains("master") || fields[2].contains("fail") {
                continue;
            }
            let serves = fields[8..].iter().any(|range| {
                let (lo, hi) = range.split_once('-').unwrap_or((range, range));
                match (lo.parse::<u16>(), hi.parse::<u16>()) {
                    (Ok(lo), Ok(hi)) => (lo..=hi).contains(&slot),
                    _ => false,
                }
            });
            if serves {
                let port = fields[1]
                    .split('@')
                    .next()
                    .and_then(|a| a.rsplit(':').next())
                    .and_then(|p| p.parse().ok())
                    .expect("port");
                return Some((fields[0].to_owned(), port));
            }
        }
        None
    }

    /// `(node id, port)` of every master that is not failing.
    pub fn masters(&self) -> Vec<(String, u16)> {
        self.cli(&["CLUSTER", "NODES"])
            .lines()
            .filter_map(|line| {
                let fields: Vec<&str> = line.split_whitespace().collect();
                (fields.len() >= 8 && fields[2].contains("master") && !fields[2].contains("fail"))
                    .then(|| {
                        let port = fields[1]
                            .split('@')
                            .next()
                            .and_then(|a| a.rsplit(':').next())
                            .and_then(|p| p.parse().ok())
                            .expect("port");
                        (fields[0].to_owned(), port)
                    })
            })
            .collect()
    }

    /// Starts the node on `port` again after [`RedisCluster::kill`], with its `nodes.conf`: it
    /// rejoins the cluster (as a replica of whoever took over its slots) with an empty dataset.
    pub fn restart(&mut self, port: u16) {
        let index = self
            .nodes
            .iter()
            .position(|n| n.port == port)
            .expect("node");
        let mut node = Node { port, child: None };
        self.spawn(&mut node);
        self.nodes[index] = node;
    }

    /// SIGKILLs the node on `port` (its data is gone: nothing is kept on disk).
    pub fn kill(&mut self, port: u16) {
        let node = self
            .nodes
            .iter_mut()
            .find(|n| n.port == port)
            .expect("node");
        if let Some(mut child) = node.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Moves `slot` with its keys from the master on `from` to the master on `to` (`(node id,
/// port)`), the way `redis-cli --cluster reshard` does (IMPORTING/MIGRATING, MIGRATE in
/// batches, SETSLOT NODE on every master in `masters`), so clients meanwhile get ASK and then
/// MOVED redirections. Blocking: run it off the test's runtime thread.
pub fn migrate_slot(masters: &[u16], slot: u16, from: (&str, u16), to: (&str, u16)) {
    {
        let slot_s = slot.to_string();
        let ok = |port: u16, args: &[&str]| {
            let out = cli_at(port, args).unwrap_or_default();
            assert!(out.trim() == "OK", "{args:?} on {port}: {out}");
        };
        ok(to.1, &["CLUSTER", "SETSLOT", &slot_s, "IMPORTING", from.0]);
        ok(from.1, &["CLUSTER", "SETSLOT", &slot_s, "MIGRATING", to.0]);
        loop {
            let keys =
                cli_at(from.1, &["CLUSTER", "GETKEYSINSLOT", &slot_s, "100"]).unwrap_or_default();
            let keys: Vec<&str> = keys.lines().filter(|k| !k.is_empty()).collect();
            if keys.is_empty() {
                break;
            }
            let port = to.1.to_string();
            let mut args = vec!["MIGRATE", "127.0.0.1", &port, "", "0", "5000", "KEYS"];
            args.extend(keys.iter().copied());
            let out = cli_at(from.1, &args).unwrap_or_default();
            assert!(
                out.trim() == "OK" || out.trim() == "NOKEY",
                "MIGRATE: {out}"
            );
            // Let writes land between batches, as a real reshard does.
            std::thread::sleep(Duration::from_millis(20));
        }
        for port in masters {
            let _ = cli_at(*port, &["CLUSTER", "SETSLOT", &slot_s, "NODE", to.0]);
        }
    }
}

/// A test configuration on `cluster` (cluster mode, seed nodes, write-ahead log beside the
/// nodes' data), otherwise as [`super::test_config`].
pub fn cluster_config(cluster: &RedisCluster) -> ocpp_meter::Config {
    let mut config = ocpp_meter::Config::default();
    config.server.ws_addr = "127.0.0.1:0".into();
    config.server.http_addr = "127.0.0.1:0".into();
    config.server.workers = 1;
    config.server.shutdown_timeout_secs = 10;
    config.redis.mode = ocpp_meter::config::RedisMode::Cluster;
    config.redis.urls = cluster.urls();
    config.wal.dir = cluster.dir.path().join("wal").display().to_string();
    config.redis.connect_timeout_ms = 500;
    config.redis.response_timeout_ms = 2000;
    config.redis.retry_initial_ms = 20;
    config.redis.retry_max_ms = 200;
    config.ocpp.metering.enabled = false;
    config.validate().expect("test config is valid");
    config
}

/// redis-cli against one node, without following redirections; `None` if it failed.
pub fn cli_at(port: u16, args: &[&str]) -> Option<String> {
    let output = Command::new("redis-cli")
        .arg("-p")
        .arg(port.to_string())
        .args(args)
        .output()
        .ok()?;
    output
        .status
        .success()
        .then(|| String::from_utf8_lossy(&output.stdout).into_owned())
}

impl Drop for RedisCluster {
    fn drop(&mut self) {
        for node in &mut self.nodes {
            if let Some(mut child) = node.child.take() {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }
}
