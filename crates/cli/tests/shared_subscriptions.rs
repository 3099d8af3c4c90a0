//! Shared subscriptions `$share/{group}/{filter}` (MQTT 5.0 §4.8.2).

mod common;

use common::*;
use std::collections::BTreeSet;

fn drain(c: &mut Client) -> Vec<u8> {
    let mut got = Vec::new();
    while let Recv::Packet(Packet::Publish(p)) = c.try_recv(QUIET) {
        c.ack(&p);
        got.push(p.payload[0]);
    }
    got
}

/// §4.8.2: each message goes to exactly one member of the share group.
#[test]
fn shared_subscription_delivers_each_message_to_exactly_one_member() {
    let b = Broker::start();
    let mut m1 = b.v5("sh-m1");
    let mut m2 = b.v5("sh-m2");
    assert_eq!(m1.subscribe("$share/g/sh/t", 1), 1);
    assert_eq!(m2.subscribe("$share/g/sh/t", 1), 1);
    let mut p = b.v5("sh-pub");
    for i in 0..20u8 {
        p.publish("sh/t", &[i], 1, false);
    }
    let (a, c) = (drain(&mut m1), drain(&mut m2));
    let mut all: Vec<u8> = a.iter().chain(c.iter()).copied().collect();
    all.sort();
    assert_eq!(all, (0..20).collect::<Vec<u8>>(), "m1 {a:?} m2 {c:?}");
}

/// §4.8.2: messages are distributed over the group's members.
#[test]
fn shared_subscription_spreads_messages_over_members() {
    let b = Broker::start();
    let mut m1 = b.v5("spread-1");
    let mut m2 = b.v5("spread-2");
    m1.subscribe("$share/g/spread", 1);
    m2.subscribe("$share/g/spread", 1);
    let mut p = b.v5("spread-pub");
    for i in 0..20u8 {
        p.publish("spread", &[i], 1, false);
    }
    let (a, c) = (drain(&mut m1), drain(&mut m2));
    assert!(
        !a.is_empty() && !c.is_empty(),
        "one member got everything: {a:?} / {c:?}"
    );
}

/// §4.8.2: each share group receives its own copy.
#[test]
fn every_share_group_receives_each_message() {
    let b = Broker::start();
    let mut g1 = b.v5("grp1");
    let mut g2 = b.v5("grp2");
    g1.subscribe("$share/one/multi/t", 1);
    g2.subscribe("$share/two/multi/t", 1);
    publish_once(b.port, "multi/t", b"x", 1, false);
    assert_eq!(g1.recv_publish_ack().payload, b"x");
    assert_eq!(g2.recv_publish_ack().payload, b"x");
}

/// §4.8.2: a shared and a non-shared subscription both receive the message;
/// the shared copy carries the real topic name.
#[test]
fn shared_and_normal_subscribers_both_receive() {
    let b = Broker::start();
    let mut shared = b.v5("mix-shared");
    let mut normal = b.v5("mix-normal");
    shared.subscribe("$share/g/mix/+", 1);
    normal.subscribe("mix/+", 1);
    publish_once(b.port, "mix/a", b"x", 1, false);
    assert_eq!(shared.recv_publish_ack().topic, "mix/a");
    assert_eq!(normal.recv_publish_ack().topic, "mix/a");
}

/// [MQTT-3.3.1-?] §4.8.2 / §3.3.1.3: retained messages are not sent when a
/// shared subscription is made.
#[test]
fn retained_messages_are_not_sent_on_shared_subscribe() {
    let b = Broker::start();
    publish_once(b.port, "shret/t", b"kept", 1, true);
    let mut c = b.v5("shret");
    c.subscribe("$share/g/shret/t", 1);
    if mosquitto_deviates("mosquitto 2.0.11 sends retained messages to new shared subscriptions") {
        return;
    }
    c.expect_nothing(QUIET);
}

/// [MQTT-3.8.3-4]: No Local on a shared subscription is a Protocol Error.
#[test]
fn no_local_on_shared_subscription_is_protocol_error() {
    let b = Broker::start();
    let mut c = b.v5("shnolocal");
    let pkid = c.pkid();
    c.send(&Packet::Subscribe {
        pkid,
        props: Props::default(),
        filters: vec![("$share/g/nl".into(), sub_opts(1, true, false, 0))],
    });
    if mosquitto_deviates("mosquitto 2.0.11 accepts No Local on shared subscriptions") {
        return;
    }
    c.expect_disconnect(&[0x82]);
}

/// §4.8.2: a ShareName must be followed by `/` and a topic filter and
/// must not contain wildcards: refused per filter (0x8F).
#[test]
fn malformed_shared_subscription_filter_is_refused() {
    let b = Broker::start();
    let mut c = b.v5("shbad");
    let pkid = c.pkid();
    c.send(&Packet::Subscribe {
        pkid,
        props: Props::default(),
        filters: vec![
            ("$share/g".into(), 0),
            ("$share/g+/t".into(), 0),
            ("$share//t".into(), 0),
        ],
    });
    match c.try_recv(WAIT) {
        Recv::Packet(Packet::SubAck { codes, .. }) => {
            assert_eq!(codes.len(), 3);
            assert!(codes.iter().all(|&c| c >= 0x80), "{codes:02X?}");
            if !is_mosquitto() {
                assert_eq!(codes, vec![0x8F; 3]);
            }
        }
        Recv::Packet(Packet::Disconnect { .. }) | Recv::Closed
            if mosquitto_deviates("bad share filter closes") => {}
        other => panic!("expected SUBACK, got {other:?}"),
    }
}

/// §3.10.4: unsubscribing from a shared subscription stops delivery to it.
#[test]
fn unsubscribe_from_shared_subscription_stops_delivery() {
    let b = Broker::start();
    let mut c = b.v5("shunsub");
    c.subscribe("$share/g/shu/t", 1);
    assert_eq!(c.unsubscribe(&["$share/g/shu/t"]), vec![0]);
    publish_once(b.port, "shu/t", b"x", 1, false);
    c.expect_nothing(QUIET);
}

/// §4.8.2: when a member leaves, the remaining member gets every message.
#[test]
fn remaining_member_receives_all_messages_after_other_leaves() {
    let b = Broker::start();
    let m1 = b.v5("leave-1");
    let mut m2 = b.v5("leave-2");
    let mut m1 = m1;
    m1.subscribe("$share/g/leave", 1);
    m2.subscribe("$share/g/leave", 1);
    m1.disconnect();
    let mut p = b.v5("leave-pub");
    for i in 0..5u8 {
        p.publish("leave", &[i], 1, false);
    }
    let got: BTreeSet<u8> = drain(&mut m2).into_iter().collect();
    assert_eq!(got, (0..5).collect());
}
