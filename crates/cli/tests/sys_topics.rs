//! `$SYS` topics (MQTT 5.0 §4.7.2 for `$` matching; names are ledgermq's).

mod common;

use common::*;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

const NAMES: &[&str] = &[
    "$SYS/broker/version",
    "$SYS/broker/uptime",
    "$SYS/broker/clients/connected",
    "$SYS/broker/clients/total",
    "$SYS/broker/messages/received",
    "$SYS/broker/messages/sent",
    "$SYS/broker/messages/dropped",
    "$SYS/broker/subscriptions/count",
    "$SYS/broker/retained messages/count",
    "$SYS/broker/bytes/received",
    "$SYS/broker/bytes/sent",
];

/// Collects `$SYS/broker/#` values until every name in NAMES was seen.
fn collect(c: &mut Client) -> BTreeMap<String, String> {
    let mut seen = BTreeMap::new();
    let deadline = Instant::now() + Duration::from_secs(8);
    while NAMES.iter().any(|n| !seen.contains_key(*n)) {
        let left = deadline.saturating_duration_since(Instant::now());
        match c.try_recv(left) {
            Recv::Packet(Packet::Publish(p)) => {
                c.ack(&p);
                seen.insert(p.topic, String::from_utf8_lossy(&p.payload).into_owned());
            }
            Recv::Packet(_) => {}
            other => panic!(
                "missing $SYS topics {:?}: {other:?}",
                NAMES
                    .iter()
                    .filter(|n| !seen.contains_key(**n))
                    .collect::<Vec<_>>()
            ),
        }
    }
    seen
}

#[test]
fn sys_topics_are_published_retained_at_start() {
    if skip_unless_ledgermq("$SYS topic names") {
        return;
    }
    let b = Broker::with(&[("sys-interval", "1")]).unwrap();
    let mut c = b.v5("sys");
    c.subscribe("$SYS/broker/#", 0);
    let seen = collect(&mut c);
    assert!(!seen["$SYS/broker/version"].is_empty());
}

#[test]
fn sys_counters_are_numbers_and_count_this_client() {
    if skip_unless_ledgermq("$SYS topic names") {
        return;
    }
    let b = Broker::with(&[("sys-interval", "1")]).unwrap();
    let _counted = b.v5("sys-counted");
    // Let at least one refresh happen while connected, then read the
    // retained values.
    sleep_ms(2200);
    let mut c = b.v5("sys-num");
    c.subscribe("$SYS/broker/#", 0);
    let seen = collect(&mut c);
    for n in NAMES.iter().filter(|n| !n.ends_with("version")) {
        let v = seen[*n].split_whitespace().next().unwrap_or("");
        assert!(
            v.parse::<f64>().is_ok(),
            "{n} = {:?} is not a number",
            seen[*n]
        );
    }
    let connected: u64 = seen["$SYS/broker/clients/connected"].parse().unwrap();
    assert!(connected >= 1);
}

#[test]
fn sys_topics_are_refreshed_every_interval() {
    if skip_unless_ledgermq("$SYS topic names") {
        return;
    }
    let b = Broker::with(&[("sys-interval", "1")]).unwrap();
    let mut c = b.v5("sys-refresh");
    c.subscribe("$SYS/broker/uptime", 0);
    let first = c.recv_publish();
    assert!(first.retain, "$SYS topics are retained");
    let second = c.recv_publish();
    assert_eq!(second.topic, "$SYS/broker/uptime");
    assert!(!second.retain);
}

/// [MQTT-4.7.2-1]: `#` does not match `$SYS` topics.
#[test]
fn hash_subscription_does_not_receive_sys_topics() {
    let Some(b) = Broker::with(&[("sys-interval", "1")]) else {
        return;
    };
    let mut c = b.v5("not-sys");
    c.subscribe("#", 0);
    c.expect_nothing(Duration::from_millis(2500));
}

/// `sys-interval 0` turns $SYS off.
#[test]
fn sys_interval_zero_disables_sys_topics() {
    if skip_unless_ledgermq("$SYS topic names") {
        return;
    }
    let b = Broker::with(&[("sys-interval", "0")]).unwrap();
    let mut c = b.v5("sys-off");
    c.subscribe("$SYS/#", 0);
    c.expect_nothing(Duration::from_millis(1500));
}
