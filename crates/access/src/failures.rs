//! Failed authentications, counted per device id and per source address.
//!
//! Counting stays off the ledger: it changes with every attempt and would
//! leak who tried what. Two things come out of it: a delay before the
//! refusal is sent (doubling with each recent failure, so guessing gets
//! slow without holding a thread), and, when a registered device reaches
//! the limit within the window, the decision to blacklist it, which is the
//! only part that goes on the ledger.

use std::collections::{HashMap, VecDeque};
use std::hash::Hash;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

/// First delay; each further recent failure doubles it.
const BASE_DELAY: Duration = Duration::from_millis(100);

/// Entries kept per map before stale ones are pruned.
const PRUNE_ABOVE: usize = 16_384;

/// What one failure leads to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FailureVerdict {
    /// Wait this long before answering.
    pub delay: Duration,
    /// The device has just reached the failure limit: blacklist it.
    pub limit_reached: bool,
}

pub struct FailureTracker {
    limit: u32,
    window: Duration,
    delay_max: Duration,
    by_device: Mutex<HashMap<String, VecDeque<Instant>>>,
    by_peer: Mutex<HashMap<IpAddr, VecDeque<Instant>>>,
}

impl FailureTracker {
    pub fn new(limit: u32, window: Duration, delay_max: Duration) -> FailureTracker {
        FailureTracker {
            limit,
            window,
            delay_max,
            by_device: Mutex::new(HashMap::new()),
            by_peer: Mutex::new(HashMap::new()),
        }
    }

    /// Counts a failure of `device` (if the attempt named one) from `peer`.
    pub fn record(&self, device: Option<&str>, peer: IpAddr, now: Instant) -> FailureVerdict {
        let from_peer = bump(&self.by_peer, peer, now, self.window);
        let from_device = match device {
            Some(d) => bump(&self.by_device, d.to_owned(), now, self.window),
            None => 0,
        };
        let recent = from_peer.max(from_device);
        let exponent = recent.saturating_sub(1).min(16);
        let delay = BASE_DELAY.saturating_mul(1 << exponent).min(self.delay_max);
        FailureVerdict {
            delay,
            limit_reached: self.limit > 0 && from_device == self.limit as usize,
        }
    }

    /// A successful authentication wipes the device's failure history (its
    /// source address keeps its own).
    pub fn succeeded(&self, device: &str) {
        self.by_device.lock().remove(device);
    }
}

/// Adds a failure at `now` and returns how many fall within the window.
fn bump<K: Hash + Eq>(
    map: &Mutex<HashMap<K, VecDeque<Instant>>>,
    key: K,
    now: Instant,
    window: Duration,
) -> usize {
    let mut map = map.lock();
    if map.len() > PRUNE_ABOVE {
        map.retain(|_, times| {
            times
                .back()
                .is_some_and(|t| now.duration_since(*t) < window)
        });
    }
    let times = map.entry(key).or_default();
    while times
        .front()
        .is_some_and(|t| now.duration_since(*t) >= window)
    {
        times.pop_front();
    }
    times.push_back(now);
    times.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer() -> IpAddr {
        "192.0.2.1".parse().unwrap()
    }

    #[test]
    fn fifth_failure_in_the_window_reaches_the_limit_once() {
        let t = FailureTracker::new(5, Duration::from_secs(60), Duration::from_secs(5));
        let start = Instant::now();
        let verdicts: Vec<_> = (0..6)
            .map(|i| t.record(Some("d"), peer(), start + Duration::from_secs(i)))
            .collect();
        let reached: Vec<bool> = verdicts.iter().map(|v| v.limit_reached).collect();
        assert_eq!(reached, [false, false, false, false, true, false]);
        assert_eq!(verdicts[0].delay, Duration::from_millis(100));
        assert_eq!(verdicts[2].delay, Duration::from_millis(400));
        assert_eq!(verdicts[5].delay, Duration::from_millis(3200));
    }

    #[test]
    fn failures_outside_the_window_are_forgotten() {
        let t = FailureTracker::new(3, Duration::from_secs(10), Duration::from_secs(5));
        let start = Instant::now();
        for i in 0..2 {
            assert!(
                !t.record(Some("d"), peer(), start + Duration::from_secs(i))
                    .limit_reached
            );
        }
        let later = start + Duration::from_secs(30);
        assert!(!t.record(Some("d"), peer(), later).limit_reached);
        assert_eq!(
            t.record(Some("d"), peer(), later).delay,
            Duration::from_millis(200)
        );
    }

    #[test]
    fn success_clears_the_device_but_not_the_address() {
        let t = FailureTracker::new(2, Duration::from_secs(60), Duration::from_secs(5));
        let now = Instant::now();
        t.record(Some("d"), peer(), now);
        t.succeeded("d");
        let v = t.record(Some("d"), peer(), now);
        assert!(!v.limit_reached);
        assert_eq!(
            v.delay,
            Duration::from_millis(200),
            "the address has 2 failures"
        );
        assert!(
            t.record(None, "192.0.2.9".parse().unwrap(), now).delay == Duration::from_millis(100)
        );
    }
}
