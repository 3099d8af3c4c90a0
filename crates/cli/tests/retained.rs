//! Retained messages, Retain Handling, Retain As Published and retained
//! message expiry (MQTT 5.0 §3.3.1.3, §3.3.2.3.3, §3.8.3.1; 3.1.1 §3.3.1.3).

mod common;

use common::*;
use std::time::Duration;

/// [MQTT-3.3.1-9]: a new subscription gets the retained message, with RETAIN=1.
#[test]
fn retained_message_is_sent_on_subscribe_with_retain_flag() {
    let b = Broker::start();
    publish_once(b.port, "ret/t", b"kept", 1, true);
    let mut c = b.v5("ret-sub");
    c.subscribe("ret/t", 1);
    let p = c.recv_publish_ack();
    assert_eq!((p.payload.as_slice(), p.retain), (&b"kept"[..], true));
}

/// 3.1.1 [MQTT-3.3.1-8].
#[test]
fn retained_message_is_sent_on_subscribe_v311() {
    let b = Broker::start();
    let mut p = b.v3("ret3-pub");
    p.publish("ret3/t", b"kept3", 1, true);
    let mut c = b.v3("ret3-sub");
    c.subscribe("ret3/t", 1);
    let m = c.recv_publish_ack();
    assert_eq!((m.payload.as_slice(), m.retain), (&b"kept3"[..], true));
}

/// [MQTT-3.3.1-12]: without Retain As Published, a forwarded live message
/// has RETAIN=0 even if it was published retained.
#[test]
fn live_retained_message_is_forwarded_with_retain_cleared() {
    let b = Broker::start();
    let mut c = b.v5("live-ret");
    c.subscribe("liveret/t", 1);
    publish_once(b.port, "liveret/t", b"x", 1, true);
    assert!(!c.recv_publish_ack().retain);
}

/// [MQTT-3.3.1-13]: with Retain As Published the RETAIN flag is kept.
#[test]
fn retain_as_published_keeps_retain_flag() {
    let b = Broker::start();
    let mut c = b.v5("rap");
    c.subscribe_with(&[("rap/t", sub_opts(1, false, true, 0))], Props::default());
    publish_once(b.port, "rap/t", b"r", 1, true);
    publish_once(b.port, "rap/t", b"n", 1, false);
    let m1 = c.recv_publish_ack();
    let m2 = c.recv_publish_ack();
    assert_eq!((m1.payload.as_slice(), m1.retain), (&b"r"[..], true));
    assert_eq!((m2.payload.as_slice(), m2.retain), (&b"n"[..], false));
}

/// [MQTT-3.3.1-10], [MQTT-3.3.1-11]: a retained PUBLISH with empty payload
/// removes the retained message.
#[test]
fn empty_retained_payload_deletes_retained_message() {
    let b = Broker::start();
    publish_once(b.port, "del/t", b"old", 1, true);
    publish_once(b.port, "del/t", b"", 1, true);
    let mut c = b.v5("del-sub");
    c.subscribe("del/t", 1);
    c.expect_nothing(QUIET);
}

/// §3.3.1.3: the zero-byte retained message is still forwarded to current
/// subscribers.
#[test]
fn empty_retained_message_is_forwarded_to_current_subscribers() {
    let b = Broker::start();
    let mut c = b.v5("del-live");
    c.subscribe("dellive/t", 1);
    publish_once(b.port, "dellive/t", b"", 1, true);
    assert!(c.recv_publish_ack().payload.is_empty());
}

/// [MQTT-3.3.1-5]: a new retained message replaces the previous one.
#[test]
fn new_retained_message_replaces_previous_one() {
    let b = Broker::start();
    publish_once(b.port, "repl/t", b"first", 1, true);
    publish_once(b.port, "repl/t", b"second", 1, true);
    let mut c = b.v5("repl-sub");
    c.subscribe("repl/t", 1);
    assert_eq!(c.recv_publish_ack().payload, b"second");
    c.expect_nothing(QUIET);
}

/// [MQTT-3.3.1-9]: a wildcard subscription gets every matching retained message.
#[test]
fn wildcard_subscription_receives_all_matching_retained_messages() {
    let b = Broker::start();
    publish_once(b.port, "wr/a", b"a", 1, true);
    publish_once(b.port, "wr/b/c", b"bc", 1, true);
    publish_once(b.port, "other", b"o", 1, true);
    let mut c = b.v5("wr-sub");
    c.subscribe("wr/#", 1);
    let mut topics = vec![c.recv_publish_ack().topic, c.recv_publish_ack().topic];
    topics.sort();
    assert_eq!(topics, vec!["wr/a", "wr/b/c"]);
    c.expect_nothing(QUIET);
}

/// [MQTT-3.3.1-7]: a retained QoS 0 message is stored too.
#[test]
fn retained_qos0_message_is_stored() {
    let b = Broker::start();
    publish_once(b.port, "rq0/t", b"q0", 0, true);
    sleep_ms(100);
    let mut c = b.v5("rq0-sub");
    c.subscribe("rq0/t", 1);
    let m = c.recv_publish_ack();
    assert_eq!((m.payload.as_slice(), m.qos), (&b"q0"[..], 0));
}

/// [MQTT-3.3.1-9]: Retain Handling 0 sends retained messages on every subscribe.
#[test]
fn retain_handling_0_sends_retained_on_every_subscribe() {
    let b = Broker::start();
    publish_once(b.port, "rh0/t", b"x", 1, true);
    let mut c = b.v5("rh0");
    for _ in 0..2 {
        c.subscribe_with(&[("rh0/t", sub_opts(1, false, false, 0))], Props::default());
        assert_eq!(c.recv_publish_ack().payload, b"x");
    }
}

/// [MQTT-3.3.1-10]: Retain Handling 1 sends retained messages only when the
/// subscription is new.
#[test]
fn retain_handling_1_sends_retained_only_for_new_subscription() {
    let b = Broker::start();
    publish_once(b.port, "rh1/t", b"x", 1, true);
    let mut c = b.v5("rh1");
    c.subscribe_with(&[("rh1/t", sub_opts(1, false, false, 1))], Props::default());
    assert_eq!(c.recv_publish_ack().payload, b"x");
    c.subscribe_with(&[("rh1/t", sub_opts(1, false, false, 1))], Props::default());
    c.expect_nothing(QUIET);
}

/// [MQTT-3.3.1-11]: Retain Handling 2 never sends retained messages.
#[test]
fn retain_handling_2_never_sends_retained() {
    let b = Broker::start();
    publish_once(b.port, "rh2/t", b"x", 1, true);
    let mut c = b.v5("rh2");
    c.subscribe_with(&[("rh2/t", sub_opts(1, false, false, 2))], Props::default());
    c.expect_nothing(QUIET);
}

/// §3.8.3.1: Retain Handling 3 is a Protocol Error.
#[test]
fn retain_handling_3_is_protocol_error() {
    let b = Broker::start();
    let mut c = b.v5("rh3");
    let pkid = c.pkid();
    c.send(&Packet::Subscribe {
        pkid,
        props: Props::default(),
        filters: vec![("rh3/t".into(), 0x30)],
    });
    c.expect_disconnect(&[0x81, 0x82]);
}

/// [MQTT-3.3.2-5]: an expired retained message is not sent.
#[test]
fn expired_retained_message_is_not_delivered() {
    let b = Broker::start();
    let mut p = b.v5("exp-ret-pub");
    p.publish_packet(Publish {
        retain: true,
        props: Props {
            message_expiry_interval: Some(1),
            ..Props::default()
        },
        ..Publish::new("expret/t", b"old", 1)
    });
    sleep_ms(2200);
    let mut c = b.v5("exp-ret-sub");
    c.subscribe("expret/t", 1);
    c.expect_nothing(QUIET);
}

/// [MQTT-3.3.2-6]: a retained message is sent with the remaining lifetime
/// as its Message Expiry Interval.
#[test]
fn retained_message_carries_remaining_expiry_interval() {
    let b = Broker::start();
    let mut p = b.v5("rem-pub");
    p.publish_packet(Publish {
        retain: true,
        props: Props {
            message_expiry_interval: Some(30),
            ..Props::default()
        },
        ..Publish::new("remexp/t", b"x", 1)
    });
    std::thread::sleep(Duration::from_millis(1100));
    let mut c = b.v5("rem-sub");
    c.subscribe("remexp/t", 1);
    let m = c.recv_publish_ack();
    let left = m
        .props
        .message_expiry_interval
        .expect("Message Expiry Interval");
    assert!((1..30).contains(&left), "remaining expiry {left}");
}
