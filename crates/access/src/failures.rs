//! Failed authentications, counted against their source: the client's
//! address and the listener it came in on.
//!
//! A failure proves nothing about the identity it claimed — anyone can
//! type a device id — so nothing here is ever counted per device, and
//! nothing here ever reaches the ledger (DESIGN.md §3, trust model). What
//! a source gets for its failures, on this node only: a delay before each
//! refusal (100 ms, doubling with each recent failure, at most
//! `failure_delay_max`), and once it reaches `failure_limit` failures
//! within `failure_window`, a ban of `source_ban` during which every login
//! from it is refused at once (CONNACK 0x9F, Connection rate exceeded) —
//! logged at warn level, so a brute force is both slowed and recorded.
//!
//! A success does not wipe the source's failures: with one valid
//! credential an attacker could otherwise reset the back-off between
//! guesses at another device.
//!
//! IPv6 sources are counted per /64 (one host usually holds a whole /64),
//! IPv4-mapped IPv6 addresses as IPv4.

use std::collections::{HashMap, VecDeque};
use std::hash::Hash;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::time::{Duration, Instant};

use parking_lot::Mutex;

/// First delay; each further recent failure doubles it.
const BASE_DELAY: Duration = Duration::from_millis(100);

/// Entries any one failure or lockout map keeps at most.
pub const MAX_ENTRIES: usize = 65_536;

/// Where an attempt came from, as failures are counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Source {
    /// The client's address (IPv6: its /64).
    pub ip: IpAddr,
    /// The listener's local address.
    pub listener: SocketAddr,
}

impl Source {
    pub fn new(peer: SocketAddr, listener: SocketAddr) -> Source {
        let ip = match peer.ip().to_canonical() {
            IpAddr::V6(v6) => {
                let s = v6.segments();
                IpAddr::V6(Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
            v4 => v4,
        };
        Source { ip, listener }
    }
}

/// What one unproven failure leads to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FailureVerdict {
    /// Wait this long before answering.
    pub delay: Duration,
    /// Failures of the source within the window, this one included.
    pub recent: usize,
    /// The source has just reached the limit and is banned from now on.
    pub banned_now: bool,
}

#[derive(Debug, Default)]
struct SourceRecord {
    /// Recent failures, oldest first (at most `limit` kept).
    times: VecDeque<Instant>,
    banned_until: Option<Instant>,
}

impl SourceRecord {
    fn last_seen(&self) -> Option<Instant> {
        self.times.back().copied().max(self.banned_until)
    }
}

pub struct FailureTracker {
    limit: u32,
    window: Duration,
    delay_max: Duration,
    ban: Duration,
    sources: Mutex<BoundedMap<Source, SourceRecord>>,
}

impl FailureTracker {
    /// `limit` 0 or `ban` zero: sources are delayed, never banned.
    pub fn new(limit: u32, window: Duration, delay_max: Duration, ban: Duration) -> FailureTracker {
        FailureTracker {
            limit,
            window,
            delay_max,
            ban,
            sources: Mutex::new(BoundedMap::new(MAX_ENTRIES)),
        }
    }

    /// The end of the source's ban, if it is banned at `now`.
    pub fn banned_until(&self, source: &Source, now: Instant) -> Option<Instant> {
        self.sources
            .lock()
            .get(source)
            .and_then(|r| r.banned_until)
            .filter(|&until| until > now)
    }

    /// The delay before refusing a banned source: the longest one.
    pub fn ban_delay(&self) -> Duration {
        self.delay_max
    }

    /// Counts an unproven failure from `source` at `now`.
    pub fn record(&self, source: Source, now: Instant) -> FailureVerdict {
        let window = self.window;
        let keep = (self.limit as usize).max(17);
        let mut sources = self.sources.lock();
        let record = sources.entry(source, now, |r| {
            r.last_seen()
                .is_some_and(|t| now.saturating_duration_since(t) < window)
        });
        while record
            .times
            .front()
            .is_some_and(|t| now.saturating_duration_since(*t) >= window)
        {
            record.times.pop_front();
        }
        record.times.push_back(now);
        while record.times.len() > keep {
            record.times.pop_front();
        }
        let recent = record.times.len();
        let exponent = recent.saturating_sub(1).min(16) as u32;
        let delay = BASE_DELAY.saturating_mul(1 << exponent).min(self.delay_max);
        let banned_now = self.limit > 0 && !self.ban.is_zero() && recent >= self.limit as usize;
        if banned_now {
            record.banned_until = Some(now + self.ban);
            // After the ban the source starts again from a clean slate.
            record.times.clear();
        }
        FailureVerdict {
            delay,
            recent,
            banned_now,
        }
    }
}

/// A map that never holds more than `capacity` entries: when it is full,
/// stale entries go first, then the least recently touched eighth.
pub struct BoundedMap<K, V> {
    capacity: usize,
    entries: HashMap<K, (Instant, V)>,
}

impl<K: Hash + Eq + Clone, V: Default> BoundedMap<K, V> {
    pub fn new(capacity: usize) -> BoundedMap<K, V> {
        BoundedMap {
            capacity: capacity.max(1),
            entries: HashMap::new(),
        }
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn get(&self, key: &K) -> Option<&V> {
        self.entries.get(key).map(|(_, v)| v)
    }

    /// The entry of `key`, created if absent, touched at `now`. When the
    /// map is full, entries for which `live` is false are dropped first.
    pub fn entry(&mut self, key: K, now: Instant, live: impl Fn(&V) -> bool) -> &mut V {
        if !self.entries.contains_key(&key) && self.entries.len() >= self.capacity {
            self.entries.retain(|_, (_, v)| live(v));
            if self.entries.len() >= self.capacity {
                self.evict_oldest(self.capacity / 8 + 1);
            }
        }
        let slot = self
            .entries
            .entry(key)
            .or_insert_with(|| (now, V::default()));
        slot.0 = now;
        &mut slot.1
    }

    fn evict_oldest(&mut self, n: usize) {
        let mut touched: Vec<(Instant, K)> = self
            .entries
            .iter()
            .map(|(k, (t, _))| (*t, k.clone()))
            .collect();
        let n = n.min(touched.len());
        touched.select_nth_unstable_by_key(n.saturating_sub(1), |(t, _)| *t);
        for (_, k) in touched.into_iter().take(n) {
            self.entries.remove(&k);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn source(ip: &str) -> Source {
        Source::new(
            SocketAddr::new(ip.parse().unwrap(), 50_000),
            "127.0.0.1:1883".parse().unwrap(),
        )
    }

    fn tracker(limit: u32) -> FailureTracker {
        FailureTracker::new(
            limit,
            Duration::from_secs(60),
            Duration::from_secs(5),
            Duration::from_secs(300),
        )
    }

    #[test]
    fn delays_double_and_the_limit_bans_the_source_once() {
        let t = tracker(5);
        let start = Instant::now();
        let s = source("192.0.2.1");
        let verdicts: Vec<_> = (0..5)
            .map(|i| t.record(s, start + Duration::from_secs(i)))
            .collect();
        let delays: Vec<u128> = verdicts.iter().map(|v| v.delay.as_millis()).collect();
        assert_eq!(delays, [100, 200, 400, 800, 1600]);
        let banned: Vec<bool> = verdicts.iter().map(|v| v.banned_now).collect();
        assert_eq!(banned, [false, false, false, false, true]);
        let at = start + Duration::from_secs(10);
        assert_eq!(
            t.banned_until(&s, at),
            Some(start + Duration::from_secs(304))
        );
        assert_eq!(t.banned_until(&s, start + Duration::from_secs(305)), None);
        // Another source, and the same address on another listener, are not banned.
        assert_eq!(t.banned_until(&source("192.0.2.2"), at), None);
        let other_listener = Source {
            listener: "127.0.0.1:8883".parse().unwrap(),
            ..s
        };
        assert_eq!(t.banned_until(&other_listener, at), None);
    }

    #[test]
    fn the_delay_is_capped_and_old_failures_are_forgotten() {
        let t = tracker(0);
        let start = Instant::now();
        let s = source("192.0.2.1");
        for i in 0..20 {
            let v = t.record(s, start + Duration::from_millis(i));
            assert!(v.delay <= Duration::from_secs(5));
            assert!(!v.banned_now, "limit 0 never bans");
        }
        let later = start + Duration::from_secs(61);
        assert_eq!(t.record(s, later).delay, Duration::from_millis(100));
    }

    #[test]
    fn ipv6_sources_count_per_64_and_mapped_ipv4_as_ipv4() {
        assert_eq!(source("2001:db8:1:2::1"), source("2001:db8:1:2:ffff::9"));
        assert_ne!(source("2001:db8:1:2::1"), source("2001:db8:1:3::1"));
        assert_eq!(source("::ffff:192.0.2.1"), source("192.0.2.1"));
    }

    #[test]
    fn a_full_map_evicts_instead_of_growing() {
        let mut m: BoundedMap<u32, u32> = BoundedMap::new(64);
        let start = Instant::now();
        for i in 0..1_000u32 {
            *m.entry(i, start + Duration::from_millis(i.into()), |_| true) = i;
            assert!(m.len() <= 64);
        }
        // The most recent entries survive.
        assert_eq!(m.get(&999), Some(&999));
        assert_eq!(m.get(&0), None);
    }

    #[test]
    fn stale_entries_go_before_live_ones() {
        let mut m: BoundedMap<u32, u32> = BoundedMap::new(4);
        let now = Instant::now();
        for i in 0..4 {
            *m.entry(i, now, |_| true) = i;
        }
        // Entry 3 is live, the others stale: all three stale ones go.
        m.entry(9, now, |v| *v == 3);
        assert_eq!(m.len(), 2);
        assert_eq!(m.get(&3), Some(&3));
    }
}
