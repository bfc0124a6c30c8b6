//! The Redis connection pool shared by the writer and the API's reads: one standalone Redis or a
//! Redis Cluster (`redis.mode`), behind one [`Pool`] whose connections every caller uses the same
//! way (`redis::cmd`, `redis::pipe`, scripts).
//!
//! On a cluster each charge point's keys share one hash tag (`ocpp:{CP}:...`), so every command
//! about one charge point lands on one slot. Pipelines that mix charge points (the writer's
//! flush, the aggregator's merge pipelines, a fleet read) are split here by slot, the parts run
//! at once on their nodes and the answers are put back in the pipeline's order: callers keep
//! writing one pipeline per flush, and redis-rs, which refuses a pipeline that spans slots,
//! never sees one.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use deadpool::managed;
use deadpool_redis::cluster::{ClusterClient, ClusterClientBuilder, ClusterConnection};
use deadpool_redis::redis::aio::ConnectionLike;
use deadpool_redis::redis::cluster_routing::Slot;
use deadpool_redis::redis::{
    self, Arg, AsyncConnectionConfig, Cmd, Pipeline, RedisError, RedisFuture, Value,
};
use deadpool_redis::{Manager, Runtime};

/// Which kind of Redis deployment the pool talks to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RedisTarget {
    /// One server: `redis://host:port/db`, `rediss://...` or `redis+unix:///path/to/socket`.
    Standalone(String),
    /// A Redis Cluster, found from these seed nodes (`redis://host:port`); the rest of the
    /// topology is read from the cluster and followed through failovers and slot moves.
    Cluster(Vec<String>),
}

/// Timeouts and size of the pool; redis 1.x would otherwise answer every slow command with a
/// 500 ms response timeout and wait forever for a connection to a dead host.
#[derive(Debug, Clone)]
pub struct PoolSettings {
    /// Where Redis is.
    pub target: RedisTarget,
    /// Connections kept open (on a cluster: multiplexed connections, each to every node).
    pub pool_size: usize,
    /// How long to wait for a TCP/unix connection to Redis.
    pub connect_timeout: Duration,
    /// How long to wait for the answer to one command or pipeline.
    pub response_timeout: Duration,
    /// Cluster mode: every write pipeline waits (`WAIT`) until this many replicas of each
    /// master it wrote to hold the writes, so a failover cannot lose what the writer counts as
    /// stored. 0: the master's answer is enough (Redis replicates asynchronously).
    pub wait_replicas: u32,
    /// How long one `WAIT` may take; a master without enough replicas answering in time
    /// counts as written (and is counted in `unreplicated_writes`), so a lost replica slows the
    /// writer down by this much per pipeline instead of stopping it.
    pub wait_timeout: Duration,
}

/// Why the pool could not be built: only a malformed URL does this, never an unreachable Redis
/// (the server must start without Redis and write once it is back).
#[derive(Debug, thiserror::Error)]
pub enum PoolError {
    /// The URL could not be read.
    #[error("invalid redis.url: {0}")]
    Url(#[from] redis::RedisError),
    /// deadpool refused the configuration.
    #[error("cannot build the Redis pool: {0}")]
    Build(#[from] deadpool_redis::BuildError),
}

/// Error of [`Pool::get`]: the same type for both kinds of pool, so callers convert it once.
pub type GetError = deadpool_redis::PoolError;

/// Counters of the cluster pool, for `/metrics`: how often a pipeline had to be split by slot,
/// and how many redirections (MOVED/ASK, followed inside redis-rs) and retries the cluster
/// answered with, as seen by the errors that reached us.
#[derive(Debug, Default)]
pub struct ClusterCounters {
    /// Pipelines that spanned several slots and were sent as one part per slot.
    pub split_pipelines: AtomicU64,
    /// Parts sent for split pipelines.
    pub pipeline_parts: AtomicU64,
    /// Commands or pipelines that failed with a cluster error (MOVED, ASK, TRYAGAIN,
    /// CLUSTERDOWN, a node away) after redis-rs's own retries.
    pub cluster_errors: AtomicU64,
    /// Write pipelines whose `WAIT` saw fewer than `redis.wait_replicas` replicas on some master
    /// in time: the writes are on that master only until replication catches up.
    pub unreplicated_writes: AtomicU64,
}

/// The pool every Redis user shares. Cheap to clone.
#[derive(Clone)]
pub enum Pool {
    /// One Redis server.
    Standalone(deadpool_redis::Pool),
    /// A Redis Cluster.
    Cluster(ClusterPool),
    /// One Redis server, for large reads (see [`Pool::reads_sibling`]).
    Reads(managed::Pool<ReadsManager>),
}

/// A pool of cluster connections and its counters.
#[derive(Clone)]
pub struct ClusterPool {
    pool: managed::Pool<ClusterManager>,
    shared: Arc<ClusterShared>,
}

/// What every cluster connection of one pool shares.
#[derive(Debug)]
pub struct ClusterShared {
    counters: Arc<ClusterCounters>,
    /// `(replicas, timeout ms)` for the `WAIT` after each write part; `None` when 0 replicas.
    wait: Option<(u32, u64)>,
}

impl std::fmt::Debug for Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Pool::Standalone(_) => f.write_str("Pool::Standalone"),
            Pool::Reads(_) => f.write_str("Pool::Reads"),
            Pool::Cluster(_) => f.write_str("Pool::Cluster"),
        }
    }
}

impl Pool {
    /// A connection from the pool (made if none is idle), waiting at most the pool's timeouts.
    pub async fn get(&self) -> Result<Connection, GetError> {
        match self {
            Pool::Standalone(pool) => Ok(Connection::Standalone(pool.get().await?)),
            Pool::Reads(pool) => Ok(Connection::Reads(pool.get().await?)),
            Pool::Cluster(cluster) => {
                let conn = cluster.pool.get().await?;
                Ok(Connection::Cluster(
                    Box::new(conn),
                    Arc::clone(&cluster.shared),
                ))
            }
        }
    }

    /// Whether this pool talks to a Redis Cluster (callers that must order two writes across
    /// slots, like the writer's WAL marks, send them as two pipelines then).
    pub fn is_cluster(&self) -> bool {
        matches!(self, Pool::Cluster(_))
    }

    /// The cluster counters, `None` for a standalone Redis.
    pub fn cluster_counters(&self) -> Option<Arc<ClusterCounters>> {
        match self {
            Pool::Standalone(_) | Pool::Reads(_) => None,
            Pool::Cluster(cluster) => Some(Arc::clone(&cluster.shared.counters)),
        }
    }
}

/// One connection of a [`Pool`]; both kinds take the same commands and pipelines.
pub enum Connection {
    /// To the one Redis server.
    Standalone(deadpool_redis::Connection),
    /// To the cluster (multiplexed over one connection per node); boxed, being much larger.
    Cluster(Box<managed::Object<ClusterManager>>, Arc<ClusterShared>),
    /// To the one Redis server, from a [`Pool::Reads`].
    Reads(managed::Object<ReadsManager>),
}

impl Connection {
    /// Runs independent pipelines and answers each one's outcome, so a caller can keep what
    /// succeeded when only some failed: on a cluster they run at once (a master failing over
    /// fails only the pipelines with keys there), on one server one after the other. With
    /// `redis.wait_replicas`, one `WAIT` per master follows the writes; if it fails, every
    /// pipeline is reported failed (the writes may not be on a replica).
    pub async fn query_each(&mut self, pipelines: &[Pipeline]) -> Vec<Result<(), RedisError>> {
        match self {
            Connection::Standalone(conn) => {
                let mut results = Vec::with_capacity(pipelines.len());
                for pipeline in pipelines {
                    results.push(pipeline.query_async::<()>(&mut **conn).await);
                }
                results
            }
            Connection::Reads(_) => {
                let mut results = Vec::with_capacity(pipelines.len());
                for pipeline in pipelines {
                    results.push(pipeline.query_async::<()>(&mut *self).await);
                }
                results
            }
            Connection::Cluster(conn, shared) => {
                let conn: &mut ClusterConnection = conn;
                let no_wait = ClusterShared {
                    counters: Arc::clone(&shared.counters),
                    wait: None,
                };
                let no_wait = &no_wait;
                let sends = pipelines.iter().map(|pipeline| {
                    let mut conn = conn.clone();
                    async move {
                        let len = pipeline.cmd_iter().count();
                        let result = split_pipeline(&mut conn, no_wait, pipeline, 0, len).await;
                        count_cluster_error(&no_wait.counters, result.as_ref().err());
                        result.map(|_| ())
                    }
                });
                let mut results = futures_util::future::join_all(sends).await;
                let wrote = pipelines.iter().any(|p| p.cmd_iter().any(writes));
                if let (Some(wait), true) = (shared.wait, wrote) {
                    if let Err(error) = wait_for_replicas(conn, &shared.counters, wait).await {
                        count_cluster_error(&shared.counters, Some(&error));
                        for result in &mut results {
                            if result.is_ok() {
                                *result = Err(error.clone());
                            }
                        }
                    }
                }
                results
            }
        }
    }
}

impl ConnectionLike for Connection {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Connection::Standalone(conn) => conn.req_packed_command(cmd),
            Connection::Reads(conn) => Box::pin(async move {
                let result = conn.conn.req_packed_command(cmd).await;
                match result {
                    Err(error) if ReadsConnection::may_retry(&error, !writes(cmd)) => {
                        conn.reconnect(error).await?;
                        let again = conn.conn.req_packed_command(cmd).await;
                        conn.note(again)
                    }
                    result => conn.note(result),
                }
            }),
            Connection::Cluster(conn, shared) => {
                let conn: &mut ClusterConnection = conn;
                let shared = Arc::clone(shared);
                Box::pin(async move {
                    let result = conn.req_packed_command(cmd).await;
                    count_cluster_error(&shared.counters, result.as_ref().err());
                    result
                })
            }
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Connection::Standalone(conn) => conn.req_packed_commands(pipeline, offset, count),
            Connection::Reads(conn) => Box::pin(async move {
                let result = conn.conn.req_packed_commands(pipeline, offset, count).await;
                let reads_only = !pipeline.cmd_iter().any(writes);
                match result {
                    Err(error) if ReadsConnection::may_retry(&error, reads_only) => {
                        conn.reconnect(error).await?;
                        let again = conn.conn.req_packed_commands(pipeline, offset, count).await;
                        conn.note(again)
                    }
                    result => conn.note(result),
                }
            }),
            Connection::Cluster(conn, shared) => {
                let conn: &mut ClusterConnection = conn;
                let shared = Arc::clone(shared);
                Box::pin(async move {
                    let result = split_pipeline(conn, &shared, pipeline, offset, count).await;
                    count_cluster_error(&shared.counters, result.as_ref().err());
                    result
                })
            }
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Connection::Standalone(conn) => conn.get_db(),
            Connection::Reads(conn) => conn.conn.get_db(),
            Connection::Cluster(conn, _) => conn.get_db(),
        }
    }
}

fn count_cluster_error(counters: &ClusterCounters, error: Option<&RedisError>) {
    if let Some(error) = error {
        if error.is_cluster_error() || error.is_io_error() || error.is_timeout() {
            counters.cluster_errors.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// Sends `pipeline` as one part per slot, all at once, and returns the answers in the
/// pipeline's order. A transaction (which must stay within one slot) goes as it is. Commands
/// without a key (PING, SCRIPT ...) travel with the first part. With `redis.wait_replicas`, a
/// pipeline that wrote is followed by one `WAIT` on every master (see [`wait_for_replicas`]).
async fn split_pipeline(
    conn: &mut ClusterConnection,
    shared: &ClusterShared,
    pipeline: &Pipeline,
    offset: usize,
    count: usize,
) -> redis::RedisResult<Vec<Value>> {
    if pipeline.is_transaction() {
        return conn.req_packed_commands(pipeline, offset, count).await;
    }
    let counters = &shared.counters;
    let commands: Vec<&Cmd> = pipeline.cmd_iter().collect();
    let wrote = commands.iter().any(|cmd| writes(cmd));
    let slots: Vec<Option<Slot>> = commands.iter().map(|cmd| slot_of(cmd)).collect();
    let mut distinct = slots.iter().flatten();
    let single_slot = match distinct.next() {
        Some(first) => distinct.all(|slot| slot == first),
        None => true,
    };
    // Most pipelines (one charge point's write) stay within one slot: sent as they are, without
    // copying their commands (and the APPENDs' sample blocks) into parts.
    let mut parts: Vec<(Pipeline, Vec<usize>)> = Vec::new();
    let mut keyless = Vec::new();
    if !single_slot {
        let mut part_of: HashMap<Slot, usize> = HashMap::new();
        for (index, (cmd, slot)) in commands.iter().zip(&slots).enumerate() {
            let Some(slot) = slot else {
                keyless.push(index);
                continue;
            };
            let part = *part_of.entry(*slot).or_insert_with(|| {
                parts.push((redis::pipe(), Vec::new()));
                parts.len() - 1
            });
            parts[part].0.add_command((*cmd).clone());
            parts[part].1.push(index);
        }
    }
    let values = if single_slot {
        conn.req_packed_commands(pipeline, offset, count).await?
    } else {
        if !keyless.is_empty() {
            let (first, indices) = &mut parts[0];
            let mut merged = redis::pipe();
            let mut merged_indices = Vec::new();
            for &index in &keyless {
                merged.add_command(commands[index].clone());
                merged_indices.push(index);
            }
            for (cmd, index) in first.cmd_iter().zip(indices.iter()) {
                merged.add_command(cmd.clone());
                merged_indices.push(*index);
            }
            *first = merged;
            *indices = merged_indices;
        }
        counters.split_pipelines.fetch_add(1, Ordering::Relaxed);
        counters
            .pipeline_parts
            .fetch_add(parts.len() as u64, Ordering::Relaxed);
        let sends = parts.into_iter().map(|(part, indices)| {
            let mut conn = conn.clone();
            async move {
                let values = conn.req_packed_commands(&part, 0, indices.len()).await?;
                Ok::<_, RedisError>((indices, values))
            }
        });
        let mut answers: Vec<Option<Value>> = vec![None; commands.len()];
        for result in futures_util::future::join_all(sends).await {
            let (indices, values) = result?;
            for (index, value) in indices.into_iter().zip(values) {
                answers[index] = Some(value);
            }
        }
        answers
            .into_iter()
            .skip(offset)
            .take(count)
            .map(|v| v.unwrap_or(Value::Nil))
            .collect()
    };
    if let (Some(wait), true) = (shared.wait, wrote) {
        wait_for_replicas(conn, counters, wait).await?;
    }
    Ok(values)
}

/// One `WAIT replicas timeout` on every master, over the same node connections the writes
/// took, so each master waits for exactly those writes; a master without writes on them
/// answers at once. Once per pipeline, not per part: `WAIT` holds its connection, and every
/// part to one master shares one multiplexed connection. Fewer replicas than asked (a master
/// whose replica is gone) is counted, not an error, so losing a replica slows writes down by
/// the timeout instead of stopping them.
async fn wait_for_replicas(
    conn: &mut ClusterConnection,
    counters: &ClusterCounters,
    (replicas, timeout_ms): (u32, u64),
) -> redis::RedisResult<()> {
    use redis::cluster_routing::{
        AggregateOp, MultipleNodeRoutingInfo, ResponsePolicy, RoutingInfo,
    };
    let mut wait = redis::cmd("WAIT");
    wait.arg(replicas).arg(timeout_ms);
    let routing = RoutingInfo::MultiNode((
        MultipleNodeRoutingInfo::AllMasters,
        Some(ResponsePolicy::Aggregate(AggregateOp::Min)),
    ));
    let fewest = conn.route_command(wait, routing).await?;
    if !matches!(fewest, Value::Int(n) if n >= i64::from(replicas)) {
        counters.unreplicated_writes.fetch_add(1, Ordering::Relaxed);
    }
    Ok(())
}

/// Whether a command may change data (anything but the reads this server pipelines).
fn writes(cmd: &Cmd) -> bool {
    let Some(Arg::Simple(name)) = cmd.args_iter().next() else {
        return false;
    };
    !matches!(
        name.to_ascii_uppercase().as_slice(),
        b"GET"
            | b"MGET"
            | b"HGET"
            | b"HMGET"
            | b"HGETALL"
            | b"SMEMBERS"
            | b"SCARD"
            | b"EXISTS"
            | b"TTL"
            | b"PTTL"
            | b"ZRANGE"
            | b"ZRANGEBYSCORE"
            | b"ZREVRANGE"
            | b"ZREVRANGEBYSCORE"
            | b"ZCARD"
            | b"LRANGE"
            | b"STRLEN"
            | b"GETRANGE"
    )
}

/// The slot a command's key hashes to; `None` for commands without a key.
fn slot_of(cmd: &Cmd) -> Option<Slot> {
    let mut args = cmd.args_iter().map(|arg| match arg {
        Arg::Simple(bytes) => bytes,
        _ => &b""[..],
    });
    let name = args.next()?.to_ascii_uppercase();
    match name.as_slice() {
        b"PING" | b"ECHO" | b"INFO" | b"SCRIPT" | b"CLUSTER" | b"CLIENT" | b"CONFIG"
        | b"DBSIZE" | b"TIME" | b"PUBLISH" | b"SCAN" | b"KEYS" | b"WAIT" | b"FUNCTION" => None,
        b"EVAL" | b"EVALSHA" | b"EVAL_RO" | b"EVALSHA_RO" | b"FCALL" | b"FCALL_RO" => {
            let _script = args.next()?;
            let keys: usize = std::str::from_utf8(args.next()?).ok()?.parse().ok()?;
            (keys > 0).then(|| args.next().map(Slot::for_key)).flatten()
        }
        _ => args.next().map(Slot::for_key),
    }
}

/// Makes and checks cluster connections. Ours rather than deadpool-redis's cluster `Manager`,
/// which builds its client without timeouts or retry bounds: redis-rs would then wait forever
/// for a hung node and retry a failing command 16 times over minutes, while the writer has
/// its own retry and must see a failure within `response_timeout`.
pub struct ClusterManager {
    client: ClusterClient,
    pings: AtomicU64,
}

impl std::fmt::Debug for ClusterManager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ClusterManager")
    }
}

impl managed::Manager for ClusterManager {
    type Type = ClusterConnection;
    type Error = RedisError;

    async fn create(&self) -> Result<ClusterConnection, RedisError> {
        self.client.get_async_connection().await
    }

    async fn recycle(
        &self,
        conn: &mut ClusterConnection,
        _: &managed::Metrics,
    ) -> managed::RecycleResult<RedisError> {
        let ping = self.pings.fetch_add(1, Ordering::Relaxed).to_string();
        let answer: String = redis::cmd("PING").arg(&ping).query_async(conn).await?;
        if answer == ping {
            Ok(())
        } else {
            Err(managed::RecycleError::message("unexpected PING answer"))
        }
    }
}

/// How many times redis-rs retries a command on a cluster error (MOVED and ASK are followed
/// without counting as a retry) before the caller sees the error. With the waits below this
/// spans about 1.3 s, longer than a replica's promotion with `cluster-node-timeout` 1 s; the
/// writer's own backoff covers slower failovers.
const CLUSTER_RETRIES: u32 = 6;

/// A [`Pool::Reads`] connection handed out again within this long of its last hand-out skips
/// the pool's `PING` (one round trip more per read, see [`ReadsManager`]).
const READS_FRESH_FOR: Duration = Duration::from_secs(1);

/// Manager of a [`Pool::Reads`]: deadpool-redis's, except that a connection handed out within
/// [`READS_FRESH_FOR`] that has not failed since is handed out again without the `UNWATCH` +
/// `PING` round trip deadpool-redis makes at every hand-out. With the fleet running, every
/// round trip to Redis is a chance to wait for a core (docs/performance.md, issue 13 reads,
/// third round), and a warm read needs only one. A connection that dropped without a failure
/// seen yet is caught by the retry in [`Connection`]'s `ConnectionLike` (reads only).
pub struct ReadsManager(Arc<deadpool_redis::Manager>);

/// A connection of a [`Pool::Reads`].
pub struct ReadsConnection {
    conn: deadpool_redis::redis::aio::MultiplexedConnection,
    /// A command failed on it: the next hand-out drops it instead of trusting it.
    failed: bool,
    /// Where a replacement comes from (a dropped connection, see `reconnect`).
    manager: Arc<deadpool_redis::Manager>,
}

impl ReadsConnection {
    /// Whether a failed request may be sent again on a new connection: it read only (sending
    /// it twice changes nothing) and the connection itself failed (a Redis restarted since
    /// the connection's last use, which no `PING` checked).
    fn may_retry(error: &RedisError, reads_only: bool) -> bool {
        reads_only
            && (error.is_connection_dropped()
                || error.is_io_error()
                || error.is_unrecoverable_error())
    }

    /// Replaces the connection after `error` with a new one; `error` (or the new one's) if
    /// none can be made.
    async fn reconnect(&mut self, error: RedisError) -> Result<(), RedisError> {
        self.failed = true;
        match managed::Manager::create(&*self.manager).await {
            Ok(conn) => {
                self.conn = conn;
                self.failed = false;
                Ok(())
            }
            Err(_) => Err(error),
        }
    }

    /// Marks the connection failed on any error, so the pool drops it.
    fn note<T>(&mut self, result: Result<T, RedisError>) -> Result<T, RedisError> {
        if result.is_err() {
            self.failed = true;
        }
        result
    }
}

impl managed::Manager for ReadsManager {
    type Type = ReadsConnection;
    type Error = RedisError;

    async fn create(&self) -> Result<ReadsConnection, RedisError> {
        Ok(ReadsConnection {
            conn: managed::Manager::create(&*self.0).await?,
            failed: false,
            manager: Arc::clone(&self.0),
        })
    }

    async fn recycle(
        &self,
        conn: &mut ReadsConnection,
        metrics: &managed::Metrics,
    ) -> managed::RecycleResult<RedisError> {
        if conn.failed {
            return Err(managed::RecycleError::message("a command failed on it"));
        }
        if metrics.last_used() < READS_FRESH_FOR {
            return Ok(());
        }
        managed::Manager::recycle(&*self.0, &mut conn.conn, metrics).await
    }
}

impl Pool {
    /// A second pool to the same Redis for the admin API's large reads: as [`Pool::sibling`],
    /// and on one server a [`Pool::Reads`], whose connections skip the `PING` at a hand-out
    /// soon after the last (a cluster gets a plain sibling).
    pub fn reads_sibling(&self, settings: &PoolSettings) -> Result<Pool, PoolError> {
        let RedisTarget::Standalone(url) = &settings.target else {
            return self.sibling(settings);
        };
        let connection = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(settings.connect_timeout))
            .set_response_timeout(Some(settings.response_timeout));
        let manager = ReadsManager(Arc::new(Manager::new_with_config(
            url.as_str(),
            connection,
        )?));
        let pool = managed::Pool::builder(manager)
            .max_size(settings.pool_size)
            .wait_timeout(Some(settings.connect_timeout + settings.response_timeout))
            .create_timeout(Some(settings.connect_timeout))
            .recycle_timeout(Some(settings.response_timeout))
            .runtime(Runtime::Tokio1)
            .build()
            .map_err(|e| PoolError::Build(deadpool_redis::BuildError::from(e)))?;
        Ok(Pool::Reads(pool))
    }

    /// A second pool to the same Redis, empty, sharing this one's cluster counters (so
    /// `/metrics` counts both). Its connections are made lazily by whoever first needs one,
    /// and a connection's I/O is driven by a task on the thread that made it: a thread that
    /// keeps a sibling of its own (the admin API's workers, see `ocpp_meter::start`) has its
    /// Redis round trips driven by itself, not by a busy thread that happened to make the
    /// connection (docs/performance.md, issue 13 reads, third round).
    pub fn sibling(&self, settings: &PoolSettings) -> Result<Pool, PoolError> {
        let pool = build_pool(settings)?;
        Ok(match (pool, self) {
            (Pool::Cluster(new), Pool::Cluster(this)) => Pool::Cluster(ClusterPool {
                pool: new.pool,
                shared: Arc::clone(&this.shared),
            }),
            (pool, _) => pool,
        })
    }
}

/// Builds the pool without connecting; connections are made lazily and re-made after failures.
pub fn build_pool(settings: &PoolSettings) -> Result<Pool, PoolError> {
    let wait = settings.connect_timeout + settings.response_timeout;
    match &settings.target {
        RedisTarget::Standalone(url) => {
            let connection = AsyncConnectionConfig::new()
                .set_connection_timeout(Some(settings.connect_timeout))
                .set_response_timeout(Some(settings.response_timeout));
            let manager = Manager::new_with_config(url.as_str(), connection)?;
            Ok(Pool::Standalone(
                deadpool_redis::Pool::builder(manager)
                    .max_size(settings.pool_size)
                    .wait_timeout(Some(wait))
                    .create_timeout(Some(settings.connect_timeout))
                    .recycle_timeout(Some(settings.response_timeout))
                    .runtime(Runtime::Tokio1)
                    .build()?,
            ))
        }
        RedisTarget::Cluster(urls) => {
            let client = ClusterClientBuilder::new(urls.iter().map(String::as_str))
                .connection_timeout(settings.connect_timeout)
                .response_timeout(settings.response_timeout)
                .retries(CLUSTER_RETRIES)
                .min_retry_wait(50)
                .max_retry_wait(500)
                .build()?;
            let manager = ClusterManager {
                client,
                pings: AtomicU64::new(0),
            };
            // A cluster connection already fans out over every node; a few are plenty.
            let pool = managed::Pool::builder(manager)
                .max_size(settings.pool_size)
                .wait_timeout(Some(wait + settings.response_timeout))
                .create_timeout(Some(settings.connect_timeout + settings.response_timeout))
                .recycle_timeout(Some(settings.response_timeout))
                .runtime(Runtime::Tokio1)
                .build()?;
            let wait = (settings.wait_replicas > 0).then(|| {
                (
                    settings.wait_replicas,
                    settings.wait_timeout.as_millis().max(1) as u64,
                )
            });
            Ok(Pool::Cluster(ClusterPool {
                pool,
                shared: Arc::new(ClusterShared {
                    counters: Arc::default(),
                    wait,
                }),
            }))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_of_one_charge_point_share_a_slot_and_scripts_route_by_their_first_key() {
        let a = slot_of(redis::cmd("APPEND").arg("ocpp:{CP1}:raw:1").arg("x"));
        let b = slot_of(
            redis::cmd("HSET")
                .arg("ocpp:{CP1}:latest")
                .arg("f")
                .arg("v"),
        );
        assert_eq!(a, b);
        assert!(a.is_some());
        let script = slot_of(
            redis::cmd("EVALSHA")
                .arg("abc")
                .arg(2)
                .arg("ocpp:{CP1}:agg:state")
                .arg("ocpp:{CP1}:x"),
        );
        assert_eq!(script, a);
        assert_eq!(slot_of(redis::cmd("EVALSHA").arg("abc").arg(0)), None);
        assert_eq!(
            slot_of(redis::cmd("SCRIPT").arg("LOAD").arg("return 1")),
            None
        );
        assert_eq!(slot_of(&redis::cmd("PING")), None);
        assert!(writes(redis::cmd("APPEND").arg("k").arg("v")));
        assert!(writes(redis::cmd("EVALSHA").arg("abc").arg(1).arg("k")));
        assert!(!writes(redis::cmd("HGETALL").arg("k")));
        assert_ne!(
            slot_of(redis::cmd("GET").arg("ocpp:{CP1}:info")),
            slot_of(redis::cmd("GET").arg("ocpp:{CP2}:info"))
        );
    }
}
