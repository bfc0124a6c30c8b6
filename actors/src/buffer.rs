//! A station's buffer: the samples its `ChargePointActor` has accepted and not yet handed to
//! the writer, in batches, so Redis sees one pipeline per `max_samples` samples instead of one
//! write per sample.
//!
//! Batch rules (after vector's batcher): the age timer starts at the first sample of a batch; a
//! batch is closed when full, when its oldest sample reaches `max_age`, on a flush (handover),
//! and when the station's actor stops (disconnect or shutdown), so nothing it accepted is left
//! behind.
//!
//! The buffer is state of the station's actor, not an actor of its own: a second actor per
//! session cost its task, its mailbox and its own copies of the station id and the writer's
//! address, ~1.3 KiB per connected charge point (issue 13, docs/performance.md), and every
//! read of the unwritten samples took a round trip through both mailboxes. The owner passes
//! what a flush needs ([`Outlet`]) and its own context, whose timer closes an aged batch.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;

use crate::counters::IngestCounters;
use crate::id::ChargePointId;
use crate::sample::Sample;
use crate::wal::WalPin;
use crate::writer::WriteBatch;

/// Batch limits, from `[buffer]` in config.toml.
#[derive(Debug, Clone)]
pub struct BufferSettings {
    /// Samples per batch (`buffer.max_samples`, default 100).
    pub max_samples: usize,
    /// Longest a sample waits in the buffer (`buffer.max_age_secs`, default 30 s).
    pub max_age: Duration,
    /// How many recent sample identities the station's actor remembers to drop repeats.
    pub dedupe_window: usize,
    /// How long it remembers each (`buffer.dedupe_window_secs`, default 300 s).
    pub dedupe_max_age: Duration,
}

/// Where a closed batch goes, borrowed from the owner at each call so the buffer keeps no copy
/// of what the station's actor already holds.
#[derive(Debug, Clone, Copy)]
pub struct Outlet<'a> {
    /// Station the buffer belongs to.
    pub charge_point: &'a ChargePointId,
    /// Limits.
    pub settings: &'a BufferSettings,
    /// Where full batches go.
    pub writer: &'a Recipient<WriteBatch>,
    /// Where each batch is counted until the writer has it in Redis.
    pub unwritten: &'a Arc<crate::backlog::Backlog>,
    /// Shared gauges: open buffers and buffered samples.
    pub counters: &'a IngestCounters,
}

/// The owner's way back to its buffer, for the age timer's callback.
pub trait BufferOwner: Actor<Context = Context<Self>> {
    /// Closes the open batch because its oldest sample reached `max_age`; the owner calls
    /// [`StationBuffer::aged`] with its outlet.
    fn batch_aged(&mut self, ctx: &mut Context<Self>);
}

/// See the module documentation.
#[derive(Debug, Default)]
pub struct StationBuffer {
    /// The open batch.
    samples: Vec<Sample>,
    /// The log's hold on the open batch: the pin of its first (oldest) record, which covers
    /// the later ones of this station (their numbers are higher), so those are let go at once.
    wal: Option<Arc<WalPin>>,
    /// Highest log sequence number among the open batch's records (0: none logged).
    wal_last: u64,
    /// Fires when the oldest sample of the open batch reaches `max_age`.
    age_timer: Option<SpawnHandle>,
}

impl StationBuffer {
    /// A buffer counted in the open-buffer gauge until [`StationBuffer::close`]: shutdown waits
    /// for that gauge to reach zero, every buffer flushed.
    pub fn open(counters: &IngestCounters) -> Self {
        counters.open_buffers.fetch_add(1, Ordering::SeqCst);
        StationBuffer::default()
    }

    /// Adds samples with the write-ahead log's hold on them (see [`crate::wal`]), closing
    /// batches as they fill.
    pub fn push<A: BufferOwner>(
        &mut self,
        samples: Vec<Sample>,
        wal: Option<Arc<WalPin>>,
        out: Outlet<'_>,
        ctx: &mut Context<A>,
    ) {
        for sample in samples {
            // A batch closed mid-push took the pin with it; the rest of this push needs one.
            if self.wal.is_none() {
                self.wal.clone_from(&wal);
            }
            if let Some(pin) = &wal {
                self.wal_last = self.wal_last.max(pin.lsn());
            }
            if self.samples.is_empty() && self.age_timer.is_none() {
                self.age_timer = Some(ctx.run_later(out.settings.max_age, A::batch_aged));
            }
            self.samples.push(sample);
            out.counters
                .buffered_samples
                .fetch_add(1, Ordering::Relaxed);
            if self.samples.len() >= out.settings.max_samples {
                self.flush(out, ctx);
            }
        }
    }

    /// The age timer fired: the open batch goes to the writer.
    pub fn aged<A: BufferOwner>(&mut self, out: Outlet<'_>, ctx: &mut Context<A>) {
        self.age_timer = None;
        self.flush(out, ctx);
    }

    /// Sends the open batch to the writer and resets the timer.
    pub fn flush<A: BufferOwner>(&mut self, out: Outlet<'_>, ctx: &mut Context<A>) {
        if let Some(timer) = self.age_timer.take() {
            ctx.cancel_future(timer);
        }
        self.send_batch(out);
    }

    /// Flushes and leaves the open-buffer gauge: the station is gone (disconnect or shutdown),
    /// so whatever was accepted goes to the writer before the memory is freed. Called from the
    /// owner's `stopped`, where no timer runs any more.
    pub fn close(&mut self, out: Outlet<'_>) {
        self.age_timer = None;
        self.send_batch(out);
        out.counters.open_buffers.fetch_sub(1, Ordering::SeqCst);
    }

    /// Hands the open batch, if any, with its log pin to the writer.
    fn send_batch(&mut self, out: Outlet<'_>) {
        if self.samples.is_empty() {
            return;
        }
        out.counters
            .buffered_samples
            .fetch_sub(self.samples.len(), Ordering::Relaxed);
        out.writer.do_send(WriteBatch::samples(
            out.charge_point.clone(),
            std::mem::take(&mut self.samples),
            Vec::new(),
            self.wal.take(),
            std::mem::take(&mut self.wal_last),
            out.unwritten,
        ));
    }

    /// A copy of the buffered samples, for reads that must see what is not yet in Redis.
    pub fn samples(&self) -> &[Sample] {
        &self.samples
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sample::{Location, Measurand, ReadingContext, SampleValue, Unit};
    use std::sync::{Arc, Mutex};

    /// Records what reaches the writer.
    struct FakeWriter(Arc<Mutex<Vec<WriteBatch>>>);

    impl Actor for FakeWriter {
        type Context = Context<Self>;
    }

    impl Handler<WriteBatch> for FakeWriter {
        type Result = ();
        fn handle(&mut self, batch: WriteBatch, _: &mut Self::Context) {
            self.0.lock().unwrap().push(batch);
        }
    }

    /// A station's actor reduced to its buffer, as `ChargePointActor` holds it.
    struct Station {
        parts: Parts,
        buffer: StationBuffer,
    }

    /// What the station lends its buffer.
    struct Parts {
        id: ChargePointId,
        settings: BufferSettings,
        writer: Recipient<WriteBatch>,
        unwritten: Arc<crate::backlog::Backlog>,
        counters: Arc<IngestCounters>,
    }

    impl Parts {
        fn outlet(&self) -> Outlet<'_> {
            Outlet {
                charge_point: &self.id,
                settings: &self.settings,
                writer: &self.writer,
                unwritten: &self.unwritten,
                counters: &self.counters,
            }
        }
    }

    impl Actor for Station {
        type Context = Context<Self>;

        fn stopped(&mut self, _: &mut Self::Context) {
            self.buffer.close(self.parts.outlet());
        }
    }

    impl BufferOwner for Station {
        fn batch_aged(&mut self, ctx: &mut Context<Self>) {
            self.buffer.aged(self.parts.outlet(), ctx);
        }
    }

    /// Samples for the buffer.
    #[derive(Message)]
    #[rtype(result = "()")]
    struct Push(Vec<Sample>);

    /// What is buffered.
    #[derive(Message)]
    #[rtype(result = "Vec<Sample>")]
    struct Buffered;

    /// The station goes away.
    #[derive(Message)]
    #[rtype(result = "()")]
    struct Stop;

    impl Handler<Push> for Station {
        type Result = ();
        fn handle(&mut self, Push(samples): Push, ctx: &mut Self::Context) {
            self.buffer.push(samples, None, self.parts.outlet(), ctx);
        }
    }

    impl Handler<Buffered> for Station {
        type Result = MessageResult<Buffered>;
        fn handle(&mut self, _: Buffered, _: &mut Self::Context) -> Self::Result {
            MessageResult(self.buffer.samples().to_vec())
        }
    }

    impl Handler<Stop> for Station {
        type Result = ();
        fn handle(&mut self, _: Stop, ctx: &mut Self::Context) {
            ctx.stop();
        }
    }

    fn sample(second: i64) -> Sample {
        Sample {
            timestamp: chrono::DateTime::from_timestamp(1_700_000_000 + second, 0).unwrap(),
            connector_id: 1,
            transaction_id: None,
            measurand: Measurand::PowerActiveImport,
            phase: None,
            location: Location::Outlet,
            context: ReadingContext::SamplePeriodic,
            unit: Unit::W,
            value: SampleValue::Number(second as f64),
        }
    }

    fn start(
        max_samples: usize,
        max_age: Duration,
    ) -> (
        Addr<Station>,
        Arc<Mutex<Vec<WriteBatch>>>,
        Arc<IngestCounters>,
    ) {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let writer = FakeWriter(seen.clone()).start();
        let settings = BufferSettings {
            max_samples,
            max_age,
            dedupe_window: 1000,
            dedupe_max_age: Duration::from_secs(300),
        };
        let id = ChargePointId::parse("CP1").unwrap();
        let counters = Arc::new(IngestCounters::default());
        let station = Station {
            buffer: StationBuffer::open(&counters),
            parts: Parts {
                id,
                settings,
                writer: writer.recipient(),
                unwritten: Arc::default(),
                counters: counters.clone(),
            },
        };
        (station.start(), seen, counters)
    }

    fn sizes(seen: &Arc<Mutex<Vec<WriteBatch>>>) -> Vec<usize> {
        seen.lock()
            .unwrap()
            .iter()
            .map(|b| b.samples.len())
            .collect()
    }

    #[actix::test]
    async fn flushes_when_full() {
        let (buffer, seen, _) = start(3, Duration::from_secs(3600));
        buffer
            .send(Push((0..7).map(sample).collect()))
            .await
            .unwrap();
        buffer.send(Buffered).await.unwrap();
        actix::clock::sleep(Duration::from_millis(1)).await;
        assert_eq!(sizes(&seen), vec![3, 3]);
        assert_eq!(buffer.send(Buffered).await.unwrap().len(), 1);
    }

    #[actix::test]
    async fn flushes_when_the_oldest_sample_is_max_age_old() {
        tokio::time::pause();
        let (buffer, seen, _) = start(100, Duration::from_secs(30));
        buffer.send(Push(vec![sample(0)])).await.unwrap();
        actix::clock::sleep(Duration::from_secs(20)).await;
        buffer.send(Push(vec![sample(1)])).await.unwrap();
        assert!(sizes(&seen).is_empty(), "flushed before max_age");
        actix::clock::sleep(Duration::from_secs(11)).await;
        assert_eq!(
            sizes(&seen),
            vec![2],
            "the timer starts at the first sample"
        );
    }

    #[actix::test]
    async fn flushes_everything_when_stopped() {
        let (buffer, seen, counters) = start(100, Duration::from_secs(3600));
        assert_eq!(counters.open_buffers.load(Ordering::SeqCst), 1);
        buffer.send(Push(vec![sample(0), sample(1)])).await.unwrap();
        buffer.send(Stop).await.unwrap();
        actix::clock::sleep(Duration::from_millis(5)).await;
        assert_eq!(sizes(&seen), vec![2]);
        assert_eq!(counters.open_buffers.load(Ordering::SeqCst), 0);
        assert_eq!(counters.buffered_samples.load(Ordering::SeqCst), 0);
    }
}
