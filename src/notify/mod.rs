//! Notifications that leave the process: the alert webhook. Kept out of the `actors` crate,
//! which has no HTTP code; subscribed to the live stream's alerts like any other consumer.

pub mod webhook;
