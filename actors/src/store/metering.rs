//! Redis reads and writes of the metering profile: the per charge point override, the
//! configuration a charge point reported at boot, and the keys it refused. Rare (once per boot
//! or API call), so they go straight to Redis instead of through the sample writer.

use std::collections::HashMap;

use crate::redis_pool::Pool;
use chrono::{DateTime, Utc};
use deadpool_redis::redis::{self, AsyncCommands};
use serde::{Deserialize, Serialize};

use super::keys;
use super::reads::ReadError;
use crate::metering::{MeteringOverride, Refusal};
use crate::server_call::ConfigurationEntry;

/// The configuration a charge point reported, as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredConfiguration {
    /// When it was read.
    pub read_at: DateTime<Utc>,
    /// The keys it reported.
    pub configuration_key: Vec<ConfigurationEntry>,
    /// Keys asked for that it did not know.
    pub unknown_key: Vec<String>,
}

/// A stored JSON document that no longer parses.
fn corrupt(what: &str, error: serde_json::Error) -> ReadError {
    ReadError::Redis(redis::RedisError::from((
        redis::ErrorKind::Parse,
        "stored document is not valid JSON",
        format!("{what}: {error}"),
    )))
}

/// The charge point's override, if one was set.
pub async fn read_override(
    pool: &Pool,
    charge_point: &str,
) -> Result<Option<MeteringOverride>, ReadError> {
    let mut conn = pool.get().await?;
    let text: Option<String> = conn.get(keys::metering(charge_point)).await?;
    text.map(|t| serde_json::from_str(&t).map_err(|e| corrupt("metering override", e)))
        .transpose()
}

/// Replaces the charge point's override.
pub async fn write_override(
    pool: &Pool,
    charge_point: &str,
    value: &MeteringOverride,
) -> Result<(), ReadError> {
    let text = serde_json::to_string(value).map_err(|e| corrupt("metering override", e))?;
    let mut conn = pool.get().await?;
    let () = conn.set(keys::metering(charge_point), text).await?;
    Ok(())
}

/// The configuration the charge point reported at its last boot, if any.
pub async fn read_configuration(
    pool: &Pool,
    charge_point: &str,
) -> Result<Option<StoredConfiguration>, ReadError> {
    let mut conn = pool.get().await?;
    let text: Option<String> = conn.get(keys::configuration(charge_point)).await?;
    text.map(|t| serde_json::from_str(&t).map_err(|e| corrupt("configuration", e)))
        .transpose()
}

/// Stores the configuration the charge point reported.
pub async fn write_configuration(
    pool: &Pool,
    charge_point: &str,
    value: &StoredConfiguration,
) -> Result<(), ReadError> {
    let text = serde_json::to_string(value).map_err(|e| corrupt("configuration", e))?;
    let mut conn = pool.get().await?;
    let () = conn.set(keys::configuration(charge_point), text).await?;
    Ok(())
}

/// The keys the charge point refused, with the refused values.
pub async fn read_refused(
    pool: &Pool,
    charge_point: &str,
) -> Result<HashMap<String, Refusal>, ReadError> {
    let mut conn = pool.get().await?;
    let raw: HashMap<String, String> = conn.hgetall(keys::metering_refused(charge_point)).await?;
    raw.into_iter()
        .map(|(k, v)| {
            serde_json::from_str(&v)
                .map(|r| (k, r))
                .map_err(|e| corrupt("metering refusal", e))
        })
        .collect()
}

/// Records a refusal of `key`.
pub async fn write_refused(
    pool: &Pool,
    charge_point: &str,
    key: &str,
    refusal: &Refusal,
) -> Result<(), ReadError> {
    let text = serde_json::to_string(refusal).map_err(|e| corrupt("metering refusal", e))?;
    let mut conn = pool.get().await?;
    let () = conn
        .hset(keys::metering_refused(charge_point), key, text)
        .await?;
    Ok(())
}

/// Forgets a refusal of `key` (the charge point accepted it after all).
pub async fn clear_refused(pool: &Pool, charge_point: &str, key: &str) -> Result<(), ReadError> {
    let mut conn = pool.get().await?;
    let () = conn.hdel(keys::metering_refused(charge_point), key).await?;
    Ok(())
}
