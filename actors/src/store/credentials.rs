//! Charge point passwords as stored: one argon2 PHC string per charge point. Hashing and
//! verification live in the server crate (they are CPU work, run off the async executor there);
//! this module only moves the opaque PHC string in and out of Redis.

use crate::redis_pool::Pool;
use deadpool_redis::redis;

use crate::store::keys;
use crate::store::reads::ReadError;

/// The stored PHC string of `charge_point`'s password, `None` when none is set.
pub async fn password_hash(pool: &Pool, charge_point: &str) -> Result<Option<String>, ReadError> {
    let mut conn = pool.get().await?;
    Ok(redis::cmd("GET")
        .arg(keys::password(charge_point))
        .query_async(&mut conn)
        .await?)
}

/// Stores (or replaces) `charge_point`'s password hash; no TTL, it lives until replaced.
pub async fn set_password_hash(
    pool: &Pool,
    charge_point: &str,
    phc: &str,
) -> Result<(), ReadError> {
    let mut conn = pool.get().await?;
    redis::cmd("SET")
        .arg(keys::password(charge_point))
        .arg(phc)
        .query_async::<()>(&mut conn)
        .await?;
    Ok(())
}

/// Removes `charge_point`'s password; `true` when there was one.
pub async fn delete_password_hash(pool: &Pool, charge_point: &str) -> Result<bool, ReadError> {
    let mut conn = pool.get().await?;
    let removed: u64 = redis::cmd("DEL")
        .arg(keys::password(charge_point))
        .query_async(&mut conn)
        .await?;
    Ok(removed > 0)
}
