//! Transaction ids: assigned by the server, unique across restarts (a Redis counter), and handed
//! out from a prefetched block so that StartTransaction normally does not wait for Redis.

use std::sync::Arc;

use crate::redis_pool::Pool;
use deadpool_redis::redis;
use tokio::sync::Mutex;

use crate::id::ChargePointId;
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

/// Why no id could be had: Redis was unreachable and the reserved block was used up (or, for a
/// charge point's own transaction id, the map could not be read).
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

    /// The integer id a charge point's own transaction id (OCPP 2.0.1) was mapped onto, with
    /// the record's `meter_start` when it has one; `None` when the charge point never named it
    /// before. One round trip for the map, one more for the record when mapped.
    pub async fn station_transaction(
        &self,
        charge_point: &ChargePointId,
        station_id: &str,
    ) -> Result<Option<(i32, Option<i64>)>, AllocationError> {
        let mut conn = self
            .pool
            .get()
            .await
            .map_err(|e| AllocationError(e.to_string()))?;
        let mapped: Option<i32> = redis::cmd("HGET")
            .arg(keys::station_transactions(charge_point.as_str()))
            .arg(station_id)
            .query_async(&mut conn)
            .await
            .map_err(|e| AllocationError(e.to_string()))?;
        let Some(id) = mapped else {
            return Ok(None);
        };
        let meter_start: Option<i64> = redis::cmd("HGET")
            .arg(keys::transaction(id))
            .arg("meter_start")
            .query_async(&mut conn)
            .await
            .map_err(|e| AllocationError(e.to_string()))?;
        Ok(Some((id, meter_start)))
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
