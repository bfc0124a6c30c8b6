//! The Redis connection pool shared by the writer and the API's reads.

use std::time::Duration;

use deadpool_redis::redis::AsyncConnectionConfig;
pub use deadpool_redis::Pool;
use deadpool_redis::{Manager, Runtime};

/// Timeouts and size of the pool; redis 1.x would otherwise answer every slow command with a
/// 500 ms response timeout and wait forever for a connection to a dead host.
#[derive(Debug, Clone)]
pub struct PoolSettings {
    /// `redis://host:port/db`, `rediss://...` or `redis+unix:///path/to/socket`.
    pub url: String,
    /// Connections kept open.
    pub pool_size: usize,
    /// How long to wait for a TCP/unix connection to Redis.
    pub connect_timeout: Duration,
    /// How long to wait for the answer to one command or pipeline.
    pub response_timeout: Duration,
}

/// Why the pool could not be built: only a malformed URL does this, never an unreachable Redis
/// (the server must start without Redis and write once it is back).
#[derive(Debug, thiserror::Error)]
pub enum PoolError {
    /// The URL could not be read.
    #[error("invalid redis.url: {0}")]
    Url(#[from] deadpool_redis::redis::RedisError),
    /// deadpool refused the configuration.
    #[error("cannot build the Redis pool: {0}")]
    Build(#[from] deadpool_redis::BuildError),
}

/// Builds the pool without connecting; connections are made lazily and re-made after failures.
pub fn build_pool(settings: &PoolSettings) -> Result<Pool, PoolError> {
    let connection = AsyncConnectionConfig::new()
        .set_connection_timeout(Some(settings.connect_timeout))
        .set_response_timeout(Some(settings.response_timeout));
    let manager = Manager::new_with_config(settings.url.as_str(), connection)?;
    let wait = settings.connect_timeout + settings.response_timeout;
    Ok(Pool::builder(manager)
        .max_size(settings.pool_size)
        .wait_timeout(Some(wait))
        .create_timeout(Some(settings.connect_timeout))
        .recycle_timeout(Some(settings.response_timeout))
        .runtime(Runtime::Tokio1)
        .build()?)
}
