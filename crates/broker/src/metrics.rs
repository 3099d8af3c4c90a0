//! Broker counters, published under `$SYS/broker/…`.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

#[derive(Default)]
pub struct Metrics {
    pub clients_connected: AtomicU64,
    pub clients_total: AtomicU64,
    pub messages_received: AtomicU64,
    pub messages_sent: AtomicU64,
    /// Deliveries dropped: queue overflow, expiry, packet too large for the client.
    pub messages_dropped: AtomicU64,
    pub bytes_received: AtomicU64,
    pub bytes_sent: AtomicU64,
    /// Connected subscribers disconnected because their queue was full.
    pub slow_subscribers: AtomicU64,
    /// Retained PUBLISHes not retained because the retained store was full.
    pub retained_refused: AtomicU64,
    /// Connections refused or closed by a limit before or during CONNECT
    /// (per-address limit, pending-CONNECT bytes, session limit, busy
    /// authentication workers).
    pub connections_refused: AtomicU64,
    /// PUBLISHes refused by the payload check, by
    /// [`crate::auth::PayloadRefusal`] (index = variant order).
    pub payloads_refused: [AtomicU64; crate::auth::PayloadRefusal::ALL.len()],
}

impl Metrics {
    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Relaxed);
    }

    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Relaxed)
    }
}
