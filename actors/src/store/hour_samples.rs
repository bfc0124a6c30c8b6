//! `HourSamples`: one UTC hour of one series selection's raw samples, in the order a read wants
//! them and, once a meter-values read asked for it, rendered to JSON. The read cache keeps them
//! per chunk (`read_cache.rs`).
//!
//! A 24 h read of one series is 8,640 samples; decoding them was cached first, and what was left
//! was rendering every one of them to JSON at every read (an RFC 3339 time and a float each) and
//! sorting them. So an hour is kept sorted and rendered: a warm read copies 24 rendered hours
//! (shared `Bytes`, no copy at all) and renders only what was appended since.
//!
//! Samples are kept in [`Sample::identity`] order, stable, so repeats of a reading (a replay
//! stored twice) stay in storage order, the first stored first; repeats are kept, since callers
//! filter samples before they drop repeats. The rendering holds the first sample of each
//! identity only: the API shows each reading once, the first stored.

use bytes::Bytes;

use crate::sample::Sample;

/// Renders one sample as the API shows it, appending to the buffer. The API owns the JSON shape;
/// the store only keeps what it rendered.
pub type RenderSample = dyn Fn(&Sample, &mut Vec<u8>) + Sync;

/// See the module documentation.
#[derive(Debug, Default)]
pub struct HourSamples {
    /// The hour's samples of the selection, sorted by identity (stable), repeats kept.
    pub samples: Vec<Sample>,
    /// Their JSON, if a reader asked for it.
    pub rendered: Option<RenderedSamples>,
}

/// The JSON of an hour's samples, ready to be spliced into a response body.
#[derive(Debug, Clone)]
pub struct RenderedSamples {
    /// Each sample that is the first of its identity, rendered and followed by a comma, in the
    /// samples' order: any run of samples is one slice (shared, not copied, into a body).
    pub json: Bytes,
    /// `samples.len() + 1` offsets into `json`: sample `k` is `json[offsets[k]..offsets[k + 1]]`,
    /// empty for a repeat of the sample before it.
    pub offsets: Vec<u32>,
}

impl RenderedSamples {
    /// The rendering of samples `start..end` (each followed by a comma), shared with `self`.
    pub fn slice(&self, start: usize, end: usize) -> Bytes {
        let at = |k: usize| self.offsets.get(k).map_or(0, |o| *o as usize);
        self.json.slice(at(start)..at(end).max(at(start)))
    }

    /// Whether sample `k` is rendered (the first of its identity).
    pub fn shows(&self, k: usize) -> bool {
        match (self.offsets.get(k), self.offsets.get(k + 1)) {
            (Some(a), Some(b)) => b > a,
            _ => false,
        }
    }

    /// Bytes held, for the cache's bound.
    pub fn heap_bytes(&self) -> usize {
        self.json.len() + self.offsets.len() * std::mem::size_of::<u32>()
    }
}

/// Builds a [`RenderedSamples`] sample by sample.
struct Renderer<'a> {
    render: &'a RenderSample,
    json: Vec<u8>,
    offsets: Vec<u32>,
}

impl<'a> Renderer<'a> {
    fn new(render: &'a RenderSample, samples: usize, bytes_hint: usize) -> Self {
        let mut offsets = Vec::with_capacity(samples + 1);
        offsets.push(0);
        Renderer {
            render,
            json: Vec::with_capacity(bytes_hint),
            offsets,
        }
    }

    /// Renders `sample` unless it repeats `previous`.
    fn push(&mut self, sample: &Sample, previous: Option<&Sample>) {
        if previous.is_none_or(|p| p.identity() != sample.identity()) {
            (self.render)(sample, &mut self.json);
            self.json.push(b',');
        }
        self.offsets.push(self.json.len() as u32);
    }

    /// Copies an already rendered fragment.
    fn copy(&mut self, fragment: &[u8]) {
        self.json.extend_from_slice(fragment);
        self.offsets.push(self.json.len() as u32);
    }

    fn finish(self) -> RenderedSamples {
        RenderedSamples {
            json: Bytes::from(self.json),
            offsets: self.offsets,
        }
    }
}

/// ~200 bytes per sample as rendered.
const RENDERED_SAMPLE_BYTES: usize = 208;

impl HourSamples {
    /// An hour as decoded from its chunk (storage order), sorted, and rendered if `render`.
    pub fn from_stored(mut samples: Vec<Sample>, render: Option<&RenderSample>) -> Self {
        samples.sort_by_key(Sample::identity);
        let rendered = render.map(|render| render_all(&samples, render));
        HourSamples { samples, rendered }
    }

    /// The same hour with its rendering (for an entry cached by a reader that did not render).
    pub fn with_rendering(&self, render: &RenderSample) -> Self {
        HourSamples {
            samples: self.samples.clone(),
            rendered: Some(render_all(&self.samples, render)),
        }
    }

    /// The hour after `tail` (decoded from what was appended to its chunk, storage order) was
    /// stored: the same order a sort of everything would give, a tail sample after the samples
    /// of its identity already held (it was stored after them). Only the tail is rendered; the
    /// rest is copied from the rendering held, if any (rendered afresh if `render` and none).
    pub fn with_tail(&self, mut tail: Vec<Sample>, render: Option<&RenderSample>) -> Self {
        tail.sort_by_key(Sample::identity);
        let total = self.samples.len() + tail.len();
        let mut samples: Vec<Sample> = Vec::with_capacity(total);
        let mut renderer = render.map(|render| {
            let hint = self
                .rendered
                .as_ref()
                .map_or(0, |r| r.json.len())
                .saturating_add(tail.len() * RENDERED_SAMPLE_BYTES);
            Renderer::new(render, total, hint)
        });
        let mut old = self.samples.iter().enumerate().peekable();
        let mut new = tail.into_iter().peekable();
        loop {
            let take_old = match (old.peek(), new.peek()) {
                (Some((_, o)), Some(n)) => o.identity() <= n.identity(),
                (Some(_), None) => true,
                (None, Some(_)) => false,
                (None, None) => break,
            };
            let (sample, rendered_at) = if take_old {
                let Some((k, sample)) = old.next() else { break };
                (sample.clone(), Some(k))
            } else {
                let Some(sample) = new.next() else { break };
                (sample, None)
            };
            if let Some(renderer) = renderer.as_mut() {
                // An old sample keeps its rendering: a tail sample never goes before one of
                // the same identity, so whether it is the first of its identity cannot change.
                match (rendered_at, &self.rendered) {
                    (Some(k), Some(rendered)) => renderer.copy(&rendered.slice(k, k + 1)),
                    _ => renderer.push(&sample, samples.last()),
                }
            }
            samples.push(sample);
        }
        HourSamples {
            samples,
            rendered: renderer.map(Renderer::finish),
        }
    }

    /// Bytes held, for the cache's bound: the samples (a verbatim unit or signed value adds its
    /// text, rare enough to leave out) and the rendering.
    pub fn heap_bytes(&self) -> usize {
        self.samples.len() * std::mem::size_of::<Sample>()
            + self
                .rendered
                .as_ref()
                .map_or(0, RenderedSamples::heap_bytes)
    }
}

fn render_all(samples: &[Sample], render: &RenderSample) -> RenderedSamples {
    let mut renderer = Renderer::new(render, samples.len(), samples.len() * RENDERED_SAMPLE_BYTES);
    let mut previous = None;
    for sample in samples {
        renderer.push(sample, previous);
        previous = Some(sample);
    }
    renderer.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sample::{Location, Measurand, Phase, ReadingContext, SampleValue, Unit};

    fn at(ms: i64, value: f64) -> Sample {
        Sample {
            timestamp: chrono::DateTime::from_timestamp_millis(ms).unwrap_or_default(),
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

    fn render(sample: &Sample, out: &mut Vec<u8>) {
        let value = sample.number().unwrap_or_default();
        out.extend_from_slice(
            format!("{}={value}", sample.timestamp.timestamp_millis()).as_bytes(),
        );
    }

    /// What a reader gets: every sample's fragment in order.
    fn text(hour: &HourSamples) -> String {
        let rendered = hour.rendered.as_ref().unwrap_or_else(|| unreachable!());
        String::from_utf8_lossy(&rendered.slice(0, hour.samples.len())).into_owned()
    }

    /// The reference: everything stored, sorted at once (stable), each identity once, first
    /// stored wins.
    fn reference(stored: &[Sample]) -> String {
        let mut all = stored.to_vec();
        all.sort_by_key(Sample::identity);
        all.dedup_by(|a, b| a.identity() == b.identity());
        let mut out = Vec::new();
        for s in &all {
            render(s, &mut out);
            out.push(b',');
        }
        String::from_utf8_lossy(&out).into_owned()
    }

    #[test]
    fn a_tail_merges_as_a_sort_of_everything_would_and_renders_only_itself() {
        let first = vec![
            at(3_000, 1.0),
            at(1_000, 2.0),
            at(2_000, 3.0),
            at(1_000, 4.0),
        ];
        // Late readings before, between and after, a repeat of a held reading with another
        // value (the first stored wins), and a repeat within the tail.
        let tail = vec![
            at(500, 5.0),
            at(2_000, 6.0),
            at(2_500, 7.0),
            at(9_000, 8.0),
            at(2_500, 9.0),
        ];
        let render: &RenderSample = &render;
        let hour = HourSamples::from_stored(first.clone(), Some(render));
        assert_eq!(text(&hour), reference(&first));
        static CALLS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let counting = |s: &Sample, out: &mut Vec<u8>| {
            CALLS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            render(s, out);
        };
        let grown = hour.with_tail(tail.clone(), Some(&counting));
        let everything: Vec<Sample> = first.iter().chain(&tail).cloned().collect();
        assert_eq!(text(&grown), reference(&everything));
        // Rendered: the tail's new identities (500, 2500, 9000), not the held ones.
        assert_eq!(CALLS.load(std::sync::atomic::Ordering::Relaxed), 3);
        let mut sorted = everything.clone();
        sorted.sort_by_key(Sample::identity);
        assert_eq!(grown.samples, sorted, "repeats kept, in storage order");
        // Without a rendering held, the tail renders everything the same way.
        let bare = HourSamples::from_stored(first, None).with_tail(tail, Some(render));
        assert_eq!(text(&bare), reference(&everything));
        assert!(grown
            .rendered
            .as_ref()
            .is_some_and(|r| !r.shows(2) && r.shows(1)));
    }
}
