//! The newest sample per series of one charge point, gathered from every place a sample can be
//! while it travels to Redis. Shared by `GET .../meter-values/latest` and the statistics of a
//! disconnected charge point, so both answer the same values.

use std::collections::BTreeMap;

use actors::id::ChargePointId;
use actors::sample::{Measurand, Phase, Sample};
use actors::store::reads;
use actors::writer::UnwrittenLatest;

use super::{ApiError, ApiState};

/// The writer's unwritten values, then Redis's latest hash: a value the writer hands to Redis
/// in between is seen in one of the two, never in neither. The writer holds what is queued and
/// the newest values whose coalesced latest-hash write is still to come.
pub(super) async fn stored_candidates(
    state: &ApiState,
    id: &ChargePointId,
) -> Result<Vec<Sample>, ApiError> {
    let mut candidates = state
        .writer
        .send(UnwrittenLatest(id.clone()))
        .await
        .unwrap_or_default();
    candidates.extend(reads::latest_samples(&state.pool, id.as_str()).await?);
    Ok(candidates)
}

/// Keeps the newest sample of each (connector, measurand, phase), ordered by that key; on equal
/// timestamps the first seen wins, so the order of the sources decides ties.
pub(super) fn newest_per_series(candidates: impl IntoIterator<Item = Sample>) -> Vec<Sample> {
    let mut newest: BTreeMap<(u32, Measurand, Option<Phase>), Sample> = BTreeMap::new();
    for sample in candidates {
        let key = (sample.connector_id, sample.measurand, sample.phase);
        match newest.get(&key) {
            Some(seen) if seen.timestamp >= sample.timestamp => {}
            _ => {
                newest.insert(key, sample);
            }
        }
    }
    newest.into_values().collect()
}
