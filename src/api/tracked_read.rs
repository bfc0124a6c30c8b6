//! The Redis step of a large read (`/meter-values`, `/aggregates`), answered from memory while
//! Redis's client tracking vouches for it (`actors::store::tracked_reads` says how and why).

use actors::store::read_cache::ReadCache;
use actors::store::reads::ReadError;
use actors::store::tracked_reads::{Confirmed, Opened, ReadKey, TrackedConnection, TrackedLink};

/// Where a read's Redis step stands after [`begin`].
pub(super) enum Step {
    /// Confirmed by Redis and unchanged since: the result, no round trip.
    Answered(Confirmed),
    /// Ask Redis; with a mark opened when marks are on. The caller checks what is on its way
    /// (the backlogs) only now, after the opening.
    Ask(Option<Opened>),
}

/// Looks the read `key` of `charge_point` up in the marks, or opens a mark for it. A read
/// answered from memory counts as a read-cache hit per hour or bucket it serves.
pub(super) fn begin(
    link: &TrackedLink,
    cache: &ReadCache,
    charge_point: &str,
    key: ReadKey,
) -> Step {
    let marks = link.reads();
    if let Some(confirmed) = marks.confirmed(charge_point, &key) {
        cache.hits(confirmed.held.entries());
        return Step::Answered(confirmed);
    }
    Step::Ask(marks.open(charge_point, key))
}

/// Runs the Redis step: over the worker's tracked connection when a mark is open, keeping the
/// result (`keep`) as confirmed when `clear` (nothing of the charge point was on its way to
/// Redis after the mark opened); over the pool when marks are off or the tracked connection
/// cannot be had. A read that fails on the tracked connection forgets every mark, has the
/// connection made again, and is made through the pool.
pub(super) async fn redis_step<T>(
    link: &TrackedLink,
    opened: Option<Opened>,
    clear: bool,
    tracked: impl AsyncFnOnce(&mut TrackedConnection) -> Result<T, ReadError>,
    pooled: impl AsyncFnOnce() -> Result<T, ReadError>,
    keep: impl FnOnce(&T) -> Confirmed,
) -> Result<T, ReadError> {
    let marks = link.reads();
    let Some(opened) = opened else {
        return pooled().await;
    };
    let mut conn = match link.connection().await {
        Some(Ok(conn)) => conn,
        Some(Err(error)) => {
            log::debug!(
                "No tracked Redis connection for reads ({error}); reading through the pool."
            );
            marks.forget_mark(&opened);
            return pooled().await;
        }
        None => {
            marks.forget_mark(&opened);
            return pooled().await;
        }
    };
    match tracked(&mut conn).await {
        Ok(result) => {
            if clear {
                marks.confirm(opened, keep(&result));
            } else {
                marks.forget_mark(&opened);
            }
            Ok(result)
        }
        // The connection may have died with Redis (a restart): the read is made again
        // through the pool, as it would have been without marks.
        Err(error) => {
            log::debug!("A read on the tracked Redis connection failed ({error}); reading through the pool.");
            marks.forget_mark(&opened);
            link.failed().await;
            pooled().await
        }
    }
}
