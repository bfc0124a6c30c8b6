//! Transaction ids: assigned by the server, unique across restarts (a Redis counter), and handed
//! out from a prefetched block so that StartTransaction normally does not wait for Redis.

use std::sync::Arc;

use crate::redis_pool::Pool;
use deadpool_redis::redis;
use tokio::sync::Mutex;

use crate::store::keys;

/// How many ids one Redis round trip reserves. Unused ids of a block are skipped after a
/// restart; with i32 ids that still leaves room for millions of restarts.
const BLOCK: i64 = 32;

/// Cloneable allocator shared by all charge point actors.
#[derive(Clone)]
pub struct TransactionIds {
    /// Where the counter lives.
    pool: Pool,
    /// The reserved block: next id to hand out, and one past the last.
    block: Arc<Mutex<(i64, i64)>>,
}

/// Why no id could be had: Redis was unreachable and the reserved block was used up.
#[derive(Debug, thiserror::Error)]
#[error("cannot reserve transaction ids in Redis: {0}")]
pub struct AllocationError(String);

impl TransactionIds {
    /// An allocator with no block yet; the first call reserves one.
    pub fn new(pool: Pool) -> Self {
        TransactionIds {
            pool,
            block: Arc::new(Mutex::new((0, 0))),
        }
    }

    /// The next unique id.
    pub async fn next(&self) -> Result<i32, AllocationError> {
        let mut block = self.block.lock().await;
        if block.0 >= block.1 {
            let mut conn = self
                .pool
                .get()
                .await
                .map_err(|e| AllocationError(e.to_string()))?;
            let end: i64 = redis::cmd("INCRBY")
                .arg(keys::TRANSACTION_SEQ)
                .arg(BLOCK)
                .query_async(&mut conn)
                .await
                .map_err(|e| AllocationError(e.to_string()))?;
            *block = (end - BLOCK + 1, end + 1);
        }
        let id = block.0;
        block.0 += 1;
        i32::try_from(id).map_err(|_| AllocationError("the id counter passed i32::MAX".into()))
    }
}
