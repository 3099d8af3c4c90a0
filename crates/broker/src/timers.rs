//! One time-ordered structure for everything the broker must do later:
//! publish a delayed will, end an expired session. One task sleeps until
//! the earliest deadline ([`crate::sys::housekeeping`]); nothing spawns a
//! task per will and nothing scans every session to find the due ones.
//!
//! Each session holds the keys of its own timers and cancels them when a
//! connection resumes it, so the structure never holds more than two
//! entries per session, however often a client reconnects.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use parking_lot::Mutex;
use tokio::sync::Notify;

/// Something to do at a deadline, for the session of a client id as it was
/// at `generation` (a newer connection makes the timer stale).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Timer {
    Will {
        client_id: Arc<str>,
        generation: u64,
    },
    SessionExpiry {
        client_id: Arc<str>,
        generation: u64,
    },
}

/// Identifies one scheduled timer, for cancelling it.
pub type TimerKey = (Instant, u64);

#[derive(Default)]
pub struct Timers {
    due: Mutex<BTreeMap<TimerKey, Timer>>,
    seq: AtomicU64,
    /// Woken when a timer earlier than every other is scheduled.
    pub changed: Notify,
}

impl Timers {
    pub fn schedule(&self, at: Instant, timer: Timer) -> TimerKey {
        let key = (at, self.seq.fetch_add(1, Ordering::Relaxed));
        let mut due = self.due.lock();
        let earliest = due.keys().next().is_none_or(|k| key < *k);
        due.insert(key, timer);
        drop(due);
        if earliest {
            self.changed.notify_one();
        }
        key
    }

    pub fn cancel(&self, key: TimerKey) {
        self.due.lock().remove(&key);
    }

    pub fn next_deadline(&self) -> Option<Instant> {
        self.due.lock().keys().next().map(|k| k.0)
    }

    /// Removes and returns every timer due at `now`, earliest first.
    pub fn take_due(&self, now: Instant) -> Vec<Timer> {
        let mut due = self.due.lock();
        let later = due.split_off(&(now, u64::MAX));
        let ready = std::mem::replace(&mut *due, later);
        ready.into_values().collect()
    }

    pub fn len(&self) -> usize {
        self.due.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn will(id: &str) -> Timer {
        Timer::Will {
            client_id: id.into(),
            generation: 1,
        }
    }

    #[test]
    fn timers_come_due_in_order_and_cancelled_ones_never() {
        let t = Timers::default();
        let now = Instant::now();
        t.schedule(now + Duration::from_secs(2), will("b"));
        let a = t.schedule(now + Duration::from_secs(1), will("a"));
        let c = t.schedule(now + Duration::from_secs(3), will("c"));
        t.cancel(c);
        assert_eq!(t.next_deadline(), Some(a.0));
        assert!(t.take_due(now).is_empty());
        assert_eq!(
            t.take_due(now + Duration::from_secs(2)),
            [will("a"), will("b")]
        );
        assert!(t.is_empty());
    }
}
