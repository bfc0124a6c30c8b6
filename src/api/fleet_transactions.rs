//! `GET /api/v1/transactions` and `GET /api/v1/transactions.csv`: the fleet's transactions by
//! start time, filtered by range, idTag, charge point, group and state, with the energy,
//! duration and highest power of each; JSON pages with a cursor, or every page as a streamed
//! CSV file for billing.
//!
//! Listings walk a start-time index (`store::transactions`): the charge point's own when
//! `charge_point` is given, else the idTag's, else the group's charge points' merged, else the
//! fleet's; the other filters are applied to the records read. The order is the index's:
//! start time, then (on equal start times) the transaction id as text, as Redis orders members.

use std::collections::{HashMap, HashSet};

use actix_web::http::header;
use actix_web::web::{self, Bytes};
use actix_web::HttpResponse;
use base64::Engine;
use chrono::{DateTime, Duration, Utc};
use serde::Deserialize;
use serde_json::{json, Value};

use super::csv::{self, Cell};
use super::{charge_points, params, transactions, ApiError, ApiState};
use actors::id::ChargePointId;
use actors::sample::Sample;
use actors::store::reads::{self, ReadError, TransactionRecord};
use actors::store::transactions::{self as index, Position, TransactionReadings};
use actors::store::{groups, keys};

/// Default and largest `limit` of one JSON page.
const DEFAULT_LIMIT: usize = 100;
const MAX_LIMIT: usize = 1000;
/// Rows per page the CSV export reads (it walks every page).
const CSV_PAGE: usize = 500;
/// Default range when `from` is absent: the 30 days before `to`, like daily roll-ups.
const DEFAULT_RANGE_DAYS: i64 = 30;
/// Longest range, like the daily roll-ups (`params::MAX_DAILY_RANGE_DAYS`).
const MAX_RANGE_DAYS: i64 = params::MAX_DAILY_RANGE_DAYS;

/// Registers the routes.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/transactions", web::get().to(list))
        .route("/transactions.csv", web::get().to(export));
}

/// The OpenAPI description of the routes above (`openapi.rs` merges it); a route added
/// here without its handler listed fails `tests/openapi.rs`.
#[derive(utoipa::OpenApi)]
#[openapi(paths(list, export))]
pub(super) struct Doc;

/// Query of `GET /api/v1/transactions`; all optional. Text fields so that a bad value gets a
/// 400 naming its parameter.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    /// Earliest start time (RFC 3339), inclusive; default `to` minus 30 days.
    from: Option<String>,
    /// Latest start time (RFC 3339), exclusive; default now. At most 400 days after `from`.
    to: Option<String>,
    /// Only transactions started with this idTag (compared without regard to case, as OCPP
    /// compares idTags).
    id_tag: Option<String>,
    /// Only transactions of this charge point.
    charge_point: Option<String>,
    /// Only transactions of the charge points of this group (404 if the group is unknown).
    group: Option<String>,
    /// `active`, `stopped` or `all` (default).
    state: Option<String>,
    /// Transactions per page: 1 to 1000, default 100.
    #[param(value_type = Option<u32>)]
    limit: Option<String>,
    /// `next_cursor` of the previous page: this page starts strictly after its last item.
    cursor: Option<String>,
}

/// Query of `GET /api/v1/transactions.csv`: the filters of the list, no paging.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct CsvQuery {
    /// Earliest start time (RFC 3339), inclusive; default `to` minus 30 days.
    from: Option<String>,
    /// Latest start time (RFC 3339), exclusive; default now. At most 400 days after `from`.
    to: Option<String>,
    /// Only transactions started with this idTag (compared without regard to case).
    id_tag: Option<String>,
    /// Only transactions of this charge point.
    charge_point: Option<String>,
    /// Only transactions of the charge points of this group (404 if the group is unknown).
    group: Option<String>,
    /// `active`, `stopped` or `all` (default).
    state: Option<String>,
}

/// Which transactions by state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum StateFilter {
    Active,
    Stopped,
    All,
}

/// Where a listing reads positions from.
#[derive(Debug, Clone)]
enum Source {
    /// One index key.
    Index(String),
    /// Several (a group's charge points), merged.
    Merged(Vec<String>),
    /// Nothing can match (a charge point outside the asked group, an empty group).
    Nothing,
}

/// A parsed, checked listing request.
#[derive(Debug, Clone)]
struct Listing {
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    id_tag: Option<String>,
    charge_point: Option<ChargePointId>,
    group: Option<HashSet<String>>,
    state: StateFilter,
    source: Source,
}

impl Listing {
    /// Parses the filters shared by both routes; reads the group (404 when unknown).
    async fn parse(
        state: &ApiState,
        from: Option<&str>,
        to: Option<&str>,
        id_tag: Option<&str>,
        charge_point: Option<&str>,
        group: Option<&str>,
        filter: Option<&str>,
    ) -> Result<Listing, ApiError> {
        let to = match to {
            Some(t) => params::time("to", t)?,
            None => Utc::now(),
        };
        let from = match from {
            Some(f) => params::time("from", f)?,
            None => to - Duration::days(DEFAULT_RANGE_DAYS),
        };
        if from >= to {
            return Err(ApiError::BadRequest("from must be before to".into()));
        }
        if to - from > Duration::days(MAX_RANGE_DAYS) {
            return Err(ApiError::BadRequest(format!(
                "from..to may span at most {MAX_RANGE_DAYS} days"
            )));
        }
        let state_filter = match filter.unwrap_or("all") {
            "active" => StateFilter::Active,
            "stopped" => StateFilter::Stopped,
            "all" => StateFilter::All,
            other => {
                return Err(ApiError::BadRequest(format!(
                    "state must be active, stopped or all, not {other:?}"
                )))
            }
        };
        let id_tag = match id_tag {
            Some(tag) if tag.is_empty() || tag.len() > 20 => {
                return Err(ApiError::BadRequest(format!(
                    "id_tag must be 1 to 20 characters (an OCPP idTag), not {tag:?}"
                )))
            }
            other => other.map(str::to_owned),
        };
        let charge_point = charge_point
            .map(|cp| {
                ChargePointId::parse(cp)
                    .map_err(|e| ApiError::BadRequest(format!("charge_point: {e}")))
            })
            .transpose()?;
        let group = match group {
            Some(id) => Some(
                groups::members(&state.pool, id)
                    .await?
                    .ok_or_else(|| ApiError::NotFound(format!("group {id:?} is unknown")))?
                    .into_iter()
                    .collect::<HashSet<String>>(),
            ),
            None => None,
        };
        index::ensure_fleet_index(&state.pool).await?;
        let source = match (&charge_point, &id_tag, &group) {
            (Some(cp), _, group) => {
                if group.as_ref().is_some_and(|g| !g.contains(cp.as_str())) {
                    Source::Nothing
                } else {
                    Source::Index(keys::transactions(cp.as_str()))
                }
            }
            (None, Some(tag), _) => Source::Index(keys::id_tag_transactions(tag)),
            (None, None, Some(group)) => {
                let mut members: Vec<String> = group
                    .iter()
                    .filter(|cp| ChargePointId::parse(cp).is_ok())
                    .map(|cp| keys::transactions(cp))
                    .collect();
                members.sort();
                if members.is_empty() {
                    Source::Nothing
                } else {
                    Source::Merged(members)
                }
            }
            (None, None, None) => Source::Index(keys::FLEET_TRANSACTIONS.to_owned()),
        };
        Ok(Listing {
            from,
            to,
            id_tag,
            charge_point,
            group,
            state: state_filter,
            source,
        })
    }

    /// Whether a record passes the filters the index did not apply.
    fn keeps(&self, record: &TransactionRecord) -> bool {
        let field = |name: &str| record.get(name).map(String::as_str);
        let stopped = transactions::is_stopped(record);
        self.id_tag
            .as_deref()
            .is_none_or(|tag| field("id_tag").is_some_and(|t| t.eq_ignore_ascii_case(tag)))
            && self
                .charge_point
                .as_ref()
                .is_none_or(|cp| field("charge_point_id") == Some(cp.as_str()))
            && self
                .group
                .as_ref()
                .is_none_or(|group| field("charge_point_id").is_some_and(|cp| group.contains(cp)))
            && match self.state {
                StateFilter::All => true,
                StateFilter::Active => !stopped,
                StateFilter::Stopped => stopped,
            }
    }

    /// Up to `limit` matching transactions after `after`, and whether more follow.
    async fn rows(
        &self,
        state: &ApiState,
        after: Option<Position>,
        limit: usize,
    ) -> Result<(Vec<(Position, TransactionRecord)>, bool), ApiError> {
        let (from_ms, to_ms) = (self.from.timestamp_millis(), self.to.timestamp_millis());
        let filtered = self.state != StateFilter::All
            || self.group.is_some()
            || (self.charge_point.is_some() && self.id_tag.is_some());
        let mut rows = Vec::new();
        let mut cursor = after;
        loop {
            // One more than asked tells whether a next page exists; filters may drop rows,
            // so read more at once then.
            let want = limit + 1 - rows.len();
            let batch = if filtered { want.max(100) } else { want };
            let positions = match &self.source {
                Source::Index(key) => {
                    index::page(&state.pool, key, from_ms, to_ms, cursor, batch).await?
                }
                Source::Merged(keys) => {
                    index::page_merged(&state.pool, keys, from_ms, to_ms, cursor, batch).await?
                }
                Source::Nothing => Vec::new(),
            };
            let ids: Vec<i32> = positions.iter().map(|p| p.id).collect();
            let records = reads::transactions(&state.pool, &ids).await?;
            for (position, record) in positions.iter().zip(records) {
                cursor = Some(*position);
                // An indexed id without a record: nothing to show (deleted by hand).
                let Some(record) = record else { continue };
                if self.keeps(&record) {
                    rows.push((*position, record));
                    if rows.len() > limit {
                        rows.truncate(limit);
                        return Ok((rows, true));
                    }
                }
            }
            if positions.len() < batch {
                return Ok((rows, false));
            }
        }
    }
}

/// A cursor as the API shows it: base64url of `<start_ms>:<id>`, opaque to clients.
fn encode_cursor(position: Position) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(format!("{}:{}", position.start_ms, position.id))
}

/// Inverse of [`encode_cursor`]; a 400 naming `cursor` for anything else.
fn decode_cursor(text: &str) -> Result<Position, ApiError> {
    let bad = || ApiError::BadRequest(format!("cursor {text:?} is not a cursor of this list"));
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(text)
        .map_err(|_| bad())?;
    let plain = String::from_utf8(bytes).map_err(|_| bad())?;
    let (start, id) = plain.split_once(':').ok_or_else(bad)?;
    Ok(Position {
        start_ms: start.parse().map_err(|_| bad())?,
        id: id.parse().map_err(|_| bad())?,
    })
}

/// What a row adds to the transaction document: energy so far (or in all), duration, highest
/// power.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
struct Derived {
    energy_wh: Option<f64>,
    duration_s: Option<f64>,
    max_power_w: Option<f64>,
}

/// The derived figures of each row, in order. Stopped transactions: energy and duration from
/// the record, highest power from the record's cache or else from its samples (then cached).
/// Running ones: from their samples and the clock. The samples are those in Redis plus those
/// still buffered, so a listing shows what was just received.
async fn derive(
    state: &ApiState,
    rows: &[(Position, TransactionRecord)],
) -> Result<Vec<Derived>, ApiError> {
    let now_ms = Utc::now().timestamp_millis();
    let mut unwritten: HashMap<String, Vec<Sample>> = HashMap::new();
    let mut derived = Vec::with_capacity(rows.len());
    let mut pending = Vec::new();
    for (i, (position, record)) in rows.iter().enumerate() {
        let number = |f: &str| record.get(f).and_then(|v| v.parse::<i64>().ok());
        let stop_ms = index::stop_ms(record);
        let mut row = Derived::default();
        let stopped = transactions::is_stopped(record);
        if stopped {
            row.energy_wh = number("meter_stop")
                .zip(number("meter_start"))
                .map(|(stop, start)| (stop - start) as f64);
            row.duration_s = stop_ms.map(|stop| (stop - position.start_ms) as f64 / 1000.0);
        } else {
            row.duration_s = Some((now_ms - position.start_ms) as f64 / 1000.0);
        }
        match (stopped, index::cached_max_power(record)) {
            (true, Some(cached)) => row.max_power_w = cached,
            _ => {
                let cp = record.get("charge_point_id").cloned().unwrap_or_default();
                if !unwritten.contains_key(&cp) {
                    let samples = match ChargePointId::parse(&cp) {
                        Ok(id) => charge_points::unwritten(state, &id).await,
                        Err(_) => Vec::new(),
                    };
                    unwritten.insert(cp.clone(), samples);
                }
                pending.push(i);
            }
        }
        derived.push(row);
    }
    let reads = pending.iter().map(|&i| {
        let (position, record) = &rows[i];
        let cp = record.get("charge_point_id").cloned().unwrap_or_default();
        let connector = record
            .get("connector_id")
            .and_then(|c| c.parse::<u32>().ok())
            .unwrap_or_default();
        let end_ms = index::stop_ms(record)
            .unwrap_or(now_ms)
            .max(position.start_ms);
        let buffered = unwritten.get(&cp);
        async move {
            let (Some(from), Some(to)) = (
                DateTime::from_timestamp_millis(position.start_ms),
                DateTime::from_timestamp_millis(end_ms),
            ) else {
                return Ok::<_, ReadError>((TransactionReadings::default(), false));
            };
            let mut samples = match ChargePointId::parse(&cp) {
                Ok(_) => {
                    index::connector_samples(
                        &state.pool,
                        &state.read_cache,
                        &cp,
                        connector,
                        from,
                        to,
                    )
                    .await?
                }
                Err(_) => Vec::new(),
            };
            let mut settled = true;
            for sample in buffered.into_iter().flatten() {
                if sample.transaction_id == Some(position.id) {
                    settled = false;
                    samples.push(sample.clone());
                }
            }
            Ok((
                index::transaction_readings(&samples, position.id, connector),
                settled,
            ))
        }
    });
    let readings = futures_util::future::try_join_all(reads).await?;
    for (&i, (readings, settled)) in pending.iter().zip(readings) {
        let (position, record) = &rows[i];
        let row = &mut derived[i];
        row.max_power_w = readings.max_power_w;
        if transactions::is_stopped(record) {
            if settled {
                // A stopped transaction none of whose samples waits in a buffer is final.
                if let Err(e) =
                    index::cache_max_power(&state.pool, position.id, readings.max_power_w).await
                {
                    log::warn!(
                        "Transaction {}: cannot cache its highest power: {e}",
                        position.id
                    );
                }
            }
        } else {
            let start = record
                .get("meter_start")
                .and_then(|v| v.parse::<f64>().ok());
            row.energy_wh = readings.latest_register().zip(start).map(|(v, s)| v - s);
        }
    }
    Ok(derived)
}

/// The JSON item of one row: the document of `GET /transactions/{id}` plus the derived fields.
fn item(position: Position, record: &TransactionRecord, derived: Derived) -> Value {
    let mut doc = transactions::document(position.id, record);
    doc["energy_wh"] = json!(derived.energy_wh);
    doc["duration_s"] = json!(derived.duration_s);
    doc["max_power_w"] = json!(derived.max_power_w);
    doc
}

#[utoipa::path(get, path = "/transactions", tag = "transactions", params(ListQuery), responses((status = 200, description = "`{from, to, items, next_cursor}`: the fleet's transactions whose start time is in `[from, to)`, oldest start first (equal start times: by transaction id as text), at most `limit` (default 100, at most 1000). Each item is the document of `GET /transactions/{id}` with `energy_wh`, `duration_s` and `max_power_w`. Stopped: `energy_wh` = meter_stop - meter_start (Wh, from Start/StopTransaction), `duration_s` = stop_time - start_time. Running: `energy_wh` = the newest Energy.Active.Import.Register reading carrying the transaction id (its connector, no phase, Outlet, normalised Wh) minus meter_start, null without such a reading; `duration_s` = now - start_time. `max_power_w`: the highest Power.Active.Import sample (no phase, Outlet, W) carrying the transaction id, null without any; cached in the transaction record once stopped. `next_cursor` (opaque) fetches the page after the last item, null on the last page.", body = serde_json::Value), (status = 400, description = "Bad parameter, named in `error`", body = super::schemas::ErrorBody), (status = 404, description = "Unknown group", body = super::schemas::ErrorBody), (status = 503, description = "Redis cannot answer", body = super::schemas::ErrorBody)))]
async fn list(
    state: web::Data<ApiState>,
    query: web::Query<ListQuery>,
) -> Result<HttpResponse, ApiError> {
    let limit = params::limit(query.limit.as_deref(), DEFAULT_LIMIT, MAX_LIMIT)?;
    let after = query.cursor.as_deref().map(decode_cursor).transpose()?;
    let listing = Listing::parse(
        &state,
        query.from.as_deref(),
        query.to.as_deref(),
        query.id_tag.as_deref(),
        query.charge_point.as_deref(),
        query.group.as_deref(),
        query.state.as_deref(),
    )
    .await?;
    let (rows, more) = listing.rows(&state, after, limit).await?;
    let derived = derive(&state, &rows).await?;
    let items: Vec<Value> = rows
        .iter()
        .zip(derived)
        .map(|((position, record), derived)| item(*position, record, derived))
        .collect();
    let next_cursor = match rows.last() {
        Some((position, _)) if more => json!(encode_cursor(*position)),
        _ => Value::Null,
    };
    Ok(HttpResponse::Ok().json(json!({
        "from": super::json::time(listing.from),
        "to": super::json::time(listing.to),
        "items": items,
        "next_cursor": next_cursor,
    })))
}

/// Columns of the CSV export, in order.
const CSV_HEADER: [&str; 14] = [
    "transaction_id",
    "charge_point_id",
    "connector_id",
    "id_tag",
    "state",
    "start_time",
    "stop_time",
    "meter_start",
    "meter_stop",
    "energy_wh",
    "duration_s",
    "max_power_w",
    "stop_id_tag",
    "stop_reason",
];

/// A stored time rewritten in the API's UTC RFC 3339 form (unreadable text is kept as is).
fn utc_time(text: &str) -> String {
    DateTime::parse_from_rfc3339(text)
        .map(|t| super::json::time(t.with_timezone(&Utc)))
        .unwrap_or_else(|_| text.to_owned())
}

/// One CSV row of a transaction.
fn csv_row(out: &mut String, position: Position, record: &TransactionRecord, derived: Derived) {
    let field = |name: &str| record.get(name).map(String::as_str);
    let number = |name: &str| field(name).and_then(|v| v.parse::<i64>().ok());
    let text = |name: &str| field(name).map_or(Cell::Empty, Cell::Text);
    let int = |v: Option<i64>| v.map(|v| v.to_string());
    let float = |v: Option<f64>| v.map(|v| v.to_string());
    let id = position.id.to_string();
    let connector = int(number("connector_id"));
    let state = if transactions::is_stopped(record) {
        "stopped"
    } else {
        "active"
    };
    let start = field("start_time").map(utc_time);
    let stop = field("stop_time").map(utc_time);
    let meter_start = int(number("meter_start"));
    let meter_stop = int(number("meter_stop"));
    let energy = float(derived.energy_wh);
    let duration = float(derived.duration_s);
    let power = float(derived.max_power_w);
    csv::push_row(
        out,
        &[
            Cell::Plain(&id),
            text("charge_point_id"),
            plain(&connector),
            text("id_tag"),
            Cell::Plain(state),
            plain(&start),
            plain(&stop),
            plain(&meter_start),
            plain(&meter_stop),
            plain(&energy),
            plain(&duration),
            plain(&power),
            text("stop_id_tag"),
            text("stop_reason"),
        ],
    );
}

/// A cell the server wrote, empty when there is no value.
fn plain(value: &Option<String>) -> Cell<'_> {
    value.as_deref().map_or(Cell::Empty, Cell::Plain)
}

/// Where the CSV stream stands between pages.
struct Export {
    state: web::Data<ApiState>,
    listing: Listing,
    after: Option<Position>,
    header_sent: bool,
    done: bool,
}

#[utoipa::path(get, path = "/transactions.csv", tag = "transactions", params(CsvQuery), responses((status = 200, description = "Every transaction the same query of `GET /transactions` lists, all pages, as RFC 4180 CSV (header row, CRLF line ends, UTF-8), streamed page by page: transaction_id, charge_point_id, connector_id, id_tag, state, start_time, stop_time (UTC RFC 3339), meter_start, meter_stop, energy_wh, duration_s, max_power_w (derived as in `GET /transactions`; empty when null), stop_id_tag, stop_reason. Excel-safe: a text cell (charge_point_id, id_tag, stop_id_tag, stop_reason) starting with `=`, `+`, `-`, `@`, TAB or CR is prefixed with `'` and quoted (OWASP CSV injection); numeric cells are never prefixed, so a negative energy stays a number. A Redis failure after the first page ends the download early (the response is already 200).", content_type = "text/csv", body = String), (status = 400, description = "Bad parameter, named in `error`", body = super::schemas::ErrorBody), (status = 404, description = "Unknown group", body = super::schemas::ErrorBody), (status = 503, description = "Redis cannot answer", body = super::schemas::ErrorBody)))]
async fn export(
    state: web::Data<ApiState>,
    query: web::Query<CsvQuery>,
) -> Result<HttpResponse, ApiError> {
    let listing = Listing::parse(
        &state,
        query.from.as_deref(),
        query.to.as_deref(),
        query.id_tag.as_deref(),
        query.charge_point.as_deref(),
        query.group.as_deref(),
        query.state.as_deref(),
    )
    .await?;
    let export = Export {
        state: state.clone(),
        listing,
        after: None,
        header_sent: false,
        done: false,
    };
    let body = futures_util::stream::unfold(export, |mut export| async move {
        if export.done {
            return None;
        }
        let mut out = String::new();
        if !export.header_sent {
            export.header_sent = true;
            let header: Vec<Cell<'_>> = CSV_HEADER.iter().map(|h| Cell::Plain(h)).collect();
            csv::push_row(&mut out, &header);
        }
        let page = async {
            let (rows, more) = export
                .listing
                .rows(&export.state, export.after, CSV_PAGE)
                .await?;
            let derived = derive(&export.state, &rows).await?;
            Ok::<_, ApiError>((rows, derived, more))
        };
        match page.await {
            Ok((rows, derived, more)) => {
                for ((position, record), derived) in rows.iter().zip(derived) {
                    csv_row(&mut out, *position, record, derived);
                }
                export.after = rows.last().map(|(p, _)| *p);
                export.done = !more;
                Some((Ok::<_, ApiError>(Bytes::from(out)), export))
            }
            Err(e) => {
                log::error!("The transactions CSV export stopped early: {e}");
                export.done = true;
                Some((Err(e), export))
            }
        }
    });
    Ok(HttpResponse::Ok()
        .content_type("text/csv; charset=utf-8")
        .insert_header((
            header::CONTENT_DISPOSITION,
            "attachment; filename=\"transactions.csv\"",
        ))
        .streaming(body))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_bad_ones_are_refused() {
        let position = Position {
            start_ms: 1_764_000_000_123,
            id: 42,
        };
        assert_eq!(decode_cursor(&encode_cursor(position)).ok(), Some(position));
        for bad in ["", "!!", "MTIz", "eDp5"] {
            let error = decode_cursor(bad).err().map(|e| e.to_string());
            assert!(
                error.as_deref().is_some_and(|e| e.contains("cursor")),
                "{bad}: {error:?}"
            );
        }
    }
}
