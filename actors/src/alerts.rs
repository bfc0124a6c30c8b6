//! Alerts: what an operator is told when a reading crosses a threshold or cannot be right. The
//! rules, the book of open incidents and the supervisor that raises, clears and stores them are
//! here; the [`Alert`](crate::exchange::Alert) document they produce and the
//! [`Thresholds`](crate::exchange::Thresholds) they compare with are in [`crate::exchange`],
//! since the store, the live stream and the admin API share them too.

mod book;
mod deadlines;
mod rules;
mod small_map;
mod supervisor;

pub use book::{AlertBook, Change};
pub use rules::{above, band, below, clock_skew_checks, safety_checks, Check, Verdict};
pub use supervisor::{
    Acknowledge, AlertSettings, AlertSupervisor, EffectiveThresholds, FlushAlerts, GetThresholds,
    ReleaseAlerts, RestoreAlerts, SetThresholds, RESTORE_WAIT,
};
