//! The broker's check of end-to-end envelopes on protected topics
//! (docs/e2e.md), without any group key.
//!
//! A group of the ledger's Groups contract protects the topics its filters
//! match, but only topics of its own organisation: a group applies to a
//! PUBLISH when one of the publisher's publish rights that matches the
//! topic is on a topic owned by the group's organisation. So no
//! organisation can impose its policy on another's topics.
//!
//! Order of checks: envelope or not (the strictest protection of the
//! applicable groups decides whether a plain payload passes) → parse →
//! sender = client id → kind, group, membership, epoch → signature (as the
//! group's verify policy says) → sequence above the last one accepted from
//! the sender on this node. The sequence advances only for an envelope that
//! passed everything else, so a refused envelope never moves it.

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use ledgermq_broker::auth::{PayloadRefusal, PayloadSource};
use ledgermq_ledger::contracts::{Protection, VerifyPolicy};
use ledgermq_ledger::view::Snapshot;
use ledgermq_security::envelope::{EnvelopeKind, ENVELOPE_MAGIC};
use ledgermq_security::Envelope;
use parking_lot::Mutex;

/// With [`VerifyPolicy::Sample`], one signature in this many is verified.
pub const SAMPLE_ONE_IN: u64 = 16;

const SHARDS: usize = 16;

/// Per-node state of the envelope checks: the last accepted sequence of
/// each sender (one number per device that published an envelope here),
/// and the sampling counter.
pub struct EnvelopeChecks {
    sequences: [Mutex<HashMap<String, u64>>; SHARDS],
    hasher: RandomState,
    sampled: AtomicU64,
}

impl Default for EnvelopeChecks {
    fn default() -> Self {
        EnvelopeChecks {
            sequences: std::array::from_fn(|_| Mutex::new(HashMap::new())),
            hasher: RandomState::new(),
            sampled: AtomicU64::new(0),
        }
    }
}

impl EnvelopeChecks {
    /// Whether PUBLISH payloads of `device` on `topic` are checked: some
    /// group applies to them.
    pub fn applies(&self, snapshot: &Snapshot, device: &str, topic: &str) -> bool {
        !snapshot.groups_applying(device, topic).is_empty()
    }

    /// Checks one payload (see the module documentation for the order).
    pub fn check(
        &self,
        snapshot: &Snapshot,
        device: &str,
        topic: &str,
        payload: &[u8],
        source: PayloadSource,
    ) -> Result<(), PayloadRefusal> {
        let groups = snapshot.groups_applying(device, topic);
        let Some(protection) = groups.iter().map(|g| g.protection).max_by_key(|p| p.code()) else {
            return Ok(());
        };
        if !payload.starts_with(ENVELOPE_MAGIC) {
            return match protection {
                Protection::Optional => Ok(()),
                _ => Err(PayloadRefusal::NotAnEnvelope),
            };
        }
        let envelope = Envelope::parse(payload).map_err(|_| PayloadRefusal::Malformed)?;
        if envelope.sender() != device {
            return Err(PayloadRefusal::SenderMismatch);
        }
        let verify = match envelope.kind() {
            EnvelopeKind::Sealed => {
                let name = envelope.group().unwrap_or_default();
                let group = groups
                    .iter()
                    .find(|g| g.name == name)
                    .ok_or(PayloadRefusal::WrongGroup)?;
                if !group.members.contains(device) {
                    return Err(PayloadRefusal::NotMember);
                }
                let epoch = envelope.epoch().unwrap_or_default();
                if !group.epoch_acceptable(epoch, unix_now()) {
                    return Err(PayloadRefusal::StaleEpoch);
                }
                group.verify
            }
            EnvelopeKind::Signed => {
                if protection == Protection::Sealed {
                    return Err(PayloadRefusal::Malformed);
                }
                groups
                    .iter()
                    .map(|g| g.verify)
                    .max_by_key(|v| v.code())
                    .unwrap_or(VerifyPolicy::Subscribers)
            }
        };
        let verify_now = match verify {
            VerifyPolicy::Every => true,
            VerifyPolicy::Sample => {
                self.sampled.fetch_add(1, Ordering::Relaxed) % SAMPLE_ONE_IN == 0
            }
            VerifyPolicy::Subscribers => false,
        };
        if verify_now {
            let key = snapshot
                .devices
                .get(device)
                .map(|d| d.signing_key.0)
                .ok_or(PayloadRefusal::BadSignature)?;
            envelope
                .verify(topic, &key)
                .map_err(|_| PayloadRefusal::BadSignature)?;
        }
        match source {
            PayloadSource::Publish => self.advance(device, envelope.sequence()),
            // A will was made when the client connected; subscribers judge
            // its sequence against what they saw.
            PayloadSource::Will => Ok(()),
        }
    }

    /// Records `sequence` for `device` if it is above the last one.
    fn advance(&self, device: &str, sequence: u64) -> Result<(), PayloadRefusal> {
        let shard = (self.hasher.hash_one(device) as usize) % SHARDS;
        let mut map = self.sequences[shard].lock();
        match map.get_mut(device) {
            Some(last) if sequence <= *last => Err(PayloadRefusal::Replayed),
            Some(last) => {
                *last = sequence;
                Ok(())
            }
            None => {
                map.insert(device.to_owned(), sequence);
                Ok(())
            }
        }
    }
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::sync::Arc;

    use alloy_primitives::B256;
    use ledgermq_ledger::contracts::DeviceStatus;
    use ledgermq_ledger::view::{DeviceView, GroupView, KeyEpochView, Right, Rights, TopicView};
    use ledgermq_security::scac::keys::InMemoryEd25519;
    use ledgermq_security::{GroupKey, Publisher};

    use super::*;

    const TOPIC: &str = "plant/7/temp";

    fn device(id: &str, org: &str, signing: [u8; 32], publish_on: &str) -> Arc<DeviceView> {
        let mut rights = Rights::default();
        rights.filters.push((
            publish_on.to_string(),
            Right {
                publish: true,
                subscribe: true,
            },
        ));
        Arc::new(DeviceView {
            id: id.into(),
            org: org.into(),
            signing_key: B256::from(signing),
            agreement_key: B256::repeat_byte(9),
            registered_at: 0,
            status: DeviceStatus::Active,
            rights,
            otp_envelopes: HashMap::new(),
        })
    }

    fn group(org: &str, protection: Protection, verify: VerifyPolicy) -> GroupView {
        GroupView {
            name: "hsu0001".into(),
            org: org.into(),
            filters: vec!["plant/#".into()],
            protection,
            verify,
            grace_seconds: 60,
            members: ["1111".to_string()].into_iter().collect(),
            epochs: vec![KeyEpochView {
                epoch: 1,
                commitment: B256::repeat_byte(1),
                member_count: 1,
                committed_at: 0,
            }],
        }
    }

    /// A registry where `1111` (supplier) may publish on `plant/#`, owned by
    /// `topic_org`, and `group` protects it.
    fn snapshot(publisher: &Publisher, topic_org: &str, g: GroupView) -> Snapshot {
        let mut s = Snapshot::default();
        s.devices.insert(
            "1111".into(),
            device("1111", "supplier", publisher.public(), "plant/#"),
        );
        s.topics.insert(
            "plant/#".into(),
            Arc::new(TopicView {
                topic: "plant/#".into(),
                org: topic_org.into(),
                sensitive: false,
                publish_open: false,
                subscribe_open: true,
            }),
        );
        s.groups.insert(g.name.clone(), Arc::new(g));
        s
    }

    fn publisher() -> Publisher {
        Publisher::new("1111", Arc::new(InMemoryEd25519::from_seed(&[7; 32]))).unwrap()
    }

    fn key(epoch: u64) -> GroupKey {
        GroupKey::from_bytes("hsu0001", epoch, &[3; 32]).unwrap()
    }

    #[test]
    fn a_sealed_group_takes_only_fresh_signed_envelopes_of_its_members() {
        let p = publisher();
        let s = snapshot(
            &p,
            "supplier",
            group("supplier", Protection::Sealed, VerifyPolicy::Every),
        );
        let checks = EnvelopeChecks::default();
        let check =
            |payload: &[u8]| checks.check(&s, "1111", TOPIC, payload, PayloadSource::Publish);
        assert!(checks.applies(&s, "1111", TOPIC));
        assert!(!checks.applies(&s, "1111", "other/topic"));
        assert_eq!(check(b"21.5 C"), Err(PayloadRefusal::NotAnEnvelope));
        assert_eq!(
            check(b"LMQE\x01\x01garbage"),
            Err(PayloadRefusal::Malformed)
        );
        let rng = &mut rand::rngs::OsRng;
        let first = p.seal(TOPIC, &key(1), 1, b"21.5 C", rng).unwrap();
        assert_eq!(check(&first), Ok(()));
        // The same envelope again, and an older sequence: replays.
        assert_eq!(check(&first), Err(PayloadRefusal::Replayed));
        // Signed-only where sealing is required.
        assert_eq!(
            check(&p.sign(TOPIC, 5, b"x").unwrap()),
            Err(PayloadRefusal::Malformed)
        );
        // An envelope made for another topic fails the signature here.
        let moved = p.seal("plant/7/other", &key(1), 6, b"x", rng).unwrap();
        assert_eq!(check(&moved), Err(PayloadRefusal::BadSignature));
        // A flipped ciphertext bit breaks the signature.
        let mut forged = p.seal(TOPIC, &key(1), 7, b"x", rng).unwrap();
        let at = forged.len() - 70;
        forged[at] ^= 1;
        assert_eq!(check(&forged), Err(PayloadRefusal::BadSignature));
        // A refused envelope did not move the sequence: 7 is still free.
        assert_eq!(
            check(&p.seal(TOPIC, &key(1), 7, b"x", rng).unwrap()),
            Ok(())
        );
        // An epoch the ledger never committed.
        let future = p.seal(TOPIC, &key(2), 8, b"x", rng).unwrap();
        assert_eq!(check(&future), Err(PayloadRefusal::StaleEpoch));
        // Another group's envelope.
        let other = GroupKey::from_bytes("hsu0002", 1, &[3; 32]).unwrap();
        let wrong = p.seal(TOPIC, &other, 9, b"x", rng).unwrap();
        assert_eq!(check(&wrong), Err(PayloadRefusal::WrongGroup));
        // Someone else's envelope on 1111's connection.
        let q = Publisher::new("1112", Arc::new(InMemoryEd25519::from_seed(&[8; 32]))).unwrap();
        let theirs = q.seal(TOPIC, &key(1), 10, b"x", rng).unwrap();
        assert_eq!(check(&theirs), Err(PayloadRefusal::SenderMismatch));
        // A will skips the sequence, not the rest.
        let old = p.seal(TOPIC, &key(1), 2, b"bye", rng).unwrap();
        assert_eq!(
            checks.check(&s, "1111", TOPIC, &old, PayloadSource::Will),
            Ok(())
        );
        assert_eq!(check(&old), Err(PayloadRefusal::Replayed));
    }

    #[test]
    fn epochs_rotate_with_grace_and_members_are_checked() {
        let p = publisher();
        let mut g = group("supplier", Protection::Sealed, VerifyPolicy::Subscribers);
        let now = unix_now();
        g.epochs.push(KeyEpochView {
            epoch: 2,
            commitment: B256::repeat_byte(2),
            member_count: 1,
            committed_at: now,
        });
        let s = snapshot(&p, "supplier", g.clone());
        let checks = EnvelopeChecks::default();
        let rng = &mut rand::rngs::OsRng;
        // Within the grace period the previous epoch still passes.
        let e1 = p.seal(TOPIC, &key(1), 1, b"x", rng).unwrap();
        assert_eq!(
            checks.check(&s, "1111", TOPIC, &e1, PayloadSource::Publish),
            Ok(())
        );
        g.grace_seconds = 0;
        let s = snapshot(&p, "supplier", g.clone());
        let e1 = p.seal(TOPIC, &key(1), 2, b"x", rng).unwrap();
        assert_eq!(
            checks.check(&s, "1111", TOPIC, &e1, PayloadSource::Publish),
            Err(PayloadRefusal::StaleEpoch)
        );
        let e2 = p.seal(TOPIC, &key(2), 3, b"x", rng).unwrap();
        assert_eq!(
            checks.check(&s, "1111", TOPIC, &e2, PayloadSource::Publish),
            Ok(())
        );
        // Removed from the group: refused, whatever key it still holds.
        g.members.clear();
        let s = snapshot(&p, "supplier", g);
        let e2 = p.seal(TOPIC, &key(2), 4, b"x", rng).unwrap();
        assert_eq!(
            checks.check(&s, "1111", TOPIC, &e2, PayloadSource::Publish),
            Err(PayloadRefusal::NotMember)
        );
    }

    #[test]
    fn a_group_applies_only_to_its_own_organisations_topics() {
        let p = publisher();
        // The topic belongs to the manufacturer; the supplier's group cannot
        // impose anything on it.
        let s = snapshot(
            &p,
            "manufacturer",
            group("supplier", Protection::Sealed, VerifyPolicy::Every),
        );
        let checks = EnvelopeChecks::default();
        assert!(!checks.applies(&s, "1111", TOPIC));
        assert_eq!(
            checks.check(&s, "1111", TOPIC, b"plain", PayloadSource::Publish),
            Ok(())
        );
        // Optional protection: plain passes, an envelope is still checked.
        let s = snapshot(
            &p,
            "supplier",
            group("supplier", Protection::Optional, VerifyPolicy::Every),
        );
        assert_eq!(
            checks.check(&s, "1111", TOPIC, b"plain", PayloadSource::Publish),
            Ok(())
        );
        let mut forged = p.sign(TOPIC, 1, b"online").unwrap();
        let last = forged.len() - 1;
        forged[last] ^= 1;
        assert_eq!(
            checks.check(&s, "1111", TOPIC, &forged, PayloadSource::Publish),
            Err(PayloadRefusal::BadSignature)
        );
        assert_eq!(
            checks.check(
                &s,
                "1111",
                TOPIC,
                &p.sign(TOPIC, 1, b"online").unwrap(),
                PayloadSource::Publish
            ),
            Ok(())
        );
    }
}
