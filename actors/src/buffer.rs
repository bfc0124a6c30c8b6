//! `BufferActor`: one per connected station. It collects the station's samples and hands them to
//! the writer in batches, so Redis sees one pipeline per `max_samples` samples instead of one
//! write per sample.
//!
//! Batch rules (after vector's batcher): the age timer starts at the first sample of a batch; a
//! batch is closed when full, when its oldest sample reaches `max_age`, on `Flush`, and when the
//! actor stops (disconnect or shutdown), so nothing it accepted is left behind.

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

/// Add samples to the buffer, with the write-ahead log's hold on them (see [`crate::wal`]).
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct Push(pub Vec<Sample>, pub Option<Arc<WalPin>>);

/// Hand everything buffered to the writer now.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct Flush;

/// Flush and stop: the station is gone, so its memory is freed.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct Stop;

/// Copy out the buffered samples, for reads that must see what is not yet in Redis.
#[derive(Debug, Message)]
#[rtype(result = "Vec<Sample>")]
pub struct Buffered;

/// See the module documentation.
pub struct BufferActor {
    /// Station the buffer belongs to.
    charge_point: ChargePointId,
    /// Limits.
    settings: BufferSettings,
    /// The open batch.
    samples: Vec<Sample>,
    /// The log's hold on the open batch: the pin of its first (oldest) record, which covers
    /// the later ones of this station (their numbers are higher), so those are let go at once.
    wal: Option<Arc<WalPin>>,
    /// Highest log sequence number among the open batch's records (0: none logged).
    wal_last: u64,
    /// Fires when the oldest sample of the open batch reaches `max_age`.
    age_timer: Option<SpawnHandle>,
    /// Where full batches go.
    writer: Recipient<WriteBatch>,
    /// Shared gauges: open buffers and buffered samples.
    counters: Arc<IngestCounters>,
}

impl BufferActor {
    /// A buffer for one station writing to `writer`.
    pub fn new(
        charge_point: ChargePointId,
        settings: BufferSettings,
        writer: Recipient<WriteBatch>,
        counters: Arc<IngestCounters>,
    ) -> Self {
        BufferActor {
            charge_point,
            // Grown on demand, not reserved for `max_samples`: a charge point reporting 10
            // values every 10 s never holds more than ~30, and an idle one holds none (a
            // reserved batch was ~8 KiB per connected charge point, issue 5).
            samples: Vec::new(),
            wal: None,
            wal_last: 0,
            settings,
            age_timer: None,
            writer,
            counters,
        }
    }

    /// Sends the open batch to the writer and resets the timer.
    fn flush(&mut self, ctx: &mut Context<Self>) {
        if let Some(timer) = self.age_timer.take() {
            ctx.cancel_future(timer);
        }
        if self.samples.is_empty() {
            return;
        }
        self.counters
            .buffered_samples
            .fetch_sub(self.samples.len(), Ordering::Relaxed);
        let samples = std::mem::take(&mut self.samples);
        self.writer.do_send(WriteBatch {
            charge_point: self.charge_point.clone(),
            samples,
            ops: Vec::new(),
            wal: self.wal.take(),
            wal_last: std::mem::take(&mut self.wal_last),
        });
    }
}

impl Actor for BufferActor {
    type Context = Context<Self>;

    fn started(&mut self, _: &mut Self::Context) {
        self.counters.open_buffers.fetch_add(1, Ordering::SeqCst);
    }

    fn stopped(&mut self, _: &mut Self::Context) {
        // After `stopping` flushed: shutdown may now drain the writer.
        self.counters.open_buffers.fetch_sub(1, Ordering::SeqCst);
    }

    fn stopping(&mut self, ctx: &mut Self::Context) -> Running {
        // Disconnect or shutdown: whatever was accepted goes to the writer before the memory is
        // freed.
        self.flush(ctx);
        Running::Stop
    }
}

impl Handler<Push> for BufferActor {
    type Result = ();

    fn handle(&mut self, Push(samples, wal): Push, ctx: &mut Self::Context) {
        for sample in samples {
            // A batch closed mid-push took the pin with it; the rest of this push needs one.
            if self.wal.is_none() {
                self.wal.clone_from(&wal);
            }
            if let Some(pin) = &wal {
                self.wal_last = self.wal_last.max(pin.lsn());
            }
            if self.samples.is_empty() && self.age_timer.is_none() {
                self.age_timer = Some(ctx.run_later(self.settings.max_age, |act, ctx| {
                    act.age_timer = None;
                    act.flush(ctx);
                }));
            }
            self.samples.push(sample);
            self.counters
                .buffered_samples
                .fetch_add(1, Ordering::Relaxed);
            if self.samples.len() >= self.settings.max_samples {
                self.flush(ctx);
            }
        }
    }
}

impl Handler<Flush> for BufferActor {
    type Result = ();

    fn handle(&mut self, _: Flush, ctx: &mut Self::Context) {
        self.flush(ctx);
    }
}

impl Handler<Stop> for BufferActor {
    type Result = ();

    fn handle(&mut self, _: Stop, ctx: &mut Self::Context) {
        ctx.stop();
    }
}

impl Handler<Buffered> for BufferActor {
    type Result = MessageResult<Buffered>;

    fn handle(&mut self, _: Buffered, _: &mut Self::Context) -> Self::Result {
        MessageResult(self.samples.clone())
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
    ) -> (Addr<BufferActor>, Arc<Mutex<Vec<WriteBatch>>>) {
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
        (
            BufferActor::new(id, settings, writer.recipient(), counters).start(),
            seen,
        )
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
        let (buffer, seen) = start(3, Duration::from_secs(3600));
        buffer
            .send(Push((0..7).map(sample).collect(), None))
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
        let (buffer, seen) = start(100, Duration::from_secs(30));
        buffer.send(Push(vec![sample(0)], None)).await.unwrap();
        actix::clock::sleep(Duration::from_secs(20)).await;
        buffer.send(Push(vec![sample(1)], None)).await.unwrap();
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
        let (buffer, seen) = start(100, Duration::from_secs(3600));
        buffer
            .send(Push(vec![sample(0), sample(1)], None))
            .await
            .unwrap();
        buffer.send(Stop).await.unwrap();
        actix::clock::sleep(Duration::from_millis(5)).await;
        assert_eq!(sizes(&seen), vec![2]);
    }
}
