//! Misuse of a device's own valid credential: the only ground on which
//! this node blacklists a device on the ledger.
//!
//! Each kind is something a third party who merely knows the device id
//! cannot produce:
//!
//! - **replay**: an `LMQ-OTP-1` proof that verifies, for a packet number
//!   at or below the last one accepted (the proof binds this node's fresh
//!   challenge, so only the key holder can make one: a cloned device, or
//!   one whose counter went back);
//! - **rights violations**: PUBLISH or SUBSCRIBE refusals on the device's
//!   own authenticated connection;
//! - **key in two places**: a verified login of the device from one
//!   address while it has a live connection from another.
//!
//! `limit` events of one kind within `window` are evidence
//! ([`crate::evidence::Evidence`]); the count then starts again.

use std::collections::VecDeque;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use crate::evidence::{Evidence, EvidenceKind, MAX_SOURCES};
use crate::failures::{BoundedMap, MAX_ENTRIES};

/// Longest device id kept as a key (Registry.MAX_DEVICE_ID): nothing
/// longer can be registered, so nothing longer is ever evidence.
pub const MAX_DEVICE_ID_LEN: usize = ledgermq_security::wire::MAX_DEVICE_ID_LEN;

#[derive(Debug, Default)]
struct Events {
    /// (monotonic time, Unix ms) of each event, oldest first.
    times: VecDeque<(Instant, u64)>,
    sources: Vec<IpAddr>,
}

/// Where a device last logged in.
#[derive(Debug, Default)]
struct Place {
    ip: Option<IpAddr>,
}

pub struct MisuseTracker {
    node: [u8; 20],
    limit: u32,
    window: Duration,
    events: Mutex<BoundedMap<(String, EvidenceKind), Events>>,
    places: Mutex<BoundedMap<String, Place>>,
}

impl MisuseTracker {
    /// `limit` 0: events are logged but never become evidence.
    pub fn new(node: [u8; 20], limit: u32, window: Duration) -> MisuseTracker {
        MisuseTracker {
            node,
            limit,
            window,
            events: Mutex::new(BoundedMap::new(MAX_ENTRIES)),
            places: Mutex::new(BoundedMap::new(MAX_ENTRIES)),
        }
    }

    /// Counts one event of `kind` by `device_id` from `sources`; returns
    /// the evidence once the limit is reached.
    pub fn note(
        &self,
        kind: EvidenceKind,
        device_id: &str,
        sources: &[IpAddr],
        now: Instant,
        now_ms: u64,
    ) -> Option<Evidence> {
        if device_id.len() > MAX_DEVICE_ID_LEN {
            return None;
        }
        let window = self.window;
        let keep = (self.limit as usize).max(1);
        let mut events = self.events.lock();
        let e = events.entry((device_id.to_owned(), kind), now, |e| {
            e.times
                .back()
                .is_some_and(|(t, _)| now.saturating_duration_since(*t) < window)
        });
        while e
            .times
            .front()
            .is_some_and(|(t, _)| now.saturating_duration_since(*t) >= window)
        {
            e.times.pop_front();
        }
        e.times.push_back((now, now_ms));
        while e.times.len() > keep {
            e.times.pop_front();
        }
        for ip in sources {
            let ip = ip.to_canonical();
            if !e.sources.contains(&ip) && e.sources.len() < MAX_SOURCES {
                e.sources.push(ip);
            }
        }
        if self.limit == 0 || e.times.len() < self.limit as usize {
            return None;
        }
        let evidence = Evidence {
            kind,
            device_id: device_id.to_owned(),
            node: self.node,
            count: e.times.len() as u32,
            first_ms: e.times.front().map_or(now_ms, |(_, ms)| *ms),
            last_ms: now_ms,
            sources: std::mem::take(&mut e.sources),
        };
        e.times.clear();
        Some(evidence)
    }

    /// A verified login of `device_id` from `ip`; `live_elsewhere` tells
    /// whether the device has a live connection right now. Counts a
    /// key-in-two-places event when that connection's login came from
    /// another address.
    pub fn verified_login(
        &self,
        device_id: &str,
        ip: IpAddr,
        live: bool,
        now: Instant,
        now_ms: u64,
    ) -> Option<Evidence> {
        if device_id.len() > MAX_DEVICE_ID_LEN {
            return None;
        }
        let ip = ip.to_canonical();
        let previous = {
            let mut places = self.places.lock();
            let place = places.entry(device_id.to_owned(), now, |_| true);
            place.ip.replace(ip)
        };
        match previous {
            Some(other) if live && other != ip => self.note(
                EvidenceKind::KeyInTwoPlaces,
                device_id,
                &[other, ip],
                now,
                now_ms,
            ),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tracker(limit: u32) -> MisuseTracker {
        MisuseTracker::new([7; 20], limit, Duration::from_secs(60))
    }

    #[test]
    fn the_limit_within_the_window_makes_evidence_once() {
        let t = tracker(3);
        let start = Instant::now();
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        let at = |i: u64| (start + Duration::from_secs(i), 1_000_000 + i * 1000);
        for i in 0..2 {
            let (now, ms) = at(i);
            assert!(t.note(EvidenceKind::Replay, "d", &[ip], now, ms).is_none());
        }
        let (now, ms) = at(2);
        let e = t
            .note(EvidenceKind::Replay, "d", &[ip], now, ms)
            .expect("evidence");
        assert_eq!(
            (e.kind, e.count, e.first_ms, e.last_ms, e.node),
            (EvidenceKind::Replay, 3, 1_000_000, 1_002_000, [7; 20])
        );
        assert_eq!(e.sources, [ip]);
        let (now, ms) = at(3);
        assert!(t.note(EvidenceKind::Replay, "d", &[], now, ms).is_none());
        // Kinds and devices are counted apart; old events are forgotten.
        let (now, ms) = at(100);
        assert!(t
            .note(EvidenceKind::RightsViolation, "d", &[], now, ms)
            .is_none());
    }

    #[test]
    fn logins_from_two_places_while_live_are_evidence() {
        let t = tracker(2);
        let now = Instant::now();
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "192.0.2.2".parse().unwrap();
        assert!(t.verified_login("d", a, false, now, 1).is_none());
        // Same place, or nothing live: not counted.
        assert!(t.verified_login("d", a, true, now, 2).is_none());
        assert!(t.verified_login("d", b, false, now, 3).is_none());
        assert!(t.verified_login("d", a, true, now, 4).is_none());
        let e = t.verified_login("d", b, true, now, 5).expect("evidence");
        assert_eq!((e.kind, e.count), (EvidenceKind::KeyInTwoPlaces, 2));
        let mut sources = e.sources.clone();
        sources.sort();
        assert_eq!(sources, [a, b]);
    }

    #[test]
    fn over_long_ids_are_never_keys() {
        let t = tracker(1);
        let long = "x".repeat(MAX_DEVICE_ID_LEN + 1);
        let now = Instant::now();
        assert!(t.note(EvidenceKind::Replay, &long, &[], now, 0).is_none());
        assert!(t
            .verified_login(&long, "192.0.2.1".parse().unwrap(), true, now, 0)
            .is_none());
    }
}
