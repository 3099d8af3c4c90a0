//! What the broker's envelope check costs per PUBLISH, for each
//! verification policy, on one core: `cargo bench -p ledgermq-access
//! --bench envelope_checks` (docs/bench.md "End-to-end envelopes").
//!
//! The check is the one the broker runs (`EnvelopeChecks::check` over a
//! registry snapshot: group lookup, sender, membership, epoch, signature as
//! the policy says, per-sender sequence); `plain` is the same call for a
//! topic no group protects, what every PUBLISH of a plain broker in the
//! ledger mode pays. Envelopes are made before the clock runs, each with a
//! fresh sequence.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use alloy_primitives::B256;
use ledgermq_access::envelopes::EnvelopeChecks;
use ledgermq_broker::auth::PayloadSource;
use ledgermq_ledger::contracts::{DeviceStatus, Protection, VerifyPolicy};
use ledgermq_ledger::view::{
    DeviceView, GroupView, KeyEpochView, Right, Rights, Snapshot, TopicView,
};
use ledgermq_security::scac::keys::InMemoryEd25519;
use ledgermq_security::{GroupKey, Publisher};

const TOPIC: &str = "plant/7/temp";
const PLAIN_TOPIC: &str = "open/7/temp";
const PREPARED: u64 = 50_000;

fn snapshot(publisher: &Publisher, verify: VerifyPolicy) -> Snapshot {
    let mut rights = Rights::default();
    for filter in ["plant/#", "open/#"] {
        rights.filters.push((
            filter.to_string(),
            Right {
                publish: true,
                subscribe: true,
            },
        ));
    }
    let mut s = Snapshot::default();
    s.devices.insert(
        "1111".into(),
        Arc::new(DeviceView {
            id: "1111".into(),
            org: "supplier".into(),
            signing_key: B256::from(publisher.public()),
            agreement_key: B256::repeat_byte(9),
            registered_at: 0,
            status: DeviceStatus::Active,
            rights,
            otp_envelopes: HashMap::new(),
        }),
    );
    for filter in ["plant/#", "open/#"] {
        s.topics.insert(
            filter.into(),
            Arc::new(TopicView {
                topic: filter.into(),
                org: "supplier".into(),
                sensitive: false,
                publish_open: false,
                subscribe_open: true,
            }),
        );
    }
    s.groups.insert(
        "hsu0001".into(),
        Arc::new(GroupView {
            name: "hsu0001".into(),
            org: "supplier".into(),
            filters: vec!["plant/#".into()],
            protection: Protection::Sealed,
            verify,
            grace_seconds: 60,
            members: ["1111".to_string()].into_iter().collect(),
            epochs: vec![KeyEpochView {
                epoch: 1,
                commitment: B256::repeat_byte(1),
                member_count: 1,
                committed_at: 0,
            }],
        }),
    );
    s
}

/// Checks per second of `payloads` on `topic` for `d`; a fresh
/// `EnvelopeChecks` per pass, so every sequence is new to it.
fn rate(snapshot: &Snapshot, topic: &str, payloads: &[Vec<u8>], d: Duration) -> f64 {
    let start = Instant::now();
    let mut n = 0u64;
    while start.elapsed() < d {
        let checks = EnvelopeChecks::default();
        for p in payloads {
            checks
                .check(snapshot, "1111", topic, p, PayloadSource::Publish)
                .expect("accepted");
        }
        n += payloads.len() as u64;
    }
    n as f64 / start.elapsed().as_secs_f64()
}

fn main() {
    let d = Duration::from_secs(2);
    let me = Publisher::new("1111", Arc::new(InMemoryEd25519::from_seed(&[7; 32]))).unwrap();
    let key = GroupKey::from_bytes("hsu0001", 1, &[3; 32]).unwrap();
    let reading = [0x5au8; 100];
    let sealed: Vec<Vec<u8>> = (1..=PREPARED)
        .map(|i| {
            me.seal_with_nonce(TOPIC, &key, i, &[i as u8; 24], &reading)
                .unwrap()
        })
        .collect();
    let plain = vec![reading.to_vec(); PREPARED as usize];
    println!("broker check per PUBLISH, 100-byte readings, one core:");
    let base = rate(
        &snapshot(&me, VerifyPolicy::Subscribers),
        PLAIN_TOPIC,
        &plain,
        d,
    );
    println!("  {:<28} {base:>12.0} /s", "plain (no group applies)");
    for (name, verify) in [
        ("sealed, verify subscribers", VerifyPolicy::Subscribers),
        ("sealed, verify sample 1/16", VerifyPolicy::Sample),
        ("sealed, verify every", VerifyPolicy::Every),
    ] {
        let r = rate(&snapshot(&me, verify), TOPIC, &sealed, d);
        println!("  {name:<28} {r:>12.0} /s   {:.2} us per message", 1e6 / r);
    }
}
