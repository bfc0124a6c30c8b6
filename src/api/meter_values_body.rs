//! The `/meter-values` body spliced from rendered hours (`actors::store::hour_samples`): a warm
//! 24 h read of one series renders none of its 8,640 stored samples: the cached renderings are
//! shared `Bytes`, joined once into the body, and only samples still buffered in this process
//! (not yet in Redis) are rendered. The bytes are the same as
//! rendering the sorted, de-duplicated samples with [`json::SamplesJson`] (tests below and in
//! tests/read_cache.rs hold the two together).

use std::sync::Arc;

use actix_web::http::header::ContentType;
use actix_web::web::Bytes;
use actix_web::HttpResponse;
use chrono::{DateTime, Utc};

use super::json;
use actors::sample::Sample;
use actors::store::hour_samples::{HourSamples, RenderedSamples};

/// The fields of the body before `samples`, in the sorted order a `serde_json::Value` map
/// wrote them.
#[derive(serde::Serialize)]
pub(super) struct Head<'a> {
    pub buffered_elsewhere_secs: Option<u64>,
    pub charge_point_id: &'a str,
    pub from: String,
    pub instance: Option<String>,
}

/// The parts of the `samples` array's content, in order, each reading once: the stored samples
/// of `hours` (oldest hour first, each sorted, as `hours_matching_cached` gives them) within
/// `[from, to)`, merged with `unwritten` (already filtered to the series and range), the
/// `limit` oldest. As the sort of everything the reference does: samples sorted by identity,
/// stable, with the unwritten ones first, and of each identity the first kept.
pub(super) fn samples_parts(
    hours: &[Arc<HourSamples>],
    mut unwritten: Vec<Sample>,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    limit: usize,
) -> Vec<Bytes> {
    unwritten.sort_by_key(Sample::identity);
    unwritten.dedup_by(|a, b| a.identity() == b.identity());
    let mut pending = unwritten.into_iter().peekable();
    let mut splice = Splice {
        parts: Vec::new(),
        fresh: Vec::new(),
        count: 0,
        limit,
    };
    'hours: for hour in hours {
        let unrendered;
        let rendered = match &hour.rendered {
            Some(rendered) => rendered,
            None => {
                // Not rendered by the read (it always asks): render here rather than fail.
                unrendered = hour.with_rendering(&json::render_sample);
                match &unrendered.rendered {
                    Some(rendered) => rendered,
                    None => continue,
                }
            }
        };
        // Start of the run of stored samples that goes out as one slice.
        let mut run: Option<usize> = None;
        for (k, sample) in hour.samples.iter().enumerate() {
            let identity = sample.identity();
            while let Some(first) = pending.next_if(|u| u.identity() < identity) {
                splice.close(rendered, &mut run, k);
                if !splice.fresh(&first) {
                    break 'hours;
                }
            }
            if sample.timestamp < from || sample.timestamp >= to {
                splice.close(rendered, &mut run, k);
                continue;
            }
            if let Some(same) = pending.next_if(|u| u.identity() == identity) {
                // The buffered copy of a stored reading goes first in the reference's sort.
                splice.close(rendered, &mut run, k);
                if !splice.fresh(&same) {
                    break 'hours;
                }
                continue;
            }
            if rendered.shows(k) {
                if splice.count >= splice.limit {
                    splice.close(rendered, &mut run, k);
                    break 'hours;
                }
                splice.count += 1;
            }
            run.get_or_insert(k);
        }
        splice.close(rendered, &mut run, hour.samples.len());
    }
    for sample in pending {
        if !splice.fresh(&sample) {
            break;
        }
    }
    splice.finish()
}

/// The parts of a body being spliced.
struct Splice {
    parts: Vec<Bytes>,
    /// Samples rendered here, not yet a part.
    fresh: Vec<u8>,
    /// Readings in the body so far.
    count: usize,
    limit: usize,
}

impl Splice {
    /// Ends the run of stored samples before `end`, if one is open.
    fn close(&mut self, rendered: &RenderedSamples, run: &mut Option<usize>, end: usize) {
        if let Some(start) = run.take() {
            self.flush_fresh();
            let part = rendered.slice(start, end);
            if !part.is_empty() {
                self.parts.push(part);
            }
        }
    }

    /// Renders a sample that is not in the cache; false (and nothing added) when the body
    /// already holds `limit` readings.
    fn fresh(&mut self, sample: &Sample) -> bool {
        if self.count >= self.limit {
            return false;
        }
        self.count += 1;
        json::render_sample(sample, &mut self.fresh);
        self.fresh.push(b',');
        true
    }

    fn flush_fresh(&mut self) {
        if !self.fresh.is_empty() {
            self.parts
                .push(Bytes::from(std::mem::take(&mut self.fresh)));
        }
    }

    /// The parts without the comma after the last sample.
    fn finish(mut self) -> Vec<Bytes> {
        self.flush_fresh();
        if let Some(last) = self.parts.last_mut() {
            last.truncate(last.len().saturating_sub(1));
        }
        self.parts
    }
}

/// The whole body: `head`, the samples' parts in `[...]`, then `to`.
pub(super) fn body(
    head: &Head<'_>,
    samples: Vec<Bytes>,
    to: DateTime<Utc>,
) -> Result<Vec<Bytes>, serde_json::Error> {
    let mut open = serde_json::to_vec(head)?;
    // `head` is an object: its closing brace gives way to the samples.
    open.pop();
    open.extend_from_slice(b",\"samples\":[");
    let mut close = b"],\"to\":".to_vec();
    serde_json::to_writer(&mut close, &json::time(to))?;
    close.push(b'}');
    let mut parts = Vec::with_capacity(samples.len() + 2);
    parts.push(Bytes::from(open));
    parts.extend(samples);
    parts.push(Bytes::from(close));
    Ok(parts)
}

/// A 200 JSON response of `parts`, joined into one buffer (one copy of ~1.7 MB for 24 h, a
/// fraction of a millisecond). Sending them as a `SizedStream` of parts instead was measured
/// with a p99 of 0.7-1.2 s in every run (docs/performance.md, issue 13 reads, second round)
/// and is left out until a quiet A/B clears it.
pub(super) fn response(parts: Vec<Bytes>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type(ContentType::json())
        .body(parts.concat())
}

#[cfg(test)]
mod tests {
    use super::*;
    use actors::sample::{Location, Measurand, Phase, ReadingContext, SampleValue, Unit};
    use chrono::Duration;

    const HOUR_MS: i64 = 3_600_000;
    const T0: i64 = 1_764_000_000_000 / HOUR_MS * HOUR_MS;

    fn at(ms: i64, value: f64) -> Sample {
        Sample {
            timestamp: DateTime::from_timestamp_millis(ms).unwrap_or_default(),
            connector_id: 1,
            transaction_id: None,
            measurand: Measurand::Voltage,
            phase: Some(Phase::L1N),
            location: Location::Outlet,
            context: ReadingContext::SamplePeriodic,
            unit: Unit::V,
            value: SampleValue::Number(value),
        }
    }

    fn time(ms: i64) -> DateTime<Utc> {
        DateTime::from_timestamp_millis(ms).unwrap_or_default()
    }

    /// The body as the handler rendered it before splicing: everything in one list, unwritten
    /// first, filtered, sorted and de-duplicated, the `limit` oldest, serialised at once.
    fn reference(
        stored: &[Vec<Sample>],
        unwritten: &[Sample],
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        limit: usize,
    ) -> String {
        let mut samples: Vec<Sample> = unwritten.to_vec();
        samples.extend(stored.iter().flatten().cloned());
        samples.retain(|s| s.timestamp >= from && s.timestamp < to);
        samples.sort_by_key(Sample::identity);
        samples.dedup_by(|a, b| a.identity() == b.identity());
        samples.truncate(limit);
        serde_json::to_string(&serde_json::json!({
            "buffered_elsewhere_secs": 30,
            "charge_point_id": "CP-1",
            "from": json::time(from),
            "instance": "b:8080",
            "samples": samples.iter().map(json::sample).collect::<Vec<_>>(),
            "to": json::time(to),
        }))
        .unwrap_or_default()
    }

    fn spliced(
        stored: &[Vec<Sample>],
        unwritten: &[Sample],
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        limit: usize,
    ) -> String {
        let hours: Vec<Arc<HourSamples>> = stored
            .iter()
            .map(|s| {
                Arc::new(HourSamples::from_stored(
                    s.clone(),
                    Some(&json::render_sample),
                ))
            })
            .collect();
        let head = Head {
            buffered_elsewhere_secs: Some(30),
            charge_point_id: "CP-1",
            from: json::time(from),
            instance: Some("b:8080".into()),
        };
        let parts = samples_parts(&hours, unwritten.to_vec(), from, to, limit);
        let body = body(&head, parts, to).unwrap_or_default();
        String::from_utf8(body.concat()).unwrap_or_default()
    }

    #[test]
    fn the_spliced_body_is_the_rendered_body_byte_for_byte() {
        // Three hours in storage order: out of order, repeats with other values (the first
        // stored wins), an empty hour.
        let stored = vec![
            vec![
                at(T0 + 5_000, 1.0),
                at(T0 + 1_000, 2.0),
                at(T0 + 5_000, 3.0),
                at(T0 + 3_000, 4.0),
            ],
            vec![],
            vec![
                at(T0 + 2 * HOUR_MS + 10, 5.0),
                at(T0 + 2 * HOUR_MS, 6.0),
                at(T0 + 2 * HOUR_MS + 20, 7.0),
            ],
        ];
        // Buffered: a copy of a stored reading with another value (it wins), new readings
        // between, before and after the stored ones, and a repeat among themselves.
        let unwritten = [
            at(T0 + 3_000, 40.0),
            at(T0 + 2 * HOUR_MS + 15, 8.0),
            at(T0 + 500, 9.0),
            at(T0 + 3 * HOUR_MS - 1, 10.0),
            at(T0 + 500, 11.0),
        ];
        let all = (time(T0 - HOUR_MS), time(T0 + 3 * HOUR_MS));
        let cases = [
            (&unwritten[..], all.0, all.1, 10_000),
            (&[][..], all.0, all.1, 10_000),
            // Ranges that cut hours, limits that cut runs and buffered samples.
            (
                &unwritten[..],
                time(T0 + 1_000),
                time(T0 + 2 * HOUR_MS + 15),
                10_000,
            ),
            (
                &[][..],
                time(T0 + 2_000),
                time(T0 + 2 * HOUR_MS + 11),
                10_000,
            ),
            (&unwritten[..], all.0, all.1, 1),
            (&unwritten[..], all.0, all.1, 3),
            (&[][..], all.0, all.1, 2),
            (&unwritten[..], all.0, all.1, 6),
            (
                &unwritten[..],
                time(T0 + 6_000),
                time(T0 + 2 * HOUR_MS),
                10_000,
            ),
        ];
        for (i, (unwritten, from, to, limit)) in cases.into_iter().enumerate() {
            let unwritten: Vec<Sample> = unwritten
                .iter()
                .filter(|s| s.timestamp >= from && s.timestamp < to)
                .cloned()
                .collect();
            assert_eq!(
                spliced(&stored, &unwritten, from, to, limit),
                reference(&stored, &unwritten, from, to, limit),
                "case {i}"
            );
        }
        let empty = spliced(&[], &[], all.0, all.0 + Duration::hours(1), 10);
        assert_eq!(
            empty,
            reference(&[], &[], all.0, all.0 + Duration::hours(1), 10)
        );
        assert!(empty.contains("\"samples\":[]"), "{empty}");
    }
}
